"""The contract every simulator follows and every driver relies on.

Both the builtin simulator and the CARLA backend implement it, so a policy trained in one
can be evaluated in the other and the recording and evaluation code never branch on the
simulator.

Conventions:
    * SI units everywhere; names carry units where it helps (``speed_mps``, ``t_s``).
    * Vehicle frame ISO 8855: x forward, y left, z up; yaw counter-clockwise positive.
    * The vehicle pose is the centre of the rear axle (the kinematic bicycle's reference).

Observation (a dict, what a policy may see):
    * ``image``: uint8 (H, W, 3) RGB from the forward camera described by :class:`CameraSpec`.
    * ``speed_mps``: float32 (1,), forward speed in m/s.
    * ``t_s``: float64 (1,), simulation time in seconds. Policies derive their elapsed-time
      input from differences of ``t_s``, never from an assumed control rate.
    * ``command``: int64 (1,), the route's high-level command (:class:`Command`, CARLA's
      ``RoadOption`` / CIL's): ``FOLLOW_LANE`` except from :data:`COMMAND_LEAD_M` before a
      junction's entry until the car leaves the junction, when it is the branch the route takes
      there (``LEFT``, ``RIGHT`` or ``STRAIGHT``). Always ``FOLLOW_LANE`` on a road without
      junctions.

Action:
    float32 (1,), the path curvature kappa in 1/m, positive = turning left. It is
    vehicle-independent; each simulator converts it to its own steering and clips it to the
    car's limit (:func:`action_space`). A NaN or infinite action is an error.

Info (privileged ground truth for experts and metrics, never for the policy): see the
``INFO_*`` keys below.

Episode end:
    * ``terminated`` when the car leaves its lane (``|lateral_offset_m| > lane_half_width_m +
      departure margin``) or collides.
    * ``truncated`` at the end of the route or at the time limit.
    * In intervention mode a departure instead sets ``info["intervention"] = True``, the car is
      put back on the lane centre (heading along the lane) and the route continues.
    * After ``terminated`` or ``truncated`` the episode is over: ``step()`` raises
      :class:`ResetNeededError` until the next ``reset()``; after ``close()`` both ``reset()``
      and ``step()`` raise :class:`EnvClosedError` (``close()`` itself may be called again).
"""

from __future__ import annotations

import enum
import math
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from gymnasium import error as gym_error
from gymnasium import spaces

from liquid_drive.errors import LiquidDriveError


class ContractError(LiquidDriveError, ValueError):
    """A value that breaks the simulator contract (an action, a split, a camera spec)."""


class SimConfigError(LiquidDriveError, ValueError):
    """An invalid simulator option (a range, a name, a parameter out of its domain)."""


class ResetNeededError(LiquidDriveError, RuntimeError, gym_error.ResetNeeded):
    """``step()`` with no episode running.

    Before the first ``reset()``, or after the episode ended (``terminated`` or ``truncated``)
    without a new ``reset()``.
    """


class EnvClosedError(LiquidDriveError, RuntimeError, gym_error.ClosedEnvironmentError):
    """``reset()`` or ``step()`` on an environment after ``close()``."""


# ---------------------------------------------------------------------------------------------
# Observation keys
IMAGE = "image"
SPEED_MPS = "speed_mps"
T_S = "t_s"
COMMAND = "command"


class Command(enum.IntEnum):
    """The route's high-level command at a step (the ``command`` observation)."""

    FOLLOW_LANE = 0
    """Keep the lane; no junction ahead (or the route has none)."""
    LEFT = 1
    """Turn left at the junction ahead (crossing the oncoming lane)."""
    RIGHT = 2
    """Turn right at the junction ahead."""
    STRAIGHT = 3
    """Go straight through the junction ahead."""


