"""A stand-in for the ``carla`` client module, for tests (no server, no GPU).

It implements the subset of the CARLA 0.9.16 Python API our backend uses, with the
behaviours of ``reference/carla.md`` section 4 that our code must cope with:

* value types with CARLA's semantics: left-handed frame (y right, yaw clockwise from above,
  degrees), ``Location - Location -> Vector3D``, ``VehicleControl`` fields stored as float32
  and not range-checked;
* blueprint attributes are strings (a non-string value is a ``TypeError`` like Boost.Python's
  ``ArgumentError``);
* ``World.get_settings()`` returns a copy; ``apply_settings`` and ``tick`` return frame ids;
  the world only advances on ``tick()`` in synchronous mode;
* camera callbacks receive BGRA ``raw_data``; some images arrive late, from another thread,
  after ``tick()`` has returned, and every tick produces one (stale ones pile up unread);
* collision and lane-invasion callbacks fire only when something happens;
* no server -> ``RuntimeError`` with CARLA's real time-out text after the client timeout;
  occupied spawn point -> CARLA's spawn-collision ``RuntimeError`` (``try_spawn_actor``: None);
* the :class:`Server` tracks live actors, listening sensors, sync and Traffic Manager state,
  and records violations (a sensor destroyed while listening, a tick in asynchronous mode) so
  tests can assert the cleanup;
* faults can be injected: a tick or a command batch that raises (``raise_on_tick``,
  ``raise_on_batch``), ``DestroyActor`` commands that fail with an error in their
  ``command.Response`` while the actor stays alive (``destroy_failures``, as
  ``apply_batch_sync`` reports per-command errors), and a SIGINT or SIGTERM that reaches the
  process while a call is in flight (``signal_on_call``): the server completes the call, and
  Python raises as the call returns, before the caller sees its result (a spawned actor's
  handle is lost, as with Ctrl-C just as ``spawn_actor`` returns).

Tests register it with ``monkeypatch.setitem(sys.modules, "carla", standin)`` and start a
:class:`Server` on a host and port. Maps are stand-ins for Town01 and Town02: a closed lane
loop (with bends both ways) plus a bypass lane, so ``Waypoint.next`` offers two branches at
the junction. Images are a pinhole view of a top-down raster of the roads.
"""

from __future__ import annotations

import copy
import fnmatch
import math
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np

CLIENT_VERSION = "0.9.16"
SPAWN_COLLISION = "Spawn failed because of collision at spawn position"

# =============================================================================================
# Value types (constructible offline, like the real wheel's)


class Vector3D:
    def __init__(self, x: float = 0.0, y: float = 0.0, z: float = 0.0) -> None:
        self.x, self.y, self.z = float(x), float(y), float(z)

    def __add__(self, o: Vector3D) -> Vector3D:
        return Vector3D(self.x + o.x, self.y + o.y, self.z + o.z)

    def __sub__(self, o: Vector3D) -> Vector3D:
        return Vector3D(self.x - o.x, self.y - o.y, self.z - o.z)

    def __mul__(self, k: float) -> Vector3D:
        return Vector3D(self.x * k, self.y * k, self.z * k)

    def length(self) -> float:
        return math.sqrt(self.x**2 + self.y**2 + self.z**2)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(x={self.x:.6f}, y={self.y:.6f}, z={self.z:.6f})"


class Vector2D:
    def __init__(self, x: float = 0.0, y: float = 0.0) -> None:
        self.x, self.y = float(x), float(y)


class Location(Vector3D):
    def __add__(self, o: Vector3D) -> Location:
        return Location(self.x + o.x, self.y + o.y, self.z + o.z)

    def __sub__(self, o: Vector3D) -> Vector3D:  # the real API returns a Vector3D here
        return Vector3D(self.x - o.x, self.y - o.y, self.z - o.z)

    def distance(self, o: Location) -> float:
        return (self - o).length()


class Rotation:
    def __init__(self, pitch: float = 0.0, yaw: float = 0.0, roll: float = 0.0) -> None:
        self.pitch, self.yaw, self.roll = float(pitch), float(yaw), float(roll)

    def get_forward_vector(self) -> Vector3D:
        cp, sp = math.cos(math.radians(self.pitch)), math.sin(math.radians(self.pitch))
        cy, sy = math.cos(math.radians(self.yaw)), math.sin(math.radians(self.yaw))
        return Vector3D(cp * cy, cp * sy, sp)

    def get_right_vector(self) -> Vector3D:  # roll = 0: horizontal, 90 deg clockwise of forward
        cy, sy = math.cos(math.radians(self.yaw)), math.sin(math.radians(self.yaw))
        return Vector3D(-sy, cy, 0.0)


class Transform:
    def __init__(self, location: Location | None = None, rotation: Rotation | None = None) -> None:
        self.location = location if location is not None else Location()
        self.rotation = rotation if rotation is not None else Rotation()

    def get_forward_vector(self) -> Vector3D:
        return self.rotation.get_forward_vector()

    def get_right_vector(self) -> Vector3D:
        return self.rotation.get_right_vector()


def _f32(v: float) -> float:
    return float(np.float32(v))


class VehicleControl:
    """Fields are float32 and NOT range-checked (as in the real client)."""

    def __init__(
        self,
        throttle: float = 0.0,
        steer: float = 0.0,
        brake: float = 0.0,
        hand_brake: bool = False,
        reverse: bool = False,
        manual_gear_shift: bool = False,
        gear: int = 0,
    ) -> None:
        self.throttle, self.steer, self.brake = _f32(throttle), _f32(steer), _f32(brake)
        self.hand_brake, self.reverse = bool(hand_brake), bool(reverse)
        self.manual_gear_shift, self.gear = bool(manual_gear_shift), int(gear)


