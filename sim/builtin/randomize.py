"""Domain randomisation: per-episode random draws of what towns and weathers are made of.

With :class:`DomainRandomization` set on the builtin env (``randomize``), every
``reset(seed)`` starts from the configured training town and weather and redraws four groups
of factors, each from its own random stream (so switching one group off leaves the others'
draws unchanged, and with randomisation off nothing is drawn at all):

* ``appearance``: ground colour (a box of +-``ground_jitter_rgb`` around the training town's
  own), ground texture (pattern variant and contrast), asphalt and shoulder colour and width,
  lane markings (centre style and colour, edge lines present or not, width, dashes, paint
  opacity), roadside props (which of the training towns' kinds, how dense), foliage, the
  distant skyline (present, height, roughness, colour).
* ``weather``: sky colours, sun azimuth and elevation (shadow length), shadow strength,
  exposure (a gain on the ambient light), fog density, rain and wet road, sensor grain.
* ``geometry``: the tightest bend radius (down to near the car's limit), how much of the road
  is straight, piece lengths, clothoid sharpness, the lane width; the speed range is capped so
  the tightest bend stays within ``max_lateral_accel_mps2``.
* ``camera``: a camera-mount offset (pitch, yaw, height) drawn uniformly within +-the ranges.

What stays held out. The named held-out presets (``sim.split("builtin")``'s unseen towns and
weathers) are never a starting point (:func:`draw_world` refuses them), and the default
ranges keep some of their distinctive factor values outside everything training can draw:
the held-out towns' ground colours (rock, sand, snow), their prop kinds (pines, cacti, rocks),
faded paint, high, flat-topped or snow-capped skylines; the held-out weathers' darkness and
headlights (night), dense fog (fog, heavy rain), heavy rain and a soaked road. Others become
seen values under randomisation (e.g. 25 m hairpins, missing edge lines, a solid yellow
centre line): ``tests/sim/test_randomize.py`` computes which from the preset tables.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim.builtin.towns import TRAIN_TOWNS, Backdrop, Markings, Props, Town, get_town
from sim.builtin.vehicle import VehicleParams
from sim.builtin.weather import TRAIN_WEATHERS, Weather, get_weather
from sim.spec import CameraOffset, SimConfigError

GROUPS: tuple[str, ...] = ("appearance", "weather", "geometry", "camera")
"""The factor groups, each switched on or off on its own."""
MAX_CURVATURE_PER_M = 0.2
"""The road generator's largest curvature, 1/m (``RoadLayout``): a 5 m radius."""
_SALT = 0x5EED_0D0E
"""Mixed into every randomisation stream so it shares no state with the road's."""
_MARKING_STYLES = ("dashed", "double", "solid", "none")
_MARKING_STYLE_P = (0.5, 0.2, 0.2, 0.1)
_WHITE = (235, 235, 228)
_YELLOW = (230, 185, 40)


class RandomizationError(SimConfigError):
    """An invalid domain-randomisation option or starting preset."""


Range = tuple[float, float]


def car_limit_radius_m(vehicle: VehicleParams, lane_width_m: float) -> float:
    """The tightest road-centreline radius the car can follow in the inner lane, m.

    The inner lane's outer edge is a lane width inside the centreline; the car at full
    steering lock turns on ``wheelbase / tan(max_steer)``. Never below the road generator's
    own 5 m (:data:`MAX_CURVATURE_PER_M`).
    """
    turning = vehicle.wheelbase_m / math.tan(vehicle.max_steer_rad)
    return max(1.0 / MAX_CURVATURE_PER_M, turning + lane_width_m)