COMMAND_NAMES: tuple[str, ...] = tuple(c.name.lower() for c in Command)
"""``("follow_lane", "left", "right", "straight")``, indexed by the command's value."""
COMMAND_LEAD_M = 20.0
"""The command switches from ``FOLLOW_LANE`` to a junction's branch this far (along the route)
before the junction's entry, m (CIL: about 20 m), and back when the car leaves the junction."""


def parse_command(value: Any) -> Command:
    """A :class:`Command` from its value (an int, a (1,) array) or its name.

    Raises:
        ContractError: Naming the value and listing the valid commands.
    """
    if isinstance(value, str):
        name = value.strip().lower()
        if name in COMMAND_NAMES:
            return Command(COMMAND_NAMES.index(name))
    else:
        try:
            arr = np.asarray(value)
            if arr.size == 1 and np.issubdtype(arr.dtype, np.integer):
                return Command(int(arr.reshape(-1)[0]))
        except (TypeError, ValueError):
            pass
    valid = ", ".join(f"{c.value} {c.name.lower()}" for c in Command)
    raise ContractError(f"unknown command {_describe(value)}; valid: {valid}")


# ---------------------------------------------------------------------------------------------
# Info keys (privileged)
INFO_LATERAL_OFFSET_M = "lateral_offset_m"
"""Signed distance of the vehicle reference point from its lane centre, m, positive = left."""
INFO_HEADING_ERROR_RAD = "heading_error_rad"
"""Vehicle yaw minus lane heading, rad, wrapped to (-pi, pi], positive = pointing left."""
INFO_ROAD_CURVATURE = "road_curvature"
"""Curvature of the lane centre at the vehicle's projection, 1/m, positive = bends left."""
INFO_PROGRESS_M = "progress_m"
"""Arc length driven along the route since the episode start, m."""
INFO_LANE_HALF_WIDTH_M = "lane_half_width_m"
"""Half the width of the current lane, m."""
INFO_POSE = "pose"
"""(x_m, y_m, yaw_rad) of the vehicle in the world frame, a tuple of floats."""
INFO_TOWN = "town"
INFO_WEATHER = "weather"
INFO_CURVATURE_APPLIED = "curvature_applied"
"""Curvature the car actually executed this step (after noise injection and clipping), 1/m."""
INFO_NOISE_ACTIVE = "noise_active"
"""True while injected steering noise is active (set by the noise wrapper)."""
INFO_INTERVENTION = "intervention"
"""True on a step where a lane departure was counted and the car was reset to the lane centre."""
INFO_COLLISION = "collision"
"""True on a step where the vehicle collided with something."""
INFO_ROUTE_LENGTH_M = "route_length_m"
"""Total length of the route for this episode, m."""
INFO_TARGET_SPEED_MPS = "target_speed_mps"
"""Cruise speed the simulator holds in this episode, m/s."""
INFO_JUNCTION = "junction"
"""Index (0-based, in route order) of the junction whose command is active: from
:data:`COMMAND_LEAD_M` before its entry until the car leaves it; -1 elsewhere (always -1 on a
road without junctions)."""

ALL_INFO_KEYS: tuple[str, ...] = (
    INFO_LATERAL_OFFSET_M,
    INFO_HEADING_ERROR_RAD,
    INFO_ROAD_CURVATURE,
    INFO_PROGRESS_M,
    INFO_LANE_HALF_WIDTH_M,
    INFO_POSE,
    INFO_TOWN,
    INFO_WEATHER,
    INFO_CURVATURE_APPLIED,
    INFO_NOISE_ACTIVE,
    INFO_INTERVENTION,
    INFO_COLLISION,
    INFO_ROUTE_LENGTH_M,
    INFO_TARGET_SPEED_MPS,
    INFO_JUNCTION,
)
"""Every key the info dict carries on every step (reset and step) of every simulator."""

