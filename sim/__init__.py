"""Worlds only: the simulator contract, the builtin simulator, the CARLA backend and wrappers.

``sim`` imports neither ``driving`` nor ``perception`` and never imports torch. Its public
face, the only part other packages may import, is the contract :mod:`sim.spec`, the wrappers
of :mod:`sim.wrappers`, the factories :func:`make_env`, :func:`make_expert` and
:func:`split`, and the gymnasium id :data:`BUILTIN_ENV_ID`.
"""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium

from sim.spec import ContractError, Driver, TownWeatherSplit

BUILTIN_ENV_ID = "LiquidDrive/Builtin-v0"
"""Gymnasium id of the builtin simulator (``gymnasium.make(BUILTIN_ENV_ID, town=...)``)."""

if BUILTIN_ENV_ID not in gymnasium.registry:
    gymnasium.register(id=BUILTIN_ENV_ID, entry_point="sim.builtin.env:BuiltinDrivingEnv")

SIMULATORS: tuple[str, ...] = ("builtin", "carla")
"""Names accepted by :func:`make_env`."""


def make_env(sim: str = "builtin", **kwargs: Any) -> gymnasium.Env:
    """Creates a driving environment.

    Args:
        sim: ``"builtin"`` (the default CPU simulator) or ``"carla"`` (needs a CARLA server;
            ``sim.carla`` is imported only then).
        **kwargs: Fields of the backend's config (for builtin: ``BuiltinEnvConfig``, plus
            ``render_mode``).

    Returns:
        The environment (not wrapped).

    Raises:
        ContractError: For an unknown simulator name.
    """
    if sim == "builtin":
        from sim.builtin.env import BuiltinDrivingEnv

        return BuiltinDrivingEnv(**kwargs)
    if sim == "carla":
        carla_backend = importlib.import_module("sim.carla")
        return carla_backend.CarlaDrivingEnv(**kwargs)
    raise ContractError(f"unknown simulator {sim!r}; valid: {', '.join(SIMULATORS)}")


def make_expert(env: gymnasium.Env) -> Driver:
    """The privileged expert ``Driver`` of any of our environments (wrapped or not)."""
    return env.unwrapped.make_expert()


def split(sim: str = "builtin") -> TownWeatherSplit:
    """The town and weather names of a simulator and its training / held-out split.

    Builtin: training towns countryside, suburb, highway; unseen mountain_pass, desert, snow;
    junction towns (road networks with T and X junctions, routes with commands): training
    village, farmland; unseen old_town;
    training weathers clear_noon, overcast, sunset, wet_road; unseen night, fog, heavy_rain.
    CARLA (CoRL2017 / NoCrash): train Town01 under ClearNoon, WetNoon, HardRainNoon,
    ClearSunset; test Town02 and WetSunset, SoftRainSunset. Importing either table needs no
    server and no ``carla`` client.

    Raises:
        ContractError: For an unknown simulator name.
    """
    if sim == "builtin":
        from sim.builtin import towns
        from sim.builtin.weather import TRAIN_WEATHERS, UNSEEN_WEATHERS, WEATHERS

        train_towns, unseen_towns = tuple(towns.TRAIN_TOWNS), tuple(towns.UNSEEN_TOWNS)
        train_weathers, unseen_weathers = tuple(TRAIN_WEATHERS), tuple(UNSEEN_WEATHERS)
        all_towns, all_weathers, open_names = tuple(towns.TOWNS), tuple(WEATHERS), False
        junction = (towns.JUNCTION_TRAIN_TOWNS, towns.JUNCTION_UNSEEN_TOWNS)
        speeds = tuple(
            (t, *towns.get_town(t).speed_range_mps) for t in towns.TOWNS + towns.JUNCTION_TOWNS
        )
    elif sim == "carla":
        from sim.carla import suites

        train_towns, unseen_towns = suites.TRAIN_TOWNS, suites.UNSEEN_TOWNS
        train_weathers, unseen_weathers = suites.TRAIN_WEATHERS, suites.UNSEEN_WEATHERS
        all_towns, all_weathers, open_names = suites.TOWNS, suites.WEATHERS, True
        speeds, junction = (), ((), ())
    else:
        raise ContractError(f"unknown simulator {sim!r}; valid: {', '.join(SIMULATORS)}")
    named = {*train_towns, *unseen_towns, *train_weathers, *unseen_weathers}
    return TownWeatherSplit(
        train_towns=train_towns,
        unseen_towns=unseen_towns,
        train_weathers=train_weathers,
        unseen_weathers=unseen_weathers,
        other_towns=tuple(t for t in all_towns if t not in named),
        other_weathers=tuple(w for w in all_weathers if w not in named),
        open_names=open_names,
        town_speeds_mps=speeds,
        junction_train_towns=junction[0],
        junction_unseen_towns=junction[1],
    )
