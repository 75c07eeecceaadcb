"""Wrappers for recording: CIL-style steering-noise injection and random start offsets.

Both work on any environment of the ``sim`` contract (builtin or CARLA).

``NoiseInjection`` (Codevilla et al., CIL): for a configurable share of the time a
perturbation is added to the driver's curvature command. The car executes the noisy
command, which drives it off the lane centre; the recording keeps the driver's clean command
as the label, so the data shows how to recover. ``info["curvature_applied"]`` is what the car
executed, ``info["noise_active"]`` whether a perturbation was on and
``info["noise_curvature"]`` its value (1/m). Actions are checked with
:func:`sim.spec.check_action`, and a ``step()`` with no episode running is refused with the
contract's errors before the perturbation schedule moves on.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from sim import spec
from sim.spec import SimConfigError

NOISE_KINDS = ("triangular", "ou")
"""Shapes of the perturbation: a triangular pulse, or an Ornstein-Uhlenbeck excursion."""


class NoiseInjection(gym.Wrapper):
    """Adds steering perturbations for a share of the time (the label stays clean).

    Perturbation events last ``duration_s`` (uniform in the range) and are separated by
    exponential gaps whose mean makes the expected active share equal ``share``.

    * ``triangular``: the added curvature rises linearly to a peak of
      ``amplitude_per_m * u`` (``u`` uniform in [0.5, 1], random sign) at mid-event and falls
      back to zero (the CIL recipe).
    * ``ou``: an Ornstein-Uhlenbeck process (mean reversion ``ou_theta_per_s``, stationary std
      ``amplitude_per_m / 2``) that starts at zero, runs during the event and is faded out
      linearly over its last quarter.

    Args:
        env: The environment.
        share: Expected fraction of time with a perturbation, in [0, 1).
        amplitude_per_m: Peak added curvature, 1/m.
        duration_s: Range of the event duration, s.
        kind: ``"triangular"`` or ``"ou"``.
        ou_theta_per_s: Mean-reversion rate of the OU process, 1/s.
        seed: Seed of the wrapper's own random stream (re-seeded by ``reset(seed=...)``).
    """

    def __init__(
        self,
        env: gym.Env,
        share: float = 0.2,
        amplitude_per_m: float = 0.04,
        duration_s: tuple[float, float] = (0.5, 2.0),
        kind: str = "triangular",
        ou_theta_per_s: float = 2.0,
        seed: int | None = None,
    ) -> None:
        super().__init__(env)
        if not 0.0 <= share < 1.0:
            raise SimConfigError(f"share must be in [0, 1), got {share}")
        if not (math.isfinite(amplitude_per_m) and amplitude_per_m >= 0):
            raise SimConfigError(f"amplitude_per_m must be finite and >= 0, got {amplitude_per_m}")
        lo, hi = duration_s
        if not 0.0 < lo <= hi:
            raise SimConfigError(f"duration_s must be (lo, hi) with 0 < lo <= hi, got {duration_s}")
        if kind not in NOISE_KINDS:
            raise SimConfigError(f"kind must be one of {NOISE_KINDS}, got {kind!r}")
        if ou_theta_per_s <= 0:
            raise SimConfigError(f"ou_theta_per_s must be positive, got {ou_theta_per_s}")
        self.share = float(share)
        self.amplitude_per_m = float(amplitude_per_m)
        self.duration_s = (float(lo), float(hi))
        self.kind = kind
        self.ou_theta_per_s = float(ou_theta_per_s)
        self._rng = np.random.default_rng(seed)
        self._t = 0.0
        self._next_start = math.inf
        self._event_end = -math.inf
        self._event_start = 0.0
        self._peak = 0.0
        self._ou = 0.0
        self._started = False
        self._ended = False
        self._closed = False

    def _gap(self) -> float:
        if self.share <= 0.0:
            return math.inf
        mean_duration = 0.5 * (self.duration_s[0] + self.duration_s[1])
        return float(self._rng.exponential(mean_duration * (1.0 - self.share) / self.share))

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Resets the env and the perturbation schedule."""
        if seed is not None:
            self._rng = np.random.default_rng([seed, 0x5EED])
        spec.check_env_state("reset", closed=self._closed)
        obs, info = self.env.reset(seed=seed, options=options)
        self._started, self._ended = True, False
        self._t = float(np.asarray(obs[spec.T_S]).reshape(-1)[0])
        self._event_end = -math.inf
        self._next_start = self._t + self._gap()
        self._ou = 0.0
        info = dict(info)
        info[spec.INFO_NOISE_ACTIVE] = False
        info["noise_curvature"] = 0.0
        return obs, info

    def _noise(self, t: float, dt: float) -> tuple[float, bool]:
        if t >= self._event_end and t >= self._next_start:
            self._event_start = t
            self._event_end = t + float(self._rng.uniform(*self.duration_s))
            sign = 1.0 if self._rng.random() < 0.5 else -1.0
            self._peak = sign * self.amplitude_per_m * float(self._rng.uniform(0.5, 1.0))
            self._ou = 0.0
            self._next_start = self._event_end + self._gap()
        if t >= self._event_end:
            return 0.0, False
        duration = self._event_end - self._event_start
        phase = (t - self._event_start) / duration
        if self.kind == "triangular":
            return self._peak * (1.0 - abs(2.0 * phase - 1.0)), True
        theta = self.ou_theta_per_s
        sigma = 0.5 * self.amplitude_per_m * math.sqrt(2.0 * theta)
        self._ou += -theta * self._ou * dt + sigma * math.sqrt(dt) * float(
            self._rng.standard_normal()
        )
        fade = min(1.0, 4.0 * (1.0 - phase))
        return self._ou * fade, True

    def step(self, action: Any):
        """Executes ``action`` plus the current perturbation."""
        clean = np.float32(spec.check_action(action, math.inf))  # the label: not clipped
        spec.check_env_state("step", closed=self._closed, started=self._started, ended=self._ended)
        dt = getattr(self.env.unwrapped, "config", None)
        dt = dt.dt_s if dt is not None and hasattr(dt, "dt_s") else spec.DT_S
        noise, active = self._noise(self._t, dt)
        noisy = np.array([clean + noise], dtype=np.float32)
        obs, reward, terminated, truncated, info = self.env.step(noisy)
        self._ended = bool(terminated or truncated)
        self._t = float(np.asarray(obs[spec.T_S]).reshape(-1)[0])
        info = dict(info)
        info[spec.INFO_NOISE_ACTIVE] = active
        info["noise_curvature"] = noise
        info["curvature_clean"] = float(clean)
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        """Closes the env; later ``reset``/``step`` calls are refused (safe to call twice)."""
        self._closed = True
        super().close()