@dataclass(frozen=True)
class DomainRandomization:
    """Which world factors to redraw per episode, and their ranges (see the module doc)."""

    appearance: bool = True
    """Redraw ground, asphalt, markings, props and skyline."""
    weather: bool = True
    """Redraw sky, sun, shadows, exposure, fog, rain and grain."""
    geometry: bool = True
    """Redraw bend radii, straights, piece lengths, sharpness and lane width."""
    camera: bool = True
    """Redraw the camera-mount offset."""
    ground_jitter_rgb: float = 20.0
    """Largest per-channel offset of the ground colour from the training town's, 0-255."""
    ground_contrast: Range = (0.5, 1.6)
    """Range of the factor on the ground texture's colour variation."""
    asphalt_grey: Range = (70.0, 110.0)
    """Range of the asphalt's grey level, 0-255."""
    marking_opacity: Range = (0.75, 1.0)
    """Range of the paint opacity (1 = fresh paint)."""
    props_per_100m: Range = (0.2, 3.0)
    """Range of the density of each roadside prop kind present, per 100 m and side."""
    backdrop_height_deg: Range = (0.5, 3.0)
    """Range of the skyline's height above the horizon, degrees."""
    sun_elevation_deg: Range = (20.0, 75.0)
    """Range of the sun's elevation (sets the shadow length), degrees."""
    exposure: Range = (0.8, 1.2)
    """Range of the gain on the training weather's ambient light."""
    fog_per_m: Range = (0.0, 0.012)
    """Range of the fog/haze extinction coefficient, 1/m."""
    rain: Range = (0.05, 0.4)
    """Range of the rain-streak density when it rains (0..1)."""
    rain_share: float = 0.25
    """Probability that an episode has rain."""
    wet: Range = (0.2, 0.8)
    """Range of the road wetness when the road is wet (always when it rains), 0..1."""
    min_bend_radius_m: Range = (10.0, 250.0)
    """Range of the tightest bend radius of a road (drawn log-uniformly), m."""
    lane_width_m: Range = (2.9, 4.0)
    """Range of the lane width, m."""
    max_lateral_accel_mps2: float = 6.0
    """The speed range is capped at ``sqrt(this * tightest radius)``, m/s^2."""
    camera_pitch_deg: float = 1.5
    """Camera pitch offsets are drawn uniformly in +-this, degrees."""
    camera_yaw_deg: float = 1.5
    """Camera yaw offsets are drawn uniformly in +-this, degrees."""
    camera_height_m: float = 0.08
    """Camera height offsets are drawn uniformly in +-this, m."""

    def __post_init__(self) -> None:
        limits: dict[str, Range] = {
            "ground_contrast": (0.0, 3.0),
            "asphalt_grey": (0.0, 255.0),
            "marking_opacity": (0.0, 1.0),
            "props_per_100m": (0.0, 20.0),
            "backdrop_height_deg": (1e-3, 19.9),
            "sun_elevation_deg": (1.0, 90.0),
            "exposure": (0.05, 3.0),
            "fog_per_m": (0.0, 0.2),
            "rain": (0.0, 1.0),
            "wet": (0.0, 1.0),
            "min_bend_radius_m": (1.0 / MAX_CURVATURE_PER_M, 1.0e5),
            "lane_width_m": (2.0, 5.0),
        }
        for name, (lo_ok, hi_ok) in limits.items():
            value = getattr(self, name)
            try:
                lo, hi = (float(v) for v in value)
            except (TypeError, ValueError):
                raise RandomizationError(
                    f"randomize.{name} must be (lo, hi), got {value!r}"
                ) from None
            if not (math.isfinite(lo) and math.isfinite(hi) and lo_ok <= lo <= hi <= hi_ok):
                raise RandomizationError(
                    f"randomize.{name} must be (lo, hi) with {lo_ok:g} <= lo <= hi <= {hi_ok:g}, "
                    f"got {value!r}"
                )
        limit = car_limit_radius_m(VehicleParams(), self.lane_width_m[1])
        if self.min_bend_radius_m[0] < limit:
            raise RandomizationError(
                f"randomize.min_bend_radius_m starts at {self.min_bend_radius_m[0]:g} m, below "
                f"the car's limit of {limit:.2f} m (turning radius plus a "
                f"{self.lane_width_m[1]:g} m lane)"
            )
        for name, hi_ok in (
            ("ground_jitter_rgb", 128.0),
            ("rain_share", 1.0),
            ("camera_pitch_deg", 10.0),
            ("camera_yaw_deg", 10.0),
            ("camera_height_m", 0.5),
        ):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and 0.0 <= v <= hi_ok):
                raise RandomizationError(f"randomize.{name} must be in [0, {hi_ok:g}], got {v!r}")
        a = self.max_lateral_accel_mps2
        if not (isinstance(a, (int, float)) and math.isfinite(a) and 0.5 <= a <= 20.0):
            raise RandomizationError(
                f"randomize.max_lateral_accel_mps2 must be in [0.5, 20], got {a!r}"
            )

    @property
    def groups(self) -> tuple[str, ...]:
        """The groups switched on, in :data:`GROUPS` order."""
        return tuple(g for g in GROUPS if getattr(self, g))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> DomainRandomization:
        """From a mapping of field names (how callers outside ``sim`` pass it); ranges as lists.

        Raises:
            RandomizationError: For an unknown field (listing the valid ones) or a bad value.
        """
        d = dict(d or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise RandomizationError(
                f"unknown randomize option(s) {unknown}; valid: {', '.join(sorted(names))}"
            )
        ranges = {k: tuple(v) for k, v in d.items() if isinstance(v, (list, tuple))}
        return cls(**{**d, **ranges})


@dataclass(frozen=True)
class WorldDraw:
    """One episode's randomised world."""

    town: Town
    """The town with its drawn theme and layout (named after its training preset)."""
    weather: Weather
    """The weather with its drawn light, sky, fog and rain."""
    camera_offset: CameraOffset
    """The drawn camera-mount offset (zero when the camera group is off)."""
    factors: dict[str, Any]
    """Plain-JSON record of the drawn values (for ``episode.json``)."""


def _stream(group: str, town: str, weather: str, seed: int) -> np.random.Generator:
    ids = [zlib.crc32(n.encode("utf-8")) for n in (group, town, weather)]
    return np.random.default_rng([_SALT, *ids, int(seed) % 2**63])


def _rgb(base: tuple[int, ...], offset: np.ndarray) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in np.clip(np.round(np.asarray(base, np.float64) + offset), 0, 255))
    return (r, g, b)


