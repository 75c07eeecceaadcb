"""Recording's side of domain randomisation: checks the request and builds the env option.

``tools/record.py --randomize`` asks the builtin simulator to redraw, per episode, the
factors its training towns and weathers are made of (``sim.make_env(...,
randomize={...})``); the drawn values come back in the reset info
(``sim.spec.RESET_INFO_WORLD_FACTORS``) and go into each ``episode.json`` as ``world_factors``.
The ranges are the simulator's; recording only picks the groups.
"""

from __future__ import annotations

import sim

RANDOMIZE_GROUPS: tuple[str, ...] = ("appearance", "weather", "geometry", "camera")
"""The factor groups a recording may switch on (the builtin simulator's)."""


def randomize_problem(
    sim_name: str,
    randomize: bool,
    groups: tuple[str, ...],
    towns: tuple[str, ...] | None,
    weathers: tuple[str, ...] | None,
) -> str | None:
    """What is wrong with a randomisation request (None: nothing), checked before writing.

    Refused: ``randomize`` with CARLA, with no groups, an unknown or repeated group, or with
    held-out towns or weathers (randomised worlds start from the training split only).
    """
    if not randomize:
        return None
    if sim_name != "builtin":
        return f"--randomize needs --sim builtin, got --sim {sim_name}"
    groups = tuple(groups)
    bad = [g for g in groups if g not in RANDOMIZE_GROUPS]
    if not groups or bad or len(set(groups)) != len(groups):
        return (
            f"randomize_groups must be distinct names out of {', '.join(RANDOMIZE_GROUPS)}, "
            f"got {list(groups)}"
        )
    split = sim.split(sim_name)
    held_out = [t for t in towns or () if t in split.unseen_towns]
    held_out += [w for w in weathers or () if w in split.unseen_weathers]
    if held_out:
        return (
            f"--randomize keeps the held-out presets out of training data: drop {held_out} "
            "(randomised worlds start from the training towns and weathers only)"
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
