"""The grid's cells, what of them is already on disk, and the tasks that are left.

Layout of the grid folder ``out``::

    grid.json                        the request and its cells (rewritten by every run)
    runs/<cell>/                     a training run, as tools/train.py writes it (last/,
                                     best/, metrics.jsonl, tb/)
    runs/<cell>/grid-done.json       written atomically once the training finished
    results/<suite>/<cell>/          an evaluation, as tools/evaluate.py writes it (run.json,
                                     episodes/, metrics.json, report.md)
    results/<suite>/<cell>/grid-done.json
    results/<suite>/results.md       the compare table over the evaluated cells (and
                                     results.json, seeds.png: tools/compare.py's outputs)

A cell is named ``MODEL-sSEED`` (``MODEL-RECIPE-sSEED`` with recipes), the names
tools/compare.py groups by family. What a rerun does with each folder, decided before
anything is written:

* training with its ``grid-done.json`` (same settings): skipped; with other settings: refused;
* ``last/`` without ``grid-done.json`` (killed mid-run): resumed with the trainer's exact
  ``--resume`` (settings that differ from the stored run are refused);
* leftovers without ``last/`` (killed before its first save): cleared and trained afresh;
* evaluation with its ``grid-done.json`` of the same request and checkpoint: skipped; one
  without it: resumed by the evaluation itself (its ``run.json``); one of another request:
  refused; the evaluation of a training that is not finished yet is replaced once the
  training is, since it drove another checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from driving.data.atomic import write_json_atomic
from driving.evaluate.evaluation import EvalConfig, plan_jobs, run_record
from driving.evaluate.run_folder import OUTPUT_PATTERNS, RunFolder
from driving.grid.config import (
    GridConfig,
    GridError,
    apply_overrides,
    parse_overrides,
    parse_recipe,
)
from driving.model.checkpoint import (
    BEST_DIR,
    LAST_DIR,
    METRICS_FILE,
    TRAIN_STATE_FILE,
    read_checkpoint_config,
)
from driving.train.config import RESUME_FREE_FIELDS, TrainConfig
from driving.train.data import check_data_fits_policy, resolve_recovery_share
from driving.train.state import check_resumable

logger = logging.getLogger(__name__)

GRID_FORMAT = "liquid-drive-grid"
GRID_FILE = "grid.json"
RUNS_DIR = "runs"
RESULTS_DIR = "results"
DONE_FILE = "grid-done.json"
"""A finished cell's marker (training or evaluation), written atomically."""
DONE_FORMAT = "liquid-drive-grid-cell"
TRAINER_OUTPUTS = (BEST_DIR, LAST_DIR, METRICS_FILE, "tb")
"""What a training writes into its run folder (a restart clears it)."""
EVAL_SETTINGS = ("routes", "route_km", "route_set", "mode", "runtime", "rollouts", "plots")
"""GridConfig fields passed to every evaluation as they are."""


@dataclass(frozen=True)
class Cell:
    """One model, recipe and training seed: a training run and its evaluations."""

    name: str
    model: str
    recipe: str | None
    seed: int
    train: TrainConfig
    """Its training (``out`` is the run folder)."""

    @property
    def run(self) -> Path:
        """The training run folder."""
        return Path(self.train.out)


@dataclass(frozen=True)
class TrainTask:
    """Train one cell (resume it, or clear leftovers and start afresh)."""

    cell: str
    config: TrainConfig
    restart: bool = False
    """Clear what a run killed before its first save left, then train from step 0."""


@dataclass(frozen=True)
class EvalTask:
    """Evaluate one cell's best checkpoint on one suite."""

    cell: str
    suite: str
    checkpoint: Path
    out: Path
    settings: dict[str, Any]
    """EvalConfig fields (:data:`EVAL_SETTINGS`)."""
    overwrite: bool = False
    """Replace the outputs of an evaluation of an earlier checkpoint of this cell."""

    def config(self) -> EvalConfig:
        """The evaluation, one process (the grid runs the cells in parallel)."""
        return EvalConfig(
            checkpoint=(self.checkpoint,),
            suite=self.suite,  # type: ignore[arg-type]
            out=self.out,
            overwrite=self.overwrite,
            workers=1,
            progress=False,
            **self.settings,
        )


