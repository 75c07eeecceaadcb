"""The policy runtime of an evaluation: eager torch, or the checkpoint's ONNX export.

``torch`` (the default) drives each checkpoint's :class:`~driving.model.policy.SteeringPolicy`
eagerly; ``torch-bf16`` does the same with the conv head's convolutions in bfloat16
(:meth:`perception.encoder.ConvHead.set_precision`, 1.3-1.6x faster per step here; the core and
the features stay fp32). ``onnx`` and ``onnx-int8`` drive its single-step ONNX graph
(:mod:`driving.model.export`; ``onnx-int8`` with the conv head quantised,
:mod:`driving.model.quantize`) through an onnxruntime session, the
:class:`~driving.model.export.OnnxPolicy` driver, which a worker keeps for every episode it
drives.

Each checkpoint is exported once per evaluation run, before any episode runs: into a
temporary folder first, checked against the torch policy exactly as ``tools/export.py`` checks
(:func:`driving.model.export.export`; an int8 graph on simulator frames), and only then, once
the run folder is ready, copied atomically to ``<out>/onnx/<model>-fp32.onnx`` (or ``-int8``),
where the workers (and Ray nodes, which see the output folder) read it. A missing onnxruntime or a
failed export or check is an error before anything is written. The expert's episodes never
load onnxruntime.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from driving.data.atomic import atomic_path
from driving.evaluate.jobs import EpisodeJob
from liquid_drive.errors import LiquidDriveError

logger = logging.getLogger(__name__)

Runtime = Literal["torch", "torch-bf16", "onnx", "onnx-int8"]
RUNTIMES: tuple[str, ...] = ("torch", "torch-bf16", "onnx", "onnx-int8")
"""The policy runtimes an evaluation offers."""
PRECISION = {"onnx": "fp32", "onnx-int8": "int8"}
"""The export precision of each ONNX runtime (the runtimes that drive an export)."""
HEAD_PRECISION = {"torch": "fp32", "torch-bf16": "bf16"}
"""The conv head's arithmetic of each eager runtime."""
ONNX_DIR = "onnx"
"""The run folder's subfolder holding the exported graphs."""
CHECK_STEPS = 20
"""Closed-loop steps the export is checked over against torch (``tools/export.py``'s default)."""


class RuntimeExportError(LiquidDriveError, RuntimeError):
    """A checkpoint that could not be exported (or checked) for an ONNX runtime."""


def onnx_file(out: Path | str, model: str, runtime: str) -> Path:
    """Where a model's exported graph lies in the run folder ``out``."""
    return Path(out) / ONNX_DIR / f"{model}-{PRECISION[runtime]}.onnx"


@dataclass
class StagedExports:
    """Exports checked in a temporary folder, waiting to be copied into the run folder."""

    files: dict[Path, Path] = field(default_factory=dict)
    """Temporary file -> its place in the run folder."""
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per model: what the export reported (precision, size, the check's differences)."""

    def install(self) -> None:
        """Copies every staged graph to its place in the run folder (atomically)."""
        for tmp, target in self.files.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(target) as part:
                shutil.copyfile(tmp, part)
            logger.info("exported policy for the evaluation: %s", target)


@contextlib.contextmanager
def staged_exports(jobs: Sequence[EpisodeJob], runtime: str) -> Iterator[StagedExports]:
    """Exports and checks each checkpoint the jobs drive from ONNX, into a temporary folder.

    Nothing is exported for runtime ``torch`` or for the expert's jobs. The folder is removed
    when the context ends, so :meth:`StagedExports.install` must be called inside it.

    Args:
        jobs: The evaluation's jobs (``job.policy_file`` names the graph a job drives from).
        runtime: One of :data:`RUNTIMES`.

    Raises:
        RuntimeExportError: Naming the checkpoint, if onnx/onnxruntime are missing or the
            export or its check against torch fails.
    """
    from driving.model.export import ExportConfig, export

    targets: dict[Path, tuple[str, str]] = {}
    for job in jobs:
        if job.policy_file is not None and job.checkpoint is not None:
            targets.setdefault(Path(job.policy_file), (job.model, job.checkpoint))
    with tempfile.TemporaryDirectory(prefix="ld-eval-onnx-") as tmp:
        staged = StagedExports()
        for i, (target, (model, checkpoint)) in enumerate(targets.items()):
            cfg = ExportConfig(
                checkpoint=Path(checkpoint),
                out=Path(tmp) / f"{i}.onnx",
                check_steps=CHECK_STEPS,
                precision=PRECISION[runtime],  # type: ignore[arg-type]
            )
            try:
                result = export(cfg)
            except LiquidDriveError as e:
                raise RuntimeExportError(
                    f"{checkpoint}: cannot drive it with --runtime {runtime}: {e}"
                ) from e
            logger.info(
                "%s: %s export checked over %d steps (max curvature difference %.3g 1/m)",
                model,
                runtime,
                CHECK_STEPS,
                result["max_abs_curvature_diff"],
            )
            staged.files[Path(result["out"])] = target
            staged.checks[model] = {
                k: result[k]
                for k in ("precision", "bytes", "check_steps", "max_abs_curvature_diff")
            }
        yield staged