def _u(rng: np.random.Generator, rng_range: Range) -> float:
    return float(rng.uniform(*rng_range))


def _training_props() -> dict[str, Props]:
    """Each prop kind of the training towns, as its first training town places it."""
    pool: dict[str, Props] = {}
    for name in TRAIN_TOWNS:
        for p in get_town(name).theme.props:
            pool.setdefault(p.kind, p)
    return pool


def _appearance(cfg: DomainRandomization, town: Town, rng: np.random.Generator) -> tuple:
    th = town.theme
    j = cfg.ground_jitter_rgb
    ground = _rgb(th.ground, rng.uniform(-j, j, 3))
    contrast = _u(rng, cfg.ground_contrast)
    variation = _rgb(th.ground_variation, np.asarray(th.ground_variation) * (contrast - 1.0))
    pattern = int(rng.integers(0, 8))
    grey = _u(rng, cfg.asphalt_grey)
    asphalt = _rgb((grey, grey, grey), rng.uniform(-4.0, 4.0, 3))
    shoulder = _rgb(th.shoulder, rng.uniform(-15.0, 15.0, 3))
    shoulder_w = float(rng.uniform(0.6, 2.5))
    style = _MARKING_STYLES[int(rng.choice(len(_MARKING_STYLES), p=_MARKING_STYLE_P))]
    yellow = bool(rng.random() < 0.5)
    edge = bool(rng.random() < 0.75)
    dash_on = float(rng.uniform(2.0, 5.0))
    markings = Markings(
        centre=style,
        centre_colour=_YELLOW if yellow else _WHITE,
        edge=edge,
        edge_colour=_WHITE,
        width_m=float(rng.uniform(0.10, 0.18)),
        dash_on_m=dash_on,
        dash_off_m=dash_on * float(rng.uniform(1.2, 3.0)),
        opacity=_u(rng, cfg.marking_opacity),
    )
    props = []
    for p in _training_props().values():
        present, density = rng.random() < 0.6, _u(rng, cfg.props_per_100m)
        if present and density > 0:
            props.append(dataclasses.replace(p, per_100m=density))
    foliage = _rgb(th.foliage, rng.uniform(-15.0, 15.0, 3))
    has_backdrop = bool(rng.random() < 0.85)
    base_colour = th.backdrop.colour if th.backdrop is not None else (70, 100, 70)
    backdrop_colour = _rgb(base_colour, rng.uniform(-20.0, 20.0, 3))
    height = _u(rng, cfg.backdrop_height_deg)
    roughness = float(rng.uniform(0.0, 1.0))
    backdrop = Backdrop(backdrop_colour, height, roughness) if has_backdrop else None
    theme = dataclasses.replace(
        th,
        ground=ground,
        ground_variation=variation,
        shoulder=shoulder,
        asphalt=asphalt,
        markings=markings,
        props=tuple(props),
        foliage=foliage,
        shoulder_width_m=shoulder_w,
        backdrop=backdrop,
    )
    factors = {
        "ground_rgb": list(ground),
        "ground_contrast": contrast,
        "ground_pattern": pattern,
        "asphalt_rgb": list(asphalt),
        "shoulder_rgb": list(shoulder),
        "shoulder_width_m": shoulder_w,
        "centre_line": style,
        "centre_colour": "yellow" if yellow else "white",
        "edge_lines": edge,
        "marking_width_m": markings.width_m,
        "dash_m": [markings.dash_on_m, markings.dash_off_m],
        "marking_opacity": markings.opacity,
        "props_per_100m": {p.kind: p.per_100m for p in props},
        "foliage_rgb": list(foliage),
        "backdrop": (
            {"height_deg": height, "roughness": roughness, "rgb": list(backdrop_colour)}
            if has_backdrop
            else None
        ),
    }
    return theme, f"{town.name}~{pattern}", factors


