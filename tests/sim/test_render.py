import math

import cv2
import numpy as np
import pytest

from sim import spec
from sim.builtin import texture, tile_buffers
from sim.builtin.camera import CameraModel
from sim.builtin.env import BuiltinDrivingEnv, CameraJitter
from sim.builtin.towns import PROP_KINDS, PropSet


def test_ground_homography_and_projection_agree():
    cam = CameraModel(spec.CameraSpec(), 2, pitch_offset_rad=0.01, yaw_offset_rad=-0.02)
    X = np.array([5.0, 10.0, 30.0, 80.0])
    Y = np.array([-1.0, 2.0, 0.0, 5.0])
    u, v, depth = cam.project(X, Y, np.zeros(4))
    assert np.all(depth > 0)
    Xb, Yb = cam.ground_points(u, v)
    np.testing.assert_allclose(Xb, X, rtol=1e-9)
    np.testing.assert_allclose(Yb, Y, atol=1e-9)
    # pixels above the horizon see no ground
    Xs, _ = cam.ground_points(np.array([cam.cx]), np.array([cam.horizon_row - 2.0]))
    assert np.isnan(Xs[0])
    # a point far ahead on the axis lands near the horizon row, in the middle column
    cam0 = CameraModel(spec.CameraSpec())
    u0, v0, _ = cam0.project(np.array([1e5]), np.array([0.0]), np.array([0.0]))
    assert u0[0] == pytest.approx(cam0.cx)
    assert v0[0] == pytest.approx(cam0.horizon_row, abs=0.01)
    assert cam0.row_at_distance(1e5) == pytest.approx(v0[0], abs=1e-6)


def test_lane_markings_appear_where_the_camera_model_puts_them():
    # mountain_pass: solid yellow centre line, white edge lines; the route starts straight
    env = BuiltinDrivingEnv(town="mountain_pass", weather="clear_noon", route_length_m=100.0)
    obs, _ = env.reset(seed=0)
    img = obs[spec.IMAGE].astype(int)
    cam = env._renderer.cam
    row = img.shape[0] - 4
    u = np.arange(img.shape[1], dtype=float)
    _X, Y = cam.ground_points(u, np.full_like(u, row))
    half = 0.5 * env.road.lane_width_m
    # the car is on the right-lane centre: centre line at Y = +half, right edge at Y = -half
    centre_col = int(np.argmin(np.abs(Y - half)))
    edge_col = int(np.argmin(np.abs(Y + half)))
    lane_col = int(np.argmin(np.abs(Y)))
    r, g, b = img[row, centre_col]
    assert r > 150 and g > 110 and b < 110, f"no yellow line at column {centre_col}: {r, g, b}"
    assert img[row, edge_col].min() > 150, f"no white edge line at column {edge_col}"
    assert img[row, lane_col].max() < 130, "the lane itself should be grey asphalt"


def test_texture_tiles_agree_where_they_overlap():
    env = BuiltinDrivingEnv(town="suburb", route_length_m=600.0)
    env.reset(seed=1)
    tex = env._renderer.texture
    a, b = tex._build(0), tex._build(1)
    # points on and beside the road in the overlap of both tiles
    s = np.linspace(tex.section_m, tex.section_m + 60.0, 200)
    offsets = np.linspace(-8.0, 8.0, 200)
    x, y, _ = env.road.locate(s, offsets)

    def sample(tile):
        cols = tile.world_to_px[0, 0] * x + tile.world_to_px[0, 1] * y + tile.world_to_px[0, 2]
        rows = tile.world_to_px[1, 0] * x + tile.world_to_px[1, 1] * y + tile.world_to_px[1, 2]
        return tile.image[np.round(rows).astype(int), np.round(cols).astype(int)].astype(float)

    diff = np.abs(sample(a) - sample(b))
    assert np.median(diff) <= 12.0
    assert diff.mean() < 20.0


