"""The NCP paper's four analyses for evaluated checkpoints (``tools/analyze.py``).

Reads an evaluation's output folder (``tools/evaluate.py --out DIR``): the rollouts of each
model (``rollouts/<model>/<suite>/<condition>/``, models named from their checkpoint folders
as the evaluation names them) and ``metrics.json``. Per model it computes
(:mod:`driving.evaluate.analyses` has the definitions):

* ``lipschitz``: each neuron's maximum local Lipschitz constant over the rollouts of
  ``suite``/``condition`` (default ``train-towns``/``clean``);
* ``pca``: the share of the neuron-activity variance of the first principal component over
  the same steps;
* ``ssim``: SSIM between the VisualBackProp maps of clean frames and of their noisy copies at
  each noise variance. The frames are the expert's rollout of the same suite and condition by
  default, so every model sees the same frames and the same noise (``frames_from="own"``:
  each model's own rollout);
* and, from the ``metrics.json`` given (default: the folder's own), the interventions per km
  against noise variance (``noise-variance`` suite, ``train-towns`` as variance 0), grouped
  over training seeds.

Neuron activity is the rollout's recorded neuron states (``neuron_NNN`` columns). A stateless
``cnn`` core records none; its "neurons" are the hidden layer's units, replayed from the
rollout's frames (as the NCP paper's CNN row).

Writes ``analyses.json`` (``format`` ``"liquid-drive-analyses"``, ``version`` 1), the figures
``noise_curve.png``, ``ssim.png``, ``lipschitz.png``, ``pca.png`` and ``analyses.md`` into
``out``, and the same section into the evaluation's ``report.md`` when there is one. Every
input is checked before anything is written.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from driving.data import episodes as E
from driving.evaluate.analyses import (
    PAPER_PC1_SHARE,
    AnalysisError,
    explained_variance_ratio,
    max_lipschitz,
    noise_curve,
    saliency_stability,
)
from driving.evaluate.analysis_report import write_outputs
from driving.evaluate.evaluation import model_names
from driving.evaluate.report import EXPERT, ReportError, load_metrics
from driving.evaluate.run_folder import (
    METRICS_FILE,
    ROLLOUTS_DIR,
    RUN_FILE,
    checkpoint_digest,
    slug,
)
from driving.evaluate.suites import NOISE_VARIANCES
from driving.model.checkpoint import load_policy

log = logging.getLogger(__name__)

FORMAT = "liquid-drive-analyses"
VERSION = 1


@dataclass(frozen=True)
class AnalyzeConfig:
    """Which evaluated checkpoints to analyse, from which evaluation folder, into where."""

    checkpoint: tuple[Path, ...]
    """Checkpoint folders, as given to ``tools/evaluate.py`` (they name the rollouts)."""
    rollouts: Path
    """The evaluation's output folder (holding ``rollouts/`` and usually ``metrics.json``)."""
    out: Path = Path("outputs/analyses")
    """Output folder for analyses.json, analyses.md and the PNG figures."""
    metrics: tuple[Path, ...] = ()
    """``metrics.json`` files (or folders) for the noise curve, several training seeds
    allowed; none: the evaluation folder's own, when it has one."""
    suite: str = "train-towns"
    """Suite of the rollouts for the Lipschitz, PCA and SSIM analyses."""
    condition: str = "clean"
    """Condition of those rollouts."""
    ssim_frames: int = 200
    """Frames for the SSIM analysis, evenly spaced over the rollouts (the paper: 200)."""
    variances: tuple[float, ...] = NOISE_VARIANCES
    """Image-noise variances of the SSIM analysis, on [0, 1] images."""
    noise_seed: int = 0
    """Seed of the SSIM analysis's noise (the same noise for every model)."""
    frames_from: Literal["expert", "own"] = "expert"
    """SSIM frames: the expert's rollout (the same frames for every model) or each model's."""
    device: str = "cpu"
    """Torch device for the saliency and replay."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "checkpoint", tuple(Path(c) for c in self.checkpoint))
        object.__setattr__(self, "rollouts", Path(self.rollouts))
        object.__setattr__(self, "out", Path(self.out))
        if not self.checkpoint:
            raise AnalysisError("give at least one --checkpoint")
        for ck in self.checkpoint:
            if not ck.is_dir():
                raise AnalysisError(f"checkpoint {ck} is not a folder")
        if not (self.rollouts / ROLLOUTS_DIR).is_dir():
            raise AnalysisError(
                f"{self.rollouts} has no {ROLLOUTS_DIR}/ folder: give a tools/evaluate.py --out "
                "folder whose evaluation wrote rollouts"
            )
        if self.ssim_frames < 1:
            raise AnalysisError(f"ssim_frames must be >= 1, got {self.ssim_frames}")
        if not self.variances or any(not 0 < v <= 1 for v in self.variances):
            raise AnalysisError(f"variances must be in (0, 1], got {self.variances}")


def _rollout_episodes(cfg: AnalyzeConfig, model: str) -> list[E.Episode]:
    root = cfg.rollouts / ROLLOUTS_DIR / model / cfg.suite / slug(cfg.condition)
    if not (root / "meta").is_dir():
        raise AnalysisError(
            f"{root}: no rollout of model {model!r} on {cfg.suite}/{cfg.condition} (evaluate "
            f"with --suite {cfg.suite} and rollouts written)"
        )
    episodes = E.load_episodes(root)
    if not episodes:
        raise AnalysisError(f"{root}: no finished episode")
    for ep in episodes:
        if ep.meta.get("model", model) != model:
            raise AnalysisError(f"{ep.path}: driven by {ep.meta.get('model')!r}, not {model!r}")
    return episodes


def _check_digests(cfg: AnalyzeConfig, names: list[str]) -> None:
    """Each checkpoint must be the one the evaluation drove (its ``run.json`` digest)."""
    path = cfg.rollouts / RUN_FILE
    if not path.is_file():
        return
    try:
        digests = json.loads(path.read_text())["run"]["models"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise AnalysisError(f"{path}: unreadable run record ({e})") from e
    for name, ck in zip(names, cfg.checkpoint, strict=True):
        if name not in digests:
            raise AnalysisError(f"{path}: the evaluation drove no model named {name!r} ({ck})")
        if digests[name] != checkpoint_digest(ck):
            raise AnalysisError(
                f"checkpoint {ck} does not match the model {name!r} the evaluation in "
                f"{cfg.rollouts} drove (its weights or config differ)"
            )


def _activity(policy: Any, episodes: list[E.Episode]) -> tuple[list[np.ndarray], str]:
    """Per episode (T, N) neuron activity, and where it came from."""
    n = int(policy.state_size)
    if n == 0:  # stateless: the hidden layer's units, replayed
        out = []
        for ep in episodes:
            frames = torch.from_numpy(ep.frames(0, len(ep))).to(policy.device)
            with torch.no_grad():
                f = policy.encode(frames)  # (T, F)
                dt = torch.zeros(1, len(ep), device=policy.device)
                y, _ = policy.core(f[None], dt, None)  # (1, T, M)
            out.append(y[0].cpu().double().numpy())
        return out, "hidden layer, replayed from the rollout's frames"
    out = []
    for ep in episodes:
        cols = sorted(c for c in ep.columns if c.startswith(E.NEURON_PREFIX))
        if not cols:
            raise AnalysisError(
                f"{ep.path}: no neuron columns ({E.neuron_column(0)} ...): not a rollout of "
                "tools/evaluate.py, or driven through a runtime that records none"
            )
        if len(cols) != n:
            raise AnalysisError(
                f"{ep.path}: {len(cols)} neuron columns but the checkpoint's core has {n} "
                "neurons: was this rollout driven by another model?"
            )
        out.append(np.stack([ep.columns[E.neuron_column(i)] for i in range(n)], axis=1))
    return out, "neuron states recorded in the rollout"


def _ssim_frames(episodes: list[E.Episode], count: int) -> np.ndarray:
    """``count`` frames evenly spaced over the episodes (all of them if fewer): (F, H, W, 3)."""
    index = [(k, i) for k, ep in enumerate(episodes) for i in range(len(ep))]
    pick = np.unique(np.linspace(0, len(index) - 1, min(count, len(index))).round().astype(int))
    return np.stack([episodes[index[j][0]].frame(index[j][1]) for j in pick])


def _stats(x: np.ndarray) -> dict[str, float]:
    stats = {k: float(getattr(x, k)()) for k in ("mean", "std", "min", "max")}
    return {**stats, "median": float(np.median(x))}


def _metrics_docs(cfg: AnalyzeConfig) -> tuple[list[dict[str, Any]], list[str]]:
    paths = list(cfg.metrics) or [p for p in [cfg.rollouts / METRICS_FILE] if p.is_file()]
    paths = [p / METRICS_FILE if p.is_dir() else p for p in paths]
    try:
        return [load_metrics(p) for p in paths], [str(p) for p in paths]
    except ReportError as e:
        raise AnalysisError(str(e)) from e


def analyze(cfg: AnalyzeConfig) -> dict[str, Any]:
    """Computes the four analyses for every checkpoint and writes them (see the module doc).

    Returns:
        The ``analyses.json`` document.

    Raises:
        AnalysisError: For a missing rollout, a rollout without neuron columns, a checkpoint
            the evaluation did not drive, or unusable activity (nothing written).
        driving.model.checkpoint.CheckpointError: For a broken checkpoint (nothing written).
    """
    names = model_names(cfg.checkpoint)
    _check_digests(cfg, names)
    docs, sources = _metrics_docs(cfg)
    shared = _rollout_episodes(cfg, EXPERT) if cfg.frames_from == "expert" else None
    models = []
    for name, ck in zip(names, cfg.checkpoint, strict=True):
        policy = load_policy(ck, device=cfg.device)
        episodes = _rollout_episodes(cfg, name)
        activity, source = _activity(policy, episodes)
        lip = max_lipschitz(activity)
        shares = explained_variance_ratio(np.concatenate(activity))
        frames = _ssim_frames(shared or episodes, cfg.ssim_frames)
        if len(frames) < cfg.ssim_frames:
            log.warning("%s: %d frames for SSIM, not %d", name, len(frames), cfg.ssim_frames)
        sims = saliency_stability(policy, frames, cfg.variances, cfg.noise_seed)
        models.append(
            {
                "name": name,
                "checkpoint": str(ck),
                "core": policy.config.core,
                "activity": source,
                "episodes": len(episodes),
                "steps": int(sum(len(a) for a in activity)),
                "neurons": int(lip.size),
                "lipschitz": {"per_neuron": lip.tolist(), **_stats(lip)},
                "pca": {"pc1_share": float(shares[0]), "explained": shares[:10].tolist()},
                "ssim": {
                    "frames": len(frames),
                    "frames_from": cfg.frames_from,
                    "by_variance": {f"{v:g}": _stats(s) for v, s in sims.items()},
                },
            }
        )
        ssim_means = {f"{v:g}": round(float(s.mean()), 3) for v, s in sims.items()}
        log.info("%s: PC1 %.2f, L_max %.3f, SSIM %s", name, shares[0], lip.max(), ssim_means)
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "rollouts": str(cfg.rollouts),
        "suite": cfg.suite,
        "condition": cfg.condition,
        "noise_seed": cfg.noise_seed,
        "variances": list(cfg.variances),
        "metrics_sources": sources,
        "noise_curve": noise_curve(docs),
        "paper_pc1_share": PAPER_PC1_SHARE,
        "models": models,
    }
    write_outputs(doc, cfg.out, report=cfg.rollouts / "report.md")
    return doc
