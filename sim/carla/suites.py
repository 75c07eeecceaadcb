"""CARLA towns, weather presets and the evaluation suites of the CARLA literature (plain data).

The splits follow CoRL2017 and NoCrash (``reference/carla.md`` section 3): train in Town01
under the weathers ClearNoon, WetNoon, HardRainNoon, ClearSunset (legacy ids 1, 3, 6, 8);
test in Town02 and under the NoCrash test weathers WetSunset, SoftRainSunset (ids 10, 14).
Nothing here imports ``carla``, so tools can list suites without the client installed.
"""

from __future__ import annotations

from sim.carla.connection import CarlaConfigError

TOWNS: tuple[str, ...] = ("Town01", "Town02", "Town03", "Town04", "Town05", "Town10HD")
"""Towns of the base CARLA 0.9.16 package (each also exists as ``<name>_Opt``)."""
TRAIN_TOWNS: tuple[str, ...] = ("Town01",)
UNSEEN_TOWNS: tuple[str, ...] = ("Town02",)

WEATHERS: tuple[str, ...] = (
    "ClearNoon",
    "CloudyNoon",
    "WetNoon",
    "WetCloudyNoon",
    "MidRainyNoon",
    "HardRainNoon",
    "SoftRainNoon",
    "ClearSunset",
    "CloudySunset",
    "WetSunset",
    "WetCloudySunset",
    "MidRainSunset",
    "HardRainSunset",
    "SoftRainSunset",
)
"""The 14 classic ``carla.WeatherParameters`` presets (legacy ids 1-14, in order)."""
TRAIN_WEATHERS: tuple[str, ...] = ("ClearNoon", "WetNoon", "HardRainNoon", "ClearSunset")
UNSEEN_WEATHERS: tuple[str, ...] = ("WetSunset", "SoftRainSunset")

SUITES: dict[str, dict[str, tuple[str, ...]]] = {
    "carla-train": {"towns": TRAIN_TOWNS, "weathers": TRAIN_WEATHERS},
    "carla-new-town": {"towns": UNSEEN_TOWNS, "weathers": TRAIN_WEATHERS},
    "carla-new-weather": {"towns": TRAIN_TOWNS, "weathers": UNSEEN_WEATHERS},
    "carla-new-town-weather": {"towns": UNSEEN_TOWNS, "weathers": UNSEEN_WEATHERS},
}
"""Evaluation suites: each runs every (town, weather) pair, ``sim.make_env("carla", ...)``."""


def suite_conditions(name: str) -> list[tuple[str, str]]:
    """The ``(town, weather)`` pairs of a suite, in a fixed order.

    Raises:
        CarlaConfigError: If the suite is unknown, listing the known ones (a ``ValueError``).
    """
    if name not in SUITES:
        raise CarlaConfigError(f"unknown CARLA suite {name!r}; known: {sorted(SUITES)}")
    s = SUITES[name]
    return [(t, w) for t in s["towns"] for w in s["weathers"]]
