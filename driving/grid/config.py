"""The grid's configuration: models x seeds (x recipes) x suites, and how its values parse.

Seeds are a spec (``"0-4"``, ``"0,2"``, ``"0-2,7"``); a recipe is a named set of
``TrainConfig`` overrides (``"lr-low:lr=0.001,steps=900"``; a bare ``"base"`` changes
nothing); ``--train`` overrides apply to every cell. An override is ``FIELD=VALUE`` with a
JSON value (``0.001``, ``true``, ``["a","b"]``) or else a plain string; a dotted field reaches
into the policy or augmentation config (``policy.label_scale=10``, ``augment.enabled=false``).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from driving.evaluate.runtime import Runtime
from driving.evaluate.suites import CARLA_SUITES, SUITES, SuiteName
from driving.model.policy import CORE_NAMES
from driving.rollout.runner import RunnerConfig
from driving.train.config import TrainConfig
from liquid_drive.errors import LiquidDriveError


class GridError(LiquidDriveError, ValueError):
    """A grid that cannot run as asked (the message names the bad value or folder)."""


FIXED_FIELDS = frozenset({"data", "out", "seed", "resume", "resume_allow_data_change"})
"""TrainConfig fields the grid sets itself: an override of them is refused."""
RECIPE_NAME = re.compile(r"^[A-Za-z0-9_.]+$")
"""A recipe name: letters, digits, ``_`` and ``.`` (it becomes part of the run folder name)."""
_OVERRIDE_SPLIT = re.compile(r",(?=\s*[A-Za-z_][\w.]*=)")
"""Commas between a recipe's overrides (a comma inside a JSON list is not followed by
``name=``)."""


@dataclass(frozen=True)
class GridConfig:
    """Train and evaluate a models x seeds (x recipes) grid (``python tools/grid.py --help``)."""

    data: tuple[Path, ...]
    """Episode dataset folder(s) every cell trains on (tools/record.py)."""
    out: Path = Path("outputs/grid")
    """Grid folder: runs/<cell>/ (training runs), results/<suite>/<cell>/ (evaluations) and
    results/<suite>/results.md (the compare table); rerunning resumes it."""
    models: tuple[str, ...] = ("cfc-ncp",)
    """Policy cores to train (--policy.core of tools/train.py), e.g. cfc-ncp lstm."""
    seeds: str = "0"
    """Training seeds: a range 0-4, a list 0,2, or both 0-2,7."""
    suites: tuple[SuiteName, ...] = ("all",)
    """Evaluation suites (builtin), each cell evaluated on each."""
    recipes: tuple[str, ...] = ()
    """Named training recipes NAME[:FIELD=VALUE,...] (none = one recipe, the defaults); the
    cell of model M, recipe R, seed S is M-R-sS (M-sS without recipes)."""
    train: tuple[str, ...] = ()
    """TrainConfig overrides for every cell, FIELD=VALUE (JSON values): batch_size=16."""
    steps: int | None = None
    """Training steps per cell (default: TrainConfig's)."""
    routes: int | None = None
    """Evaluation routes per town (default 3)."""
    route_km: float | None = None
    """Evaluation route length in km (default 2)."""
    route_set: Literal["test", "dev"] = "test"
    """Evaluation route seeds: test (reported) or dev (choosing a recipe)."""
    mode: Literal["intervention", "termination"] = "intervention"
    """Evaluation mode (tools/evaluate.py --mode)."""
    runtime: Runtime = "torch"
    """What drives the checkpoints in evaluation: torch, onnx or onnx-int8 (faster)."""
    rollouts: Literal["all", "first", "none"] = "none"
    """Rollouts each evaluation writes (tools/evaluate.py --rollouts)."""
    plots: bool = True
    """Write each evaluation's report.md and plots (metrics.json is always written)."""
    workers: int = 1
    """Cells (a training or an evaluation) run at once in worker processes (1 = here)."""
    ray: str | None = None
    """Ray cluster address to run the cells as Ray tasks ("local" starts a local instance)."""
    gpus_per_task: float = 1.0
    """GPUs a Ray task requests when the training device is cuda (--train device=cuda)."""
    progress: bool = True
    """Show a progress bar (only on a terminal)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", tuple(Path(d) for d in self.data))
        object.__setattr__(self, "out", Path(self.out))
        if not self.data:
            raise GridError("no --data given: pass one or more episode dataset folders")
        if not self.models:
            raise GridError("no --models given")
        unknown = [m for m in self.models if m not in CORE_NAMES]
        if unknown:
            raise GridError(f"unknown model {unknown[0]!r}; choose from {', '.join(CORE_NAMES)}")
        _unique(self.models, "model")
        parse_seeds(self.seeds)
        if not self.suites:
            raise GridError("no --suites given")
        for suite in self.suites:
            if suite not in SUITES or suite in CARLA_SUITES:
                builtin = [s for s in SUITES if s not in CARLA_SUITES]
                raise GridError(f"unknown suite {suite!r}; choose from {', '.join(builtin)}")
        _unique(self.suites, "suite")
        _unique([parse_recipe(r)[0] for r in self.recipes], "recipe")
        parse_overrides(self.train, "--train")
        if self.steps is not None and self.steps < 1:
            raise GridError(f"steps must be >= 1, got {self.steps}")
        if not self.gpus_per_task > 0:
            raise GridError(f"gpus_per_task must be > 0, got {self.gpus_per_task}")
        self.runner  # validates workers and ray  # noqa: B018

    @property
    def runner(self) -> RunnerConfig:
        """Where the cells run (each Ray task requests one CPU, and a GPU on cuda)."""
        return RunnerConfig(workers=self.workers, ray=self.ray, progress=self.progress)

    @property
    def seed_list(self) -> tuple[int, ...]:
        """The training seeds."""
        return parse_seeds(self.seeds)


def _unique(values: Sequence[str], what: str) -> None:
    twice = sorted({v for v in values if list(values).count(v) > 1})
    if twice:
        raise GridError(f"{what} {twice[0]!r} is given twice")


def parse_seeds(spec: str) -> tuple[int, ...]:
    """The seeds of a spec: ``"0-4"`` -> 0..4, ``"0,2"``, ``"0-2,7"``.

    Raises:
        GridError: For an empty or malformed spec, an empty range (``"3-1"``), or a seed
            given twice.
    """
    if not str(spec).strip():
        raise GridError("no seeds given: pass a range 0-4, a list 0,2, or both 0-2,7")
    seeds: list[int] = []
    for part in str(spec).split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if m is None:
            raise GridError(f"seeds {spec!r}: {part.strip()!r} is not a seed or a range a-b")
        first, last = int(m.group(1)), int(m.group(2) or m.group(1))
        if last < first:
            raise GridError(f"seeds {spec!r}: the range {first}-{last} is empty")
        seeds.extend(range(first, last + 1))
    _unique([str(s) for s in seeds], f"seeds {spec!r}: seed")
    return tuple(seeds)


def parse_overrides(items: Sequence[str], where: str) -> dict[str, Any]:
    """``FIELD=VALUE`` strings -> ``{field: value}`` (JSON values, else the plain string).

    Raises:
        GridError: For an item without ``=`` or a field given twice, naming ``where``.
    """
    overrides: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not name:
            raise GridError(f"{where}: {item!r} is not FIELD=VALUE")
        if name in overrides:
            raise GridError(f"{where}: {name} is given twice")
        try:
            overrides[name] = json.loads(text)
        except json.JSONDecodeError:
            overrides[name] = text
    return overrides


def parse_recipe(text: str) -> tuple[str, dict[str, Any]]:
    """``NAME[:FIELD=VALUE,...]`` -> the name and its overrides.

    Raises:
        GridError: For a bad name or override.
    """
    name, _, rest = text.partition(":")
    name = name.strip()
    if not RECIPE_NAME.match(name):
        raise GridError(
            f"recipe {text!r}: the name {name!r} may hold only letters, digits, _ and ."
        )
    items = [s for s in _OVERRIDE_SPLIT.split(rest) if s.strip()]
    return name, parse_overrides(items, f"recipe {name!r}")


def _replace(obj: Any, path: list[str], value: Any, where: str, full: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(obj)}
    if path[0] not in fields:
        raise GridError(
            f"{where}: {full!r} is not a field of {type(obj).__name__} "
            f"(fields: {', '.join(fields)})"
        )
    current = getattr(obj, path[0])
    if len(path) > 1:
        if not dataclasses.is_dataclass(current):
            raise GridError(f"{where}: {path[0]!r} of {full!r} has no fields")
        value = _replace(current, path[1:], value, where, full)
    elif isinstance(value, list):
        value = tuple(value)
    return dataclasses.replace(obj, **{path[0]: value})


def apply_overrides(cfg: TrainConfig, overrides: dict[str, Any], where: str) -> TrainConfig:
    """``cfg`` with the overrides applied (each checked by the configs' own validation).

    Raises:
        GridError: For an unknown field or one the grid sets itself (data, out, seed, ...).
        TrainConfigError, PolicyConfigError: For a value the configs refuse.
    """
    for name, value in overrides.items():
        if name in FIXED_FIELDS or name == "policy.core":
            raise GridError(
                f"{where}: {name} is set by the grid (--data, --out, --models, --seeds)"
            )
        try:
            cfg = _replace(cfg, name.split("."), value, where, name)
        except TypeError as e:
            raise GridError(f"{where}: {name}={value!r}: {e}") from e
    return cfg