def _weather(cfg: DomainRandomization, w: Weather, rng: np.random.Generator) -> tuple:
    sky_top = _rgb(w.sky_top, rng.uniform(-20.0, 20.0, 3))
    sky_horizon = _rgb(w.sky_horizon, rng.uniform(-20.0, 20.0, 3))
    exposure = _u(rng, cfg.exposure)
    azimuth = float(rng.uniform(-180.0, 180.0))
    elevation = _u(rng, cfg.sun_elevation_deg)
    strength = float(rng.uniform(0.0, 0.6))
    fog = _u(rng, cfg.fog_per_m)
    raining = bool(rng.random() < cfg.rain_share)
    rain, wet_draw, wet_anyway = _u(rng, cfg.rain), _u(rng, cfg.wet), bool(rng.random() < 0.25)
    grain = float(rng.uniform(0.0, 0.008))
    wet = wet_draw if raining or wet_anyway else 0.0
    weather = dataclasses.replace(
        w,
        sky_top=sky_top,
        sky_horizon=sky_horizon,
        light=tuple(float(c * exposure) for c in w.light),
        shadow_strength=strength,
        sun_azimuth_deg=azimuth,
        shadow_length=1.0 / math.tan(math.radians(elevation)),
        haze_per_m=fog,
        wet=wet,
        rain=rain if raining else 0.0,
        grain_std=grain,
        headlights=False,
    )
    factors = {
        "sky_top_rgb": list(sky_top),
        "sky_horizon_rgb": list(sky_horizon),
        "exposure": exposure,
        "sun_azimuth_deg": azimuth,
        "sun_elevation_deg": elevation,
        "shadow_strength": strength,
        "fog_per_m": fog,
        "rain": weather.rain,
        "wet": wet,
        "grain_std": grain,
    }
    return weather, factors


def _geometry(cfg: DomainRandomization, town: Town, rng: np.random.Generator) -> tuple:
    lo, hi = cfg.min_bend_radius_m
    radius = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    spread = float(rng.uniform(4.0, 10.0))
    straight = float(rng.uniform(0.15, 0.5))
    piece_lo = float(rng.uniform(15.0, 60.0))
    piece_hi = piece_lo * float(rng.uniform(2.0, 4.0))
    sharpness = float(math.exp(rng.uniform(math.log(1 / 8000), math.log(1 / 300))))
    lane = _u(rng, cfg.lane_width_m)
    layout = dataclasses.replace(
        town.layout,
        max_curvature_per_m=1.0 / radius,
        min_curvature_per_m=1.0 / (radius * spread),
        straight_share=straight,
        piece_length_m=(piece_lo, piece_hi),
        max_sharpness_per_m2=sharpness,
    )
    cap = math.sqrt(cfg.max_lateral_accel_mps2 * radius)
    s_lo, s_hi = town.speed_range_mps
    speed = (min(s_lo, cap), min(s_hi, cap))
    factors = {
        "min_bend_radius_m": radius,
        "max_bend_radius_m": radius * spread,
        "straight_share": straight,
        "piece_length_m": [piece_lo, piece_hi],
        "max_sharpness_per_m2": sharpness,
        "lane_width_m": lane,
        "speed_range_mps": list(speed),
    }
    return layout, (lane, lane), speed, factors


def _camera(cfg: DomainRandomization, rng: np.random.Generator) -> CameraOffset:
    p, y, h = cfg.camera_pitch_deg, cfg.camera_yaw_deg, cfg.camera_height_m
    return CameraOffset(
        pitch_deg=float(rng.uniform(-p, p)),
        yaw_deg=float(rng.uniform(-y, y)),
        height_m=float(rng.uniform(-h, h)),
    )


