"""Importing the ``carla`` client lazily, connecting to a server, and the backend's errors.

``carla`` is imported only inside ``sim/carla/`` and only when a CARLA environment is
actually created, so the rest of the project (and CI) never needs the 34 MB wheel.
"""

from __future__ import annotations

import importlib
import logging
import warnings
from types import ModuleType
from typing import Any

from liquid_drive.errors import LiquidDriveError
from sim.spec import ContractError, SimConfigError

logger = logging.getLogger(__name__)

CLIENT_VERSION = "0.9.16"
"""The client release this backend is written and pinned for (``pyproject.toml`` extra)."""

INSTALL_HINT = (
    'install the CARLA client with `pip install -e ".[carla]"` (carla==0.9.16; the client '
    "release must match the server's)"
)

SERVER_HINT = (
    "start a CARLA 0.9.16 server first, e.g. `./CarlaUE4.sh -RenderOffScreen "
    "-carla-rpc-port={port}` in the CARLA folder (it also uses port {stream_port} for "
    "sensor streaming and 8000 for the Traffic Manager), then check --host/--port"
)

SPAWN_COLLISION_MESSAGE = "Spawn failed because of collision at spawn position"
"""CARLA's ``RuntimeError`` text when ``spawn_actor`` hits an occupied spawn point."""


class CarlaNotInstalledError(LiquidDriveError, ImportError):
    """The ``carla`` client package is not installed."""


class CarlaConnectionError(LiquidDriveError, RuntimeError):
    """No CARLA server answered at host:port within the timeout."""


class CarlaConfigError(SimConfigError):
    """An invalid option of the CARLA backend (a range, a name, an unknown field or suite)."""


class CarlaDataError(ContractError):
    """Data from the server the backend cannot use (a wrong-sized image, not four wheels)."""


class CarlaSpawnError(LiquidDriveError, RuntimeError):
    """No free spawn point was found for the ego vehicle."""


class CarlaServerBusyError(LiquidDriveError, RuntimeError):
    """Another environment of this process still drives the same server."""


class CarlaCleanupError(LiquidDriveError, RuntimeError):
    """Actors of ours could not be destroyed, even after retries (their ids are named)."""


class CarlaVersionWarning(UserWarning):
    """The client and server releases differ (CARLA itself only prints a warning)."""


def import_carla() -> ModuleType:
    """Imports and returns the ``carla`` module.

    Raises:
        CarlaNotInstalledError: With the install command, if the package is missing.
    """
    try:
        return importlib.import_module("carla")
    except ImportError as err:
        raise CarlaNotInstalledError(
            f"the `carla` package is not importable ({err}); {INSTALL_HINT}"
        ) from err


def is_timeout_error(err: BaseException) -> bool:
    """Whether an exception is CARLA's "no answer" time-out (plain ``RuntimeError``).

    CARLA raises ``time-out of 2000ms while waiting for the simulator ...`` from most calls
    and ``rpc::timeout: Timeout of 2000ms while connecting to ...`` from ``apply_batch``.
    """
    text = str(err)
    return isinstance(err, RuntimeError) and ("time-out of" in text or "Timeout of" in text)


def is_spawn_collision(err: BaseException) -> bool:
    """Whether an exception is CARLA's spawn-collision ``RuntimeError``."""
    return isinstance(err, RuntimeError) and SPAWN_COLLISION_MESSAGE in str(err)


def connect(carla: ModuleType, host: str, port: int, timeout_s: float) -> tuple[Any, str]:
    """Connects a client and checks that a server answers and has our release.

    Args:
        carla: The ``carla`` module (the real one, or the test stand-in).
        host: Server host name or address.
        port: The server's RPC port (2000 by default; streaming uses ``port + 1``).
        timeout_s: How long each call may wait for the server, s.

    Returns:
        ``(client, server_version)``.

    Raises:
        CarlaConnectionError: If no server answers within ``timeout_s``, saying how to start one.
    """
    client = carla.Client(host, port)
    client.set_timeout(timeout_s)
    try:
        server_version = client.get_server_version()
    except RuntimeError as err:
        if not is_timeout_error(err):
            raise
        raise CarlaConnectionError(
            f"no CARLA server answered at {host}:{port} within {timeout_s:g} s ({err}); "
            + SERVER_HINT.format(port=port, stream_port=port + 1)
        ) from err
    client_version = client.get_client_version()
    if client_version != server_version:
        warnings.warn(
            f"CARLA client {client_version} and server {server_version} differ; the client "
            f"must be the same release as the server ({INSTALL_HINT})",
            CarlaVersionWarning,
            stacklevel=3,
        )
    if client_version != CLIENT_VERSION:
        logger.warning(
            "this backend is written for CARLA %s, client is %s", CLIENT_VERSION, client_version
        )
    return client, server_version