class WorldSettings:
    def __init__(
        self,
        synchronous_mode: bool = False,
        no_rendering_mode: bool = False,
        fixed_delta_seconds: float | None = None,
    ) -> None:
        self.synchronous_mode = synchronous_mode
        self.no_rendering_mode = no_rendering_mode
        self.fixed_delta_seconds = fixed_delta_seconds

    def __eq__(self, o: object) -> bool:
        return isinstance(o, WorldSettings) and vars(self) == vars(o)


class WeatherParameters:
    def __init__(
        self,
        cloudiness: float = 0.0,
        precipitation: float = 0.0,
        sun_altitude_angle: float = 45.0,
        wetness: float = 0.0,
        name: str = "Custom",
    ) -> None:
        self.cloudiness, self.precipitation = cloudiness, precipitation
        self.sun_altitude_angle, self.wetness, self._name = sun_altitude_angle, wetness, name


for _name, (_c, _p, _alt, _w) in {
    "Default": (5, 0, 45, 0), "ClearNoon": (5, 0, 75, 0), "CloudyNoon": (60, 0, 75, 0),
    "WetNoon": (5, 0, 75, 50), "WetCloudyNoon": (60, 0, 75, 50), "MidRainyNoon": (60, 60, 75, 60),
    "HardRainNoon": (100, 100, 75, 90), "SoftRainNoon": (20, 30, 75, 50),
    "ClearSunset": (5, 0, 15, 0), "CloudySunset": (60, 0, 15, 0), "WetSunset": (5, 0, 15, 50),
    "WetCloudySunset": (60, 0, 15, 50), "MidRainSunset": (60, 60, 15, 60),
    "HardRainSunset": (100, 100, 15, 90), "SoftRainSunset": (20, 30, 15, 50),
}.items():  # fmt: skip
    setattr(WeatherParameters, _name, WeatherParameters(_c, _p, _alt, _w, _name))


class LaneType(IntEnum):
    NONE = 1
    Driving = 2
    Sidewalk = 32
    Any = -2


class AttachmentType(IntEnum):
    Rigid = 0
    SpringArmGhost = 2


class _Response:
    def __init__(self, actor_id: int, error: str = "") -> None:
        self.actor_id, self.error = actor_id, error

    def has_error(self) -> bool:
        return bool(self.error)


class _DestroyActor:
    def __init__(self, actor: Any) -> None:
        self.actor_id = actor if isinstance(actor, int) else actor.id


command = SimpleNamespace(DestroyActor=_DestroyActor, Response=_Response)

# =============================================================================================
# Stand-in maps: lanes as dense polylines (CARLA frame) with successor links


@dataclass
class _Lane:
    xy: np.ndarray  # (N, 2) CARLA frame, m
    width_m: float
    junction_m: float  # the first junction_m metres lie inside a junction
    road_id: int
    successors: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        d = np.hypot(*np.diff(self.xy, axis=0).T)
        self.s = np.concatenate([[0.0], np.cumsum(d)])
        yaw = np.arctan2(np.diff(self.xy[:, 1]), np.diff(self.xy[:, 0]))
        self.yaw = np.concatenate([yaw, yaw[-1:]])

    @property
    def length(self) -> float:
        return float(self.s[-1])


def _closed_curve(radius: float, wobble: float, lobes: int, n: int = 2000) -> np.ndarray:
    """A closed loop r(t) = R (1 + wobble sin(lobes t)) in a right-handed frame, CCW."""
    t = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    r = radius * (1.0 + wobble * np.sin(lobes * t))
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


def _resample(xy: np.ndarray, step: float = 0.25) -> np.ndarray:
    d = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(xy, axis=0).T))])
    s = np.arange(0.0, d[-1], step)
    s = np.append(s, d[-1]) if d[-1] - s[-1] > 1e-6 else s
    return np.stack([np.interp(s, d, xy[:, 0]), np.interp(s, d, xy[:, 1])], axis=1)


def _bezier(p0, t0, p1, t1, reach: float, n: int = 400) -> np.ndarray:
    p0, p1, t0, t1 = map(np.asarray, (p0, p1, t0, t1))
    c0, c1 = p0 + reach * t0, p1 - reach * t1
    u = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - u) ** 3 * p0 + 3 * (1 - u) ** 2 * u * c0 + 3 * (1 - u) * u**2 * c1 + u**3 * p1


def _build_town(radius: float, wobble: float, lobes: int, i_a: float, i_b: float) -> list[_Lane]:
    """Lane 0: loop from B round to A; lane 1: loop A -> B; lane 2: bypass A -> B (chord)."""
    loop = _closed_curve(radius, wobble, lobes)
    n = len(loop)
    a, b = int(i_a * n), int(i_b * n)
    idx_ab = np.arange(a, b + 1) % n
    idx_ba = np.arange(b, a + n + 1) % n
    tang = np.gradient(np.vstack([loop[-1:], loop, loop[:1]]), axis=0)[1:-1]
    tang /= np.linalg.norm(tang, axis=1, keepdims=True)
    chord = _bezier(
        loop[a], tang[a], loop[b], tang[b], reach=0.35 * np.linalg.norm(loop[b] - loop[a])
    )
    mirror = np.array([1.0, -1.0])  # right-handed construction -> CARLA's left-handed frame
    lanes = [
        _Lane(_resample(loop[idx_ba] * mirror), 3.5, 0.0, 1, successors=[1, 2]),
        _Lane(_resample(loop[idx_ab] * mirror), 3.5, 8.0, 2, successors=[0]),
        _Lane(_resample(chord * mirror), 3.5, 8.0, 3, successors=[0]),
    ]
    return lanes


BUILTIN_TOWN = {"Town01": "suburb", "Town02": "countryside"}
"""Builtin town whose road and theme stand in for a CARLA town when rendering with it."""
BUILTIN_WEATHER = {
    "ClearNoon": "clear_noon",
    "CloudyNoon": "overcast",
    "WetNoon": "wet_road",
    "HardRainNoon": "heavy_rain",
    "ClearSunset": "sunset",
    "WetSunset": "sunset",
    "SoftRainSunset": "heavy_rain",
}
"""Builtin weather standing in for a CARLA preset (others: ``clear_noon``)."""


