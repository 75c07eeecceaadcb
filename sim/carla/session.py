"""One environment's changes to a CARLA server and undoing them: settings, Traffic Manager, actors.

:meth:`ServerSession.open` connects, loads the town, destroys actors a crashed earlier run
left (by ``role_name``) and switches the world and the Traffic Manager to synchronous mode;
every change is marked *before* it is made, so an interrupt between the two never hides it.
:meth:`ServerSession.spawn` tracks each actor from the moment the server returns it (signals
are held across the call, see :mod:`sim.carla.signals`).

:meth:`ServerSession.close` undoes it all, in this order: the original world settings
(synchronous mode off) first, the Traffic Manager's synchronous mode off, sensors stopped,
every tracked actor destroyed (one batch; each command's response is checked, and what
failed is retried up to :data:`DESTROY_ATTEMPTS` times), and the world settings once more,
last. SIGINT and SIGTERM are held until it ends. It is idempotent and resumable: each call
does what earlier ones could not (an actor stays tracked until the server confirms it gone),
and returns what is still left; if the server stops answering (a time-out), the pass stops
there instead of waiting a time-out per step. The session holds no reference to its
environment, so the environment's finaliser can close it when the environment is dropped
without ``close()`` or when the interpreter exits.

A server left in synchronous mode would freeze waiting for a tick that never comes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from sim.carla.config import CarlaEnvConfig
from sim.carla.connection import CarlaCleanupError, connect, is_timeout_error
from sim.carla.signals import deferred_signals, install_sigterm_exit

logger = logging.getLogger(__name__)

DESTROY_ATTEMPTS = 3
"""How often destroying an actor is tried (per cleanup) before it is reported as failed."""
RETRY_DELAY_S = 0.2
"""Pause before the n-th retry of a destroy is ``n * RETRY_DELAY_S``, s."""

RECOVERY_HINT = (
    "if that server still runs, switch it back to asynchronous mode with CARLA's "
    "`PythonAPI/util/config.py --no-sync`; actors we left are destroyed by the next "
    "environment that connects (same role_name)"
)


class _NotAnswering(Exception):
    """A cleanup call timed out: the rest of this pass would only wait for more time-outs."""


class ServerSession:
    """One environment's connection and everything it changed on the server.

    Args:
        carla: The ``carla`` module (the real one, or the test stand-in).
        config: The environment's configuration (host, ports, timeouts, town, role name).
    """

    def __init__(self, carla: Any, config: CarlaEnvConfig) -> None:
        self.carla, self.config = carla, config
        self.client: Any = None
        self.world: Any = None
        self.map: Any = None
        self.tm: Any = None
        self.blueprints: Any = None
        self.original_settings: Any = None
        self.sync_applied = False
        """The world is (or may be) in our synchronous mode: restore the original settings."""
        self.tm_sync_applied = False
        """The Traffic Manager is (or may be) synchronous: turn that off."""
        self.settings_touched = False
        """We changed the world settings at some point (so cleanup restores them last too)."""
        self.actors: dict[int, Any] = {}
        """Every actor we spawned that the server has not confirmed destroyed, by id."""
        self._warned_original_sync = False
        self._restore_sigterm: Callable[[], None] | None = install_sigterm_exit()

    # ------------------------------------------------------------------------------------------
    # Opening and spawning

    def open(self) -> None:
        """Connects, loads the town, removes leftovers, switches to synchronous mode.

        Raises:
            CarlaConnectionError: If no server answers within the timeout.
        """
        cfg, carla = self.config, self.carla
        self.client, server_version = connect(carla, cfg.host, cfg.port, cfg.timeout_s)
        logger.info("connected to CARLA %s at %s:%d", server_version, cfg.host, cfg.port)
        world = self.client.get_world()
        self.original_settings = world.get_settings()
        current_map = world.get_map()  # fetches and parses the OpenDRIVE: once per world
        if current_map.name.rsplit("/", 1)[-1] != cfg.town:
            logger.info("loading %s", cfg.town)
            self.client.set_timeout(cfg.load_timeout_s)
            try:
                world = self.client.load_world(cfg.town)
                current_map = world.get_map()
            finally:
                self.client.set_timeout(cfg.timeout_s)
        self.world, self.map = world, current_map
        if cfg.destroy_leftovers:
            self._destroy_leftovers()
        settings = world.get_settings()
        settings.synchronous_mode = True
        settings.fixed_delta_seconds = cfg.dt_s
        self.sync_applied = self.settings_touched = True
        world.apply_settings(settings)
        self.tm = self.client.get_trafficmanager(cfg.tm_port)
        self.tm_sync_applied = True
        self.tm.set_synchronous_mode(True)
        self.blueprints = world.get_blueprint_library()

    def _destroy_leftovers(self) -> None:
        role = self.config.role_name
        leftovers = {
            a.id: a for a in self.world.get_actors() if a.attributes.get("role_name") == role
        }
        if leftovers:
            logger.warning("destroying %d actors left by an earlier run", len(leftovers))
            failed = self._destroy_batch(leftovers)
            if failed:
                logger.warning("could not destroy leftover actor(s): %s", failed)

    def spawn(self, blueprint: Any, transform: Any, attach_to: Any = None) -> Any:
        """``world.spawn_actor``, the actor tracked before any signal can interrupt us.

        Raises:
            RuntimeError: CARLA's own errors (a spawn collision, a time-out).
        """
        with deferred_signals():
            if attach_to is None:
                actor = self.world.spawn_actor(blueprint, transform)
            else:
                actor = self.world.spawn_actor(blueprint, transform, attach_to=attach_to)
            self.actors[actor.id] = actor
        return actor

    # ------------------------------------------------------------------------------------------
    # Destroying actors

    def destroy_actors(self) -> None:
        """Stops our sensors and destroys every tracked actor (between episodes).

        Raises:
            CarlaCleanupError: If some could not be destroyed after :data:`DESTROY_ATTEMPTS`
                tries (they stay tracked: the next cleanup tries again).
            RuntimeError: CARLA's time-out, if the server stops answering.
        """
        for actor in list(self.actors.values()):
            if str(getattr(actor, "type_id", "")).startswith("sensor."):
                try:
                    actor.stop()  # stop listening before destroying (carla #9246)
                except Exception as err:
                    logger.error("cleanup: stopping sensor %s failed: %s", actor.id, err)
        errors: dict[int, str] = {}
        for attempt in range(1, DESTROY_ATTEMPTS + 1):
            if not self.actors:
                return
            if attempt > 1:
                logger.warning(
                    "destroying actor(s) failed (attempt %d of %d): %s; retrying",
                    attempt - 1,
                    DESTROY_ATTEMPTS,
                    errors,
                )
                time.sleep(RETRY_DELAY_S * (attempt - 1))
            errors = self._destroy_batch(self.actors)
        if self.actors:
            cfg = self.config
            raise CarlaCleanupError(
                f"could not destroy our actor(s) {sorted(self.actors)} on {cfg.host}:{cfg.port} "
                f"after {DESTROY_ATTEMPTS} attempts: {errors}"
            )

    def _destroy_batch(self, actors: dict[int, Any]) -> dict[int, str]:
        """One ``DestroyActor`` batch: drops what is gone from ``actors``, returns the errors.

        Returns:
            The error of each actor that is still alive, by id.

        Raises:
            RuntimeError: CARLA's time-out (the server stopped answering).
        """
        ids = list(actors)
        try:
            responses = self.client.apply_batch_sync(
                [self.carla.command.DestroyActor(i) for i in ids]
            )
        except Exception as err:
            if is_timeout_error(err):
                raise
            return dict.fromkeys(ids, f"the batch failed: {err}")
        errors = {}
        responses = list(responses)  # may be shorter than ids: the rest had no response
        for actor_id, response in zip(ids[: len(responses)], responses, strict=True):
            if response.has_error() and not self._gone(actor_id):
                errors[actor_id] = str(response.error)
            else:
                actors.pop(actor_id, None)
        errors.update({i: "no response" for i in ids[len(responses) :]})
        return errors

    def _gone(self, actor_id: int) -> bool:
        """Whether the server no longer has a live actor with this id."""
        try:
            actor = self.world.get_actor(actor_id)
        except Exception:
            return False
        return actor is None or not actor.is_alive

    # ------------------------------------------------------------------------------------------
    # Cleanup

    def pending(self) -> list[str]:
        """What this session still has to undo on the server ([] = nothing)."""
        left = []
        if self.sync_applied:
            left.append("the world's synchronous mode")
        if self.tm_sync_applied:
            left.append("the Traffic Manager's synchronous mode")
        if self.actors:
            left.append(f"actor(s) {sorted(self.actors)}")
        return left

    def close(self) -> list[str]:
        """Undoes everything on the server (see the module docstring); safe to call again.

        Returns:
            What is still left undone (logged as an error), [] when the cleanup is complete.
        """
        if not self.pending():  # complete already: no server call, no signal juggling
            self._release_sigterm()
            return []
        try:
            with deferred_signals():
                self._undo()
                left = self.pending()
                if left:
                    cfg = self.config
                    logger.error(
                        "cleanup of the CARLA server at %s:%d is incomplete: %s left (tried "
                        "again by close() and at exit); %s",
                        cfg.host,
                        cfg.port,
                        ", ".join(left),
                        RECOVERY_HINT,
                    )
        finally:
            if not self.pending():
                self._release_sigterm()
        return left

    def _release_sigterm(self) -> None:
        """Gives SIGTERM its default action back once nothing is left to clean up."""
        if self._restore_sigterm is not None:
            self._restore_sigterm()
            self._restore_sigterm = None

    def _undo(self) -> None:
        try:
            if self.sync_applied:
                self._attempt("restoring world settings", self._restore_settings)
            if self.tm_sync_applied:
                self._attempt("turning Traffic Manager sync off", self._tm_sync_off)
            if self.actors:
                self._attempt("destroying our actors", self.destroy_actors)
            if self.settings_touched:  # last too: nothing after us may leave it synchronous
                self.sync_applied = True
                self._attempt("restoring world settings", self._restore_settings)
        except _NotAnswering:
            pass

    def _attempt(self, what: str, fn: Callable[[], None]) -> None:
        """Runs one cleanup step, logging a failure; a time-out ends the pass."""
        try:
            fn()
        except Exception as err:
            logger.error("cleanup: %s failed: %s", what, err)
            if is_timeout_error(err):
                raise _NotAnswering from err

    def _tm_sync_off(self) -> None:
        self.tm.set_synchronous_mode(False)
        self.tm_sync_applied = False

    def _restore_settings(self) -> None:
        original = self.original_settings
        if original.synchronous_mode:
            if not self._warned_original_sync:
                logger.warning(
                    "the server was in synchronous mode before we connected (a crashed "
                    "client?); leaving it asynchronous so it does not freeze"
                )
                self._warned_original_sync = True
            original.synchronous_mode = False
        self.world.apply_settings(original)
        self.sync_applied = False