RESET_INFO_ROUTE_COMMANDS = "route_commands"
"""Reset info of every simulator: the command of each junction of the episode's route, in
route order, a tuple of :class:`Command` values (empty for a route without junctions). Step
info's :data:`INFO_JUNCTION` indexes it."""
RESET_INFO_WORLD_FACTORS = "world_factors"
"""Reset info only, and only from a simulator asked to randomise its world (builtin
``randomize``): the drawn appearance, weather, geometry and camera factors of the episode, a
plain-JSON dict. Not in :data:`ALL_INFO_KEYS`."""
# Optional info keys (not in ALL_INFO_KEYS; not INFO_* because those are on every step).
RECOVERY_IMAGES = "recovery_images"
"""Recovery views (builtin only, present only when they are on): uint8 (K, H, W, 3) RGB frames
of the camera from poses beside the car's (``sim/builtin/recovery.py``)."""
RECOVERY_OFFSETS = "recovery_offsets"
"""float64 (K, 2) pose offset of each recovery view from the car: lateral m (+ = left, along
the lane normal), yaw rad (+ = left)."""
RECOVERY_LABELS = "recovery_labels"
"""float64 (K,) the expert's curvature command at each recovery view's pose, 1/m (+ = left)."""

# ---------------------------------------------------------------------------------------------
# Timing
CONTROL_RATE_HZ = 20.0
"""Default control rate; CARLA's ``fixed_delta_seconds`` is ``1 / CONTROL_RATE_HZ``."""
DT_S = 1.0 / CONTROL_RATE_HZ
BUILTIN_CONTROL_RATE_RANGE_HZ: tuple[float, float] = (1.0, 1000.0)
"""Lowest and highest control rate the builtin simulator accepts, Hz."""
CARLA_CONTROL_RATE_RANGE_HZ: tuple[float, float] = (10.0, 1000.0)
"""Lowest and highest control rate of the CARLA backend, Hz (CARLA's physics needs a fixed
delta of at most 0.1 s)."""
CONTROL_RATE_RANGE_HZ: dict[str, tuple[float, float]] = {
    "builtin": BUILTIN_CONTROL_RATE_RANGE_HZ,
    "carla": CARLA_CONTROL_RATE_RANGE_HZ,
}
"""Per simulator name, the control rates (lowest, highest) it accepts, Hz."""


@dataclass(frozen=True)
class CameraSpec:
    """Forward RGB camera, shared by every simulator so that policies transfer.

    The default is the NCP paper's network input: 200 px wide by 78 px high.
    """

    width_px: int = 200
    """Image width in pixels."""
    height_px: int = 78
    """Image height in pixels."""
    hfov_deg: float = 70.0
    """Horizontal field of view in degrees."""
    mount_height_m: float = 1.4
    """Height of the optical centre above the ground, m."""
    pitch_deg: float = 6.0
    """Downward pitch of the optical axis, degrees (positive = looking down)."""
    forward_offset_m: float = 1.6
    """Distance of the camera ahead of the vehicle reference point (rear axle), m."""

    def __post_init__(self) -> None:
        if self.width_px <= 0 or self.height_px <= 0:
            raise ContractError(
                f"camera size must be positive, got {self.width_px}x{self.height_px}"
            )
        if not 10.0 <= self.hfov_deg <= 170.0:
            raise ContractError(f"hfov_deg must be in [10, 170], got {self.hfov_deg}")
        if self.mount_height_m <= 0:
            raise ContractError(f"mount_height_m must be positive, got {self.mount_height_m}")

    @property
    def focal_px(self) -> float:
        """Focal length in pixels, from the width and horizontal field of view."""
        return (self.width_px / 2.0) / math.tan(math.radians(self.hfov_deg) / 2.0)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form, stored in dataset and checkpoint metadata."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CameraSpec:
        """Inverse of :meth:`to_dict`; unknown or missing keys are an error."""
        try:
            return cls(**d)
        except TypeError as e:
            raise ContractError(f"not a camera spec {d!r}: {e}") from None