def draw_world(cfg: DomainRandomization, town: str, weather: str, seed: int) -> WorldDraw:
    """Draws one episode's world from a training town and weather.

    Args:
        cfg: What to randomise and within which ranges.
        town: A training town name (``sim.builtin.towns.TRAIN_TOWNS``).
        weather: A training weather name (``sim.builtin.weather.TRAIN_WEATHERS``).
        seed: The episode's reset seed; the same (town, weather, seed, cfg) gives the same
            world.

    Returns:
        The :class:`WorldDraw`.

    Raises:
        RandomizationError: For a held-out (or unknown) town or weather: randomised worlds
            start from training presets only.
    """
    if town not in TRAIN_TOWNS or weather not in TRAIN_WEATHERS:
        raise RandomizationError(
            f"randomize starts from training presets only (towns {', '.join(TRAIN_TOWNS)}; "
            f"weathers {', '.join(TRAIN_WEATHERS)}), got town {town!r}, weather {weather!r}"
        )
    base_town, base_weather = get_town(town), get_weather(weather)
    new_town, new_weather, offset = base_town, base_weather, CameraOffset()
    factors: dict[str, Any] = {"base_town": town, "base_weather": weather, "groups": []}
    if cfg.appearance:
        theme, name, f = _appearance(cfg, base_town, _stream("appearance", town, weather, seed))
        new_town = dataclasses.replace(new_town, theme=theme, name=name)
        factors["appearance"] = f
    if cfg.weather:
        new_weather, f = _weather(cfg, base_weather, _stream("weather", town, weather, seed))
        factors["weather"] = f
    if cfg.geometry:
        layout, lanes, speed, f = _geometry(
            cfg, base_town, _stream("geometry", town, weather, seed)
        )
        new_town = dataclasses.replace(
            new_town, layout=layout, lane_width_m=lanes, speed_range_mps=speed
        )
        factors["geometry"] = f
    if cfg.camera:
        offset = _camera(cfg, _stream("camera", town, weather, seed))
        factors["camera"] = offset.to_dict()
    factors["groups"] = list(cfg.groups)
    return WorldDraw(new_town, new_weather, offset, factors)


def training_ranges(cfg: DomainRandomization) -> dict[str, Any]:
    """The set of values training can draw for the factors the held-out presets stand out by.

    Plain data for tests and the README: per-channel ground-colour boxes (one per training
    town), the prop kinds, the paint opacity, the skyline heights, whether skylines have
    caps or flat tops, the light gain per channel, fog, rain and wetness.
    """
    boxes = []
    for name in TRAIN_TOWNS:
        g = np.asarray(get_town(name).theme.ground, np.float64)
        boxes.append(((g - cfg.ground_jitter_rgb).tolist(), (g + cfg.ground_jitter_rgb).tolist()))
    lights = [np.asarray(get_weather(w).light, np.float64) for w in TRAIN_WEATHERS]
    lo, hi = cfg.exposure
    return {
        "ground_boxes": boxes,
        "prop_kinds": sorted(_training_props()),
        "marking_opacity": tuple(cfg.marking_opacity),
        "backdrop_height_deg": tuple(cfg.backdrop_height_deg),
        "backdrop_caps": False,
        "backdrop_flat_tops": False,
        "light_min": float(min(li.min() for li in lights) * lo),
        "light_max": float(max(li.max() for li in lights) * hi),
        "headlights": False,
        "fog_per_m": tuple(cfg.fog_per_m),
        "rain": (0.0, cfg.rain[1]) if cfg.rain_share > 0 else (0.0, 0.0),
        "wet": (0.0, cfg.wet[1]),
    }


def as_randomization(value: Any) -> DomainRandomization | None:
    """``None``/``False`` -> None, ``True`` -> the defaults, a mapping -> :meth:`from_dict`.

    Raises:
        RandomizationError: For anything else.
    """
    if value is None or value is False:
        return None
    if value is True:
        return DomainRandomization()
    if isinstance(value, DomainRandomization):
        return value
    if isinstance(value, Mapping):
        return DomainRandomization.from_dict(value)
    raise RandomizationError(
        f"randomize must be a DomainRandomization, a mapping of its fields, True or None, "
        f"got {value!r}"
    )
