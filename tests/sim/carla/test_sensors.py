"""Frame matching of camera data and non-blocking event buffers."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from sim.carla.sensors import EventBuffer, FrameQueue, SensorTimeoutError, camera_blueprint
from sim.spec import CameraSpec
from tests.sim.carla import standin


def _data(frame: int) -> SimpleNamespace:
    return SimpleNamespace(frame=frame)


def test_stale_frames_are_discarded_and_the_ticked_frame_returned():
    q = FrameQueue("camera")
    for f in (3, 4, 5):
        q.put(_data(f))
    assert q.get(5, timeout_s=0.5).frame == 5
    assert q.discarded == 2


def test_a_late_image_from_another_thread_is_waited_for():
    q = FrameQueue("camera")
    q.put(_data(6))  # stale, already in the queue
    timer = threading.Timer(0.05, q.put, args=(_data(7),))
    timer.start()
    try:
        assert q.get(7, timeout_s=5.0).frame == 7
    finally:
        timer.join()
    assert q.discarded == 1


def test_missing_frame_times_out_with_a_clear_error():
    q = FrameQueue("camera")
    q.put(_data(1))
    with pytest.raises(SensorTimeoutError, match="no data for frame 2"):
        q.get(2, timeout_s=0.05)


def test_a_skipped_frame_is_an_error_not_a_wrong_match():
    q = FrameQueue("camera")
    q.put(_data(9))
    with pytest.raises(SensorTimeoutError, match="got frame 9 while waiting for frame 8"):
        q.get(8, timeout_s=0.5)


def test_event_buffer_drains_without_waiting():
    buf = EventBuffer()
    assert buf.drain() == []
    buf.put("a")
    buf.put("b")
    assert buf.drain() == ["a", "b"]
    assert buf.drain() == []


def test_camera_blueprint_attributes_are_strings():
    bp = camera_blueprint(
        standin.BlueprintLibrary(), CameraSpec(width_px=200, height_px=78, hfov_deg=70.0)
    )
    assert bp.get_attribute("image_size_x").as_str() == "200"
    assert bp.get_attribute("image_size_y").as_str() == "78"
    assert bp.get_attribute("fov").as_str() == "70"
    assert bp.get_attribute("sensor_tick").as_str() == "0.0"
    with pytest.raises(TypeError):
        bp.set_attribute("fov", 90.0)  # the stand-in, like CARLA, refuses non-strings