def observation_space(
    camera: CameraSpec, max_speed_mps: float = 60.0, max_time_s: float = 1.0e6
) -> spaces.Dict:
    """The observation space of every simulator for a camera spec.

    ``max_time_s`` bounds ``t_s``; it is finite so that gymnasium's ``check_env`` does not warn
    about an infinite Box bound.
    """
    return spaces.Dict(
        {
            IMAGE: spaces.Box(0, 255, (camera.height_px, camera.width_px, 3), np.uint8),
            SPEED_MPS: spaces.Box(0.0, max_speed_mps, (1,), np.float32),
            T_S: spaces.Box(0.0, max_time_s, (1,), np.float64),
            COMMAND: spaces.Box(0, len(Command) - 1, (1,), np.int64),
        }
    )


def action_space(max_curvature_per_m: float) -> spaces.Box:
    """The action space: one path curvature in 1/m, symmetric about zero."""
    k = np.float32(max_curvature_per_m)
    return spaces.Box(-k, k, (1,), np.float32)


def check_action(action: Any, max_curvature_per_m: float) -> float:
    """Validates an action and returns the curvature clipped to the car's limit.

    Args:
        action: A real number or a one-element array of real numbers (integer or floating
            point), the curvature in 1/m.
        max_curvature_per_m: The car's curvature limit, 1/m.

    Returns:
        The curvature as a float in ``[-max_curvature_per_m, max_curvature_per_m]``.

    Raises:
        ContractError: If the action is not a single finite real number (a bool, a complex
            number, ``None``, a string or an array of another size is refused), naming what
            it got.
    """
    try:
        arr = np.asarray(action)
    except (TypeError, ValueError) as err:  # e.g. a ragged nested list
        raise ContractError(
            f"action must be one curvature in 1/m, got {_describe(action)} ({err})"
        ) from None
    if arr.dtype.kind not in "iuf":  # bool, complex, object (None), strings, ...
        raise ContractError(
            f"action must be a real number (one curvature in 1/m), got {_describe(action)}"
        )
    if arr.size != 1:
        raise ContractError(
            f"action must be one curvature in 1/m, got {arr.size} values ({_describe(action)})"
        )
    kappa = float(arr.reshape(-1)[0])
    if not math.isfinite(kappa):
        raise ContractError(f"action must be a finite curvature in 1/m, got {kappa}")
    return min(max(kappa, -max_curvature_per_m), max_curvature_per_m)


def check_env_state(call: str, *, closed: bool, started: bool = True, ended: bool = False) -> None:
    """Refuses a ``reset()``/``step()`` the env's state does not allow (the contract's errors).

    Args:
        call: ``"reset"`` or ``"step"``, named in the message.
        closed: Whether ``close()`` has been called.
        started: Whether a ``reset()`` has started an episode (``step`` only).
        ended: Whether the episode has ended: ``terminated`` or ``truncated`` (``step`` only).

    Raises:
        EnvClosedError: After ``close()``.
        ResetNeededError: For ``step()`` before the first ``reset()`` or after the episode
            ended.
    """
    if closed:
        raise EnvClosedError(f"{call}() on a closed environment; create a new one")
    if not started:
        raise ResetNeededError(f"call reset() before {call}()")
    if ended:
        raise ResetNeededError(
            f"the episode has ended (terminated or truncated); call reset() before {call}()"
        )


def _describe(value: Any, limit: int = 60) -> str:
    """``"bool True"``, ``"ndarray of dtype float32 and shape (2,)"``: names a bad value."""
    if isinstance(value, np.ndarray):
        return f"ndarray of dtype {value.dtype} and shape {value.shape}"
    text = repr(value)
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return f"{type(value).__name__} {text}"


# ---------------------------------------------------------------------------------------------
# Drivers, environments and the town/weather split


Observation = dict[str, np.ndarray]
"""A simulator observation: ``image`` uint8 (H, W, 3), ``speed_mps`` (1,), ``t_s`` (1,)."""


