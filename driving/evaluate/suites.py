"""Closed-loop evaluation suites as plain data: which towns, weathers, routes and conditions.

A suite is a list of :class:`EpisodeSpec`, each one closed-loop episode: a town, a weather, a
route seed (in the builtin simulator the seed picks the road within the town; in CARLA the
spawn point and turns), a route length and the control conditions (rate, frame-time jitter,
image noise). The town and weather names come from the simulator's split,
``sim.split(name)`` (a ``sim.spec.TownWeatherSplit``): the builtin suites take it as an
argument (evaluation passes ``sim.split("builtin")``), the CARLA suites use
``sim.split("carla")``.

Builtin suites (each town drives :data:`ROUTE_SEEDS` = 3 routes of 2 km by default; weathers
rotate over the routes so that every weather of the suite is driven at least once):

* ``train-towns``: the training towns under the training weathers.
* ``unseen-towns``: the held-out towns under the training weathers.
* ``unseen-weathers``: the training towns under the held-out weathers.
* ``noise``: ``train-towns`` with zero-mean Gaussian noise of standard deviation 0.05, 0.1
  and 0.2 added to the [0, 1] camera images (the NCP paper's test); ``train-towns`` is its
  noise-free baseline on the same routes.
* ``rate``: ``train-towns`` controlled at 10, 20 and 30 Hz, and at 20 Hz with each frame
  interval jittered by up to :data:`RATE_JITTER` of its nominal length (a continuous-time
  network should hold up; a discrete one may not).
* ``unseen-towns-weathers``: the held-out towns under the held-out weathers; every town
  drives at least as many routes as there are weathers, so that each (town, weather) pair is
  driven at least once.
* ``speed``: ``train-towns`` with the cruise speed held outside the training range: each town
  at :data:`SPEED_FACTORS` times the lowest and the highest speed of its own range (the one
  recording draws from by default, ``TownWeatherSplit.town_speeds_mps``).
* ``camera``: the training towns and weathers with the camera mount shifted, one shift per
  condition: pitch, yaw and height each by +-:data:`CAMERA_SHIFTS` (3 degrees, 3 degrees,
  0.15 m), twice the largest offset domain randomisation draws (1.5 degrees, 1.5 degrees,
  0.08 m). The checkpoint's nominal camera spec is unchanged; only the mount moves.
* ``randomized``: the training towns and weathers with the world's factors redrawn per
  route (``sim.builtin.randomize`` defaults, as ``tools/record.py --randomize`` records) on
  the fixed route seeds: new combinations of factor values training can draw.
* ``all``: the builtin suites above, in that order.
* ``noise-variance``: ``train-towns`` with zero-mean Gaussian noise of *variance* 0.1, 0.2 and
  0.3 on the [0, 1] camera images (standard deviation 0.316, 0.447, 0.548), the NCP paper's
  active test (Lechner et al. 2020, Fig. 4a); ``train-towns`` is its variance-0 point. Not
  part of ``all``: it costs as much as ``noise`` again, and adding it would change the run
  record of every ``all`` evaluation, so none of them could be resumed or compared.
* ``junctions``: the junction towns (road networks whose routes carry a command per junction,
  ``sim.spec.Command``) under the training weathers, in two conditions: ``train towns``
  (``TownWeatherSplit.junction_train_towns``) and ``unseen towns`` (``junction_unseen_towns``,
  never in training data). Scored like every suite, plus per-junction success
  (:mod:`driving.evaluate.junction_metrics`). Not part of ``all``: a checkpoint without a
  command input cannot drive it (evaluation refuses one, :mod:`driving.evaluate.commands`),
  while every checkpoint can drive ``all``. Builtin only: a split without junction towns
  (``sim.split("carla")``, whose towns are all junction towns, its ``train_towns`` and
  ``unseen_towns``) is an error here; CARLA's junctions are driven by the ``carla-*`` suites.

Noise is the same for every model: the builtin env draws it from its episode RNG, which
``env.reset(seed=spec.seed)`` reseeds, and the draws per step do not depend on the actions,
so step k of a route sees the same noise field whichever model drives.

What "unseen" means once training data is randomised. ``randomized`` tests new combinations
of factor values a randomised training set could contain. ``unseen-towns`` and
``unseen-weathers`` drive the held-out presets, which never appear in training data: with
randomisation some of their factor values fall inside the training ranges (tight bends,
missing edge lines, a grey sky), while others stay outside every range training can draw
(rocky, sandy and snowy ground, pines, cacti and rocks, faded paint, high or snow-capped
skylines; night darkness with headlights, dense fog, heavy rain): those suites test factor
values never seen. ``camera`` tests camera poses never seen (beyond the jitter range).

CARLA suites (CARLA's own benchmark split, ``DESIGN.md``): ``carla-train`` (Town01,
training weathers), ``carla-new-town`` (Town02, training weathers), ``carla-new-weather``
(Town01, test weathers), ``carla-new-town-weather`` (Town02, test weathers).

The route seeds are fixed. They are the test set: choose a recipe (options, checkpoints) on
the development routes instead, ``route_set="dev"`` (:data:`DEV_ROUTE_SEEDS`, 9001, 9002, ...:
the same suites on other roads), and report the test routes. Recording
(``driving.rollout.record``) draws each recorded episode's road seed at random from
[0, 2**31), so an evaluation road is also a training road with a probability of about 1e-9
per recorded episode. ``routes`` and ``route_km`` overrides
give short variants for tests and demos.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

import sim
from liquid_drive.errors import LiquidDriveError
from sim.spec import CONTROL_RATE_HZ, CameraOffset, TownWeatherSplit

ROUTE_SEEDS: tuple[int, ...] = (7001, 7002, 7003)
"""Route seeds driven in every town (more routes continue as 7004, 7005, ...)."""
ROUTE_LENGTH_M = 2000.0
"""Default route length, m."""
NOMINAL_RATE_HZ = CONTROL_RATE_HZ
"""The default control rate, Hz (the contract's ``sim.spec.CONTROL_RATE_HZ``)."""
NOISE_STDS: tuple[float, ...] = (0.05, 0.1, 0.2)
"""Image-noise standard deviations of the ``noise`` suite, on [0, 1] images."""
NOISE_VARIANCES: tuple[float, ...] = (0.1, 0.2, 0.3)
"""Image-noise variances of the ``noise-variance`` suite, on [0, 1] images (NCP paper)."""
RATES_HZ: tuple[float, ...] = (10.0, 20.0, 30.0)
"""Control rates of the ``rate`` suite, Hz."""
RATE_JITTER = 0.5
"""Frame-time jitter of the ``rate`` suite's jittered condition, a fraction of the interval."""
CAMERA_SHIFTS: tuple[tuple[str, float], ...] = (
    ("pitch", 3.0),
    ("pitch", -3.0),
    ("yaw", 3.0),
    ("yaw", -3.0),
    ("height", 0.15),
    ("height", -0.15),
)
"""Camera-mount shifts of the ``camera`` suite: pitch and yaw in degrees, height in m."""
DEV_ROUTE_SEEDS: tuple[int, ...] = (9001, 9002, 9003)
"""Development route seeds (``route_set="dev"``; more routes continue as 9004, ...)."""
MAX_ROUTES = DEV_ROUTE_SEEDS[0] - ROUTE_SEEDS[0]
"""Most routes per town, so that test and development seeds never meet."""
SPEED_FACTORS: tuple[float, float] = (0.6, 1.3)
"""The ``speed`` suite's cruise speeds: these times a town's lowest and highest training
speed."""
JUNCTION_CONDITIONS: tuple[str, str] = ("train towns", "unseen towns")
"""The ``junctions`` suite's conditions: the training and the held-out junction towns."""
ROUTE_SETS: tuple[str, ...] = ("test", "dev")
"""``test``: the reported route seeds :data:`ROUTE_SEEDS`; ``dev``: :data:`DEV_ROUTE_SEEDS`."""

BUILTIN_SUITES: tuple[str, ...] = (
    "train-towns",
    "unseen-towns",
    "unseen-weathers",
    "noise",
    "rate",
    "unseen-towns-weathers",
    "speed",
    "camera",
    "randomized",
)
"""The builtin suites making up ``all``, in report order."""
CARLA_SUITES: tuple[str, ...] = (
    "carla-train",
    "carla-new-town",
    "carla-new-weather",
    "carla-new-town-weather",
)
"""The CARLA suites, in report order."""
EXTRA_SUITES: tuple[str, ...] = ("noise-variance", "junctions")
"""Builtin suites outside ``all`` (driven only when asked for by name)."""
SuiteName = Literal[
    "train-towns",
    "unseen-towns",
    "unseen-weathers",
    "noise",
    "rate",
    "unseen-towns-weathers",
    "speed",
    "camera",
    "randomized",
    "all",
    "carla-train",
    "carla-new-town",
    "carla-new-weather",
    "carla-new-town-weather",
    "noise-variance",
    "junctions",
]
"""A suite name (for typed configs and CLIs)."""
SUITES: tuple[str, ...] = get_args(SuiteName)
"""Every suite name :func:`build_suite` accepts."""
assert (*BUILTIN_SUITES, "all", *CARLA_SUITES, *EXTRA_SUITES) == SUITES


class SuiteError(LiquidDriveError, ValueError):
    """An unknown suite name or an invalid override."""


@dataclass(frozen=True)
class EpisodeSpec:
    """One closed-loop episode of a suite."""

    suite: str
    """Suite name, e.g. ``"train-towns"``."""
    condition: str
    """The suite's condition this episode belongs to: ``"clean"``, ``"noise 0.1"``,
    ``"10 Hz"``, ``"20 Hz jitter 0.5"``."""
    town: str
    """Town name."""
    weather: str
    """Weather name."""
    route: int
    """Index of the route within its town (0, 1, 2, ...)."""
    seed: int
    """Seed passed to ``env.reset``; picks the road (builtin) or spawn and turns (CARLA)."""
    route_length_m: float = ROUTE_LENGTH_M
    """Route length, m."""
    control_rate_hz: float = NOMINAL_RATE_HZ
    """Control rate, Hz."""
    frame_time_jitter: float = 0.0
    """Random variation of each frame interval, a fraction of the nominal interval."""
    image_noise_std: float = 0.0
    """Std of Gaussian noise added to the [0, 1] camera image."""
    camera_pitch_deg: float = 0.0
    """Shift of the camera mount's downward pitch, degrees."""
    camera_yaw_deg: float = 0.0
    """Shift of the camera mount's yaw (positive = left), degrees."""
    camera_height_m: float = 0.0
    """Shift of the camera mount's height, m."""
    randomize: bool = False
    """Redraw the world's factors (builtin domain randomisation, default ranges)."""
    target_speed_mps: float | None = None
    """Cruise speed held in the episode, m/s; None = drawn from the town's own range."""

    def __post_init__(self) -> None:
        if not self.route_length_m > 0:
            raise SuiteError(f"route_length_m must be positive, got {self.route_length_m}")
        if not self.control_rate_hz > 0:
            raise SuiteError(f"control_rate_hz must be positive, got {self.control_rate_hz}")
        if not 0.0 <= self.frame_time_jitter < 1.0:
            raise SuiteError(f"frame_time_jitter must be in [0, 1), got {self.frame_time_jitter}")
        if not self.image_noise_std >= 0.0:
            raise SuiteError(f"image_noise_std must be >= 0, got {self.image_noise_std}")
        if self.target_speed_mps is not None and not self.target_speed_mps > 0:
            raise SuiteError(f"target_speed_mps must be positive, got {self.target_speed_mps}")

    def env_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``sim.make_env``; conditions at their defaults are left out."""
        kwargs: dict[str, Any] = {
            "town": self.town,
            "weather": self.weather,
            "route_length_m": self.route_length_m,
        }
        if self.control_rate_hz != NOMINAL_RATE_HZ:
            kwargs["control_rate_hz"] = self.control_rate_hz
        if self.frame_time_jitter > 0:
            kwargs["frame_time_jitter"] = self.frame_time_jitter
        if self.image_noise_std > 0:
            kwargs["image_noise_std"] = self.image_noise_std
        if self.target_speed_mps is not None:
            kwargs["target_speed_mps"] = self.target_speed_mps
        shift = (self.camera_pitch_deg, self.camera_yaw_deg, self.camera_height_m)
        if any(shift):
            kwargs["camera_offset"] = CameraOffset(*shift)
        if self.randomize:
            kwargs["randomize"] = True
        return kwargs

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form.

        The camera, randomisation and speed fields are left out at their defaults, so the
        fingerprints of earlier runs stay as they were.
        """
        d = asdict(self)
        for name in _OPTIONAL_FIELDS:
            if d[name] == _DEFAULTS[name]:
                del d[name]
        return d


_OPTIONAL_FIELDS = (
    "camera_pitch_deg",
    "camera_yaw_deg",
    "camera_height_m",
    "randomize",
    "target_speed_mps",
)
_DEFAULTS: dict[str, Any] = {
    "camera_pitch_deg": 0.0,
    "camera_yaw_deg": 0.0,
    "camera_height_m": 0.0,
    "randomize": False,
    "target_speed_mps": None,
}


def _routes(
    suite: str,
    condition: str,
    towns: tuple[str, ...],
    weathers: tuple[str, ...],
    n_routes: int,
    route_length_m: float,
    first_seed: int = ROUTE_SEEDS[0],
    every_pair: bool = False,
    speeds: dict[str, float] | None = None,
    **conditions: float,
) -> list[EpisodeSpec]:
    """Every town drives ``n_routes`` routes; weathers rotate so each one is driven.

    ``every_pair``: each town drives at least ``len(weathers)`` routes, so every (town,
    weather) pair is driven. ``speeds``: the cruise speed per town.
    """
    n_routes = max(n_routes, math.ceil(len(weathers) / len(towns)))
    if every_pair:
        n_routes = max(n_routes, len(weathers))
    specs = []
    for i, town in enumerate(towns):
        if speeds is not None:
            conditions = {**conditions, "target_speed_mps": speeds[town]}
        for r in range(n_routes):
            specs.append(
                EpisodeSpec(
                    suite=suite,
                    condition=condition,
                    town=town,
                    weather=weathers[(i * n_routes + r) % len(weathers)],
                    route=r,
                    seed=first_seed + r,
                    route_length_m=route_length_m,
                    **conditions,
                )
            )
    return specs


def _camera_label(what: str, shift: float) -> str:
    """``"pitch down 3 deg"``, ``"yaw right 3 deg"``, ``"height up 0.15 m"`` (distinct slugs)."""
    words = {"pitch": ("down", "up"), "yaw": ("left", "right"), "height": ("up", "down")}
    unit = "m" if what == "height" else "deg"
    return f"{what} {words[what][shift < 0]} {abs(shift):g} {unit}"


_CAMERA_FIELDS = {"pitch": "camera_pitch_deg", "yaw": "camera_yaw_deg", "height": "camera_height_m"}


def build_suite(
    name: str,
    split: TownWeatherSplit | None = None,
    *,
    routes: int | None = None,
    route_km: float | None = None,
    route_set: str = "test",
) -> list[EpisodeSpec]:
    """The episodes of a named suite.

    Args:
        name: One of :data:`SUITES`.
        split: Town and weather names of the builtin simulator (``sim.split("builtin")``);
            required for the builtin suites, ignored by the CARLA suites (which use
            ``sim.split("carla")``).
        routes: Routes per town (default ``len(ROUTE_SEEDS)`` = 3).
        route_km: Route length in km (default 2).
        route_set: ``"test"`` (:data:`ROUTE_SEEDS`, the reported results) or ``"dev"``
            (:data:`DEV_ROUTE_SEEDS`, for choosing a recipe).

    Returns:
        The suite's episodes, in a fixed order.

    Raises:
        SuiteError: For an unknown name, a missing split or an invalid override.
    """
    if name not in SUITES:
        raise SuiteError(f"unknown suite {name!r}; choose one of {', '.join(SUITES)}")
    if routes is not None and routes < 1:
        raise SuiteError(f"routes must be >= 1, got {routes}")
    if routes is not None and routes > MAX_ROUTES:
        raise SuiteError(
            f"routes must be <= {MAX_ROUTES} (test and development seeds must not meet), "
            f"got {routes}"
        )
    if route_set not in ROUTE_SETS:
        raise SuiteError(f"route_set must be one of {', '.join(ROUTE_SETS)}, got {route_set!r}")
    first = (ROUTE_SEEDS if route_set == "test" else DEV_ROUTE_SEEDS)[0]
    if route_km is not None and not route_km > 0:
        raise SuiteError(f"route_km must be positive, got {route_km}")
    n = len(ROUTE_SEEDS) if routes is None else routes
    length_m = ROUTE_LENGTH_M if route_km is None else 1000.0 * route_km

    if name in CARLA_SUITES:
        s = sim.split("carla")
        towns = s.unseen_towns if "town" in name.removeprefix("carla-") else s.train_towns
        weathers = s.unseen_weathers if name.endswith("weather") else s.train_weathers
        return _routes(name, "clean", towns, weathers, n, length_m, first)

    if split is None:
        raise SuiteError(f"suite {name!r} needs the builtin simulator's town/weather split")
    s = split
    if name == "all":
        return [
            spec
            for sub in BUILTIN_SUITES
            for spec in build_suite(sub, s, routes=routes, route_km=route_km, route_set=route_set)
        ]
    if name == "train-towns":
        return _routes(name, "clean", s.train_towns, s.train_weathers, n, length_m, first)
    if name == "unseen-towns":
        return _routes(name, "clean", s.unseen_towns, s.train_weathers, n, length_m, first)
    if name == "unseen-weathers":
        return _routes(name, "clean", s.train_towns, s.unseen_weathers, n, length_m, first)
    if name == "unseen-towns-weathers":
        towns, weathers = s.unseen_towns, s.unseen_weathers
        return _routes(name, "clean", towns, weathers, n, length_m, first, every_pair=True)
    if name == "speed":
        return _speed_suite(s, n, length_m, first)
    if name == "junctions":
        return _junction_suite(s, n, length_m, first)
    if name in ("noise", "noise-variance"):
        levels = (
            [(f"noise {std:g}", std) for std in NOISE_STDS]
            if name == "noise"
            else [(f"variance {var:g}", math.sqrt(var)) for var in NOISE_VARIANCES]
        )
        return [
            spec
            for label, std in levels
            for spec in _routes(
                name,
                label,
                s.train_towns,
                s.train_weathers,
                n,
                length_m,
                first,
                image_noise_std=std,
            )
        ]
    if name == "camera":
        return [
            spec
            for what, shift in CAMERA_SHIFTS
            for spec in _routes(
                name,
                _camera_label(what, shift),
                s.train_towns,
                s.train_weathers,
                n,
                length_m,
                first,
                **{_CAMERA_FIELDS[what]: shift},
            )
        ]
    if name == "randomized":
        return _routes(
            name, "randomized", s.train_towns, s.train_weathers, n, length_m, first, randomize=True
        )
    # rate
    conditions = [(f"{hz:g} Hz", hz, 0.0) for hz in RATES_HZ]
    conditions.append(
        (f"{NOMINAL_RATE_HZ:g} Hz jitter {RATE_JITTER:g}", NOMINAL_RATE_HZ, RATE_JITTER)
    )
    return [
        spec
        for label, hz, jitter in conditions
        for spec in _routes(
            name,
            label,
            s.train_towns,
            s.train_weathers,
            n,
            length_m,
            first,
            control_rate_hz=hz,
            frame_time_jitter=jitter,
        )
    ]


def speed_conditions(split: TownWeatherSplit) -> list[tuple[str, dict[str, float]]]:
    """The ``speed`` suite's conditions: (label, cruise speed per training town, m/s).

    Raises:
        SuiteError: If the split gives no speed range for a training town.
    """
    try:
        ranges = {t: split.speed_range_mps(t) for t in split.train_towns}
    except LiquidDriveError as e:
        raise SuiteError(f"suite 'speed' needs each training town's speed range: {e}") from e
    slow, fast = SPEED_FACTORS
    return [
        (f"{slow:g}x slowest", {t: round(slow * lo, 2) for t, (lo, _) in ranges.items()}),
        (f"{fast:g}x fastest", {t: round(fast * hi, 2) for t, (_, hi) in ranges.items()}),
    ]


def _speed_suite(split: TownWeatherSplit, n: int, length_m: float, first: int) -> list[EpisodeSpec]:
    towns, weathers = split.train_towns, split.train_weathers
    return [
        spec
        for label, speeds in speed_conditions(split)
        for spec in _routes("speed", label, towns, weathers, n, length_m, first, speeds=speeds)
    ]


def _junction_suite(
    split: TownWeatherSplit, n: int, length_m: float, first: int
) -> list[EpisodeSpec]:
    towns = (split.junction_train_towns, split.junction_unseen_towns)
    if not any(towns):
        raise SuiteError(
            "suite 'junctions' needs junction towns, and this split has none "
            "(junction_train_towns and junction_unseen_towns are empty): a simulator without "
            "junction towns apart from its lane-keeping ones (CARLA) cannot drive it"
        )
    weathers = split.train_weathers
    return [
        spec
        for label, chosen in zip(JUNCTION_CONDITIONS, towns, strict=True)
        if chosen
        for spec in _routes("junctions", label, chosen, weathers, n, length_m, first)
    ]


def suite_conditions(specs: list[EpisodeSpec]) -> list[tuple[str, str]]:
    """The distinct (suite, condition) pairs of a list of episodes, in first-seen order."""
    seen: dict[tuple[str, str], None] = {}
    for spec in specs:
        seen.setdefault((spec.suite, spec.condition), None)
    return list(seen)
