"""Sensor plumbing: frame-matched camera queue, non-blocking event buffers, blueprints.

CARLA calls a sensor's ``listen`` callback on a client background thread, for cameras
usually a frame or two after the tick that produced the image. The correct synchronous loop
(``PythonAPI/examples/synchronous_mode.py``) is: ``frame = world.tick()``, then take images
from the camera's queue, discarding older frames, until one has ``image.frame == frame``.
Collision and lane-invasion sensors only fire when something happens, so their buffers are
drained without ever waiting.
"""

from __future__ import annotations

import queue
import time
from types import ModuleType
from typing import Any

from liquid_drive.errors import LiquidDriveError
from sim.spec import CameraSpec


class SensorTimeoutError(LiquidDriveError, RuntimeError):
    """A camera image for the ticked frame did not arrive in time (or a frame was skipped)."""


class FrameQueue:
    """Sensor data from a ``listen`` callback, handed out matched to world frame ids.

    Use ``sensor.listen(q.put)``; after ``frame = world.tick()`` call ``q.get(frame, timeout)``.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._queue: queue.Queue[Any] = queue.Queue()
        self.discarded = 0
        """How many stale items (older frames) have been dropped so far."""

    def put(self, data: Any) -> None:
        """The listen callback (runs on CARLA's thread)."""
        self._queue.put(data)

    def get(self, frame: int, timeout_s: float) -> Any:
        """Returns the item of ``frame``, dropping older ones; waits at most ``timeout_s``.

        Raises:
            SensorTimeoutError: If nothing for ``frame`` arrives in time, or a newer frame
                arrives first (the sensor skipped the one we ticked).
        """
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            try:
                data = (
                    self._queue.get(timeout=max(remaining, 0.0))
                    if remaining > 0
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                raise SensorTimeoutError(
                    f"{self.name}: no data for frame {frame} within {timeout_s:g} s "
                    "(server too slow? raise the sensor timeout)"
                ) from None
            if data.frame == frame:
                return data
            if data.frame > frame:
                raise SensorTimeoutError(
                    f"{self.name}: got frame {data.frame} while waiting for frame {frame} "
                    "(the sensor skipped a tick; its sensor_tick must be 0)"
                )
            self.discarded += 1


class EventBuffer:
    """Events from a collision or lane-invasion sensor, drained without blocking."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def put(self, event: Any) -> None:
        """The listen callback (runs on CARLA's thread)."""
        self._queue.put(event)

    def drain(self) -> list[Any]:
        """Everything received so far, oldest first; never waits."""
        out = []
        while True:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                return out


def camera_blueprint(blueprint_library: Any, camera: CameraSpec) -> Any:
    """The ``sensor.camera.rgb`` blueprint configured from the camera spec.

    CARLA blueprint attributes are strings; ``sensor_tick`` 0 captures every tick.
    """
    bp = blueprint_library.find("sensor.camera.rgb")
    bp.set_attribute("image_size_x", str(camera.width_px))
    bp.set_attribute("image_size_y", str(camera.height_px))
    bp.set_attribute("fov", f"{camera.hfov_deg:g}")
    bp.set_attribute("sensor_tick", "0.0")
    return bp


def camera_transform(carla: ModuleType, camera: CameraSpec, rear_axle_x_m: float) -> Any:
    """The camera's mount relative to the vehicle actor (CARLA frame, pitch negative = down).

    The spec measures the forward offset from the rear axle; the actor's origin lies
    ``-rear_axle_x_m`` ahead of it. The mount height is taken from the actor origin, which
    CARLA vehicles place close to the ground.
    """
    return carla.Transform(
        carla.Location(x=rear_axle_x_m + camera.forward_offset_m, y=0.0, z=camera.mount_height_m),
        carla.Rotation(pitch=-camera.pitch_deg, yaw=0.0, roll=0.0),
    )
