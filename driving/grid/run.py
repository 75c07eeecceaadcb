"""Run a grid: every training, then each cell's evaluations, then the compare table per suite.

Each training and each evaluation is one task of :mod:`driving.rollout.runner` (here, in
worker processes that die with this one, or one Ray task each with one CPU, and a GPU when
the training device is cuda); a task's results are its files, and the parent learns only
that it finished (and its wall and CPU time). An evaluation is handed out once its cell's
training finished, so K workers stay busy across cells. What is already on disk is skipped,
resumed or refused (:mod:`driving.grid.plan`) before anything runs, so the same command
continues a grid after a kill or Ctrl-C (which lets the cells in flight finish).

The compare table (:func:`driving.evaluate.compare.compare`) covers the cells whose
evaluation finished; cells still missing are named beside it, never mixed in silently.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from driving.evaluate.compare import CompareConfig, compare, render_table
from driving.evaluate.evaluation import evaluate
from driving.evaluate.run_folder import METRICS_FILE, RUN_FILE
from driving.evaluate.suites import BUILTIN_SUITES
from driving.grid.config import GridConfig, GridError
from driving.grid.plan import (
    DONE_FILE,
    RESULTS_DIR,
    TRAINER_OUTPUTS,
    EvalTask,
    GridPlan,
    TrainTask,
    plan_grid,
    read_done,
    write_done,
    write_grid_file,
)
from driving.rollout.runner import check_ray_address, import_ray, run_tasks
from driving.train.trainer import train
from liquid_drive.errors import LiquidDriveError

logger = logging.getLogger(__name__)


class GridCellError(GridError):
    """A cell's training or evaluation failed (the message names the cell)."""


class GridStoppedError(GridError):
    """A cell's evaluation was stopped by a signal before all its episodes ran."""


@dataclass(frozen=True)
class CellResult:
    """What a finished task tells the parent (its outputs are files)."""

    kind: Literal["train", "eval"]
    cell: str
    suite: str | None
    wall_s: float
    cpu_s: float
    """CPU time of the task's process (all its threads) while it ran, s."""
    resumed: bool = False


def _clear(run: Path) -> None:
    for name in TRAINER_OUTPUTS:
        path = run / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def _run_train(task: TrainTask) -> dict[str, Any]:
    if task.restart:
        _clear(Path(task.config.out))
    try:
        train(task.config)
    except LiquidDriveError as e:
        raise GridCellError(f"cell {task.cell}: training in {task.config.out}: {e}") from e
    return {"config": task.config.to_dict(), "step": task.config.steps}


def _run_eval(task: EvalTask) -> dict[str, Any]:
    try:
        summary = evaluate(task.config())
    except LiquidDriveError as e:
        raise GridCellError(f"cell {task.cell}: evaluation {task.suite} in {task.out}: {e}") from e
    if summary.finished < summary.planned or summary.metrics_path is None:
        raise GridStoppedError(
            f"cell {task.cell}: evaluation {task.suite} stopped after {summary.finished} of "
            f"{summary.planned} episodes"
        )
    run = json.loads((task.out / RUN_FILE).read_text())
    return {"suite": task.suite, "fingerprint": run["fingerprint"], "episodes": summary.planned}


class GridWorker:
    """Runs grid tasks in one process (built once per worker by the runner)."""

    def run(self, task: TrainTask | EvalTask, _context: Any) -> CellResult:
        """Trains or evaluates one cell, then writes its ``grid-done.json``."""
        wall, cpu = time.perf_counter(), time.process_time()
        folder = Path(task.config.out) if isinstance(task, TrainTask) else task.out
        (folder / DONE_FILE).unlink(missing_ok=True)  # a marker of an earlier run is void now
        if isinstance(task, TrainTask):
            kind, suite, folder, content = "train", None, Path(task.config.out), _run_train(task)
        else:
            kind, suite, folder, content = "eval", task.suite, task.out, _run_eval(task)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        write_done(folder, kind, cell=task.cell, wall_s=wall, cpu_s=cpu, **content)
        resumed = isinstance(task, TrainTask) and task.config.resume
        return CellResult(kind, task.cell, suite, wall, cpu, resumed)  # type: ignore[arg-type]

    def close(self) -> None:
        """Nothing is held between tasks."""


class _Schedule:
    """Hands out trainings, and each evaluation once its cell's training finished."""

    def __init__(self, plan: GridPlan) -> None:
        pending = {t.cell for t in plan.trains}
        self.trains = deque(plan.trains)
        self.ready = deque(t for t in plan.evals if t.cell not in pending)
        self.waiting: dict[str, list[EvalTask]] = {}
        for t in plan.evals:
            if t.cell in pending:
                self.waiting.setdefault(t.cell, []).append(t)
        self.results: list[CellResult] = []
        self.total = len(plan.trains) + len(plan.evals)

    def next_task(self, _in_flight: int) -> TrainTask | EvalTask | None:
        if self.ready:
            return self.ready.popleft()
        return self.trains.popleft() if self.trains else None

    def on_result(self, _task: Any, result: CellResult) -> float:
        self.results.append(result)
        if result.kind == "train":
            self.ready.extend(self.waiting.pop(result.cell, []))
        return 1.0

    def postfix(self) -> str:
        trains = sum(r.kind == "train" for r in self.results)
        return f"trained {trains}, evaluated {len(self.results) - trains}"


