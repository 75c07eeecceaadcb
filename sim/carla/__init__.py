"""The CARLA backend: the ``sim/spec.py`` contract over a CARLA 0.9.16 server.

Importing this package does not import ``carla``; the client is imported when an environment
is created, with an install hint if it is missing (``pip install -e ".[carla]"``; the
``carla`` client must be the same release as the server, 0.9.16).

Use ``sim.make_env("carla", host=..., port=..., town=..., weather=...)`` or
:class:`CarlaDrivingEnv` directly; suites of the CARLA literature are in
:mod:`sim.carla.suites`.
"""

from sim.carla.config import CarlaEnvConfig
from sim.carla.connection import (
    CLIENT_VERSION,
    INSTALL_HINT,
    CarlaCleanupError,
    CarlaConfigError,
    CarlaConnectionError,
    CarlaDataError,
    CarlaNotInstalledError,
    CarlaServerBusyError,
    CarlaSpawnError,
    CarlaVersionWarning,
    import_carla,
)
from sim.carla.env import CarlaDrivingEnv
from sim.carla.expert import CarlaExpert, PurePursuitConfig
from sim.carla.suites import SUITES, suite_conditions

__all__ = [
    "CLIENT_VERSION",
    "INSTALL_HINT",
    "SUITES",
    "CarlaCleanupError",
    "CarlaConfigError",
    "CarlaConnectionError",
    "CarlaDataError",
    "CarlaDrivingEnv",
    "CarlaEnvConfig",
    "CarlaExpert",
    "CarlaNotInstalledError",
    "CarlaServerBusyError",
    "CarlaSpawnError",
    "CarlaVersionWarning",
    "PurePursuitConfig",
    "import_carla",
    "suite_conditions",
]
