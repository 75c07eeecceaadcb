"""The recording request and its result.

:class:`RecordConfig` is validated when built (and by :func:`check_timing` against the
simulator's control-rate range), :class:`RecordJob` is one planned episode and
:class:`RecordSummary` what a run produced. ``driving.rollout.record`` re-exports them.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from driving.rollout.dagger import DaggerError, Mixing
from driving.rollout.randomize import (
    DEFAULT_CAMERA_RANGE,
    groups_problem,
    randomize_applies,
)
from liquid_drive.errors import LiquidDriveError
from sim.spec import CONTROL_RATE_RANGE_HZ, CameraSpec

logger = logging.getLogger(__name__)

DEFAULT_RECOVERY_VIEWS: dict[str, int] = {"builtin": 2, "carla": 0}
"""Recovery views per step unless told, by simulator (CARLA renders none)."""


class RecordError(LiquidDriveError, ValueError):
    """An invalid recording request (the message shows the bad value)."""


@dataclass(frozen=True)
class RecordConfig:
    """What to record and where."""

    out: Path
    """Dataset folder: created, or appended to if it holds a dataset of the same kind."""
    sim: Literal["builtin", "carla"] = "builtin"
    """Simulator backend."""
    towns: tuple[str, ...] | None = None
    """Towns to drive in (cycled); None = the simulator's training towns."""
    weathers: tuple[str, ...] | None = None
    """Weathers (cycled with the towns); None = the simulator's training weathers."""
    minutes: float = 10.0
    """Simulated driving time to record, minutes (ignored when ``episodes`` is set)."""
    episodes: int | None = None
    """Number of episodes to record instead of ``minutes``."""
    episode_s: float = 60.0
    """Simulated length of each episode, s (an episode may end earlier on a departure)."""
    target_speed_range_mps: tuple[float, float] | None = None
    """Cruise speed range, m/s, drawn per episode; None = each town's own range."""
    noise: bool = True
    """Inject steering noise (the label stays the expert's clean command)."""
    noise_share: float = 0.2
    """Share of the time with noise active, in [0, 1) (CIL: about 20 % of the data noisy)."""
    noise_amplitude_per_m: float = 0.04
    """Peak curvature added by a noise event, 1/m."""
    noise_kind: Literal["triangular", "ou"] = "triangular"
    """Shape of a noise event: CIL's triangular pulse or an Ornstein-Uhlenbeck excursion."""
    start_offset_max_m: float = 0.5
    """Start offsets from the lane centre are drawn uniformly in +-this, m."""
    start_heading_max_rad: float = 0.05
    """Start heading offsets are drawn uniformly in +-this, rad."""
    seed: int = 0
    """Seed of the episode plan (roads, speeds, offsets, noise); appending draws new ones."""
    workers: int = 1
    """Parallel recording processes (each its own episodes); 1 = in this process."""
    camera: CameraSpec = field(default_factory=CameraSpec)
    """The forward camera (must match an existing dataset's)."""
    control_rate_hz: float = 20.0
    """Control steps per simulated second, Hz (must match an existing dataset's)."""
    jpeg_quality: int = 95
    """JPEG quality of the frames, 1-100 (a new dataset only)."""
    host: str = "127.0.0.1"
    """CARLA server host (``--sim carla``)."""
    port: int = 2000
    """CARLA server port (``--sim carla``)."""
    progress: bool = True
    """Show a progress bar (only on a terminal)."""
    driver: Path | None = None
    """A checkpoint or training run folder whose policy drives (DAgger: the expert still labels
    every frame, a departure is an intervention, the car recovered); None = the expert drives."""
    beta: float = 0.0
    """With --driver: probability in [0, 1] that the expert drives instead of the policy."""
    beta_per: Literal["episode", "step", "event"] = "episode"
    """With --driver: beta draws the driver per episode, per control step, or per event (the
    expert takes over for stretches of mean length beta_event_s, beta of the steps in all)."""
    beta_event_s: float = 1.0
    """With --driver and beta_per event: mean length of an expert stretch, s."""
    driver_noise: bool = False
    """With --driver: inject the steering noise too (off: the policy's own mistakes move the
    car off the lane centre)."""
    randomize: bool = True
    """Domain randomisation: per episode, redraw the training world's factors (appearance,
    weather and light, road geometry, camera mount), recorded in episode.json. It applies to
    the builtin simulator's lane-keeping training towns and weathers only: CARLA, the junction
    towns and the held-out presets are recorded as they are (``--no-randomize``: the training
    towns too)."""
    randomize_groups: tuple[Literal["appearance", "weather", "geometry", "camera"], ...] = (
        "appearance",
        "weather",
        "camera",
    )
    """Factor groups redrawn with ``randomize``; geometry is off unless asked for (it cost the
    home precision and the unseen towns: ``checkpoints/README.md``, transfer rounds 1-2)."""
    randomize_camera_range: tuple[float, float, float] | None = None
    """With the ``camera`` group: half-ranges (pitch deg, yaw deg, height m) of the mount offset
    drawn uniformly per episode; None = (1.5 deg, 0 deg, 0.08 m). A yaw range of 0 keeps the
    image's heading tied to the car's, as the recovery views' labels assume (the simulator's
    own yaw range, 1.5 deg, is asked for with ``1.5 1.5 0.08``)."""
    control_rate_range_hz: tuple[float, float] | None = None
    """Range (lo, hi) of a per-episode control rate drawn uniformly, Hz, within the
    simulator's range; each episode.json names its rate; ``control_rate_hz`` stays the
    dataset's nominal rate. None = every episode at ``control_rate_hz``."""
    frame_time_jitter: float = 0.0
    """Each step lasts its nominal interval times ``1 + u``, ``u`` uniform in [-jitter, jitter],
    in [0, 1) (0 = none; the builtin simulator only: CARLA steps a fixed delta)."""
    recovery_views: int | None = None
    """Extra camera views recorded per step from poses beside the car's, each labelled with
    the expert's command at its pose (builtin only; 0 = off; None = 2 on builtin, 0 on
    CARLA)."""
    recovery_max_lateral_m: float = 1.0
    """Largest sideways offset of a recovery view from the car, m (within the lane)."""
    recovery_max_yaw_deg: float = 6.0
    """Largest yaw offset of a recovery view from the car, degrees."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))
        if not (math.isfinite(self.minutes) and self.minutes > 0):
            raise RecordError(f"minutes must be positive, got {self.minutes}")
        if self.episodes is not None and self.episodes < 1:
            raise RecordError(f"episodes must be >= 1 or None, got {self.episodes}")
        if not (math.isfinite(self.episode_s) and self.episode_s >= 1.0):
            raise RecordError(f"episode_s must be >= 1 s, got {self.episode_s}")
        if self.target_speed_range_mps is not None:
            lo, hi = self.target_speed_range_mps
            if not 0 < lo <= hi:
                raise RecordError(f"target_speed_range_mps must be 0 < lo <= hi, got {(lo, hi)}")
        if not 0.0 <= self.noise_share < 1.0:
            raise RecordError(f"noise_share must be in [0, 1), got {self.noise_share}")
        if not (math.isfinite(self.noise_amplitude_per_m) and self.noise_amplitude_per_m >= 0):
            raise RecordError(
                f"noise_amplitude_per_m must be >= 0, got {self.noise_amplitude_per_m}"
            )
        if self.start_offset_max_m < 0 or self.start_heading_max_rad < 0:
            raise RecordError(
                "start offsets must be >= 0, got "
                f"{self.start_offset_max_m} m and {self.start_heading_max_rad} rad"
            )
        if self.workers < 1:
            raise RecordError(f"workers must be >= 1, got {self.workers}")
        if self.sim == "carla" and self.workers != 1:
            raise RecordError(
                f"--sim carla drives one car per server: workers must be 1, got {self.workers}"
            )
        if not (math.isfinite(self.control_rate_hz) and self.control_rate_hz > 0):
            raise RecordError(f"control_rate_hz must be positive, got {self.control_rate_hz}")
        if not 1 <= self.jpeg_quality <= 100:
            raise RecordError(f"jpeg_quality must be in [1, 100], got {self.jpeg_quality}")
        if self.randomize and not randomize_applies(self.sim, self.towns, self.weathers):
            logger.info(
                "randomisation applies to the builtin lane-keeping training presets only: "
                "recording sim %s, towns %s, weathers %s as they are",
                self.sim, self.towns or "default", self.weathers or "default",
            )  # fmt: skip
            object.__setattr__(self, "randomize", False)
        if self.recovery_views is None:
            object.__setattr__(self, "recovery_views", DEFAULT_RECOVERY_VIEWS.get(self.sim, 0))
        if self.recovery_views < 0:
            raise RecordError(f"recovery_views must be >= 0, got {self.recovery_views}")
        if self.recovery_views and self.sim != "builtin":
            raise RecordError(
                f"--recovery-views {self.recovery_views}: recovery views are rendered by the "
                f"builtin simulator only, not by --sim {self.sim}"
            )
        problem = groups_problem(self.randomize_groups) if self.randomize else None
        if problem is not None:
            raise RecordError(problem)
        if self.randomize_camera_range is not None:
            rng = tuple(self.randomize_camera_range)
            if not (self.randomize and "camera" in self.randomize_groups):
                raise RecordError(
                    f"--randomize-camera-range {list(rng)} needs --randomize with the camera "
                    f"group, got randomize={self.randomize}, groups {list(self.randomize_groups)}"
                )
            if len(rng) != 3 or not all(math.isfinite(v) and v >= 0 for v in rng):
                raise RecordError(
                    "randomize_camera_range must be three finite half-ranges >= 0 (pitch deg, "
                    f"yaw deg, height m), got {list(rng)}"
                )
        elif self.randomize and "camera" in self.randomize_groups:
            object.__setattr__(self, "randomize_camera_range", DEFAULT_CAMERA_RANGE)
        if self.driver is not None:
            object.__setattr__(self, "driver", Path(self.driver))
        try:
            self.mixing  # noqa: B018 (checks beta and its mode)
        except DaggerError as e:
            raise RecordError(str(e)) from e

    @property
    def mixing(self) -> Mixing:
        """How ``driver`` and the expert share the wheel."""
        return Mixing(beta=self.beta, per=self.beta_per, event_s=self.beta_event_s)

    @property
    def varies_time(self) -> bool:
        """Whether episodes get a drawn control rate or jittered frame intervals."""
        return self.control_rate_range_hz is not None or self.frame_time_jitter > 0


@dataclass(frozen=True)
class RecordJob:
    """One planned episode (plain data, sent to a worker)."""

    number: int
    """Position in this run's plan."""
    town: str
    weather: str
    seed: int
    """Reset seed: picks the road within the town (and the noise stream)."""
    start_offset_m: float
    start_heading_rad: float
    control_rate_hz: float | None = None
    """This episode's control rate, Hz (None = the config's ``control_rate_hz``)."""