def _builtin_road_lanes(town: str, length_m: float = 900.0) -> tuple[list[_Lane], Any]:
    """The right lane of a builtin road (a dead end), in CARLA's frame, and the road."""
    from sim.builtin.roads import generate_road
    from sim.builtin.towns import get_town

    rng = np.random.default_rng(sum(map(ord, town)))
    road = generate_road(get_town(BUILTIN_TOWN[town]).layout, length_m, 3.5, rng)
    x, y, _ = road.locate(road.s, -road.lane_width_m / 2)
    xy = _resample(np.stack([x, -y], axis=1))  # mirror into CARLA's left-handed frame
    return [_Lane(xy, road.lane_width_m, 0.0, 1)], road


TOWN_GEOMETRY: dict[str, Callable[[], list[_Lane]]] = {
    "Town01": lambda: _build_town(radius=70.0, wobble=0.18, lobes=3, i_a=0.05, i_b=0.30),
    "Town02": lambda: _build_town(radius=55.0, wobble=0.22, lobes=2, i_a=0.55, i_b=0.80),
}


class Waypoint:
    def __init__(self, cmap: Map, lane: int, s: float) -> None:
        self._map, self._lane, self.s = cmap, lane, float(s)
        ln = cmap._lanes[lane]
        x = float(np.interp(s, ln.s, ln.xy[:, 0]))
        y = float(np.interp(s, ln.s, ln.xy[:, 1]))
        i = min(int(np.searchsorted(ln.s, s, side="right")) - 1, len(ln.yaw) - 1)
        self.transform = Transform(
            Location(x, y, 0.0), Rotation(yaw=math.degrees(ln.yaw[max(i, 0)]))
        )
        self.lane_width = ln.width_m
        self.is_junction = s < ln.junction_m
        self.junction_id = 1 if self.is_junction else -1  # one junction: where the lanes meet
        self.road_id, self.lane_id, self.section_id = ln.road_id, -1, 0
        self.lane_type = LaneType.Driving
        self.id = hash((lane, round(s, 3)))

    def next(self, distance: float) -> list[Waypoint]:
        ln = self._map._lanes[self._lane]
        target = self.s + distance
        if target <= ln.length:
            return [Waypoint(self._map, self._lane, target)]
        rest = target - ln.length
        out: list[Waypoint] = []
        for succ in ln.successors:
            out.extend(
                Waypoint(self._map, succ, 0.0).next(rest)
                if rest > 0
                else [Waypoint(self._map, succ, 0.0)]
            )
        return out


class Map:
    def __init__(self, name: str, lanes: list[_Lane]) -> None:
        self.name = f"Carla/Maps/{name}"
        self._lanes = lanes
        pts, owners, ss = [], [], []
        for i, ln in enumerate(lanes):
            pts.append(ln.xy)
            owners.append(np.full(len(ln.xy), i))
            ss.append(ln.s)
        self._pts, self._owner, self._s = np.vstack(pts), np.concatenate(owners), np.concatenate(ss)

    def nearest(self, x: float, y: float) -> tuple[int, float, float]:
        """(lane, s, distance) of the nearest lane-centre sample."""
        d2 = (self._pts[:, 0] - x) ** 2 + (self._pts[:, 1] - y) ** 2
        k = int(np.argmin(d2))
        return int(self._owner[k]), float(self._s[k]), math.sqrt(float(d2[k]))

    def get_topology(self) -> list[tuple[Waypoint, Waypoint]]:
        """Per lane and successor: (lane start, successor start); a dead end: (start, end)."""
        out = []
        for i, ln in enumerate(self._lanes):
            entry = Waypoint(self, i, 0.0)
            ends = [Waypoint(self, j, 0.0) for j in ln.successors]
            out.extend((entry, e) for e in ends or [Waypoint(self, i, ln.length)])
        return out

    def get_waypoint(
        self,
        location: Location,
        project_to_road: bool = True,
        lane_type: LaneType = LaneType.Driving,
    ) -> Waypoint | None:
        lane, s, dist = self.nearest(location.x, location.y)
        if not project_to_road and dist > self._lanes[lane].width_m / 2:
            return None
        return Waypoint(self, lane, s)

    def lane_distance(self, x: float, y: float) -> float:
        """Distance of a point beyond the edge of the nearest lane, m (negative = inside)."""
        lane, _s, dist = self.nearest(x, y)
        return dist - self._lanes[lane].width_m / 2

    def get_spawn_points(self) -> list[Transform]:
        ln = self._lanes[0]
        out = []
        end = ln.length - (10.0 if ln.successors else 200.0)  # a dead end leaves room for routes
        for s in np.arange(10.0, end, 20.0):
            wp = Waypoint(self, 0, float(s))
            loc = wp.transform.location
            out.append(
                Transform(Location(loc.x, loc.y, 0.5), Rotation(yaw=wp.transform.rotation.yaw))
            )
        return out