def test_billboard_is_drawn_at_its_projection():
    env = BuiltinDrivingEnv(town="desert", route_length_m=100.0)
    env.reset(seed=0)
    st = env.vehicle.state
    # one red house 25 m ahead, 6 m to the left of the car
    ahead, left, height = 25.0, 6.0, 6.0
    x = st.x_m + ahead * math.cos(st.yaw_rad) - left * math.sin(st.yaw_rad)
    y = st.y_m + ahead * math.sin(st.yaw_rad) + left * math.cos(st.yaw_rad)
    colour = np.array([[[255, 0, 0], [255, 0, 0], [255, 0, 0]]], np.float32)
    house = PropSet(
        x=np.array([x]),
        y=np.array([y]),
        s=np.array([env._s + ahead]),
        kind=np.array([PROP_KINDS.index("house")]),
        height=np.array([height]),
        width=np.array([8.0]),
        colour=colour,
    )
    r = env._renderer
    r.props = house
    img = r.render(st.x_m, st.y_m, st.yaw_rad, env._s).astype(int)
    u, v, _ = r.cam.project(np.array([ahead]), np.array([left]), np.array([0.4 * height]))
    pix = img[round(v[0]), round(u[0])]
    assert pix[0] > 150 and pix[1] < 90 and pix[2] < 90, pix
    u_other, _, _ = r.cam.project(np.array([ahead]), np.array([-left]), np.array([0.4 * height]))
    assert img[round(v[0]), round(u_other[0])][1] > 90  # nothing red on the right


