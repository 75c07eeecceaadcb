"""The acceptance check of a CARLA server: run it first (``tools/carla_check.py``).

Connects, compares the client and server releases, runs the synchronous loop at a fixed
delta, measures the vehicle's steering response (writing a calibration file, see
:mod:`sim.carla.calibration`), drives the expert one route with commands in Town01 and in
Town02 (junctions passed per command, interventions, largest lateral offset), and verifies
that cleanup leaves no actor of ours and the world asynchronous. The result is a markdown
pass/fail table, to paste into an issue.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from sim import spec
from sim.carla.calibration import from_points
from sim.carla.config import CarlaEnvConfig
from sim.carla.connection import CLIENT_VERSION, connect, import_carla
from sim.carla.env import CarlaDrivingEnv


@dataclass(frozen=True)
class CheckConfig:
    """What the acceptance check runs."""

    host: str = "127.0.0.1"
    """CARLA server host."""
    port: int = 2000
    """CARLA server RPC port."""
    towns: tuple[str, ...] = ("Town01", "Town02")
    """Towns the expert drives one route in."""
    route_length_m: float = 300.0
    """Length of each expert route, m."""
    sync_steps: int = 100
    """Ticks of the synchronous-loop check."""
    calibration_speeds_mps: tuple[float, ...] = (4.0, 7.0, 10.0)
    """Speeds the steering response is measured at, m/s."""
    calibration_steers: tuple[float, ...] = (-0.1, -0.05, 0.0, 0.05, 0.1)
    """Normalised steers measured at each speed."""
    calibration_settle_s: float = 0.5
    """Constant steer held before measuring, s."""
    calibration_measure_s: float = 0.5
    """Time the yaw rate is averaged over, s."""
    calibration_out: Path = Path("outputs/carla_steering_calibration.json")
    """Where the calibration JSON is written."""
    env: CarlaEnvConfig = field(default_factory=CarlaEnvConfig)
    """Further env settings (host, port and town are set from the fields above)."""


@dataclass(frozen=True)
class CheckRow:
    """One line of the report."""

    name: str
    passed: bool
    figures: str


def _env(cfg: CheckConfig, **overrides) -> CarlaDrivingEnv:
    return CarlaDrivingEnv(replace(cfg.env, host=cfg.host, port=cfg.port, **overrides))


def check_versions(cfg: CheckConfig) -> CheckRow:
    """Client and server releases: both must be :data:`CLIENT_VERSION`."""
    carla = import_carla()
    client, server = connect(carla, cfg.host, cfg.port, cfg.env.timeout_s)
    mine = client.get_client_version()
    ok = mine == server == CLIENT_VERSION
    return CheckRow("versions", ok, f"client {mine}, server {server}, expected {CLIENT_VERSION}")


def check_sync_loop(cfg: CheckConfig) -> CheckRow:
    """Each step advances simulated time by exactly one fixed delta."""
    with _env(cfg, town=cfg.towns[0], route_length_m=cfg.route_length_m) as env:
        obs, _ = env.reset(seed=0)
        times = [float(obs[spec.T_S][0])]
        expert, state = env.make_expert(), None
        for _ in range(cfg.sync_steps):
            action, state = expert.act(obs, state)
            obs, _, term, trunc, _ = env.step(action)
            times.append(float(obs[spec.T_S][0]))
            if term or trunc:
                break
        dt = np.diff(times)
        ok = bool(dt.size) and bool(np.allclose(dt, env.config.dt_s, atol=1e-4))
        return CheckRow(
            "synchronous loop",
            ok,
            f"{dt.size} ticks, dt {dt.min():.4f}-{dt.max():.4f} s (fixed {env.config.dt_s:.4f})",
        )


def measure_calibration(cfg: CheckConfig) -> tuple[CheckRow, Path | None]:
    """Steady curvature (yaw rate / speed) per constant steer and speed; writes the JSON."""
    settle = round(cfg.calibration_settle_s * cfg.env.control_rate_hz)
    measure = max(round(cfg.calibration_measure_s * cfg.env.control_rate_hz), 2)
    points = []
    server = connect(import_carla(), cfg.host, cfg.port, cfg.env.timeout_s)[1]
    for v in cfg.calibration_speeds_mps:
        kw = {"town": cfg.towns[0], "target_speed_mps": v, "departure_margin_m": 1e3}
        with _env(cfg, **kw) as env:
            for i, steer in enumerate(cfg.calibration_steers):
                env.reset(seed=i)
                yaws, speeds = [], []
                for k in range(settle + measure):
                    _, _, term, _, info = env.step_steer(steer)
                    if term:
                        why = "collision" if info[spec.INFO_COLLISION] else "left the road"
                        return CheckRow("steering calibration", False, f"{why} at {v} m/s, "
                                        f"steer {steer}"), None  # fmt: skip
                    if k >= settle:
                        yaws.append(env.vehicle_state.yaw_rad)
                        speeds.append(env.vehicle_state.speed_mps)
                yaw_rate = np.diff(np.unwrap(yaws)) * cfg.env.control_rate_hz
                points.append((v, steer, float(np.mean(yaw_rate) / max(np.mean(speeds), 0.1))))
    try:
        cal = from_points(cfg.env.vehicle_blueprint, server, points)
    except ValueError as err:
        return CheckRow("steering calibration", False, str(err)), None
    path = cal.save(cfg.calibration_out)
    full = [
        f"{v:g} m/s: {cal.curvature_for(-max(cfg.calibration_steers), v):.4f}"
        for v in cal.speeds_mps
    ]
    return CheckRow(
        "steering calibration",
        True,
        f"curvature 1/m at steer {-max(cfg.calibration_steers):g}: {', '.join(full)}; {path}",
    ), path


def check_route(cfg: CheckConfig, town: str, calibration: Path | None) -> CheckRow:
    """The expert drives one route with commands (interventions counted, not ended)."""
    kw = {"town": town, "route_length_m": cfg.route_length_m, "intervention_mode": True}
    if calibration is not None:
        kw["steering_calibration"] = str(calibration)
    with _env(cfg, **kw) as env:
        obs, info = env.reset(seed=0)
        commands = info[spec.RESET_INFO_ROUTE_COMMANDS]
        expert, state, done = env.make_expert(), None, False
        passed, interventions, max_offset, progress = set(), 0, 0.0, 0.0
        while not done:
            action, state = expert.act(obs, state)
            obs, _, term, trunc, info = env.step(action)
            done = term or trunc
            if info[spec.INFO_JUNCTION] >= 0:
                passed.add(info[spec.INFO_JUNCTION])
            interventions += bool(info[spec.INFO_INTERVENTION])
            max_offset = max(max_offset, abs(info[spec.INFO_LATERAL_OFFSET_M]))
            progress = info[spec.INFO_PROGRESS_M]
    per = collections.Counter(spec.COMMAND_NAMES[commands[j]] for j in passed)
    complete = progress >= cfg.route_length_m - 5.0
    ok = complete and interventions == 0 and len(passed) == len(commands)
    counts = ", ".join(f"{n} {per[n]}" for n in spec.COMMAND_NAMES[1:]) or "none"
    return CheckRow(
        f"expert route {town}",
        ok,
        f"{progress:.0f}/{cfg.route_length_m:.0f} m, junctions {len(passed)}/{len(commands)} "
        f"({counts}), interventions {interventions}, max |offset| {max_offset:.2f} m",
    )


def check_cleanup(cfg: CheckConfig) -> CheckRow:
    """After the envs closed: no actor with our role name, the world asynchronous."""
    client, _ = connect(import_carla(), cfg.host, cfg.port, cfg.env.timeout_s)
    world = client.get_world()
    ours = [a.id for a in world.get_actors() if a.attributes.get("role_name") == cfg.env.role_name]
    sync = bool(world.get_settings().synchronous_mode)
    return CheckRow("cleanup", not ours and not sync, f"our actors left {len(ours)}, "
                    f"synchronous mode {'on' if sync else 'off'}")  # fmt: skip


def run_check(cfg: CheckConfig) -> list[CheckRow]:
    """Every check, in order; a check that raises is a failed row with the error."""
    rows: list[CheckRow] = []
    calibration: Path | None = None

    def attempt(name: str, fn) -> None:
        try:
            rows.append(fn())
        except Exception as err:
            rows.append(CheckRow(name, False, f"{type(err).__name__}: {err}"))

    attempt("versions", lambda: check_versions(cfg))
    if not rows[-1].passed and "Connection" in rows[-1].figures:
        return rows
    attempt("synchronous loop", lambda: check_sync_loop(cfg))
    try:
        row, calibration = measure_calibration(cfg)
        rows.append(row)
    except Exception as err:
        rows.append(CheckRow("steering calibration", False, f"{type(err).__name__}: {err}"))
    for town in cfg.towns:
        attempt(f"expert route {town}", lambda town=town: check_route(cfg, town, calibration))
    attempt("cleanup", lambda: check_cleanup(cfg))
    return rows


def markdown_table(rows: list[CheckRow]) -> str:
    """The report: one row per check."""
    lines = ["| check | result | figures |", "|---|---|---|"]
    lines += [f"| {r.name} | {'pass' if r.passed else 'FAIL'} | {r.figures} |" for r in rows]
    return "\n".join(lines)