class RealMap:
    """The real wheel's offline ``carla.Map(name, xodr)`` behind the stand-in's map interface.

    Waypoints, lane widths, the topology and the left-handed geometry are the real
    library's; spawn points (which come from the UE level, not the OpenDRIVE, so the offline
    map has none) are lane centres of the given lane every 20 m, 2 m above the road like
    CARLA's, or the given ``(road_id, lane_id, s)`` OpenDRIVE positions.
    """

    def __init__(
        self,
        real_carla: Any,
        name: str,
        xodr: str,
        lane_id: int = -1,
        spawn_at: Sequence[tuple[int, int, float]] = (),
    ) -> None:
        self._real = real_carla
        self._map = real_carla.Map(name, xodr)
        self.name = f"Carla/Maps/{name}"
        self._lane_id = lane_id
        self.spawn_at = list(spawn_at)
        """``(road_id, lane_id, s)`` of each spawn point; tests may change it between resets."""

    def get_topology(self) -> list[tuple[Any, Any]]:
        return self._map.get_topology()

    def get_waypoint(self, location: Any, project_to_road: bool = True,
                     lane_type: Any = LaneType.Driving) -> Any:  # fmt: skip
        loc = self._real.Location(x=location.x, y=location.y, z=0.0)
        return self._map.get_waypoint(loc, project_to_road, self._real.LaneType.Driving)

    def lane_distance(self, x: float, y: float) -> float:
        wp = self.get_waypoint(Location(x, y, 0.0))
        c = wp.transform.location
        return math.hypot(x - c.x, y - c.y) - wp.lane_width / 2

    def get_spawn_points(self) -> list[Transform]:
        if self.spawn_at:
            wps = [self._map.get_waypoint_xodr(r, lane, s) for r, lane, s in self.spawn_at]
        else:
            wps = [w for w in self._map.generate_waypoints(20.0) if w.lane_id == self._lane_id]
            wps = sorted((w for w in wps if w.next(60.0)), key=lambda w: w.s)  # 60 m ahead
        return [
            Transform(
                Location(w.transform.location.x, w.transform.location.y, 2.0),
                Rotation(yaw=w.transform.rotation.yaw),
            )
            for w in wps
        ]


# =============================================================================================
# Rendering: pinhole view of a top-down raster of the stand-in's roads

_PPM = 8.0  # raster pixels per metre


class _Raster:
    def __init__(self, cmap: Map, seed: int = 0) -> None:
        pts = cmap._pts
        self.x0, self.y0 = pts[:, 0].min() - 30.0, pts[:, 1].min() - 30.0
        w = int((pts[:, 0].max() + 30.0 - self.x0) * _PPM)
        h = int((pts[:, 1].max() + 30.0 - self.y0) * _PPM)
        rng = np.random.default_rng(seed)
        img = np.empty((h, w, 3), np.uint8)
        img[:] = (70, 110, 60)
        img = cv2.add(img, rng.integers(0, 30, (h, w, 3), dtype=np.uint8))
        for ln in cmap._lanes:
            poly = np.round((ln.xy - [self.x0, self.y0]) * _PPM).astype(np.int32)
            cv2.polylines(img, [poly], False, (95, 95, 100), int(ln.width_m * _PPM) + 2)
        for ln in cmap._lanes:
            for side in (-1.0, 1.0):
                nrm = np.stack([-np.sin(ln.yaw), np.cos(ln.yaw)], axis=1)
                edge = ln.xy + side * (ln.width_m / 2 - 0.15) * nrm
                poly = np.round((edge - [self.x0, self.y0]) * _PPM).astype(np.int32)
                cv2.polylines(img, [poly], False, (235, 235, 235), max(int(0.15 * _PPM), 1))
        self.rgb = img  # rows follow CARLA +y, columns CARLA +x

    def view(
        self, cam: Transform, width: int, height: int, fov_deg: float, weather: Any
    ) -> np.ndarray:
        """RGB view of a camera with CARLA pose ``cam`` (pitch negative = looking down)."""
        f = width / 2.0 / math.tan(math.radians(fov_deg) / 2.0)
        cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
        down = math.radians(-cam.rotation.pitch)
        yaw = math.radians(cam.rotation.yaw)
        fwd = np.array(
            [math.cos(down) * math.cos(yaw), math.cos(down) * math.sin(yaw), -math.sin(down)]
        )
        right = np.array([-math.sin(yaw), math.cos(yaw), 0.0])  # CARLA: y is right
        img_down = np.cross(right, fwd)  # left-handed frame: right x forward points down
        img_down = -img_down if img_down[2] > 0 else img_down
        R = np.stack([right, img_down, fwd])
        C = np.array([cam.location.x, cam.location.y, cam.location.z])
        K = np.array([[f, 0, cx], [0, f, cy], [0, 0, 1.0]])
        G = K @ np.column_stack([R[:, 0], R[:, 1], -R @ C])  # world ground (x, y, 1) -> pixel
        S = np.array(
            [[1 / _PPM, 0, self.x0], [0, 1 / _PPM, self.y0], [0, 0, 1.0]]
        )  # raster -> world
        out = cv2.warpPerspective(
            self.rgb,
            G @ S,
            (width, height),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(70, 110, 60),
        )
        horizon = cy - f * math.tan(down)
        sky_rows = int(min(max(math.floor(horizon) + 2, 0), height))
        out[:sky_rows] = (150, 180, 220)
        dim = 1.0 - 0.004 * weather.cloudiness - (0.35 if weather.sun_altitude_angle < 30 else 0.0)
        out = np.clip(out.astype(np.float32) * dim, 0, 255).astype(np.uint8)
        if weather.precipitation > 0:
            out = cv2.GaussianBlur(out, (3, 3), 0)
        return out


# =============================================================================================
# Blueprints


class ActorAttribute:
    def __init__(self, id: str, value: str, recommended: Sequence[str] = ()) -> None:
        self.id, self._value, self.recommended_values = id, value, list(recommended)

    def as_int(self) -> int:
        return int(self._value)

    def as_float(self) -> float:
        return float(self._value)

    def as_str(self) -> str:
        return self._value

    def __str__(self) -> str:
        return self._value