def test_weathers_look_different_in_the_expected_direction():
    def frame(weather):
        env = BuiltinDrivingEnv(town="countryside", weather=weather, route_length_m=100.0)
        obs, _ = env.reset(seed=2)
        return obs[spec.IMAGE].astype(float)

    clear, night, fog = frame("clear_noon"), frame("night"), frame("fog")
    assert night.mean() < 0.5 * clear.mean()
    # fog washes out the far field: less contrast in the upper half of the ground
    band = slice(clear.shape[0] // 2 - 6, clear.shape[0] // 2 + 6)
    assert fog[band].std() < 0.6 * clear[band].std()
    # the top row is the sky colour of the weather
    np.testing.assert_allclose(np.median(clear[0], axis=0), (70, 120, 200), atol=12)


def test_control_rate_frame_jitter_and_camera_jitter():
    env = BuiltinDrivingEnv(control_rate_hz=10.0, target_speed_mps=10.0, route_length_m=100.0)
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step(np.zeros(1, np.float32))
    assert obs[spec.T_S][0] == pytest.approx(0.1)
    env = BuiltinDrivingEnv(frame_time_jitter=0.5, route_length_m=100.0)
    obs, _ = env.reset(seed=0)
    t = [obs[spec.T_S][0]]
    for _ in range(30):
        obs, *_ = env.step(np.zeros(1, np.float32))
        t.append(obs[spec.T_S][0])
    dt = np.diff(t)
    assert np.all((dt >= 0.025 - 1e-12) & (dt <= 0.075 + 1e-12)) and dt.std() > 0.005
    jitter = CameraJitter(pitch_std_deg=1.0, yaw_std_deg=1.0, height_std_m=0.05)
    env = BuiltinDrivingEnv(camera_jitter=jitter, route_length_m=100.0)
    a = env.reset(seed=3)[0][spec.IMAGE]
    b = env.reset(seed=3)[0][spec.IMAGE]
    c = env.reset(seed=4, options={})[0][spec.IMAGE]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    cam = env._renderer.cam
    assert (cam.pitch, cam.yaw, cam.h) != (math.radians(6.0), 0.0, 1.4)


def test_image_noise_option_changes_pixels_by_about_its_std():
    kw = dict(town="highway", route_length_m=100.0)
    clean = BuiltinDrivingEnv(**kw).reset(seed=0)[0][spec.IMAGE].astype(float)
    noisy = BuiltinDrivingEnv(image_noise_std=0.05, **kw).reset(seed=0)[0][spec.IMAGE].astype(float)
    assert np.std(noisy - clean) == pytest.approx(0.05 * 255, rel=0.2)


def test_birdseye_render_shows_the_car():
    env = BuiltinDrivingEnv(route_length_m=100.0, render_mode="rgb_array")
    env.reset(seed=0)
    view = env.render()
    assert view.shape == (320, 320, 3) and view.dtype == np.uint8
    red = (view[..., 0] > 180) & (view[..., 1] < 60) & (view[..., 2] < 60)
    _rows, cols = np.nonzero(red)
    assert red.sum() > 50
    assert abs(cols.mean() - 160) < 10  # the car is in the middle column, forward is up
    assert BuiltinDrivingEnv(route_length_m=100.0).render() is None


def test_distant_skyline_turns_with_the_car_without_parallax():
    env = BuiltinDrivingEnv(town="mountain_pass", route_length_m=100.0)
    env.reset(seed=0)
    r = env._renderer
    empty = np.zeros(0)
    r.props = PropSet(empty, empty, empty, empty.astype(int), empty, empty, np.zeros((0, 3, 3)))
    st = env.vehicle.state
    rows = slice(0, int(r.cam.horizon_row) - 1)
    a = r.render(st.x_m, st.y_m, st.yaw_rad, env._s)[rows].astype(int)
    shift = 20  # turning left by shift / f rad moves the skyline right by shift px
    b = r.render(st.x_m, st.y_m, st.yaw_rad + shift / r.cam.f, env._s)[rows].astype(int)
    assert np.abs(a[:, :-shift] - b[:, shift:]).mean() < 2.0
    assert np.abs(a - b).mean() > 2.0  # there is a skyline, and it moved
    moved = r.render(st.x_m + 50.0, st.y_m, st.yaw_rad, env._s)[rows].astype(int)
    assert np.abs(moved - a).mean() < 1.0  # no parallax for a 50 m translation


def test_tile_buffers_are_reused_only_when_nothing_refers_to_them():
    env = BuiltinDrivingEnv(route_length_m=1500.0)
    env.reset(seed=0)
    tex = env._renderer.texture
    held_tile = tex.tile_at(250.0)  # section 1
    held_view = tex.tile_at(450.0).image  # section 2: only a view of its pixels is kept
    assert held_tile.image.shape[2] == 3 and held_tile.rgba.shape[2] == 4
    np.testing.assert_array_equal(held_tile.image, held_tile.rgba[..., :3])
    want_tile, want_view = held_tile.rgba.copy(), held_view.copy()
    pooled = []
    for s in np.arange(650.0, 1500.0, 200.0):  # evicts sections 1 and 2 and later ones
        tex.tile_at(s)
        pooled += [id(b) for b in tile_buffers.POOL]
    np.testing.assert_array_equal(held_tile.rgba, want_tile)
    np.testing.assert_array_equal(held_view, want_view)
    assert id(held_tile.rgba.base) not in pooled and id(held_view.base) not in pooled
    assert pooled  # tiles nothing refers to any more are recycled


def test_buffer_pool_keeps_the_largest_few_and_hands_out_the_smallest_fitting():
    saved = list(tile_buffers.POOL)
    tile_buffers.POOL.clear()
    try:
        for n in range(1, 2 * tile_buffers.POOL_BUFFERS + 1):
            tile_buffers.give(np.empty(1000 * n, np.uint8))
        sizes = sorted(b.size for b in tile_buffers.POOL)
        assert (
            len(sizes) == tile_buffers.POOL_BUFFERS and sizes[0] > 1000 * tile_buffers.POOL_BUFFERS
        )
        smallest = sizes[0]
        assert tile_buffers.take(smallest - 10).size == smallest
        assert tile_buffers.take(10**7).size >= 10**7  # nothing fits: a new buffer
    finally:
        tile_buffers.POOL[:] = saved


@pytest.mark.parametrize("rows", [1, texture._GRAIN_ROWS, 2 * texture._GRAIN_ROWS + 5])
def test_grain_in_strips_equals_the_whole_tile_multiply(rows):
    rng = np.random.default_rng(rows)
    img = rng.integers(0, 256, (rows, 37, 4), dtype=np.uint8)
    grain = rng.integers(0, 256, (rows, 37), dtype=np.uint8)
    want = cv2.multiply(img, cv2.cvtColor(grain, cv2.COLOR_GRAY2RGBA), scale=1.0 / 128.0)
    texture._apply_grain(img, grain)
    np.testing.assert_array_equal(img, want)


def test_a_texture_finalizer_never_waits_for_the_pool_lock():
    """The garbage collector may run a texture's finalizer inside ``_take`` with the pool's
    (non-reentrant) lock held on the same thread; it must return instead of deadlocking."""
    import threading
    from collections import OrderedDict

    flat = np.frombuffer(bytearray(64), np.uint8)
    cache = OrderedDict(
        {0: texture.Tile(rgba=flat.reshape(4, 4, 4), world_to_px=np.eye(3), index=0)}
    )
    del flat
    before = len(tile_buffers.POOL)
    done = threading.Event()
    with tile_buffers.POOL_LOCK:  # as inside _take when the collector runs the finalizer
        worker = threading.Thread(target=lambda: (tile_buffers.release_cache(cache), done.set()))
        worker.start()
        worker.join(timeout=10.0)
        assert done.is_set(), "the finalizer blocked on the pool lock"
    assert not cache and len(tile_buffers.POOL) == before  # dropped, not pooled
    saved = tile_buffers.POOL[:]
    tile_buffers.POOL.clear()  # the pool keeps the largest few: start from an empty one
    try:
        buf = np.frombuffer(bytearray(64), np.uint8)
        tile_buffers.give(buf)  # the ordinary path still pools (and waits)
        assert len(tile_buffers.POOL) == 1 and tile_buffers.POOL[0] is buf
    finally:
        tile_buffers.POOL[:] = saved
