"""The forward camera image and the bird's-eye view for people.

Per frame (everything else is precomputed per episode):

1. the sky rows above the far ground are downsampled ahead (once, or with a skyline once per
   column phase of its panorama) and copied in only when the skyline moved;
2. warp the current texture tile into the far ground rows of a supersampled buffer and into
   the near ground rows at the output size, one ``cv2.warpPerspective`` each (the homography
   ``tile <- world <- vehicle <- image``, see :mod:`sim.builtin.camera`);
3. downsample the far rows to the camera size with ``INTER_AREA`` (anti-aliased far field);
4. apply the weather's per-pixel light map: ``out = img * gain + add`` (ambient light,
   distance fog, headlight pool) plus sensor noise, on the rows it changes;
5. draw the roadside billboards (:mod:`sim.builtin.billboards`) far to near, each with its
   distance-dependent light and fog;
6. add rain streaks.

Tiles and frame buffers have four channels (the fourth unused): OpenCV's 4-channel warps
are about twice as fast as its 3-channel ones and give the same values. Every shortcut here
gives the same frames to the bit as the straightforward version (``tests/sim/
test_frame_hashes.py`` holds frames of the renderer before them).
"""

from __future__ import annotations

import bisect
import math
from operator import itemgetter

import cv2
import numpy as np

from sim.builtin.billboards import DRAW, SHIFT
from sim.builtin.camera import CameraModel
from sim.builtin.roads import Road
from sim.builtin.texture import GroundTexture
from sim.builtin.towns import Backdrop, PropSet
from sim.builtin.weather import Weather

VIEW_DISTANCE_M = 120.0
"""Ground beyond this distance is drawn as the far-field haze band, m."""
PROP_DISTANCE_M = 110.0
"""Billboards beyond this distance are not drawn, m."""
NEAR_DISTANCE_M = 12.0
"""Ground nearer than this is magnified, not minified: it is warped at the output size
directly; only the ground beyond it (and the sky) is supersampled."""
_NOISE_BANK = 8
"""Number of stored sensor-noise fields per episode."""
_NOISE_ROWS = 16
"""Extra rows of each stored noise field (random vertical offsets)."""
_SHIFT = SHIFT
_ONE = 1 << _SHIFT
_FIRST = itemgetter(0)