class ActorBlueprint:
    def __init__(self, id: str, attributes: dict[str, str]) -> None:
        self.id = id
        self._attrs = dict(attributes)
        self._attrs.setdefault("role_name", "")

    def has_attribute(self, id: str) -> bool:
        return id in self._attrs

    def get_attribute(self, id: str) -> ActorAttribute:
        if id not in self._attrs:
            raise IndexError(f"blueprint {self.id!r} has no attribute {id!r}")
        return ActorAttribute(id, self._attrs[id])

    def set_attribute(self, id: str, value: str) -> None:
        if not isinstance(id, str) or not isinstance(value, str):
            raise TypeError(
                "Python argument types in ActorBlueprint.set_attribute(ActorBlueprint, "
                f"{type(id).__name__}, {type(value).__name__}) did not match C++ signature: "
                "set_attribute(carla::client::ActorBlueprint {lvalue}, "
                "std::string id, std::string value)"
            )
        if id not in self._attrs:
            raise IndexError(f"blueprint {self.id!r} has no attribute {id!r}")
        self._attrs[id] = value


_BLUEPRINTS = {
    "vehicle.tesla.model3": {"number_of_wheels": "4", "color": "255,255,255"},
    "vehicle.audi.a2": {"number_of_wheels": "4", "color": "255,0,0"},
    "sensor.camera.rgb": {
        "image_size_x": "800",
        "image_size_y": "600",
        "fov": "90.0",
        "sensor_tick": "0.0",
    },
    "sensor.other.collision": {},
    "sensor.other.lane_invasion": {},
}


class BlueprintLibrary:
    def find(self, id: str) -> ActorBlueprint:
        if id not in _BLUEPRINTS:
            raise IndexError(f"blueprint {id!r} not found")
        return ActorBlueprint(id, _BLUEPRINTS[id])  # a copy each time, like the real library

    def filter(self, pattern: str) -> list[ActorBlueprint]:
        return [self.find(i) for i in _BLUEPRINTS if fnmatch.fnmatch(i, pattern)]


# =============================================================================================
# Actors


class Actor:
    def __init__(
        self, server: Server, bp: ActorBlueprint, transform: Transform, parent: Actor | None
    ) -> None:
        self._server = server
        self.id = server._next_id()
        self.type_id = bp.id
        self.attributes = dict(bp._attrs)
        self.parent = parent
        self._rel = copy.deepcopy(transform)  # relative to the parent when attached
        self._alive = True

    @property
    def is_alive(self) -> bool:
        return self._alive

    def get_transform(self) -> Transform:
        if self.parent is None:
            return copy.deepcopy(self._rel)
        p = self.parent.get_transform()
        yaw = math.radians(p.rotation.yaw)
        fx, fy = math.cos(yaw), math.sin(yaw)
        loc = Location(
            p.location.x + self._rel.location.x * fx - self._rel.location.y * fy,
            p.location.y + self._rel.location.x * fy + self._rel.location.y * fx,
            p.location.z + self._rel.location.z,
        )
        return Transform(
            loc, Rotation(self._rel.rotation.pitch, p.rotation.yaw + self._rel.rotation.yaw, 0.0)
        )

    def get_location(self) -> Location:
        return self.get_transform().location

    def destroy(self) -> bool:
        return self._server._destroy(self.id)


@dataclass
class _Wheel:
    max_steer_angle: float
    position: Vector3D
    radius: float = 37.0


# Stand-in Tesla: wheelbase and steering as CARLA's blueprint would report them.
WHEELBASE_M = 2.875
MAX_STEER_DEG = 70.0
HALF_TRACK_M = 0.8
STEERING_CURVE = ((0.0, 1.0), (20.0, 0.9), (60.0, 0.8), (120.0, 0.7))
"""Steering curve (forward speed km/h, fraction of full lock), the usual shape in CARLA."""


class Vehicle(Actor):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._speed = 0.0
        self._control = VehicleControl()
        self._pending_control: VehicleControl | None = None
        self._pending_velocity: Vector3D | None = None
        self._pending_transform: Transform | None = None
        self._ticked = False

    def apply_control(self, control: VehicleControl) -> None:
        self._pending_control = copy.copy(control)  # takes effect on the next tick

    def get_control(self) -> VehicleControl:
        return copy.copy(self._control)

    def get_velocity(self) -> Vector3D:
        return self._rel.get_forward_vector() * self._speed

    def set_transform(self, transform: Transform) -> None:
        self._pending_transform = copy.deepcopy(transform)

    def set_target_velocity(self, velocity: Vector3D) -> None:
        self._pending_velocity = Vector3D(velocity.x, velocity.y, velocity.z)

    def get_physics_control(self) -> SimpleNamespace:
        """Wheel positions are world positions in cm, zero until the vehicle has been ticked."""
        t = self._rel
        yaw = math.radians(t.rotation.yaw)
        f = np.array([math.cos(yaw), math.sin(yaw)])
        r = np.array([-math.sin(yaw), math.cos(yaw)])
        o = np.array([t.location.x, t.location.y])
        wheels = []
        for along, side in ((1, -1), (1, 1), (-1, -1), (-1, 1)):  # FL, FR, RL, RR
            p = o + along * WHEELBASE_M / 2 * f + side * HALF_TRACK_M * r
            pos = Vector3D(p[0] * 100, p[1] * 100, 37.0) if self._ticked else Vector3D()
            wheels.append(_Wheel(MAX_STEER_DEG if along > 0 else 0.0, pos))
        return SimpleNamespace(
            wheels=wheels, mass=1845.0, steering_curve=[Vector2D(x, y) for x, y in STEERING_CURVE]
        )

    def _physics(self, dt: float) -> None:
        if self._pending_transform is not None:
            self._rel, self._pending_transform = self._pending_transform, None
        if self._pending_velocity is not None:
            v = self._pending_velocity
            self._speed, self._pending_velocity = math.hypot(v.x, v.y), None
        if self._pending_control is not None:
            self._control, self._pending_control = self._pending_control, None
        c = self._control
        accel = (
            4.0 * c.throttle
            - 8.0 * c.brake
            - (8.0 if c.hand_brake else 0.0)
            - 0.01 * self._speed**2
        )
        self._speed = max(self._speed + accel * dt, 0.0)
        curve_x, curve_y = zip(*STEERING_CURVE, strict=True)
        lock = float(np.interp(self._speed * 3.6, curve_x, curve_y))  # less lock at speed
        delta = math.radians(MAX_STEER_DEG) * lock * min(max(c.steer, -1.0), 1.0)  # + = right
        yaw = math.radians(self._rel.rotation.yaw)
        rear = np.array([self._rel.location.x, self._rel.location.y]) - WHEELBASE_M / 2 * np.array(
            [math.cos(yaw), math.sin(yaw)]
        )
        rear += self._speed * dt * np.array([math.cos(yaw), math.sin(yaw)])
        yaw += self._speed * math.tan(delta) / WHEELBASE_M * dt  # clockwise = right in CARLA
        centre = rear + WHEELBASE_M / 2 * np.array([math.cos(yaw), math.sin(yaw)])
        z = max(self._rel.location.z - 0.5 * dt * 9.81, 0.0)  # spawn points are slightly on-air
        self._rel = Transform(
            Location(centre[0], centre[1], z), Rotation(0.0, math.degrees(yaw), 0.0)
        )
        self._ticked = True