@dataclass(frozen=True)
class GridSummary:
    """What a grid run did, and its compare tables."""

    cells: int
    """Cells of the grid (models x recipes x seeds)."""
    tasks: int
    """Trainings and evaluations of the whole grid."""
    skipped: int
    """Tasks finished by an earlier run (not run again)."""
    results: tuple[CellResult, ...]
    """The tasks this run finished."""
    stopped: bool
    """A signal stopped the run before every task ran."""
    wall_s: float
    """Wall-clock time of this run's tasks, s."""
    tables: dict[str, str] = field(default_factory=dict)
    """Per suite, the compare table (markdown) over the evaluated cells."""
    compared: dict[str, Path] = field(default_factory=dict)
    """Per suite, its ``results.md``."""
    missing: dict[str, list[str]] = field(default_factory=dict)
    """Per suite, the cells without a finished evaluation (not in its table)."""

    @property
    def cpu_s(self) -> float:
        """CPU time of this run's tasks, s."""
        return sum(r.cpu_s for r in self.results)

    def format(self) -> str:
        """The summary lines and the tables, for the terminal."""
        resumed = sum(r.resumed for r in self.results)
        lines = [
            f"{self.cells} cells, {self.tasks} tasks: {len(self.results)} ran now"
            + (f" ({resumed} trainings resumed)" if resumed else "")
            + f", {self.skipped} finished before; {self.wall_s:.1f} s wall, "
            f"{self.cpu_s:.1f} s CPU in the tasks"
        ]
        if self.stopped:
            lines.append("stopped early: run the same command again to do the rest")
        for suite, table in self.tables.items():
            lines += ["", f"{suite} ({self.compared[suite]}):", table.rstrip("\n")]
        for suite, cells in self.missing.items():
            if cells:
                lines.append(f"{suite}: not evaluated yet (not in the table): {', '.join(cells)}")
        return "\n".join(lines)


def compare_grid(cfg: GridConfig, plan: GridPlan) -> tuple[dict, dict, dict]:
    """Writes each suite's compare table over the cells whose evaluation finished.

    Returns:
        Per suite: the table (markdown), its ``results.md``, and the cells left out.
    """
    tables: dict[str, str] = {}
    paths: dict[str, Path] = {}
    missing: dict[str, list[str]] = {}
    for suite in plan.suites:
        metrics, missing[suite] = [], []
        for cell in plan.cells:
            folder = plan.eval_folder(cell, suite)
            done = read_done(folder)
            if (
                done is not None
                and done.get("kind") == "eval"
                and (folder / METRICS_FILE).is_file()
            ):
                metrics.append(folder / METRICS_FILE)
            else:
                missing[suite].append(cell.name)
        if not metrics:
            continue
        out = cfg.out / RESULTS_DIR / suite
        columns = BUILTIN_SUITES if suite == "all" else (suite,)
        doc = compare(CompareConfig(metrics=tuple(metrics), out=out, suites=columns))
        tables[suite] = render_table(doc["models"], doc["suites"], doc["route_set"])
        paths[suite] = out / "results.md"
    return tables, paths, missing


def run_grid(cfg: GridConfig) -> GridSummary:
    """Trains and evaluates the grid (skipping what finished before), then compares.

    Returns:
        The :class:`GridSummary`.

    Raises:
        GridError: For a bad request (unknown model, empty seed range, ...) or a folder of
            other settings (nothing written); :class:`GridCellError` when a cell fails.
        TrainConfigError, RunFolderError: For half-finished folders that cannot be resumed
            as asked (nothing written).
        RayNotInstalledError, RayUnreachableError: For ``--ray`` without the extra, or an
            address where no cluster answers (nothing written).
        KeyboardInterrupt: On a second Ctrl-C (finished cells stay finished).
    """
    plan = plan_grid(cfg)
    runner = cfg.runner
    if cfg.ray is not None:
        import_ray()
        check_ray_address(cfg.ray)
        if any(c.train.device == "cuda" for c in plan.cells):
            runner = dataclasses.replace(runner, ray_gpus=cfg.gpus_per_task)
    cfg.out.mkdir(parents=True, exist_ok=True)
    write_grid_file(cfg, plan)
    schedule = _Schedule(plan)
    logger.info(
        "%d cells x %d suites: %d trainings and %d evaluations to run, %d finished before",
        len(plan.cells), len(plan.suites), len(plan.trains), len(plan.evals), len(plan.done),
    )  # fmt: skip
    start = time.perf_counter()
    try:
        report = run_tasks(
            schedule.next_task,
            GridWorker,
            runner,
            on_result=schedule.on_result,
            total=schedule.total,
            unit="task",
            postfix=schedule.postfix,
        )
        stopped = report.stopped
    except GridStoppedError as e:
        logger.warning("%s", e)
        stopped = True
    wall = time.perf_counter() - start
    tables, paths, missing = compare_grid(cfg, plan)
    return GridSummary(
        cells=len(plan.cells),
        tasks=len(plan.done) + schedule.total,
        skipped=len(plan.done),
        results=tuple(schedule.results),
        stopped=stopped,
        wall_s=wall,
        tables=tables,
        compared=paths,
        missing=missing,
    )
