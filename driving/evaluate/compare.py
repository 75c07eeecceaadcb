"""Compare models across training seeds: one results table from several ``metrics.json``.

One ``tools/evaluate.py`` call evaluates a few checkpoints; a results table wants every model
over several training seeds. This module reads the ``metrics.json`` of several calls, splits
each evaluated model's name into a family and a training seed (``cfc-ncp-s1`` -> ``cfc-ncp``,
seed 1, with the default :data:`SEED_PATTERN`), and gives, per family and suite, the mean over
seeds and the min-max across seeds of:

- ``interventions_per_km``: each seed's pooled rate (its interventions / its km),
- ``lateral_error_rms_m`` and ``steering_rate_rms``: each seed's mean across its episodes.

With a single seed the spread shown is the sample standard deviation across that seed's
episodes instead. The expert is one row: every evaluation drives it again, and since the
simulator is deterministic its numbers must agree on every suite two files share (they are
checked), so files of different routes, simulators or modes are refused rather than mixed, and
so are files of different route sets: results on the development routes (``--route-set dev``)
never mix with test results, and their tables say "dev". A model may be evaluated suite by
suite (``tools/evaluate.py --suite S`` once per suite): its files merge into one run as long
as they name the same checkpoint and no suite twice.

``results.json`` (``format`` ``"liquid-drive-seeds"``, ``version`` 1)::

    {"format": "liquid-drive-seeds", "version": 1,
     "sources": ["checkpoints/results/.../metrics.json", ...],
     "route_set": "test",                              # or "dev"
     "suites": ["train-towns", ...],
     "models": [
       {"model": "cfc-ncp", "seeds": [0, 1, 2],
        "runs": {"0": "cfc-ncp-s0", ...},             # seed -> name in metrics.json
        "suites": {"unseen-towns": {"episodes": 54, "distance_km": 324.0,
                                    "interventions_per_km": {"mean", "std", "min", "max",
                                                             "n", "values", "episode_std"},
                                    "lateral_error_rms_m": {...}, "steering_rate_rms": {...},
                                    "junctions": {"all" | "left" | "right" | "straight":
                                                  {"n", "succeeded", "success_rate"},
                                                  "not_reached", "seed_success_rates"}}}}]}
                                    # junctions: only for a suite with junctions, pooled

Added by :mod:`driving.evaluate.evidence` (same version; readers ignore unknown keys): per
metric ``iqm``, ``ci`` [low, high] and ``ci_method``; per learned model ``parameters``
(``conv_head``, ``core``, ``core_connected``, ``readout``, ``total``, ``source``; null when
unknown); and ``"statistics": {"config", "gaps", "tests", "sentences"}``. Per suite of several
conditions, ``"conditions"`` (:mod:`driving.evaluate.conditions`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from driving.evaluate import evidence
from driving.evaluate.conditions import METRICS, render_conditions, suite_conditions
from driving.evaluate.evidence import StatsConfig
from driving.evaluate.junction_report import seed_junction_table, seed_junctions
from driving.evaluate.report import (
    EXPERT,
    TEST_ROUTES,
    ReportError,
    load_metrics,
    metric_stats,
    route_set_of,
)
from driving.evaluate.suites import BUILTIN_SUITES
from driving.model.policy import CORE_NAMES
from liquid_drive.errors import LiquidDriveError

FORMAT = "liquid-drive-seeds"
VERSION = 1
SEED_PATTERN = r"^(?P<family>.+)-s(?P<seed>\d+)$"
"""Default model-name pattern: the family, then ``-s`` and the training seed."""
SUITES: tuple[str, ...] = BUILTIN_SUITES
"""The builtin suites of the results table, in its column order."""


class CompareError(LiquidDriveError, ValueError):
    """Evaluations that cannot be put in one table (clashing names, differing experts)."""


@dataclass(frozen=True)
class CompareConfig:
    """Which evaluations to combine and where to write the comparison."""

    metrics: tuple[Path, ...]
    """``metrics.json`` files of ``tools/evaluate.py``, or the folders that hold them."""
    out: Path = Path("outputs/compare")
    """Output folder: ``results.md``, ``results.json`` and ``seeds.png``."""
    suites: tuple[str, ...] = SUITES
    """Suites to tabulate, in column order (a suite a model was not driven on shows "–")."""
    seed_pattern: str = SEED_PATTERN
    """Regular expression with groups ``family`` and ``seed`` applied to each model name; a
    name that does not match is its own family with no seed."""
    rename: tuple[str, ...] = ()
    """Renames, each ``FROM=TO``. A ``FROM`` that is a model's whole name renames the model
    before the seed pattern (``cfc-ncp=dpr-rv-a10-s0``: a checkpoint folder without a seed in
    its name joins its recipe's seeds); otherwise it renames a family after it
    (``dpr-rv-a10=cfc-ncp``: runs named after their recipe show as their model, and a core
    name gives the parameter counts)."""
    stats: StatsConfig = field(default_factory=StatsConfig)
    """Intervals and paired tests (``driving/evaluate/evidence.py``)."""
    readme: Path | None = None
    """Also replace the block between the results markers of this markdown file (the
    README's results table) with the table and what the tests support."""
    parameters_from: Path | None = None
    """A checkpoint whose policy config (its core set to the family) gives the parameter
    counts of runs whose own checkpoint folder is gone (same preset); None: "-"."""


@dataclass
class SeedRun:
    """One evaluated checkpoint: a family, its training seed and its suite summary rows."""

    family: str
    seed: int | None
    model: str
    """Name of the model in ``metrics.json``."""
    source: Path
    """The ``metrics.json`` it came from."""
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per suite, the summary row of group ``"suite"``."""
    route_set: str = TEST_ROUTES
    """The route set of its ``metrics.json`` (``test`` or ``dev``)."""
    checkpoint: str | None = None
    """The checkpoint path ``metrics.json`` records (None for the expert)."""
    episodes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Per suite, its episodes of ``metrics.json`` (``spec``, ``metrics``)."""


def split_name(name: str, pattern: str = SEED_PATTERN) -> tuple[str, int | None]:
    """The family and training seed of an evaluated model's name (seed None if no match)."""
    if name == EXPERT:
        return EXPERT, None
    m = re.match(pattern, name)
    if m is None:
        return name, None
    return m.group("family"), int(m.group("seed"))


def _metrics_path(path: Path) -> Path:
    return path / "metrics.json" if path.is_dir() else path


def _same_expert(a: SeedRun, b: SeedRun) -> bool:
    for suite in a.rows.keys() & b.rows.keys():
        ra, rb = a.rows[suite], b.rows[suite]
        if ra["n_episodes"] != rb["n_episodes"] or ra["interventions"] != rb["interventions"]:
            return False
        if not math.isclose(ra["distance_km"], rb["distance_km"], rel_tol=1e-9, abs_tol=1e-9):
            return False
        mean_a = ra["stats"]["lateral_error_rms_m"]["mean"]
        mean_b = rb["stats"]["lateral_error_rms_m"]["mean"]
        if not math.isclose(mean_a, mean_b, rel_tol=1e-6, abs_tol=1e-9):
            return False
    return True


def parse_renames(entries: Sequence[str]) -> dict[str, str]:
    """The renames (of whole model names or of families) of ``FROM=TO`` entries.

    Raises:
        CompareError: If an entry is not ``FROM=TO`` with both sides non-empty, names the
            expert, or renames one name twice.
    """
    renames: dict[str, str] = {}
    for entry in entries:
        old, sep, new = entry.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise CompareError(f"rename {entry!r}: expected FROM=TO, e.g. dpr-rv-a10=cfc-ncp")
        old, new = old.strip(), new.strip()
        if old in renames:
            raise CompareError(f"rename {entry!r}: {old!r} is renamed twice")
        if EXPERT in (old, new):
            raise CompareError(f"rename {entry!r}: the expert's row cannot be renamed")
        renames[old] = new
    return renames


def collect_runs(
    paths: Sequence[str | Path],
    pattern: str = SEED_PATTERN,
    renames: dict[str, str] | None = None,
) -> list[SeedRun]:
    """Reads several ``metrics.json`` and returns one :class:`SeedRun` per evaluated model.

    The expert appears once. Args are files or folders holding ``metrics.json``; a file
    named twice is read once.

    Raises:
        CompareError: If a file is unreadable, the files differ in simulator, mode or route
            set, one family and seed is evaluated twice on a suite (or from two
            checkpoints), or the expert's numbers differ between files.

    A model evaluated suite by suite (one file per suite, the same checkpoint) is one run
    with the suites of all its files. ``renames`` maps a model's whole name to the name the
    seed pattern reads, then a family to the name it shows as (:class:`CompareConfig`
    ``rename``); two runs renamed into one family must not share a seed on a suite (the same
    refusal).
    """
    renames = renames or {}
    if not paths:
        raise CompareError("no metrics.json given")
    runs: list[SeedRun] = []
    seen: dict[tuple[str, int | None], SeedRun] = {}
    setting: tuple[Path, str, str, str] | None = None
    read: set[Path] = set()
    for p in paths:
        path = _metrics_path(Path(p))
        if path.resolve() in read:  # the same file named twice (overlapping globs)
            continue
        read.add(path.resolve())
        try:
            doc = load_metrics(path)
        except ReportError as e:
            raise CompareError(str(e)) from e
        routes = route_set_of(doc)
        if setting is None:
            setting = (path, doc.get("sim"), doc.get("mode"), routes)
        elif (doc.get("sim"), doc.get("mode"), routes) != setting[1:]:
            raise CompareError(
                f"{path}: sim {doc.get('sim')!r}, mode {doc.get('mode')!r}, route set "
                f"{routes!r}, but {setting[0]} has sim {setting[1]!r}, mode {setting[2]!r}, "
                f"route set {setting[3]!r}: not comparable"
            )
        for model in doc["models"]:
            family, seed = split_name(renames.get(model["name"], model["name"]), pattern)
            family = renames.get(family, family)
            run = SeedRun(family, seed, model["name"], path, route_set=routes)
            run.checkpoint = model.get("checkpoint")
            for row in doc["summary"]:
                if row["model"] == model["name"] and row["group"] == "suite":
                    run.rows[row["suite"]] = row
            for ep in doc.get("episodes", []):
                if ep["model"] == model["name"]:
                    run.episodes.setdefault(ep["spec"]["suite"], []).append(ep)
            key = (family, seed)
            if key in seen:
                _merge(seen[key], run)
                continue
            seen[key] = run
            runs.append(run)
    return runs


def _merge(first: SeedRun, later: SeedRun) -> None:
    """Adds ``later``'s suites to ``first`` (the same model evaluated suite by suite).

    Raises:
        CompareError: If the expert's numbers differ on a suite both files drove, or a
            learned model has a suite in both files or comes from two checkpoints.
    """
    shared = sorted(first.rows.keys() & later.rows.keys())
    if first.family == EXPERT:
        if not _same_expert(first, later):
            raise CompareError(
                f"the expert's results differ between {first.source} and {later.source}: "
                "they were evaluated on other routes or another simulator version"
            )
    elif shared or first.checkpoint != later.checkpoint:
        why = (
            f"suite {', '.join(shared)}"
            if shared
            else f"checkpoints {first.checkpoint} and {later.checkpoint}"
        )
        names = repr(first.model)
        if later.model != first.model:  # two names made one family by a rename
            names += f" and {later.model!r}"
        raise CompareError(
            f"{names} (family {first.family!r}, seed {first.seed}) is in both "
            f"{first.source} and {later.source} ({why})"
        )
    for suite, row in later.rows.items():
        if suite not in first.rows:
            first.rows[suite] = row
            first.episodes[suite] = later.episodes.get(suite, [])


def _spread(values: list[float], episode_std: float | None) -> dict[str, Any]:
    return {
        **metric_stats(values),
        "values": [float(v) for v in values],
        "episode_std": episode_std,
    }


def seed_table(
    runs: Sequence[SeedRun], suites: Sequence[str] = SUITES, stats: StatsConfig | None = None
) -> list[dict[str, Any]]:
    """Per family, the statistics over seeds.

    Families come in the order expert, the policy cores (:data:`driving.model.policy.CORE_NAMES`),
    then any other family in order of appearance.

    Returns:
        One dict per family: ``model``, ``seeds``, ``runs`` (seed -> model name) and
        ``suites`` (suite -> ``episodes``, ``distance_km`` and, per name in :data:`METRICS`,
        ``mean``/``std``/``min``/``max``/``n``/``values`` over seeds and ``episode_std``, the spread
        across episodes when there is a single seed) and, for a suite with junctions,
        ``junctions`` (:func:`driving.evaluate.junction_report.seed_junctions`). Suites a family
        never drove are absent.
        With ``stats``, each metric also has ``iqm``, ``ci`` and ``ci_method`` (the bootstrap
        of :func:`driving.evaluate.evidence.cell`; a run without episodes counts as one).
    """
    seen = list(dict.fromkeys(r.family for r in runs if r.family != EXPERT))
    rank = {name: i for i, name in enumerate(CORE_NAMES)}
    families = [EXPERT, *sorted(seen, key=lambda f: rank.get(f, len(rank)))]  # stable sort
    table = []
    for family in families:
        members = sorted(
            (r for r in runs if r.family == family), key=lambda r: (r.seed is None, r.seed or 0)
        )
        if not members:
            continue
        entry: dict[str, Any] = {
            "model": family,
            "seeds": [r.seed for r in members if r.seed is not None],
            "runs": {str(r.seed): r.model for r in members},
            "suites": {},
        }
        for suite in suites:
            members_in = [r for r in members if suite in r.rows]
            rows = [r.rows[suite] for r in members_in]
            if not rows:
                continue
            cell: dict[str, Any] = {
                "episodes": int(sum(row["n_episodes"] for row in rows)),
                "distance_km": float(sum(row["distance_km"] for row in rows)),
            }
            for name in METRICS:
                if name == "interventions_per_km":
                    values = [row["interventions_per_km"] for row in rows]
                    std = None
                else:
                    values = [row["stats"][name]["mean"] for row in rows]
                    std = rows[0]["stats"][name]["std"] if len(rows) == 1 else None
                cell[name] = _spread([v for v in values if v is not None], std)
                if stats is not None and cell[name]["n"]:
                    per_seed = [_records(r, suite) for r in members_in]
                    boot = evidence.cell(per_seed, name, stats)
                    cell[name].update(iqm=boot["iqm"], ci=boot["ci"], ci_method=boot["method"])
            junctions = seed_junctions(rows)
            if junctions is not None:
                cell["junctions"] = junctions
            entry["suites"][suite] = cell
        table.append(entry)
    return table


def _records(run: SeedRun, suite: str) -> list[dict[str, Any]]:
    """A run's episodes of a suite; one stand-in episode of its summary values if it has none."""
    if run.episodes.get(suite):
        return run.episodes[suite]
    row = run.rows[suite]
    stand_in = {m: row["stats"].get(m, {}).get("mean") for m in METRICS}
    ipk = row["interventions_per_km"]
    stand_in.update(interventions_per_km=ipk, interventions=ipk, distance_km=1.0)
    return [{"spec": {"suite": suite}, "metrics": stand_in}]


def _cell(stats: dict[str, Any], digits: int, bold: bool = False) -> str:
    mean = f"{stats['mean']:.{digits}f}"
    mean = f"**{mean}**" if bold else mean
    if "ci" in stats:
        return f"{mean} [{stats['ci'][0]:.{digits}f}, {stats['ci'][1]:.{digits}f}]"
    if stats["n"] > 1:
        return f"{mean} ({stats['min']:.{digits}f}-{stats['max']:.{digits}f})"
    if stats["episode_std"] is not None:
        return f"{mean} ± {stats['episode_std']:.{digits}f}"
    return mean


def _headers(suites: Sequence[str], route_set: str) -> list[str]:
    return [s if route_set == TEST_ROUTES else f"{s} ({route_set})" for s in suites]


def render_table(
    table: Sequence[dict[str, Any]], suites: Sequence[str] = SUITES, route_set: str = TEST_ROUTES
) -> str:
    """The markdown results table: interventions per km / lateral error RMS in m per suite.

    A cell with a bootstrap interval (``seed_table(..., stats=...)``) reads ``mean [low,
    high]``; without, several seeds read ``mean (min-max)`` over seeds and one seed's lateral
    error ``mean ± std`` across its episodes. Entries with ``parameters`` add the conv head and
    core parameter columns. Off the test routes every suite's header names the route set
    (``train-towns (dev)``).
    """
    params = any("parameters" in e for e in table)
    lines = [
        "| model | seeds | "
        + ("conv head | core | " if params else "")
        + " | ".join(_headers(suites, route_set))
        + " |",
        "|---|---|" + ("---|---|" if params else "") + "---|" * len(suites),
    ]
    for entry in table:
        cells = []
        for suite in suites:
            cell = entry["suites"].get(suite)
            if cell is None:
                cells.append("–")
                continue
            ipk = _cell(cell["interventions_per_km"], 2, bold=True)
            cells.append(f"{ipk} / {_cell(cell['lateral_error_rms_m'], 3)}")
        seeds = ", ".join(str(s) for s in entry["seeds"]) or "-"
        if params:
            cells = evidence.parameter_cells(entry.get("parameters")) + cells
        lines.append(f"| {entry['model']} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render_markdown(
    table: Sequence[dict[str, Any]],
    sources: Sequence[Path],
    suites: Sequence[str] = SUITES,
    route_set: str = TEST_ROUTES,
    analysis: dict[str, Any] | None = None,
    conditions: dict[str, dict[str, Any]] | None = None,
) -> str:
    """``results.md``: how to read it, the table, the steering-rate table and the sources.

    With ``analysis`` (``results.json``'s ``statistics``), the intervals are explained and
    the generalisation gaps and paired tests follow the tables. With ``conditions``
    (``results.json``'s ``conditions``), each suite of several conditions gets its own table
    (:mod:`driving.evaluate.conditions`).
    """
    dev = route_set != TEST_ROUTES
    how = (
        evidence.HOW_TO_READ
        if analysis is not None
        else "Each cell: **interventions per km** / lateral error RMS in m. With several "
        "training seeds: the mean over seeds (min-max across seeds); with one seed: ± is the "
        "standard deviation across its episodes."
    )
    lines = [
        "# Results over training seeds" + (f" ({route_set} routes)" if dev else ""),
        "",
        *(["**Development routes: for choosing a recipe, not the test set.**", ""] if dev else []),
        how + " Interventions per km are pooled per seed (its "
        "interventions / its km); the lateral error is each seed's mean across its episodes.",
        "",
        render_table(table, suites, route_set),
        "Steering-rate RMS in 1/(m·s) (smoothness of the command; lower is smoother):",
        "",
        "| model | " + " | ".join(_headers(suites, route_set)) + " |",
        "|---|" + "---|" * len(suites),
    ]
    for entry in table:
        cells = [
            _cell(entry["suites"][s]["steering_rate_rms"], 3) if s in entry["suites"] else "–"
            for s in suites
        ]
        lines.append(f"| {entry['model']} | " + " | ".join(cells) + " |")
    if conditions:
        lines += render_conditions(conditions, f" ({route_set} routes)" if dev else "")
    lines += seed_junction_table(table, suites, _headers(suites, route_set))
    if analysis is not None:
        lines += ["", evidence.render_section(analysis, suites)]
    lines += ["", "Sources:", ""] + [f"- `{p}`" for p in sources] + [""]
    lines += ["![interventions and lateral error over seeds](seeds.png)", ""]
    return "\n".join(lines)


def plot_seeds(
    table: Sequence[dict[str, Any]], path: str | Path, suites: Sequence[str] = SUITES
) -> Path:
    """Bars of the mean over seeds with one dot per seed, per suite.

    Whiskers: the bootstrap interval where the table has one (``ci``), else the min-max.
    """
    from matplotlib.figure import Figure

    panels = (
        ("interventions_per_km", "interventions per km"),
        ("lateral_error_rms_m", "lateral error RMS (m)"),
    )
    models = [e["model"] for e in table]
    fig = Figure(figsize=(max(7.0, 1.2 + 0.45 * len(suites) * len(models)), 6.4))
    axes = fig.subplots(len(panels), 1, sharex=True)
    width = 0.8 / max(len(models), 1)
    x = np.arange(len(suites))
    for ax, (metric, label) in zip(axes, panels, strict=True):
        for j, entry in enumerate(table):
            offset = x + (j - (len(models) - 1) / 2) * width
            means = np.full(len(suites), np.nan)
            lo = np.zeros(len(suites))
            hi = np.zeros(len(suites))
            for i, suite in enumerate(suites):
                cell = entry["suites"].get(suite)
                if cell is None:
                    continue
                st = cell[metric]
                means[i] = st["mean"]
                low, high = st.get("ci", (st["min"], st["max"]))
                lo[i], hi[i] = st["mean"] - low, high - st["mean"]
                ax.plot(np.full(st["n"], offset[i]), st["values"], "k.", markersize=3, zorder=3)
            color = "0.55" if entry["model"] == EXPERT else None
            ax.bar(
                offset, means, width, yerr=[lo, hi], capsize=2, label=entry["model"], color=color
            )
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
        ax.grid(axis="y", alpha=0.3)
    axes[-1].set_xticks(x, suites)
    axes[0].legend(fontsize="small", ncols=min(len(models), 4))
    has_ci = any("ci" in c[m] for e in table for c in e["suites"].values() for m, _ in panels)
    whiskers = "95 % bootstrap interval" if has_ci else "min-max"
    axes[0].set_title(f"mean over training seeds; whiskers: {whiskers}; dots: seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return Path(path)


def compare(cfg: CompareConfig) -> dict[str, Any]:
    """Combines the evaluations of ``cfg.metrics`` and writes ``results.md``, ``.json``, PNG.

    Returns:
        The ``results.json`` document.
    """
    try:
        groups = set(re.compile(cfg.seed_pattern).groupindex)
    except re.error as e:
        raise CompareError(
            f"seed pattern {cfg.seed_pattern!r}: not a regular expression ({e})"
        ) from e
    if not {"family", "seed"} <= groups:
        raise CompareError(
            f"seed pattern {cfg.seed_pattern!r} needs the groups (?P<family>...) and (?P<seed>...)"
        )
    renames = parse_renames(cfg.rename)
    readme = evidence.read_readme(cfg.readme) if cfg.readme is not None else None
    runs = collect_runs(cfg.metrics, cfg.seed_pattern, renames)
    table = seed_table(runs, cfg.suites, cfg.stats)
    for entry in table:
        if entry["model"] != EXPERT:
            members = [r for r in runs if r.family == entry["model"]]
            entry["parameters"] = evidence.family_parameters(
                [r.checkpoint for r in members], entry["model"], cfg.parameters_from
            )
    grouped: dict[str, dict[int | None, dict[str, list[dict[str, Any]]]]] = {}
    for entry in table[1:]:  # the learned families, in table order
        for r in (r for r in runs if r.family == entry["model"]):
            grouped.setdefault(r.family, {})[r.seed] = {s: _records(r, s) for s in r.rows}
    analysis = evidence.analyse(grouped, cfg.suites, cfg.stats)
    conditions = {}
    for suite in cfg.suites:
        per_seed = {}  # family -> each seed's episodes of the suite, in table order
        for entry in table:
            kept = [r.episodes.get(suite) for r in runs if r.family == entry["model"]]
            if any(kept):
                per_seed[entry["model"]] = [e for e in kept if e]
        found = suite_conditions(per_seed, cfg.stats)
        if found is not None:
            conditions[suite] = found
    sources = [_metrics_path(Path(p)) for p in cfg.metrics]
    route_set = runs[0].route_set if runs else TEST_ROUTES
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "sources": [str(p) for p in sources],
        "route_set": route_set,
        "suites": list(cfg.suites),
        "models": table,
        "statistics": analysis,
        "conditions": conditions,
    }
    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / "results.json").write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")
    md = render_markdown(table, sources, cfg.suites, route_set, analysis, conditions)
    (cfg.out / "results.md").write_text(md)
    plot_seeds(table, cfg.out / "seeds.png", cfg.suites)
    if readme is not None:
        block = render_table(table, cfg.suites, route_set) + "\n" + evidence.reading(analysis)
        evidence.write_readme(cfg.readme, readme, block)
    return doc