@dataclass
class GridPlan:
    """The cells and what is left of them."""

    cells: list[Cell]
    suites: tuple[str, ...]
    trains: list[TrainTask] = field(default_factory=list)
    """Trainings to run (new, resumed or restarted)."""
    evals: list[EvalTask] = field(default_factory=list)
    """Evaluations to run, each once its cell's training is finished."""
    done: list[tuple[str, str | None]] = field(default_factory=list)
    """(cell, suite) of what finished before (suite None: the training)."""

    def eval_folder(self, cell: Cell, suite: str) -> Path:
        """Where a cell's evaluation on a suite is written."""
        return cell.run.parent.parent / RESULTS_DIR / suite / cell.name


def cell_name(model: str, recipe: str | None, seed: int) -> str:
    """``MODEL-sSEED`` or ``MODEL-RECIPE-sSEED``."""
    return f"{model}-{recipe}-s{seed}" if recipe else f"{model}-s{seed}"


def _settings(config: dict[str, Any]) -> dict[str, Any]:
    """A training's settings that decide its result (not the folder, threads, device ...)."""
    return {k: v for k, v in config.items() if k not in RESUME_FREE_FIELDS | {"out"}}


def read_done(folder: Path) -> dict[str, Any] | None:
    """A folder's ``grid-done.json`` (None: none, or unreadable: the cell is not finished)."""
    path = folder / DONE_FILE
    try:
        content = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        logger.warning("%s: unreadable (%s); the cell counts as not finished", path, e)
        return None
    return content if isinstance(content, dict) and content.get("format") == DONE_FORMAT else None


def write_done(folder: Path, kind: Literal["train", "eval"], **content: Any) -> Path:
    """Marks a cell's training or evaluation finished (atomically)."""
    return write_json_atomic(
        folder / DONE_FILE,
        {
            "format": DONE_FORMAT,
            "version": 1,
            "kind": kind,
            "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **content,
        },
    )


def plan_cells(cfg: GridConfig) -> list[Cell]:
    """Every cell's training configuration, each checked (the data's frame size included).

    Raises:
        GridError: For a bad override or recipe.
        TrainConfigError, PolicyConfigError: For values the training refuses.
    """
    out = cfg.out.resolve()
    base = TrainConfig(data=tuple(d.resolve() for d in cfg.data), out=out)
    base = apply_overrides(base, parse_overrides(cfg.train, "--train"), "--train")
    if cfg.steps is not None:
        base = dataclasses.replace(base, steps=cfg.steps)
    recipes = [parse_recipe(r) for r in cfg.recipes] or [(None, {})]
    cells = []
    for recipe, overrides in recipes:
        recipe_base = apply_overrides(base, overrides, f"recipe {recipe!r}")
        recipe_base = resolve_recovery_share(recipe_base)  # as the trainer stores it
        for model in cfg.models:
            policy = dataclasses.replace(recipe_base.policy, core=model)
            for seed in cfg.seed_list:
                name = cell_name(model, recipe, seed)
                train = dataclasses.replace(
                    recipe_base, policy=policy, seed=seed, out=out / RUNS_DIR / name
                )
                cells.append(Cell(name, model, recipe, seed, train))
    for d in base.data:
        if not d.is_dir():
            raise GridError(f"--data {d}: not a folder")
    checked: set[str] = set()
    for cell in cells:  # the frame size and rate against each distinct preprocessing
        key = json.dumps(cell.train.policy.to_dict()["preprocess"], sort_keys=True)
        if key not in checked:
            check_data_fits_policy(cell.train)
            checked.add(key)
    return cells