@dataclass
class RecordSummary:
    """What a recording run produced."""

    out: str
    episodes: int = 0
    steps: int = 0
    sim_s: float = 0.0
    km: float = 0.0
    noise_steps: int = 0
    policy_steps: int = 0
    by_town: dict[str, dict[str, float]] = field(default_factory=dict)
    by_weather: dict[str, dict[str, float]] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0
    stopped: bool = False
    dataset_episodes: int = 0
    dataset_bytes: int = 0
    paths: list[str] = field(default_factory=list)

    def add(self, result: dict[str, Any]) -> None:
        """Accounts one finished episode (a worker's result)."""
        h, km = result["sim_s"] / 3600.0, result["distance_m"] / 1000.0
        self.episodes += 1
        self.steps += result["num_steps"]
        self.sim_s += result["sim_s"]
        self.km += km
        self.noise_steps += result["noise_steps"]
        self.policy_steps += result.get("policy_steps", 0)
        for table, key in ((self.by_town, result["town"]), (self.by_weather, result["weather"])):
            row = table.setdefault(key, {"episodes": 0, "hours": 0.0, "km": 0.0})
            row["episodes"] += 1
            row["hours"] += h
            row["km"] += km
        self.outcomes = dict(Counter(self.outcomes) + Counter({result["outcome"]: 1}))
        self.paths.append(result["path"])

    def format(self) -> str:
        """One screen of text."""
        rate = self.steps / self.wall_s if self.wall_s > 0 else 0.0
        lines = [
            f"recorded {self.episodes} episodes into {self.out}"
            + (" (stopped early)" if self.stopped else ""),
            f"  {self.steps} steps, {self.sim_s / 3600:.2f} h simulated, {self.km:.1f} km, "
            f"noise active {100 * self.noise_steps / max(self.steps, 1):.0f}% of steps"
            + (
                f", the policy drove {100 * self.policy_steps / max(self.steps, 1):.0f}%"
                if self.policy_steps
                else ""
            ),
            f"  wall {self.wall_s:.1f} s, {rate:.0f} steps/s, "
            f"{self.sim_s / max(self.wall_s, 1e-9):.1f}x real time",
            f"  dataset now: {self.dataset_episodes} episodes, {self.dataset_bytes / 1e6:.1f} MB",
        ]
        for name, table in (("town", self.by_town), ("weather", self.by_weather)):
            lines.append(f"  {name:<14} {'episodes':>8} {'hours':>7} {'km':>7}")
            for key, row in sorted(table.items()):
                lines.append(
                    f"  {key:<14} {row['episodes']:>8} {row['hours']:>7.2f} {row['km']:>7.1f}"
                )
        lines.append(
            "  outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items()))
        )
        return "\n".join(lines)


def check_timing(cfg: RecordConfig) -> None:
    """Refuses control rates outside the simulator's range and a bad frame-time jitter.

    Raises:
        RecordError: Naming the bad value and the simulator's range.
    """
    lo_hz, hi_hz = CONTROL_RATE_RANGE_HZ[cfg.sim]
    allowed = f"sim {cfg.sim} accepts [{lo_hz:g}, {hi_hz:g}] Hz"
    if not lo_hz <= cfg.control_rate_hz <= hi_hz:
        raise RecordError(f"control_rate_hz {cfg.control_rate_hz} is out of range: {allowed}")
    if cfg.control_rate_range_hz is not None:
        lo, hi = cfg.control_rate_range_hz
        if not (math.isfinite(lo) and math.isfinite(hi) and lo_hz <= lo <= hi <= hi_hz):
            raise RecordError(
                f"control_rate_range_hz {(lo, hi)} must be (lo, hi) with lo <= hi; {allowed}"
            )
    if not (math.isfinite(cfg.frame_time_jitter) and 0.0 <= cfg.frame_time_jitter < 1.0):
        raise RecordError(f"frame_time_jitter must be in [0, 1), got {cfg.frame_time_jitter}")
