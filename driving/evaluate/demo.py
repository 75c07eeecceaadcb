"""The demo: the shipped liquid network drives a road it has never seen, then we look inside.

Drives a checkpoint (default ``checkpoints/cfc-ncp``: conv head + 19 NCP-wired CfC neurons)
closed loop through a short route in an unseen town, with the privileged expert driving the
same route as the reference, and writes into the output folder:

* ``demo.md``: what was driven, the metrics table (interventions, lateral error, smoothness)
  and the pictures;
* ``video/rollout.mp4``: the drive with VisualBackProp saliency, all 19 neuron traces, the
  wiring coloured by activity, predicted vs expert curvature and the map;
* ``video/summary.png``, ``video/wiring.png``, the bird's-eye trajectory plot, ``metrics.json``
  and the rollout in the episode format (a rerun replaces it).

It is the evaluation (:mod:`driving.evaluate.evaluation`) and visualisation
(:func:`driving.viz.visualize.visualize`) of one episode, wired together.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import sim
from driving.data.atomic import write_text_atomic
from driving.evaluate.evaluation import check_inputs, model_names, run_jobs
from driving.evaluate.jobs import EpisodeJob
from driving.evaluate.metrics import EpisodeMetrics
from driving.evaluate.report import EXPERT, build_document, write_metrics
from driving.evaluate.report_plots import write_report
from driving.evaluate.run_folder import rollout_root
from driving.evaluate.suites import EpisodeSpec
from driving.viz.visualize import VisualizeConfig, visualize
from liquid_drive.errors import LiquidDriveError
from sim.spec import ContractError

ROOT = Path(__file__).resolve().parents[2]
"""The project folder (the shipped checkpoint lives in ``checkpoints/``)."""
log = logging.getLogger(__name__)

TABLE_ROWS = (
    ("interventions", "{:d}", "interventions"),
    ("interventions per km", "{:.2f}", "interventions_per_km"),
    ("lateral error mean (m)", "{:.3f}", "lateral_error_mean_m"),
    ("lateral error max (m)", "{:.3f}", "lateral_error_max_m"),
    ("heading error mean (deg)", "{:.2f}", "heading_error_mean_deg"),
    ("steering rate RMS (1/(m s))", "{:.4f}", "steering_rate_rms"),
)
"""The rows of demo.md's metrics table: label, format, ``EpisodeMetrics`` field."""


class DemoError(LiquidDriveError, ValueError):
    """A bad demo request (unknown town or weather, missing checkpoint)."""


@dataclass(frozen=True)
class DemoConfig:
    """One closed-loop drive of a checkpoint in an unseen town, with video and report."""

    checkpoint: Path = ROOT / "checkpoints" / "cfc-ncp"
    """Checkpoint folder to drive (default: the shipped reference cfc-ncp)."""
    town: str = "snow"
    """Town to drive in (default: one held out from training)."""
    weather: str = "clear_noon"
    """Weather to drive in."""
    route_km: float = 0.5
    """Route length, km."""
    seed: int = 7001
    """Road seed within the town (7001-7003 are the evaluation suites' routes)."""
    out: Path = Path("outputs/demo")
    """Output folder."""
    video_width_px: int = 960
    """Video frame width, pixels."""
    video_height_px: int = 540
    """Video frame height, pixels."""

    def __post_init__(self) -> None:
        try:
            sim.split("builtin").check((self.town,), (self.weather,))
        except ContractError as e:
            raise DemoError(str(e)) from e
        if not self.route_km > 0:
            raise DemoError(f"route_km must be positive, got {self.route_km}")
        if not (Path(self.checkpoint) / "config.json").is_file():
            raise DemoError(f"{self.checkpoint} is not a checkpoint folder (no config.json)")


def _table(name: str, policy: EpisodeMetrics, expert: EpisodeMetrics) -> list[str]:
    table = ["| | " + name + " | expert |", "|---|---|---|"]
    for label, fmt, key in TABLE_ROWS:
        a, b = getattr(policy, key), getattr(expert, key)
        table.append(f"| {label} | {fmt.format(a)} | {fmt.format(b)} |")
    return table