def _headlight_gain(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Relative light of the low beams on ground/object points at vehicle-frame (X, Y)."""
    d = np.hypot(X, Y)
    ang = np.arctan2(Y, np.maximum(X, 1e-3))
    falloff = np.minimum(1.0, (14.0 / np.maximum(d, 1.0)) ** 2)
    cone = np.exp(-((ang / 0.38) ** 2))
    near = np.clip((X - 1.5) / 2.0, 0.0, 1.0)  # nothing lit under the bonnet
    return 1.1 * falloff * cone * near


class Renderer:
    """Renders one episode's camera frames.

    Args:
        camera: Output camera (supersample 1) and its pose.
        road: The road.
        texture: The ground texture tiles.
        props: The roadside objects.
        weather: Weather and lighting.
        supersample: Supersampling factor of the ground warp.
        rain_seed: Seed of the rain-streak patterns.
        backdrop: Distant skyline of the town, or None.
        backdrop_seed: Seed of the skyline's shape.
    """

    def __init__(
        self,
        camera: CameraModel,
        road: Road,
        texture: GroundTexture,
        props: PropSet,
        weather: Weather,
        supersample: int = 2,
        rain_seed: int = 0,
        backdrop: Backdrop | None = None,
        backdrop_seed: int = 0,
    ) -> None:
        self.road = road
        self.texture = texture
        self.weather = weather
        self.cam = camera
        self.cam_ss = CameraModel(
            camera.spec,
            supersample,
            pitch_offset_rad=camera.pitch - math.radians(camera.spec.pitch_deg),
            yaw_offset_rad=camera.yaw,
            height_offset_m=camera.h - camera.spec.mount_height_m,
        )
        W, H = camera.width, camera.height
        Ws, Hs = self.cam_ss.width, self.cam_ss.height
        self.row0 = int(
            min(max(math.ceil(self.cam_ss.row_at_distance(VIEW_DISTANCE_M)), 0), Hs - 1)
        )
        shift = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, float(self.row0)], [0.0, 0.0, 1.0]])
        self._M = self.cam_ss.M @ shift  # far sub-image pixel -> vehicle ground
        ss = self.cam_ss.ss
        split = math.ceil(camera.row_at_distance(NEAR_DISTANCE_M))
        self.split = int(min(max(split, (self.row0 + ss) // ss, 1), H))
        """First output row of the near ground (warped without supersampling)."""
        self._M_near = camera.M @ np.array(
            [[1.0, 0.0, 0.0], [0.0, 1.0, float(self.split)], [0.0, 0.0, 1.0]]
        )
        sky = self._make_sky(Ws, Hs)[: self.split * ss]
        # 4-channel buffers (the fourth channel is unused): OpenCV warps and resizes them
        # about twice as fast as 3-channel ones, with the same values in the first three
        self._buf_ss = cv2.cvtColor(sky, cv2.COLOR_RGB2RGBA)  # rows between the skyline and
        # the far ground never change
        self._sky_rows = min(math.floor(self.cam_ss.horizon_row) + 1, self.row0)
        self._pano = (
            cv2.cvtColor(self._make_panorama(sky, backdrop, backdrop_seed), cv2.COLOR_RGB2RGBA)
            if backdrop is not None and self._sky_rows > 0
            else None
        )
        self._far = self._buf_ss[self.row0 :]
        self._img4 = np.empty((H, W, 4), np.uint8)
        self._near = self._img4[self.split :]
        self._img = np.empty((H, W, 3), np.uint8)
        # INTER_AREA at an integer factor averages disjoint ss x ss blocks, so the output rows
        # above row0 // ss (sky, skyline, haze band) are downsampled ahead: once, or with a
        # skyline once per column phase of its panorama
        self._j0 = self.row0 // ss
        """Output rows above this one never see the far ground."""
        self._top = self._img4[self._j0 : self.split]
        self._buf_top = self._buf_ss[self._j0 * ss :]
        self._pano_ds: list[np.ndarray] = []
        self._pano_k0: int | None = None
        if self._pano is None:
            static = self._buf_ss[: self._j0 * ss]
            self._img4[: self._j0] = cv2.resize(static, (W, self._j0), interpolation=cv2.INTER_AREA)
        else:
            full = np.repeat(self._buf_ss[: self._j0 * ss, :1], self._pano.shape[1], axis=1)
            rows = min(self._sky_rows, self._j0 * ss)
            full[:rows] = self._pano[:rows]
            for phase in range(ss):
                n = (full.shape[1] - phase) // ss
                part = full[:, phase : phase + n * ss]
                self._pano_ds.append(
                    cv2.resize(part, (n, self._j0), interpolation=cv2.INTER_AREA)
                    if self._j0 > 0
                    else np.zeros((0, n, 4), np.uint8)
                )
        self._fbuf = np.empty((H, W, 3), np.float32)
        self._noise_buf = np.empty((H, W, 3), np.float32)
        self._noise_bank: np.ndarray | None = None
        self._gain, self._add = self._make_light_maps()
        unlit = np.all((self._gain == 1.0) & (self._add == 0.0), axis=(1, 2))
        self._lit_row = int(np.argmin(unlit)) if not unlit.all() else H
        """Rows above this one have gain 1 and offset 0 (sky): the light map leaves them be."""
        (r00, r01, r02), (r10, r11, r12), (r20, r21, r22) = camera.R.tolist()
        c0, c1, c2 = camera.C.tolist()
        pz = -c2  # the base point's height above the camera, m
        self._cull = (r00, r01, r10, r11, r20, r21, r02 * pz, r12 * pz, r22 * pz, c0, c1)
        self._cull += (camera.f, camera.cx, camera.cy, camera.width, camera.height)
        self._r12_r22 = (r12, r22)
        self._light32 = np.asarray(weather.light, np.float32)[None, None, :]
        self._haze = np.asarray(weather.haze_colour, np.float32).tolist()
        self.props = props
        self._rain = self._make_rain(rain_seed) if weather.rain > 0 else None
        self._border = (*(float(c) for c in texture.mean_ground), 0.0)
        self._T = np.eye(3)

    @property
    def props(self) -> PropSet:
        """The roadside objects (setting them recomputes their per-episode constants)."""
        return self._props

    @props.setter
    def props(self, props: PropSet) -> None:
        self._props = props
        self._props_s = props.s.tolist()
        # per object: x, y, the camera-frame y and z of its height, and f * width (the same
        # products as a per-frame computation would give)
        r12, r22 = self._r12_r22
        f = self.cam.f
        self._props_cull = [
            (x, y, r12 * h, r22 * h, f * w)
            for x, y, h, w in zip(
                props.x.tolist(),
                props.y.tolist(),
                props.height.tolist(),
                props.width.tolist(),
                strict=True,
            )
        ]
        self._props_kind = props.kind.tolist()
        # the colours under the ambient light (float32, as in the per-frame formula); with
        # headlights the light depends on the position and is applied per frame
        self._props_lit = (
            None
            if self.weather.headlights
            else (props.colour * self._light32).reshape(-1, 9).tolist()
        )

    # -----------------------------------------------------------------------------------------
    # per-episode precomputation
    def _make_sky(self, Ws: int, Hs: int) -> np.ndarray:
        w = self.weather
        cam = self.cam_ss
        rows = np.arange(Hs, dtype=np.float64)
        hz = cam.horizon_row
        top = np.asarray(w.sky_top, np.float64)
        bottom = np.asarray(w.sky_horizon, np.float64)
        t = np.clip(rows / max(hz, 1.0), 0, 1)
        sky = top[None, :] + (bottom - top)[None, :] * (t[:, None] ** 1.5)
        # below the horizon and beyond the view distance: the mean ground colour (the light
        # map adds light and haze like for the rest of the ground)
        band = np.asarray(self.texture.mean_ground, np.float64)
        below = rows >= hz
        blend = np.clip((rows - hz) / 2.0, 0, 1)[:, None]
        sky[below] = (bottom * (1 - blend) + band * blend)[below]
        img = np.repeat(sky[:, None, :], Ws, axis=1)
        return np.clip(img, 0, 255).astype(np.uint8)

    def _make_panorama(self, sky: np.ndarray, backdrop: Backdrop, seed: int) -> np.ndarray:
        """Sky rows with the skyline for every azimuth: (rows, 2 pi f + W, 3) uint8.

        Column ``k`` shows azimuth ``(P - 1 - k) / f`` (P = round(2 pi f)); the first W columns
        are repeated at the end so that any view is one slice.
        """
        cam, w = self.cam_ss, self.weather
        f, hz = cam.f, cam.horizon_row
        rows_n = self._sky_rows
        pw = round(2.0 * math.pi * f)
        az = np.arange(pw) * (2.0 * math.pi / pw)
        rng = np.random.default_rng([seed, 4242])
        ks = np.arange(1, 97)
        amp = ks ** -(2.3 - 1.0 * backdrop.roughness)
        phase = rng.uniform(0, 2 * math.pi, ks.size)
        p = (amp[:, None] * np.cos(ks[:, None] * az[None, :] + phase[:, None])).sum(axis=0)
        p = (p - p.min()) / (p.max() - p.min() + 1e-12)
        height = math.radians(backdrop.height_deg)
        elev = height * (0.15 + 0.85 * p)
        if backdrop.flat_tops > 0:
            elev = np.minimum(elev, height * backdrop.flat_tops) / backdrop.flat_tops
        top = hz - f * np.tan(elev)  # skyline row per azimuth
        rows = np.arange(rows_n, dtype=np.float64)[:, None]
        cover = np.clip(rows + 1.0 - top[None, :], 0.0, 1.0)[..., None]  # anti-aliased edge
        pix_elev = np.arctan((hz - (rows + 0.5)) / f)  # elevation of each row
        rel = np.clip(pix_elev / np.maximum(elev[None, :], 1e-6), 0.0, 1.0)[..., None]
        light = np.asarray(w.light, np.float64)
        colour = np.asarray(backdrop.colour, np.float64) * light * (0.8 + 0.3 * rel)
        if backdrop.cap_colour is not None:
            # snow within the top quarter of the height, on the higher peaks only
            below_ridge = (elev[None, :] - pix_elev)[..., None]
            cap = (below_ridge < 0.25 * height) & (elev[None, :, None] > 0.55 * height)
            colour = np.where(cap, np.asarray(backdrop.cap_colour, np.float64) * light, colour)
        # aerial perspective: distant slopes fade into the horizon sky
        vis = math.exp(-w.haze_per_m * 150.0)
        colour = colour * vis + np.asarray(w.sky_horizon, np.float64) * (1.0 - vis)
        base = sky[:rows_n, :1].astype(np.float64)  # the sky gradient (same in every column)
        pano = base * (1.0 - cover) + colour * cover
        pano = np.clip(pano[:, ::-1], 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.concatenate([pano, pano[:, : sky.shape[1]]], axis=1))

    def _make_light_maps(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-pixel gain and offset at the output size (identity above the ground rows)."""
        w, cam = self.weather, self.cam
        H, W = cam.height, cam.width
        vv, uu = np.mgrid[0:H, 0:W].astype(np.float64)
        X, Y = cam.ground_points(uu, vv)
        ground = np.isfinite(X)
        Xg = np.where(ground, X, 1e3)
        Yg = np.where(ground, Y, 0.0)
        dist = np.hypot(Xg - cam.C[0], Yg - cam.C[1])
        fog = np.exp(-w.haze_per_m * dist)
        light = np.asarray(w.light, np.float64)[None, None, :] * np.ones((H, W, 1))
        if w.headlights:
            light = light + _headlight_gain(Xg, Yg)[..., None]
        gain = light * fog[..., None]
        add = np.asarray(w.haze_colour, np.float64)[None, None, :] * (1.0 - fog)[..., None]
        gain[~ground] = 1.0
        add[~ground] = 0.0
        return gain.astype(np.float32), add.astype(np.float32)

    def _make_rain(self, seed: int) -> list[np.ndarray]:
        rng = np.random.default_rng([seed, 99])
        H, W = self.cam.height, self.cam.width
        layers = []
        for _ in range(8):
            layer = np.zeros((H, W, 3), np.uint8)
            n = int(self.weather.rain * W * H / 220)
            x0 = rng.uniform(0, W, n)
            y0 = rng.uniform(-0.2 * H, H, n)
            length = rng.uniform(0.05, 0.18, n) * H
            for i in range(n):
                p0 = (int(x0[i] * _ONE), int(y0[i] * _ONE))
                p1 = (int((x0[i] - 0.15 * length[i]) * _ONE), int((y0[i] + length[i]) * _ONE))
                v = int(rng.uniform(20, 45))
                cv2.line(layer, p0, p1, (v, v, v), 1, cv2.LINE_AA, _SHIFT)
            layers.append(layer)
        return layers

    # -----------------------------------------------------------------------------------------
    def render(
        self,
        x: float,
        y: float,
        yaw: float,
        s: float,
        noise_std: float = 0.0,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        """Renders the camera frame for a vehicle pose.

        Args:
            x: Vehicle x (rear axle), m.
            y: Vehicle y, m.
            yaw: Vehicle yaw, rad.
            s: Arc length of the vehicle's projection on the road (picks the texture tile), m.
            noise_std: Std of additive Gaussian noise on [0, 1] images (0 = none).
            rng: Source of the noise and the rain pattern choice (required if either is used).

        Returns:
            A new (H, W, 3) uint8 RGB image.
        """
        tile = self.texture.tile_at(s)
        c, sn = math.cos(yaw), math.sin(yaw)
        T = self._T  # vehicle -> world
        T[0, 0], T[0, 1], T[0, 2] = c, -sn, x
        T[1, 0], T[1, 1], T[1, 2] = sn, c, y
        pose = tile.world_to_px @ T
        buf = self._buf_ss
        if self._pano is not None:
            # skyline: image column u sees azimuth yaw + (cx - u) / f (columns of the stored
            # panorama run clockwise so that this is one slice)
            pw = self._pano.shape[1] - buf.shape[1]
            az = yaw + self.cam_ss.yaw
            k0 = round(pw - 1 - self.cam_ss.cx - az * self.cam_ss.f) % pw
            if k0 != self._pano_k0:
                self._pano_k0 = k0
                ss = self.cam_ss.ss
                j0, W = self._j0, self._img4.shape[1]
                m = k0 // ss
                np.copyto(self._img4[:j0], self._pano_ds[k0 % ss][:, m : m + W])
                r0 = j0 * ss  # skyline rows that share an output row with the far ground
                if r0 < self._sky_rows:
                    np.copyto(buf[r0 : self._sky_rows], self._pano[r0:, k0 : k0 + buf.shape[1]])
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        far, near = self._far, self._near
        if far.shape[0] > 0:
            cv2.warpPerspective(
                tile.rgba,
                pose @ self._M,
                (far.shape[1], far.shape[0]),
                dst=far,
                flags=flags,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=self._border,
            )
        top = self._top
        cv2.resize(
            self._buf_top, (top.shape[1], top.shape[0]), dst=top, interpolation=cv2.INTER_AREA
        )
        if near.shape[0] > 0:
            cv2.warpPerspective(
                tile.rgba,
                pose @ self._M_near,
                (near.shape[1], near.shape[0]),
                dst=near,
                flags=flags,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=self._border,
            )
        img = cv2.cvtColor(self._img4, cv2.COLOR_RGBA2RGB, dst=self._img)
        out = np.empty_like(img)
        std = math.hypot(noise_std, self.weather.grain_std)
        noisy = std > 0 and rng is not None
        r = 0 if noisy else self._lit_row  # img * 1 + 0 is img: copy the unlit rows
        out[:r] = img[:r]
        if r < out.shape[0]:
            fb = self._fbuf[r:]
            np.copyto(fb, img[r:])  # exact; float32 * float32 then runs without casting
            fb *= self._gain[r:]
            fb += self._add[r:]
            if noisy:
                fb += self._noise(rng) * np.float32(255.0 * std)
                np.maximum(fb, 0.0, out=fb)
            cv2.convertScaleAbs(fb, dst=out[r:])  # saturates at 255 (fb >= 0: gain, offset >= 0)
        self._draw_props(out, x, y, c, sn, s)
        if self._rain is not None and rng is not None:
            cv2.add(out, self._rain[int(rng.integers(len(self._rain)))], dst=out)
        return out

    def _noise(self, rng: np.random.Generator) -> np.ndarray:
        """Unit Gaussian noise of the image's shape, a random window of a per-episode bank.

        Drawing fresh normals costs about 20x more than the rest of the frame's colour work;
        a bank of ``_NOISE_BANK`` fields, each twice as wide and a little taller than the image,
        cut at a random offset with a random sign, gives tens of thousands of different fields.
        """
        H, W = self._img.shape[:2]
        if self._noise_bank is None:
            shape = (_NOISE_BANK, H + _NOISE_ROWS, 2 * W, 3)
            self._noise_bank = rng.standard_normal(shape, dtype=np.float32)
        k = int(rng.integers(_NOISE_BANK))
        r = int(rng.integers(_NOISE_ROWS))
        c = int(rng.integers(W))
        sign = np.float32(1.0 if rng.random() < 0.5 else -1.0)
        return np.multiply(self._noise_bank[k, r : r + H, c : c + W], sign, out=self._noise_buf)

    def _draw_props(
        self, img: np.ndarray, x: float, y: float, c: float, sn: float, s: float
    ) -> None:
        """Draws the billboards in view, far to near.

        Culling runs on Python floats (a frame sees about a dozen objects: numpy's per-call
        overhead would dominate) with the same operations in the same order as a vectorised
        version, so the results are the same to the last bit; the light and fog are then
        computed for the visible objects only (exp and hypot with numpy, whose results may
        differ from the math module's in the last bit).
        """
        lo = bisect.bisect_left(self._props_s, s - 15.0)
        hi = bisect.bisect_right(self._props_s, s + PROP_DISTANCE_M)
        if hi <= lo:
            return
        r00, r01, r10, r11, r20, r21, k0, k1, k2, c0, c1, f, cx, cy, width, height = self._cull
        nsn = -sn
        props = self._props_cull
        visible = []
        for i in range(lo, hi):
            px, py, r12h, r22h, fw = props[i]
            dx = px - x
            dy = py - y
            X = c * dx + sn * dy
            Y = nsn * dx + c * dy
            # camera coordinates of the base point and of the top (top = base + height * z)
            qx, qy = X - c0, Y - c1
            zc = r20 * qx + r21 * qy + k2
            zt = zc + r22h
            if not (zc > 1.0 and zt > 1.0):
                continue
            xc = r00 * qx + r01 * qy + k0
            yc = r10 * qx + r11 * qy + k1
            yt = yc + r12h
            u = cx + f * xc / zc
            vb = cy + f * yc / zc
            vt = cy + f * yt / zt
            wpx = fw / zc
            if u + wpx > 0 and u - wpx < width and vt < height and vb - vt >= 0.6:
                visible.append((-zc, i, X, Y, u, vb, vt, wpx))
        if not visible:
            return
        visible.sort(key=_FIRST)  # far to near; stable for equal depths
        _, ids, Xs, Ys, us, vbs, vts, wpxs = zip(*visible, strict=True)
        Xv, Yv = np.array(Xs), np.array(Ys)
        fogs = np.exp(-self.weather.haze_per_m * np.hypot(Xv, Yv)).tolist()
        if self._props_lit is not None:
            lits = [self._props_lit[i] for i in ids]
        else:
            light = self._light32 + _headlight_gain(Xv, Yv).astype(np.float32)[:, None, None]
            lits = (self._props.colour[list(ids)] * light).reshape(-1, 9).tolist()
        h0, h1, h2 = self._haze
        draw, kinds = DRAW, self._props_kind
        for i, u, vb, vt, wpx, lit, fog in zip(ids, us, vbs, vts, wpxs, lits, fogs, strict=True):
            # lit * fog + haze * (1 - fog) on the float32 colours, in float64 like numpy's
            # promotion; OpenCV saturates colours to [0, 255] itself, so no clip is needed
            g = 1.0 - fog
            a, b, c = h0 * g, h1 * g, h2 * g
            m0, m1, m2, s0, s1, s2, d0, d1, d2 = lit
            draw[kinds[i]](
                img,
                u,
                vb,
                vt,
                wpx,
                (m0 * fog + a, m1 * fog + b, m2 * fog + c),
                (s0 * fog + a, s1 * fog + b, s2 * fog + c),
                (d0 * fog + a, d1 * fog + b, d2 * fog + c),
            )

    # -----------------------------------------------------------------------------------------
    def birdseye(
        self,
        x: float,
        y: float,
        yaw: float,
        s: float,
        camera_image: np.ndarray | None = None,
        size_px: int = 320,
        metres: float = 60.0,
        route_end_s: float | None = None,
        vehicle_size: tuple[float, float] = (4.5, 1.8),
        rear_overhang_m: float = 0.9,
    ) -> np.ndarray:
        """A top-down view centred ahead of the car (forward = up) for people.

        Shows the textured world, the route ahead (the right-lane centre, blue), the car (red)
        and, top left, the camera frame.
        """
        tile = self.texture.tile_at(s)
        scale = metres / size_px  # m per output px
        c, sn = math.cos(yaw), math.sin(yaw)
        # output px (col, row) -> vehicle frame: forward = up, left = left
        fwd_c = 0.3 * metres
        out_to_veh = np.array(
            [
                [0.0, -scale, fwd_c + scale * size_px / 2],
                [-scale, 0.0, scale * size_px / 2],
                [0.0, 0.0, 1.0],
            ]
        )
        T = np.array([[c, -sn, x], [sn, c, y], [0.0, 0.0, 1.0]])
        Hm = tile.world_to_px @ T @ out_to_veh
        view = cv2.warpAffine(
            tile.rgba,
            Hm[:2],
            (size_px, size_px),
            flags=cv2.INTER_AREA | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=self._border,
        )
        view = cv2.cvtColor(view, cv2.COLOR_RGBA2RGB)
        veh_to_out = np.linalg.inv(out_to_veh)

        def to_px(wx: np.ndarray, wy: np.ndarray) -> np.ndarray:
            dx, dy = wx - x, wy - y
            X = c * dx + sn * dy
            Y = -sn * dx + c * dy
            p = veh_to_out @ np.stack([X, Y, np.ones_like(X)])
            return np.round(np.stack([p[0], p[1]], axis=1) * _ONE).astype(np.int32)

        end = s + metres if route_end_s is None else min(s + metres, route_end_s)
        ss = np.linspace(s, max(end, s + 1.0), 60)
        rx, ry, _ = self.road.locate(ss, -0.5 * self.road.lane_width_m)
        cv2.polylines(view, [to_px(rx, ry)], False, (40, 110, 255), 2, cv2.LINE_AA, _SHIFT)
        lo = bisect.bisect_left(self._props_s, s - metres)
        hi = bisect.bisect_right(self._props_s, s + metres)
        if hi > lo:
            pts = to_px(self.props.x[lo:hi], self.props.y[lo:hi])
            for p, col in zip(pts, self.props.colour[lo:hi, 0].tolist(), strict=True):
                cv2.circle(view, (int(p[0]), int(p[1])), 3 * _ONE, col, -1, cv2.LINE_AA, _SHIFT)
        length, width = vehicle_size
        corners_v = np.array(
            [
                [-rear_overhang_m, -width / 2],
                [length - rear_overhang_m, -width / 2],
                [length - rear_overhang_m, width / 2],
                [-rear_overhang_m, width / 2],
            ]
        )
        wx = x + c * corners_v[:, 0] - sn * corners_v[:, 1]
        wy = y + sn * corners_v[:, 0] + c * corners_v[:, 1]
        cv2.fillConvexPoly(view, to_px(wx, wy), (220, 30, 30), cv2.LINE_AA, _SHIFT)
        if camera_image is not None:
            h, w = camera_image.shape[:2]
            k = min(1.0, (size_px * 0.6) / w)
            small = cv2.resize(camera_image, (int(w * k), int(h * k)), interpolation=cv2.INTER_AREA)
            view[2 : 2 + small.shape[0], 2 : 2 + small.shape[1]] = small
        return view
