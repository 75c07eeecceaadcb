"""An evaluation's output folder: the run record, one file per finished episode, resuming.

Layout of ``<out>/``::

    run.json                          what was asked (suite, mode, routes, the models with a
                                      content hash of each checkpoint, the planned episodes)
                                      and its fingerprint (a hash of all that)
    episodes/<model>/<suite>/<condition>/<town>_<route>.json
                                      one finished episode: fingerprint, result, trajectory;
                                      written atomically the moment it finishes
    rollouts/<model>/<suite>/<condition>/
                                      rollout datasets (episode format)
    onnx/<model>-fp32.onnx, -int8     the exported policies (--runtime onnx, onnx-int8)
    metrics.json, report.md, *.png    built from the finished episodes

Rerunning into a folder of the same run (same fingerprint) resumes it: finished episodes are
kept and only the missing ones are driven; rollout episodes that no finished episode refers
to (left by an interrupted episode) are removed first. A folder holding another run, or
outputs of an evaluation without a run record, is refused unless ``overwrite`` is given,
which deletes the earlier outputs and starts afresh. Nothing is written before that decision.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any

from driving.data import episodes as ep
from driving.data.atomic import write_json_atomic
from driving.evaluate.jobs import EpisodeJob, JobOutput
from driving.evaluate.runtime import ONNX_DIR
from driving.evaluate.suites import EpisodeSpec
from driving.model.checkpoint import CONFIG_FILE, MODEL_FILE, resolve_checkpoint
from liquid_drive.errors import LiquidDriveError

logger = logging.getLogger(__name__)

RUN_FORMAT = "liquid-drive-eval-run"
RUN_VERSION = 1
RUN_FILE = "run.json"
EPISODES_DIR = "episodes"
ROLLOUTS_DIR = "rollouts"
METRICS_FILE = "metrics.json"
OUTPUT_PATTERNS = (
    RUN_FILE,
    EPISODES_DIR,
    ROLLOUTS_DIR,
    METRICS_FILE,
    ONNX_DIR,
    "report.md",
    "bars_*.png",
    "trajectories_*.png",
)
"""What an evaluation writes into its folder (and ``overwrite`` deletes)."""


class RunFolderError(LiquidDriveError, ValueError):
    """The output folder holds another run (or unreadable run files)."""


def slug(text: str) -> str:
    """A file-name-safe form of a condition or town name (``"noise 0.1"`` -> ``noise-0.1``)."""
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-")


def rollout_root(out: Path, model: str, spec: EpisodeSpec) -> Path:
    """The rollout dataset of a model, suite and condition (one control rate per dataset)."""
    return Path(out) / ROLLOUTS_DIR / model / spec.suite / slug(spec.condition)


def episode_file(out: Path, model: str, spec: EpisodeSpec) -> Path:
    """Where the finished episode of a model and spec is kept."""
    name = f"{slug(spec.town)}_{spec.route}.json"
    return Path(out) / EPISODES_DIR / model / spec.suite / slug(spec.condition) / name


def checkpoint_digest(checkpoint: Path | str) -> str:
    """SHA-256 of a checkpoint's ``config.json`` and ``model.safetensors`` (its content)."""
    folder = resolve_checkpoint(checkpoint)
    h = hashlib.sha256()
    for name in (CONFIG_FILE, MODEL_FILE):
        h.update(name.encode() + b"\0")
        with open(folder / name, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def fingerprint(record: dict[str, Any]) -> str:
    """The hash identifying a run record (canonical JSON)."""
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        content = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunFolderError(f"{path}: unreadable ({e})") from e
    if not isinstance(content, dict):
        raise RunFolderError(f"{path}: not a JSON object")
    return content


class RunFolder:
    """The output folder of one evaluation run.

    Args:
        out: The folder.
        record: What identifies the run (plain JSON; its hash is the fingerprint).
        overwrite: Delete any earlier run's outputs and start afresh (instead of refusing
            another run or resuming the same one).
    """

    def __init__(self, out: Path, record: dict[str, Any], *, overwrite: bool = False) -> None:
        self.out, self.record, self.overwrite = Path(out), record, overwrite
        self.fingerprint = fingerprint(record)

    def _outputs(self) -> list[Path]:
        if not self.out.is_dir():
            return []
        return sorted({p for pattern in OUTPUT_PATTERNS for p in self.out.glob(pattern)})

    def _refusal(self) -> str | None:
        """Why the folder cannot be resumed (None: it is empty of ours, or the same run)."""
        run_file = self.out / RUN_FILE
        if run_file.is_file():
            stored = _read_json(run_file)
            if stored.get("fingerprint") == self.fingerprint:
                return None
            old = stored.get("run") if isinstance(stored.get("run"), dict) else {}
            keys = sorted(k for k in {*old, *self.record} if old.get(k) != self.record.get(k))
            return (
                f"{self.out} holds another evaluation run (it differs in: "
                f"{', '.join(keys) or 'its fingerprint'})"
            )
        if self._outputs():
            return f"{self.out} holds evaluation outputs without a run record ({RUN_FILE})"
        return None

    def check(self) -> None:
        """Refuses a folder of another run unless ``overwrite``; writes nothing.

        Raises:
            RunFolderError: Naming what differs and the way out.
        """
        if self.out.exists() and not self.out.is_dir():
            raise RunFolderError(f"{self.out} exists and is not a folder")
        reason = self._refusal()
        if reason is not None and not self.overwrite:
            raise RunFolderError(
                f"{reason}; give --overwrite to replace it, or another --out (rerunning the "
                "same command resumes a run)"
            )

    def prepare(self, jobs: list[EpisodeJob]) -> dict[Path, JobOutput]:
        """Makes the folder ready for ``jobs``: cleared, or resumed; writes ``run.json``.

        Returns:
            The outputs of the jobs that already finished in this run, by episode file.
        """
        self.check()
        if self.overwrite:
            for path in self._outputs():
                logger.info("overwrite: deleting %s", path)
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        finished = self._finished(jobs)
        self._prune_rollouts({o.result.rollout for o in finished.values() if o.result.rollout})
        content = {
            "format": RUN_FORMAT,
            "version": RUN_VERSION,
            "fingerprint": self.fingerprint,
            "created_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "run": self.record,
        }
        if not (self.out / RUN_FILE).is_file():
            write_json_atomic(self.out / RUN_FILE, content)
        return finished

    def episode_file(self, job: EpisodeJob) -> Path:
        """Where a job's finished episode is kept."""
        return episode_file(self.out, job.model, job.spec)

    def save(self, job: EpisodeJob, output: JobOutput) -> Path:
        """Keeps a finished episode (atomically)."""
        content = {"fingerprint": self.fingerprint, **output.to_dict()}
        return write_json_atomic(self.episode_file(job), content, indent=None)

    def _finished(self, jobs: list[EpisodeJob]) -> dict[Path, JobOutput]:
        finished = {}
        for job in jobs:
            path = self.episode_file(job)
            if not path.is_file():
                continue
            try:
                content = _read_json(path)
                if content.get("fingerprint") != self.fingerprint:
                    raise RunFolderError(f"{path}: of another run")
                output = JobOutput.from_dict(content)
            except (LiquidDriveError, KeyError, TypeError, ValueError) as e:
                logger.warning("%s: driving it again (%s)", path, e)
                path.unlink()
                continue
            finished[path] = output
        return finished

    def _prune_rollouts(self, keep: set[str]) -> None:
        """Removes rollout episodes no finished episode refers to (interrupted ones)."""
        root = self.out / ROLLOUTS_DIR
        if not root.is_dir():
            return
        for info in sorted(root.rglob(str(ep.INFO_PATH))):
            dataset = info.parent.parent
            for path in [*ep.list_episodes(dataset), *ep.list_partial_episodes(dataset)]:
                if str(path.relative_to(self.out)) not in keep:
                    logger.info("removing %s (its episode did not finish)", path)
                    shutil.rmtree(path)
