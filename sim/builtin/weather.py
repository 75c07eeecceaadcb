"""Named weathers and lighting: how the sky, the light, fog and rain look.

==============  =======  ==============================================================
weather         split    look
==============  =======  ==============================================================
``clear_noon``  train    blue sky, bright, short crisp tree shadows
``overcast``    train    grey sky, flat light, faint shadows, slightly washed out
``sunset``      train    orange sky, warm low light, long shadows
``wet_road``    train    grey sky, dark glossy asphalt with puddles, light haze
``night``       unseen   black sky, the world lit only by the car's headlights, sensor grain
``fog``         unseen   dense fog: the road fades into grey after about 30 m
``heavy_rain``  unseen   dark grey, wet road, haze and rain streaks on the lens
==============  =======  ==============================================================

A weather is applied in three places: the ground texture (shadow strength and direction,
wet asphalt), a per-pixel affine map on the rendered frame (ambient light, fog by ground
distance, headlight pool), and per-object colours for billboards (same light and fog).
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.builtin.towns import UnknownNameError
from sim.spec import SimConfigError

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Weather:
    """Parameters of one weather and lighting condition."""

    name: str
    sky_top: RGB
    """RGB colour of the sky at the top of the frame."""
    sky_horizon: RGB
    """RGB colour of the sky at the horizon."""
    light: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """Per-channel gain of the ambient light on the ground and objects."""
    shadow_strength: float = 0.5
    """How much a shadow darkens the ground (0 = no shadows, 1 = black)."""
    sun_azimuth_deg: float = 30.0
    """Direction the shadows point, degrees counter-clockwise from the world x axis."""
    shadow_length: float = 0.4
    """Shadow length per metre of object height."""
    haze_per_m: float = 0.002
    """Extinction coefficient of atmospheric haze / fog, 1/m (fraction lost = 1 - exp(-k d))."""
    haze_colour: RGB = (190, 205, 220)
    """RGB colour objects fade into with distance."""
    wet: float = 0.0
    """Wetness of the road: darker asphalt and puddles (0..1)."""
    headlights: bool = False
    """Whether the car's headlights light the scene (night)."""
    rain: float = 0.0
    """Density of rain streaks (0..1)."""
    grain_std: float = 0.0
    """Std of the sensor grain added to every frame, on [0, 1] images."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.shadow_strength <= 1.0:
            raise SimConfigError(f"shadow_strength must be in [0, 1], got {self.shadow_strength}")
        if self.haze_per_m < 0:
            raise SimConfigError(f"haze_per_m must be >= 0, got {self.haze_per_m}")


_WEATHER_LIST = (
    Weather(
        name="clear_noon",
        sky_top=(70, 120, 200),
        sky_horizon=(180, 205, 230),
        shadow_strength=0.55,
        sun_azimuth_deg=40.0,
        shadow_length=0.35,
    ),
    Weather(
        name="overcast",
        sky_top=(150, 155, 162),
        sky_horizon=(200, 202, 205),
        light=(0.86, 0.87, 0.9),
        shadow_strength=0.15,
        haze_per_m=0.004,
        haze_colour=(185, 188, 192),
    ),
    Weather(
        name="sunset",
        sky_top=(60, 70, 130),
        sky_horizon=(250, 160, 90),
        light=(1.0, 0.78, 0.6),
        shadow_strength=0.5,
        sun_azimuth_deg=-150.0,
        shadow_length=1.6,
        haze_per_m=0.004,
        haze_colour=(230, 160, 120),
    ),
    Weather(
        name="wet_road",
        sky_top=(120, 126, 136),
        sky_horizon=(176, 180, 186),
        light=(0.8, 0.82, 0.86),
        shadow_strength=0.1,
        haze_per_m=0.006,
        haze_colour=(170, 174, 180),
        wet=0.7,
    ),
    Weather(
        name="night",
        sky_top=(4, 6, 14),
        sky_horizon=(14, 18, 30),
        light=(0.1, 0.11, 0.14),
        shadow_strength=0.0,
        haze_per_m=0.01,
        haze_colour=(10, 12, 18),
        headlights=True,
        grain_std=0.02,
    ),
    Weather(
        name="fog",
        sky_top=(190, 192, 195),
        sky_horizon=(200, 202, 204),
        light=(0.9, 0.9, 0.92),
        shadow_strength=0.05,
        haze_per_m=0.045,
        haze_colour=(198, 200, 202),
    ),
    Weather(
        name="heavy_rain",
        sky_top=(80, 84, 92),
        sky_horizon=(130, 134, 140),
        light=(0.62, 0.64, 0.68),
        shadow_strength=0.0,
        haze_per_m=0.02,
        haze_colour=(120, 124, 130),
        wet=1.0,
        rain=1.0,
        grain_std=0.01,
    ),
)

WEATHERS: tuple[str, ...] = tuple(w.name for w in _WEATHER_LIST)
"""Names of every weather."""
TRAIN_WEATHERS: tuple[str, ...] = ("clear_noon", "overcast", "sunset", "wet_road")
"""Weathers used for recording training data."""
UNSEEN_WEATHERS: tuple[str, ...] = ("night", "fog", "heavy_rain")
"""Weathers held out for evaluation (never in training data)."""

_BY_NAME = {w.name: w for w in _WEATHER_LIST}
assert set(TRAIN_WEATHERS) | set(UNSEEN_WEATHERS) == set(WEATHERS)
assert not set(TRAIN_WEATHERS) & set(UNSEEN_WEATHERS)


def get_weather(name: str) -> Weather:
    """Returns the weather called ``name``.

    Raises:
        UnknownNameError: If there is no such weather (the message lists the valid names).
    """
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        raise UnknownNameError(
            f"unknown weather {name!r}; valid weathers: {', '.join(WEATHERS)} "
            f"(train: {', '.join(TRAIN_WEATHERS)}; unseen: {', '.join(UNSEEN_WEATHERS)})"
        ) from None
