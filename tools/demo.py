r"""Watch the shipped liquid network drive a road it has never seen, then look inside it.

Usage::

    python tools/demo.py                                   # -> outputs/demo/
    python tools/demo.py --town desert --weather fog --route-km 1.0 --out outputs/demo-fog

Drives the reference checkpoint (``checkpoints/cfc-ncp``: conv head + 19 NCP-wired CfC
neurons) closed loop through a short route in an unseen town, with the privileged expert
driving the same route as the reference, and writes into ``--out``:

* ``demo.md``: what was driven, the metrics table (interventions, lateral error, smoothness)
  and the pictures;
* ``video/rollout.mp4``: the drive with VisualBackProp saliency, all 19 neuron traces, the
  wiring coloured by activity, predicted vs expert curvature and the map;
* ``video/summary.png``, ``video/wiring.png``, the bird's-eye trajectory plot, ``metrics.json``
  and the rollout in the episode format.

It is the evaluation (``tools/evaluate.py``) and visualisation (``tools/visualize.py``) of one
episode, wired together.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from liquid_drive.errors import LiquidDriveError

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tyro

from driving.evaluate.report import EXPERT, build_document, write_metrics, write_report
from driving.evaluate.suites import EpisodeSpec
from driving.viz.visualize import VisualizeConfig, visualize
from tools.evaluate import EpisodeJob, model_names, rollout_root, run_jobs

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("demo")


class DemoError(LiquidDriveError, ValueError):
    """A bad demo request (unknown town or weather, missing checkpoint)."""


@dataclass
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
        from sim.builtin import towns, weather

        if self.town not in towns.TOWNS:
            raise DemoError(f"unknown town {self.town!r}; choose one of {', '.join(towns.TOWNS)}")
        if self.weather not in weather.WEATHERS:
            names = ", ".join(weather.WEATHERS)
            raise DemoError(f"unknown weather {self.weather!r}; choose one of {names}")
        if not self.route_km > 0:
            raise DemoError(f"route_km must be positive, got {self.route_km}")
        if not (Path(self.checkpoint) / "config.json").is_file():
            raise DemoError(f"{self.checkpoint} is not a checkpoint folder (no config.json)")


def _split_name(town: str, weather: str) -> str:
    from sim.builtin import towns
    from sim.builtin import weather as weathers

    t = "unseen" if town in towns.UNSEEN_TOWNS else "training"
    w = "unseen" if weather in weathers.UNSEEN_WEATHERS else "training"
    return f"{t} town, {w} weather"


def run_demo(cfg: DemoConfig) -> Path:
    """Drives the checkpoint and the expert over one route, renders the video, writes demo.md.

    Returns:
        The path of ``demo.md``.
    """
    start = time.perf_counter()
    out = cfg.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
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
    outputs = run_jobs(jobs)
    drive_s = time.perf_counter() - start
    doc = build_document(
        [o.result for o in outputs], models=models, sim="builtin", mode="intervention", suite="demo"
    )
    write_metrics(doc, out / "metrics.json")
    write_report(doc, out, [o.trace for o in outputs])  # report.md + plots

    episode = sorted((policy_rollouts / "episodes").iterdir())[-1]
    vis = visualize(
        VisualizeConfig(
            rollout=episode,
            checkpoint=Path(checkpoint),
            out=out / "video",
            width_px=cfg.video_width_px,
            height_px=cfg.video_height_px,
        )
    )
    policy_metrics = outputs[1].result.metrics
    expert_metrics = outputs[0].result.metrics
    rows = [
        ("interventions", "{:d}", "interventions"),
        ("interventions per km", "{:.2f}", "interventions_per_km"),
        ("lateral error mean (m)", "{:.3f}", "lateral_error_mean_m"),
        ("lateral error max (m)", "{:.3f}", "lateral_error_max_m"),
        ("heading error mean (deg)", "{:.2f}", "heading_error_mean_deg"),
        ("steering rate RMS (1/(m s))", "{:.4f}", "steering_rate_rms"),
    ]
    table = ["| | " + name + " | expert |", "|---|---|---|"]
    for label, fmt, key in rows:
        a, b = getattr(policy_metrics, key), getattr(expert_metrics, key)
        table.append(f"| {label} | {fmt.format(a)} | {fmt.format(b)} |")
    split = _split_name(cfg.town, cfg.weather)
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
            *table,
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
    path = out / "demo.md"
    path.write_text(text)
    log.info("video: %s", vis.get("files", vis))
    return path


def main(argv: list[str] | None = None) -> Path:
    """Command-line entry point."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        cfg = tyro.cli(DemoConfig, args=argv, description=__doc__)
        path = run_demo(cfg)
    except DemoError as e:
        raise SystemExit(f"error: {e}") from e
    print(path.read_text())
    print(json.dumps({"demo": str(path)}))
    return path


if __name__ == "__main__":
    main()