class RandomStart(gym.Wrapper):
    """Starts each episode with a random lateral offset and heading error.

    The offsets are drawn uniformly in ``[-max_offset_m, max_offset_m]`` and
    ``[-max_heading_rad, max_heading_rad]`` and passed as reset options
    (``start_offset_m``, ``start_heading_rad``); options given to ``reset`` win.

    Args:
        env: The environment.
        max_offset_m: Largest lateral offset from the lane centre, m.
        max_heading_rad: Largest heading error, rad.
        seed: Seed of the wrapper's own random stream (re-seeded by ``reset(seed=...)``).
    """

    def __init__(
        self,
        env: gym.Env,
        max_offset_m: float = 0.5,
        max_heading_rad: float = 0.1,
        seed: int | None = None,
    ) -> None:
        super().__init__(env)
        if not (math.isfinite(max_offset_m) and max_offset_m >= 0):
            raise SimConfigError(f"max_offset_m must be finite and >= 0, got {max_offset_m}")
        if not 0 <= max_heading_rad < math.pi / 2:
            raise SimConfigError(f"max_heading_rad must be in [0, pi/2), got {max_heading_rad}")
        self.max_offset_m = float(max_offset_m)
        self.max_heading_rad = float(max_heading_rad)
        self._rng = np.random.default_rng(seed)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Resets with random start offsets (unless given in ``options``)."""
        if seed is not None:
            self._rng = np.random.default_rng([seed, 0x57A7])
        drawn = {
            "start_offset_m": float(self._rng.uniform(-self.max_offset_m, self.max_offset_m)),
            "start_heading_rad": float(
                self._rng.uniform(-self.max_heading_rad, self.max_heading_rad)
            ),
        }
        drawn.update(options or {})
        return self.env.reset(seed=seed, options=drawn)
