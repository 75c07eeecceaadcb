"""The builtin simulator: procedural towns, a forward camera, weathers, a car and an expert.

numpy + OpenCV only, no server, deterministic for a seed. Modules of one concern each:
``roads`` (centrelines), ``towns`` (layouts, themes, props), ``weather``, ``texture``
(top-down world tiles), ``camera`` (homography), ``render`` (camera and bird's-eye images),
``vehicle`` (kinematic bicycle), ``expert`` (pure pursuit) and ``env`` (the gymnasium env,
registered as ``LiquidDrive/Builtin-v0`` by :mod:`sim`).
"""

from sim.builtin.env import BuiltinDrivingEnv, BuiltinEnvConfig, CameraJitter, EnvConfigError
from sim.builtin.expert import ExpertConfig, PurePursuitExpert
from sim.builtin.towns import TOWNS, TRAIN_TOWNS, UNSEEN_TOWNS, UnknownNameError
from sim.builtin.vehicle import VehicleParams
from sim.builtin.weather import TRAIN_WEATHERS, UNSEEN_WEATHERS, WEATHERS

__all__ = [
    "TOWNS",
    "TRAIN_TOWNS",
    "TRAIN_WEATHERS",
    "UNSEEN_TOWNS",
    "UNSEEN_WEATHERS",
    "WEATHERS",
    "BuiltinDrivingEnv",
    "BuiltinEnvConfig",
    "CameraJitter",
    "EnvConfigError",
    "ExpertConfig",
    "PurePursuitExpert",
    "UnknownNameError",
    "VehicleParams",
]
