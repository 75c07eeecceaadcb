r"""The NCP paper's analyses for evaluated checkpoints: noise curve, SSIM, Lipschitz, PCA.

Usage::

    python tools/evaluate.py --checkpoint A B --suite noise-variance --out outputs/nv
    python tools/evaluate.py --checkpoint A B --suite train-towns --out outputs/eval
    python tools/analyze.py --checkpoint A B --rollouts outputs/eval \
        --metrics outputs/eval outputs/nv --out outputs/analyses

``--rollouts`` is an evaluation's ``--out`` folder: its rollouts of ``--suite``/``--condition``
(default train-towns/clean) give each model's neuron activity (Lipschitz, PCA) and, from the
expert's rollout, the frames for the SSIM of clean vs noisy VisualBackProp maps at the noise
variances 0.1, 0.2, 0.3. ``--metrics`` (default: the folder's own ``metrics.json``) give the
interventions per km against noise variance; several training seeds (models named
``FAMILY-sSEED``) give a mean with the min-max across seeds. Writes ``analyses.json``,
``analyses.md`` and ``noise_curve.png``, ``ssim.png``, ``lipschitz.png``, ``pca.png`` into
``--out``, and the section into the evaluation's ``report.md``. Prints one line per model.
Definitions: ``driving/evaluate/analyses.py``.
"""

from __future__ import annotations

import sys
from typing import Any

from driving.evaluate.analyze import AnalyzeConfig, analyze
from tools._cli import run


def _show(doc: dict[str, Any]) -> str:
    return "\n".join(
        f"{m['name']}: PC1 {100 * m['pca']['pc1_share']:.1f} %, L_max median "
        f"{m['lipschitz']['median']:.4f} max {m['lipschitz']['max']:.4f}, SSIM "
        + ", ".join(f"var {v} {s['mean']:.3f}" for v, s in m["ssim"]["by_variance"].items())
        for m in doc["models"]
    )


def main(argv: list[str] | None = None) -> int:
    """Parses the command line into an ``AnalyzeConfig``, analyses; returns the exit status."""
    return run(AnalyzeConfig, analyze, description=__doc__, show=_show, argv=argv)


if __name__ == "__main__":
    sys.exit(main())