def _train_task(cell: Cell) -> TrainTask | None:
    """What the cell's training needs (None: it finished)."""
    run, last = cell.run, cell.run / LAST_DIR
    done = read_done(run)
    resumable = (last / TRAIN_STATE_FILE).is_file()
    if done is not None and resumable:
        stored = _settings(done.get("config") or {})
        planned = _settings(cell.train.to_dict())
        if stored != planned:
            keys = sorted(
                k for k in stored.keys() | planned.keys() if stored.get(k) != planned.get(k)
            )
            raise GridError(
                f"{run} holds a finished training of other settings (they differ in: "
                f"{', '.join(keys)}): pass another --out, or delete {run}"
            )
        if read_checkpoint_config(last)["training"].get("step") == cell.train.steps:
            return None
    if resumable:
        config = dataclasses.replace(cell.train, resume=True)
        training = read_checkpoint_config(last)["training"]
        check_resumable(config, last, training)
        step = training.get("step")
        logger.info("%s: resuming its training at step %s", cell.name, step)
        return TrainTask(cell.name, config)
    leftovers = [run / n for n in TRAINER_OUTPUTS if (run / n).exists()]
    if leftovers:
        logger.warning(
            "%s: %s holds no resumable last/ (killed before its first save): training it afresh",
            cell.name, run,
        )  # fmt: skip
    return TrainTask(cell.name, cell.train, restart=bool(leftovers))


def _eval_task(
    plan: GridPlan, cell: Cell, suite: str, trained: bool, cfg: GridConfig
) -> EvalTask | None:
    """What the cell's evaluation on ``suite`` needs (None: it finished)."""
    out = plan.eval_folder(cell, suite)
    settings = {name: getattr(cfg, name) for name in EVAL_SETTINGS}
    task = EvalTask(cell.name, suite, cell.run / BEST_DIR, out, settings, overwrite=not trained)
    if not trained:
        if out.is_dir() and any(any(out.glob(p)) for p in OUTPUT_PATTERNS):
            logger.warning(
                "%s: %s evaluated an earlier checkpoint: it will be replaced", cell.name, out
            )
        return task
    eval_cfg = task.config()
    folder = RunFolder(out, run_record(eval_cfg, plan_jobs(eval_cfg)[0]))
    folder.check()  # another request in that folder is refused before anything is written
    done = read_done(out)
    finished = (
        done is not None
        and done.get("fingerprint") == folder.fingerprint
        and (out / "metrics.json").is_file()
    )
    return None if finished else task


def plan_grid(cfg: GridConfig) -> GridPlan:
    """The cells and the tasks left, every folder checked; writes nothing.

    Raises:
        GridError: For a bad request or a run folder of other settings.
        TrainConfigError: For a half-finished training whose stored settings differ.
        RunFolderError: For an evaluation folder of another request.
    """
    plan = GridPlan(plan_cells(cfg), tuple(cfg.suites))
    for cell in plan.cells:
        train = _train_task(cell)
        if train is None:
            plan.done.append((cell.name, None))
        else:
            plan.trains.append(train)
        for suite in plan.suites:
            task = _eval_task(plan, cell, suite, train is None, cfg)
            if task is None:
                plan.done.append((cell.name, suite))
            else:
                plan.evals.append(task)
    return plan


def write_grid_file(cfg: GridConfig, plan: GridPlan) -> Path:
    """``grid.json``: the request and its cells, for the record."""
    request = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    return write_json_atomic(
        cfg.out / GRID_FILE,
        {
            "format": GRID_FORMAT,
            "version": 1,
            "request": json.loads(json.dumps(request, default=str)),
            "cells": [
                {
                    "name": c.name,
                    "model": c.model,
                    "recipe": c.recipe,
                    "seed": c.seed,
                    "run": os.path.relpath(c.run, cfg.out.resolve()),
                }
                for c in plan.cells
            ],
        },
    )