@runtime_checkable
class Driver(Protocol):
    """Something that steers: the privileged expert, a learned policy, an ONNX policy.

    The recurrent state is passed explicitly, so a driver holds no hidden per-episode memory.
    """

    def reset(self) -> Any:
        """Returns the initial state for a new episode (``None`` for stateless drivers)."""
        ...

    def act(self, obs: Observation, state: Any) -> tuple[np.ndarray, Any]:
        """Returns the action (curvature in 1/m, float32 (1,)) and the next state."""
        ...


@runtime_checkable
class DrivingEnv(Protocol):
    """What every simulator's gymnasium env offers beyond ``reset``/``step``/``close``.

    ``sim.make_env`` returns one (``env.unwrapped`` for a wrapped env). The expert and the
    contract's metadata live here so that recording and evaluation never reach into a
    backend.
    """

    @property
    def camera(self) -> CameraSpec:
        """The forward camera the observations come from."""
        ...

    @property
    def control_rate_hz(self) -> float:
        """Nominal control steps per simulated second, Hz."""
        ...

    @property
    def max_curvature_per_m(self) -> float:
        """The curvature limit actions are clipped to, 1/m."""
        ...

    def make_expert(self) -> Driver:
        """The privileged expert driver of this env."""
        ...


class ConfiguredEnv:
    """Mixin of the envs: :class:`DrivingEnv`'s camera and control rate from ``self.config``.

    The config has ``camera`` and ``control_rate_hz`` fields.
    """

    config: Any

    @property
    def camera(self) -> CameraSpec:
        """The forward camera the observations come from."""
        return self.config.camera

    @property
    def control_rate_hz(self) -> float:
        """Nominal control steps per simulated second, Hz."""
        return self.config.control_rate_hz