def run_demo(cfg: DemoConfig) -> Path:
    """Drives the checkpoint and the expert over one route, renders the video, writes demo.md.

    Returns:
        The path of ``demo.md``.

    Raises:
        driving.model.checkpoint.CheckpointError: For a broken checkpoint (nothing written).
        driving.rollout.policies.CameraMismatchError: If the checkpoint was trained with
            another camera (nothing written).
        KeyboardInterrupt: If Ctrl-C stopped the drives.
    """
    start = time.perf_counter()
    out = cfg.out.resolve()
    spec = EpisodeSpec(
        suite="demo",
        condition="clean",
        town=cfg.town,
        weather=cfg.weather,
        route=0,
        seed=cfg.seed,
        route_length_m=cfg.route_km * 1000.0,
    )
    (name,) = model_names([cfg.checkpoint])
    checkpoint = str(Path(cfg.checkpoint).resolve())
    models = [{"name": EXPERT, "checkpoint": None}, {"name": name, "checkpoint": checkpoint}]
    policy_rollouts = rollout_root(out, name, spec)
    jobs = [
        EpisodeJob(model=EXPERT, checkpoint=None, spec=spec, sim="builtin"),
        EpisodeJob(
            model=name,
            checkpoint=checkpoint,
            spec=spec,
            sim="builtin",
            rollout_root=str(policy_rollouts),
        ),
    ]
    check_inputs(jobs)
    shutil.rmtree(policy_rollouts, ignore_errors=True)  # a rerun replaces the rollout
    outputs, report = run_jobs(jobs)
    if report.stopped or any(o is None for o in outputs):
        raise KeyboardInterrupt
    expert_output, policy_output = outputs
    drive_s = time.perf_counter() - start
    doc = build_document(
        [o.result for o in outputs], models=models, sim="builtin", mode="intervention", suite="demo"
    )
    write_metrics(doc, out / "metrics.json")
    write_report(doc, out, [o.trace for o in outputs])  # report.md + plots

    vis = visualize(
        VisualizeConfig(
            rollout=out / policy_output.result.rollout,
            checkpoint=Path(checkpoint),
            out=out / "video",
            width_px=cfg.video_width_px,
            height_px=cfg.video_height_px,
        )
    )
    policy_metrics = policy_output.result.metrics
    split = sim.split("builtin").describe(cfg.town, cfg.weather)
    draw_s = time.perf_counter() - start - drive_s
    text = "\n".join(
        [
            f"# liquid-drive demo: {name} in {cfg.town} / {cfg.weather}",
            "",
            f"The checkpoint `{cfg.checkpoint}` drove {policy_metrics.distance_km:.2f} km of road "
            f"seed {cfg.seed} in **{cfg.town}** under **{cfg.weather}** ({split}) "
            "closed loop at 20 Hz, from the 200x78 camera alone. A lane departure counts as an "
            "intervention: the car is put back on the lane centre and drives on. The privileged "
            "expert drove the same route as the reference.",
            "",
            *_table(name, policy_metrics, expert_output.result.metrics),
            "",
            "Video (camera with VisualBackProp saliency, neuron traces, wiring coloured by "
            "activity, predicted vs expert curvature, map): [video/rollout.mp4](video/rollout.mp4)",
            "",
            "![One frame of the video](video/frame.png)",
            "",
            "![The whole drive: command, neuron traces, PCA](video/summary.png)",
            "",
            "More tables and the bird's-eye trajectories: [report.md](report.md); per-step data "
            f"with every neuron's state: `{policy_rollouts.relative_to(out)}`.",
            "",
            f"Driving took {drive_s:.1f} s and drawing {draw_s:.1f} s.",
            "",
        ]
    )
    path = write_text_atomic(out / "demo.md", text)
    log.info("video: %s", vis.get("files", vis))
    return path
