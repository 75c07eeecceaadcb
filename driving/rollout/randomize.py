"""Recording's side of domain randomisation: checks the request and builds the env option.

``tools/record.py`` (``--randomize``, on by default) asks the builtin simulator to redraw, per
episode, the factors its training towns and weathers are made of (``sim.make_env(...,
randomize={...})``); the drawn values come back in the reset info
(``sim.spec.RESET_INFO_WORLD_FACTORS``) and go into each ``episode.json`` as ``world_factors``.
The ranges are the simulator's; recording only picks the groups.
"""

from __future__ import annotations

import sim

RANDOMIZE_GROUPS: tuple[str, ...] = ("appearance", "weather", "geometry", "camera")
"""The factor groups a recording may switch on (the builtin simulator's)."""
DEFAULT_CAMERA_RANGE: tuple[float, float, float] = (1.5, 0.0, 0.08)
"""Half-ranges (pitch deg, yaw deg, height m) of the camera group unless told: no yaw, whose
image contradicts the recovery views' labels (transfer round 4)."""


def randomize_applies(
    sim_name: str, towns: tuple[str, ...] | None, weathers: tuple[str, ...] | None
) -> bool:
    """Whether ``--randomize`` applies: the builtin simulator's lane-keeping training presets.

    True when ``sim_name`` is builtin and every town and weather asked for (None = all of the
    training split's) is a training preset of the single-road towns; False for CARLA, the
    junction towns and any held-out name, whose worlds are recorded as they are.
    """
    if sim_name != "builtin":
        return False
    split = sim.split(sim_name)
    return set(towns or ()) <= set(split.train_towns) and set(weathers or ()) <= set(
        split.train_weathers
    )


def groups_problem(groups: tuple[str, ...]) -> str | None:
    """What is wrong with the factor groups asked for (None: nothing), checked before writing.

    Refused: no group, an unknown or a repeated one.
    """
    groups = tuple(groups)
    bad = [g for g in groups if g not in RANDOMIZE_GROUPS]
    if not groups or bad or len(set(groups)) != len(groups):
        return (
            f"randomize_groups must be distinct names out of {', '.join(RANDOMIZE_GROUPS)}, "
            f"got {list(groups)}"
        )
    return None


def randomize_option(
    groups: tuple[str, ...], camera_range: tuple[float, float, float] | None = None
) -> dict[str, bool | float]:
    """The env's ``randomize`` option switching on exactly ``groups``.

    Args:
        groups: The factor groups to redraw.
        camera_range: Half-ranges (pitch deg, yaw deg, height m) of the camera group's draw;
            None = the simulator's own (the simulator checks their limits).
    """
    option: dict[str, bool | float] = {g: g in groups for g in RANDOMIZE_GROUPS}
    if camera_range is not None:
        pitch, yaw, height = (float(v) for v in camera_range)
        option |= {"camera_pitch_deg": pitch, "camera_yaw_deg": yaw, "camera_height_m": height}
    return option