@dataclass(frozen=True)
class TownWeatherSplit:
    """The town and weather names of a simulator, split into training and held-out sets."""

    train_towns: tuple[str, ...]
    """Towns whose roads the training data comes from."""
    unseen_towns: tuple[str, ...]
    """Held-out towns, never in training data."""
    train_weathers: tuple[str, ...]
    """Weathers of the training data."""
    unseen_weathers: tuple[str, ...]
    """Held-out weathers, never in training data."""
    other_towns: tuple[str, ...] = ()
    """Towns the simulator has that are in neither set (accepted by name)."""
    other_weathers: tuple[str, ...] = ()
    """Weathers the simulator has that are in neither set (accepted by name)."""
    open_names: bool = False
    """True when the simulator also accepts names beyond these (CARLA: any map the server
    has); False when :meth:`check` refuses every other name."""
    town_speeds_mps: tuple[tuple[str, float, float], ...] = ()
    """Per town, ``(name, lowest, highest)`` cruise speed that episodes draw from by default
    (recording's training speed range), m/s; empty when the simulator does not say."""
    junction_train_towns: tuple[str, ...] = ()
    """Towns that are road networks with junctions (routes carry commands) whose roads
    training data may come from; apart from ``train_towns`` (the lane-keeping towns), so the
    lane-keeping suites and recordings do not change. Empty when the simulator has none apart
    (CARLA's towns are all junction towns: they are its ``train_towns``/``unseen_towns``)."""
    junction_unseen_towns: tuple[str, ...] = ()
    """Held-out junction towns, never in training data."""

    def __post_init__(self) -> None:
        for name in ("train_towns", "unseen_towns", "train_weathers", "unseen_weathers"):
            value = getattr(self, name)
            if not value or not all(isinstance(v, str) and v for v in value):
                raise ContractError(f"{name} must be a non-empty tuple of names, got {value!r}")
        for kind in ("towns", "weathers"):
            parts = ("train", "unseen", "other") + (
                ("junction_train", "junction_unseen") if kind == "towns" else ()
            )
            sets = [getattr(self, f"{part}_{kind}") for part in parts]
            names = [n for s in sets for n in s]
            if len(set(names)) != len(names):
                shared = sorted({n for n in names if names.count(n) > 1})
                raise ContractError(f"the {kind} of a split overlap: {shared}")
        for entry in self.town_speeds_mps:
            name, lo, hi = entry
            if name not in self.towns or not 0 < lo <= hi:
                raise ContractError(
                    f"town_speeds_mps entries must be (town of the split, lo, hi) with "
                    f"0 < lo <= hi, got {entry!r}"
                )

    @property
    def towns(self) -> tuple[str, ...]:
        """Every town name: training, held-out, other, junction training, junction held-out."""
        return (
            *self.train_towns,
            *self.unseen_towns,
            *self.other_towns,
            *self.junction_train_towns,
            *self.junction_unseen_towns,
        )

    @property
    def held_out_towns(self) -> tuple[str, ...]:
        """Every town training data must never come from: held-out and held-out junction."""
        return (*self.unseen_towns, *self.junction_unseen_towns)

    @property
    def weathers(self) -> tuple[str, ...]:
        """Every weather name: training, held-out, other."""
        return (*self.train_weathers, *self.unseen_weathers, *self.other_weathers)

    def check(self, towns: tuple[str, ...] = (), weathers: tuple[str, ...] = ()) -> None:
        """Refuses town or weather names the simulator does not have (unless names are open).

        Raises:
            ContractError: Naming the unknown names and listing the valid ones.
        """
        if self.open_names:
            return
        for kind, given, valid in (
            ("town", towns, self.towns),
            ("weather", weathers, self.weathers),
        ):
            bad = [n for n in given if n not in valid]
            if bad:
                raise ContractError(f"unknown {kind}(s) {bad}; valid: {', '.join(valid)}")

    def speed_range_mps(self, town: str) -> tuple[float, float]:
        """The default cruise-speed range ``(lowest, highest)`` of a town, m/s.

        Raises:
            ContractError: If the split gives no speeds for ``town``.
        """
        for name, lo, hi in self.town_speeds_mps:
            if name == town:
                return (lo, hi)
        raise ContractError(f"the split gives no cruise-speed range for town {town!r}")

    def describe(self, town: str, weather: str) -> str:
        """E.g. ``"unseen town, training weather"``."""

        def part(name: str, train: tuple[str, ...], unseen: tuple[str, ...]) -> str:
            return "training" if name in train else "unseen" if name in unseen else "other"

        t = part(
            town,
            (*self.train_towns, *self.junction_train_towns),
            (*self.unseen_towns, *self.junction_unseen_towns),
        )
        if town in (*self.junction_train_towns, *self.junction_unseen_towns):
            t += " junction"
        w = part(weather, self.train_weathers, self.unseen_weathers)
        return f"{t} town, {w} weather"


@dataclass(frozen=True)
class CameraOffset:
    """A shift of the camera mount from its nominal :class:`CameraSpec` pose.

    The nominal spec stays the camera a checkpoint was trained with; the offset models a
    camera mounted slightly differently (the ``camera`` evaluation suite, domain
    randomisation). All zero = the nominal mount.
    """

    pitch_deg: float = 0.0
    """Extra downward pitch, degrees (positive = looking further down)."""
    yaw_deg: float = 0.0
    """Extra yaw, degrees (positive = looking to the left)."""
    height_m: float = 0.0
    """Extra mount height, m (positive = higher)."""

    def __post_init__(self) -> None:
        for name, limit in (("pitch_deg", 30.0), ("yaw_deg", 30.0), ("height_m", 1.0)):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and abs(v) <= limit):
                raise ContractError(
                    f"camera offset {name} must be finite with |{name}| <= {limit}, got {v!r}"
                )

    def __add__(self, other: CameraOffset) -> CameraOffset:
        """The two shifts combined (per-component sums)."""
        return CameraOffset(
            self.pitch_deg + other.pitch_deg,
            self.yaw_deg + other.yaw_deg,
            self.height_m + other.height_m,
        )

    def to_dict(self) -> dict[str, float]:
        """Plain-JSON form."""
        return asdict(self)