@dataclass
class Image:
    frame: int
    timestamp: float
    transform: Transform
    width: int
    height: int
    fov: float
    raw_data: bytes


@dataclass
class CollisionEvent:
    frame: int
    timestamp: float
    actor: Actor
    other_actor: Any
    normal_impulse: Vector3D


@dataclass
class LaneInvasionEvent:
    frame: int
    timestamp: float
    actor: Actor
    crossed_lane_markings: list[Any]


class Sensor(Actor):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._callback: Callable[[Any], None] | None = None

    def listen(self, callback: Callable[[Any], None]) -> None:
        self._callback = callback

    def is_listening(self) -> bool:
        return self._callback is not None

    def stop(self) -> None:
        self._callback = None

    def _emit(self, data: Any) -> None:
        cb = self._callback
        if cb is not None and self._alive:
            cb(data)


# =============================================================================================
# Server, world and client


class Server:
    """A stand-in CARLA server listening on ``(host, port)`` until :meth:`stop`.

    Args:
        host, port: Where clients find it.
        town: The map loaded at start.
        version: What ``get_server_version`` answers.
        late_image_every: Every n-th frame's image is delivered late from a thread (0 = never).
        late_image_delay_s: How late, s.
        stamp_frames: Write ``frame % 256`` into pixel (0, 0) of every image (R, G and B).
        render: ``"raster"`` (the loop towns, a plain top-down raster: fast) or ``"builtin"``
            (the towns are the right lane of a builtin road, drawn by the builtin renderer
            with its town theme and the closest builtin weather).
        real_map: Serve this real-wheel OpenDRIVE map as ``town`` instead (images are flat
            grey: the real map has no raster here).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 2000,
        town: str = "Town01",
        version: str = CLIENT_VERSION,
        late_image_every: int = 3,
        late_image_delay_s: float = 0.005,
        stamp_frames: bool = False,
        render: str = "raster",
        real_map: RealMap | None = None,
    ) -> None:
        self.host, self.port, self.version = host, port, version
        self.late_image_every, self.late_image_delay_s = late_image_every, late_image_delay_s
        self.stamp_frames = stamp_frames
        self.real_map = real_map
        if render not in ("raster", "builtin"):
            raise ValueError(f"render must be 'raster' or 'builtin', got {render!r}")
        self.render = render
        self._renderers: dict[tuple[int, str], Any] = {}
        self.settings = WorldSettings()
        self.frame = 0
        self.elapsed = 0.0
        self.weather = WeatherParameters.Default
        self.tm_sync: dict[int, bool] = {}
        self.tm_seed: dict[int, int] = {}
        self.actors: dict[int, Actor] = {}
        self.violations: list[str] = []
        self.log: list[tuple[str, Any]] = []
        self.raise_on_tick: tuple[int, BaseException] | None = None
        """``(n, exc)``: the n-th tick from now raises ``exc`` (fault injection)."""
        self.collide_on_tick: int | None = None
        """The n-th tick from now reports a collision of every vehicle with a prop."""
        self.raise_on_batch: tuple[int, BaseException] | None = None
        """``(n, exc)``: the n-th command batch from now raises ``exc`` and applies nothing."""
        self.destroy_failures: dict[int, int] = {}
        """``{actor_id: n}``: the next n ``DestroyActor`` commands for that actor fail (their
        response carries an error) and leave it alive."""
        self.signal_on_call: dict[str, tuple[int, int]] = {}
        """``{call: (n, signum)}``: the n-th ``call`` from now (``"spawn_actor"``,
        ``"apply_settings"``, ``"apply_batch_sync"``, ``"set_synchronous_mode"``) is carried out,
        then this process receives ``signum`` before the call returns."""
        self._ids = 100
        self._lock = threading.Lock()
        self._timers: list[threading.Timer] = []
        self._load(town)
        _SERVERS[(host, port)] = self

    def stop(self) -> None:
        for t in self._timers:
            t.join()
        _SERVERS.pop((self.host, self.port), None)

    # -- state that tests assert on
    def live_actors(self) -> list[Actor]:
        return [a for a in self.actors.values() if a.is_alive]

    def listening_sensors(self) -> list[Sensor]:
        return [a for a in self.live_actors() if isinstance(a, Sensor) and a.is_listening()]

    # -- internals
    def _call_done(self, call: str) -> None:
        """Delivers a signal injected for ``call`` (``signal_on_call``), once it is due."""
        if call not in self.signal_on_call:
            return
        n, signum = self.signal_on_call[call]
        if n > 1:
            self.signal_on_call[call] = (n - 1, signum)
            return
        del self.signal_on_call[call]
        self.log.append(("signal", (call, signum)))
        signal.raise_signal(signum)

    def _batch_fault(self) -> None:
        if self.raise_on_batch is not None:
            n, exc = self.raise_on_batch
            self.raise_on_batch = (n - 1, exc) if n > 1 else None
            if n <= 1:
                raise exc

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    def _load(self, town: str) -> None:
        if town not in TOWN_GEOMETRY and self.real_map is None:
            raise RuntimeError(f"map not found: {town}")
        self.town = town
        self._renderers = {}
        if self.real_map is not None:
            self.map = self.real_map
        elif self.render == "builtin":
            lanes, self.road = _builtin_road_lanes(town)
            self.map = Map(town, lanes)
        else:
            self.map = Map(town, TOWN_GEOMETRY[town]())
            self.raster = _Raster(self.map)
        self.world_id = self._next_id()
        for a in list(self.actors.values()):
            a._alive = False
        self.actors.clear()

    def _destroy(self, actor_id: int) -> bool:
        a = self.actors.get(actor_id)
        if a is None or not a.is_alive:
            return False
        if self.destroy_failures.get(actor_id, 0) > 0:
            self.destroy_failures[actor_id] -= 1
            self.log.append(("destroy failed", actor_id))
            return False
        if isinstance(a, Sensor) and a.is_listening():
            self.violations.append(f"sensor {actor_id} destroyed while listening")
        a._alive = False
        self.log.append(("destroy", actor_id))
        return True

    def _tick(self) -> int:
        if not self.settings.synchronous_mode:
            self.violations.append("tick() in asynchronous mode")
            raise RuntimeError("stand-in: world.tick() called while the world is asynchronous")
        if self.raise_on_tick is not None:
            n, exc = self.raise_on_tick
            self.raise_on_tick = (n - 1, exc) if n > 1 else None
            if n <= 1:
                raise exc
        dt = self.settings.fixed_delta_seconds or 0.05
        self.frame += 1
        self.elapsed += dt
        collide = False
        if self.collide_on_tick is not None:
            self.collide_on_tick -= 1
            collide = self.collide_on_tick <= 0
            self.collide_on_tick = None if collide else self.collide_on_tick
        vehicles = [a for a in self.live_actors() if isinstance(a, Vehicle)]
        offsets = {}
        for v in vehicles:
            offsets[v.id] = self._lane_distance(v)
            v._physics(dt)
        for s in [a for a in self.live_actors() if isinstance(a, Sensor)]:
            self._sense(s, offsets, collide)
        self.log.append(("tick", self.frame))
        return self.frame

    def _builtin_view(self, cam: Sensor, car: Vehicle, w: int, h: int, fov: float) -> np.ndarray:
        """The builtin renderer's frame for the car's pose (our frame: CARLA's y mirrored)."""
        from sim.builtin.camera import CameraModel
        from sim.builtin.render import Renderer
        from sim.builtin.texture import GroundTexture
        from sim.builtin.towns import get_town, place_props
        from sim.builtin.weather import get_weather
        from sim.spec import CameraSpec

        weather = BUILTIN_WEATHER.get(getattr(self.weather, "_name", ""), "clear_noon")
        key = (cam.id, weather)
        if key not in self._renderers:
            rel = cam._rel
            spec = CameraSpec(
                w, h, fov, rel.location.z, -rel.rotation.pitch, rel.location.x + WHEELBASE_M / 2
            )
            town, wth = get_town(BUILTIN_TOWN[self.town]), get_weather(weather)
            props = place_props(self.road, town, (1,))
            texture = GroundTexture(self.road, town, wth, props, seed=1)
            self._renderers[key] = Renderer(CameraModel(spec), self.road, texture, props, wth, 1)
        yaw = math.radians(car._rel.rotation.yaw)
        x = car._rel.location.x - WHEELBASE_M / 2 * math.cos(yaw)
        y = -(car._rel.location.y - WHEELBASE_M / 2 * math.sin(yaw))
        near = int(np.argmin((self.road.x - x) ** 2 + (self.road.y - y) ** 2))
        _, s, *_ = self.road.project(x, y, near)
        return self._renderers[key].render(x, y, -yaw, s)

    def _lane_distance(self, v: Vehicle) -> float:
        loc = v._rel.location
        return self.map.lane_distance(loc.x, loc.y)

    def _sense(self, s: Sensor, before: dict[int, float], collide: bool) -> None:
        parent = s.parent
        if s.type_id == "sensor.camera.rgb":
            w, h = int(s.attributes["image_size_x"]), int(s.attributes["image_size_y"])
            fov = float(s.attributes["fov"])
            tf = s.get_transform()
            if self.real_map is not None:
                rgb = np.full((h, w, 3), 100, np.uint8)
            elif self.render == "builtin" and parent is not None:
                rgb = self._builtin_view(s, parent, w, h, fov)
            else:
                rgb = self.raster.view(tf, w, h, fov, self.weather)
            if self.stamp_frames:
                rgb[0, 0] = self.frame % 256
            bgra = np.dstack([rgb[:, :, ::-1], np.full((h, w, 1), 255, np.uint8)])
            img = Image(self.frame, self.elapsed, tf, w, h, fov, bgra.tobytes())
            if self.late_image_every and self.frame % self.late_image_every == 0:
                t = threading.Timer(self.late_image_delay_s, s._emit, args=(img,))
                self._timers = [x for x in self._timers if x.is_alive()] + [t]
                t.start()
            else:
                s._emit(img)
        elif s.type_id == "sensor.other.collision" and parent is not None:
            off_road = self._lane_distance(parent) > 4.0
            if collide or off_road:
                other = SimpleNamespace(
                    id=0, type_id="static.prop.wall" if off_road else "vehicle.audi.a2"
                )
                imp = Vector3D(-1845.0 * max(parent._speed, 1.0), 0.0, 0.0)
                s._emit(CollisionEvent(self.frame, self.elapsed, parent, other, imp))
                if off_road:
                    parent._speed = 0.0
        elif (
            s.type_id == "sensor.other.lane_invasion"
            and parent is not None
            and before.get(parent.id, -1.0) <= 0.0 < self._lane_distance(parent)
        ):
            marking = SimpleNamespace(type="Solid", color="White", lane_change="NONE", width=0.15)
            s._emit(LaneInvasionEvent(self.frame, self.elapsed, parent, [marking]))


_SERVERS: dict[tuple[str, int], Server] = {}


class World:
    def __init__(self, client: Client, server: Server) -> None:
        self._client, self._server, self.id = client, server, server.world_id

    def _srv(self) -> Server:
        return self._client._srv()

    def get_settings(self) -> WorldSettings:
        return copy.copy(self._srv().settings)

    def apply_settings(self, settings: WorldSettings) -> int:
        srv = self._srv()
        srv.settings = copy.copy(settings)
        srv.log.append(("apply_settings", copy.copy(settings)))
        srv._call_done("apply_settings")
        return srv.frame

    def tick(self, seconds: float = 10.0) -> int:
        return self._srv()._tick()

    def get_snapshot(self) -> SimpleNamespace:
        srv = self._srv()
        return SimpleNamespace(
            frame=srv.frame, timestamp=SimpleNamespace(frame=srv.frame, elapsed_seconds=srv.elapsed)
        )

    def get_map(self) -> Map:
        return self._srv().map

    def get_blueprint_library(self) -> BlueprintLibrary:
        self._srv()
        return BlueprintLibrary()

    def get_actors(self) -> list[Actor]:
        return self._srv().live_actors()

    def get_actor(self, actor_id: int) -> Actor | None:
        return self._srv().actors.get(actor_id)  # a destroyed actor: is_alive is False

    def set_weather(self, weather: WeatherParameters) -> None:
        self._srv().weather = weather

    def get_weather(self) -> WeatherParameters:
        return self._srv().weather

    def try_spawn_actor(
        self,
        blueprint: ActorBlueprint,
        transform: Transform,
        attach_to: Actor | None = None,
        attachment_type: Any = None,
    ) -> Actor | None:
        srv = self._srv()
        if blueprint.id.startswith("vehicle."):
            for other in srv.live_actors():
                if (
                    isinstance(other, Vehicle)
                    and other._rel.location.distance(transform.location) < 4.0
                ):
                    return None
            actor: Actor = Vehicle(srv, blueprint, transform, None)
        else:
            actor = Sensor(srv, blueprint, transform, attach_to)
        srv.actors[actor.id] = actor
        srv.log.append(("spawn", actor.id))
        return actor

    def spawn_actor(
        self,
        blueprint: ActorBlueprint,
        transform: Transform,
        attach_to: Actor | None = None,
        attachment_type: Any = None,
    ) -> Actor:
        actor = self.try_spawn_actor(blueprint, transform, attach_to, attachment_type)
        if actor is None:
            raise RuntimeError(SPAWN_COLLISION)
        self._srv()._call_done("spawn_actor")
        return actor


class TrafficManager:
    def __init__(self, client: Client, port: int) -> None:
        self._client, self._port = client, port

    def get_port(self) -> int:
        return self._port

    def set_synchronous_mode(self, mode_switch: bool = True) -> None:
        srv = self._client._srv()
        srv.tm_sync[self._port] = bool(mode_switch)
        srv._call_done("set_synchronous_mode")

    def set_random_device_seed(self, value: int) -> None:
        self._client._srv().tm_seed[self._port] = int(value)


class Client:
    def __init__(self, host: str = "127.0.0.1", port: int = 2000, worker_threads: int = 0) -> None:
        self.host, self.port = host, port
        self.timeout_s = 5.0  # CARLA's default

    def set_timeout(self, seconds: float) -> None:
        self.timeout_s = float(seconds)

    def _srv(self, rpc: bool = False) -> Server:
        srv = _SERVERS.get((self.host, self.port))
        if srv is None:
            time.sleep(self.timeout_s)
            ms = round(self.timeout_s * 1000)
            if rpc:
                raise RuntimeError(
                    f"rpc::timeout: Timeout of {ms}ms while connecting to {self.host}:{self.port}"
                )
            raise RuntimeError(
                f"time-out of {ms}ms while waiting for the simulator, make sure the simulator is "
                f"ready and connected to {self.host}:{self.port}"
            )
        return srv

    def get_client_version(self) -> str:
        return CLIENT_VERSION

    def get_server_version(self) -> str:
        return self._srv().version

    def get_world(self) -> World:
        srv = self._srv()
        return World(self, srv)

    def get_available_maps(self) -> list[str]:
        self._srv()
        return [f"/Game/Carla/Maps/{t}" for t in TOWN_GEOMETRY]

    def load_world(
        self, map_name: str, reset_settings: bool = True, map_layers: Any = None
    ) -> World:
        srv = self._srv()
        srv._load(map_name.rsplit("/", 1)[-1])
        if reset_settings:
            srv.settings = WorldSettings()
        srv.log.append(("load_world", map_name))
        return World(self, srv)

    def get_trafficmanager(self, client_connection: int = 8000) -> TrafficManager:
        self._srv().tm_sync.setdefault(client_connection, False)
        return TrafficManager(self, client_connection)

    def apply_batch(self, commands: Sequence[Any], do_tick: bool = False) -> None:
        srv = self._srv(rpc=True)
        srv._batch_fault()
        srv.log.append(("batch", [c.actor_id for c in commands]))
        for c in commands:
            srv._destroy(c.actor_id)

    def apply_batch_sync(self, commands: Sequence[Any], do_tick: bool = False) -> list[_Response]:
        srv = self._srv()
        srv._batch_fault()
        srv.log.append(("batch", [c.actor_id for c in commands]))
        responses = []
        for c in commands:
            failing = srv.destroy_failures.get(c.actor_id, 0) > 0
            done = srv._destroy(c.actor_id)
            error = "could not destroy actor" if failing else "actor not found"
            responses.append(_Response(c.actor_id, "" if done else error))
        srv._call_done("apply_batch_sync")
        return responses
