"""driving/evaluate/compare.py and tools/compare.py: one table over seeds from several files."""

from pathlib import Path

import pytest

from driving.evaluate.compare import (
    CompareConfig,
    CompareError,
    collect_runs,
    compare,
    parse_renames,
    render_table,
    seed_table,
    split_name,
)
from driving.evaluate.report import EXPERT, EpisodeResult, build_document, write_metrics
from driving.evaluate.suites import EpisodeSpec
from tests.driving.evaluate.test_report import _metrics


def _evaluation(
    path: Path,
    models: dict[str, list[tuple[int, float]]],
    expert_lat: float = 0.01,
    mode="intervention",
    suite: str = "unseen-towns",
    root: str = "/runs",
) -> Path:
    """Writes a metrics.json: per model (checkpoint ``root/name``), (interventions, lateral
    offset) of its two episodes of ``suite``; the expert drives the same two episodes."""
    results = []
    for name, episodes in {EXPERT: [(0, expert_lat)] * 2, **models}.items():
        for route, (n_int, lat) in enumerate(episodes):
            spec = EpisodeSpec(suite, "clean", "desert", "clear_noon", route, 7001, 1000.0)
            results.append(EpisodeResult(name, spec, _metrics(interventions=n_int, lat=lat)))
    names = [{"name": EXPERT, "checkpoint": None}] + [
        {"name": n, "checkpoint": f"{root}/{n}"} for n in models
    ]
    doc = build_document(results, models=names, sim="builtin", mode=mode, suite=suite)
    path.mkdir(parents=True, exist_ok=True)
    return write_metrics(doc, path / "metrics.json")


def test_split_name_into_family_and_seed():
    assert split_name("cfc-ncp-s12") == ("cfc-ncp", 12)
    assert split_name("lstm") == ("lstm", None)
    assert split_name(EXPERT) == (EXPERT, None)
    assert split_name("gru_seed3", r"^(?P<family>.+)_seed(?P<seed>\d+)$") == ("gru", 3)


def test_seeds_are_pooled_per_seed_then_spread_across_seeds(tmp_path):
    a = _evaluation(tmp_path / "a", {"cfc-ncp-s0": [(1, 0.2), (1, 0.2)], "gru-s0": [(0, 0.1)] * 2})
    b = _evaluation(tmp_path / "b", {"cfc-ncp-s1": [(3, 0.4), (3, 0.4)]})
    table = seed_table(collect_runs([a, b.parent]), ["unseen-towns", "noise"])
    assert [e["model"] for e in table] == [EXPERT, "cfc-ncp", "gru"]
    cfc = table[1]
    assert cfc["seeds"] == [0, 1] and cfc["runs"] == {"0": "cfc-ncp-s0", "1": "cfc-ncp-s1"}
    ipk = cfc["suites"]["unseen-towns"]["interventions_per_km"]
    km = cfc["suites"]["unseen-towns"]["distance_km"] / 2  # per seed
    assert ipk["values"] == pytest.approx([2 / km, 6 / km])
    assert ipk["mean"] == pytest.approx(4 / km) and ipk["n"] == 2
    lat = cfc["suites"]["unseen-towns"]["lateral_error_rms_m"]
    assert (lat["min"], lat["max"]) == pytest.approx((0.2, 0.4))
    assert "noise" not in cfc["suites"]  # never driven: no numbers invented

    text = render_table(table, ["unseen-towns", "noise"])
    row = next(line for line in text.splitlines() if line.startswith("| cfc-ncp |"))
    assert f"**{4 / km:.2f}** ({2 / km:.2f}-{6 / km:.2f}) / 0.300 (0.200-0.400) | – |" in row
    gru = next(line for line in text.splitlines() if line.startswith("| gru | 0 |"))
    assert "**0.00** / 0.100 ± 0.000" in gru  # one seed: the spread across its episodes


def test_families_follow_the_policy_cores_then_appearance(tmp_path):
    runs = {"mine-s0": [(0, 0.1)] * 2, "lstm-s0": [(0, 0.1)] * 2, "cfc-ncp-s3": [(0, 0.1)] * 2}
    table = seed_table(collect_runs([_evaluation(tmp_path / "a", runs)]), ["unseen-towns"])
    assert [e["model"] for e in table] == [EXPERT, "cfc-ncp", "lstm", "mine"]


def test_clashing_or_incomparable_evaluations_are_refused_with_both_files(tmp_path):
    a = _evaluation(tmp_path / "a", {"cfc-ncp-s0": [(1, 0.2)] * 2})
    twice = _evaluation(tmp_path / "b", {"cfc-ncp-s0": [(1, 0.2)] * 2})
    with pytest.raises(CompareError, match=r"cfc-ncp-s0.*in both .*a/metrics.json and .*b/"):
        collect_runs([a, twice])
    other_expert = _evaluation(tmp_path / "c", {"lstm-s0": [(0, 0.1)] * 2}, expert_lat=0.3)
    with pytest.raises(CompareError, match=r"expert's results differ between .*a/.* and .*c/"):
        collect_runs([a, other_expert])
    other_mode = _evaluation(tmp_path / "d", {"lstm-s0": [(0, 0.1)] * 2}, mode="termination")
    with pytest.raises(CompareError, match=r"mode 'termination'.*not comparable"):
        collect_runs([a, other_mode])
    with pytest.raises(CompareError, match="no such metrics file"):
        collect_runs([tmp_path / "missing"])
    with pytest.raises(CompareError, match="groups"):
        compare(CompareConfig(metrics=(a,), out=tmp_path / "o", seed_pattern=r"(.+)-s(\d+)"))


def test_a_model_evaluated_suite_by_suite_is_one_run(tmp_path):
    towns = _evaluation(tmp_path / "a", {"cfc-ncp-s0": [(1, 0.2)] * 2})
    noise = _evaluation(tmp_path / "b", {"cfc-ncp-s0": [(0, 0.1)] * 2}, suite="noise")
    runs = collect_runs([towns, noise, towns.parent])  # a file named twice is read once
    assert [r.model for r in runs] == [EXPERT, "cfc-ncp-s0"]
    for run in runs:  # the expert's rows merge too
        assert sorted(run.rows) == ["noise", "unseen-towns"]
        assert [len(run.episodes[s]) for s in ("noise", "unseen-towns")] == [2, 2]
    table = seed_table(runs, ["unseen-towns", "noise"])
    cfc = table[1]["suites"]
    assert cfc["noise"]["interventions_per_km"]["mean"] == 0
    assert cfc["unseen-towns"]["interventions_per_km"]["mean"] > 0

    moved = _evaluation(tmp_path / "c", {"cfc-ncp-s0": [(0, 0.1)] * 2}, suite="noise", root="/x")
    with pytest.raises(CompareError, match=r"in both .*a/metrics.json and .*c/.*checkpoints"):
        collect_runs([towns, moved])


def test_families_named_after_a_recipe_show_as_their_model(tmp_path):
    runs = {"dpr-s0": [(1, 0.2)] * 2, "dpr-lstm-s0": [(0, 0.1)] * 2, "dpr-s1": [(0, 0.3)] * 2}
    a = _evaluation(tmp_path / "a", runs)
    renamed = collect_runs([a], renames=parse_renames(["dpr=cfc-ncp", " dpr-lstm = lstm "]))
    assert [(r.family, r.seed) for r in renamed] == [
        (EXPERT, None),
        ("cfc-ncp", 0),
        ("lstm", 0),
        ("cfc-ncp", 1),
    ]
    doc = compare(CompareConfig(metrics=(a,), out=tmp_path / "o", rename=("dpr=cfc-ncp",)))
    assert [e["model"] for e in doc["models"]] == [EXPERT, "cfc-ncp", "dpr-lstm"]
    # a checkpoint folder without a seed in its name joins its recipe's seeds, then the family
    shipped = _evaluation(tmp_path / "b", {"cfc-ncp": [(0, 0.5)] * 2}, suite="noise")
    both = collect_runs([a, shipped], renames=parse_renames(["cfc-ncp=dpr-s2", "dpr=cfc-ncp"]))
    assert [(r.family, r.seed, r.model) for r in both][-1] == ("cfc-ncp", 2, "cfc-ncp")
    # two families renamed into one that share a seed are refused, not mixed
    with pytest.raises(
        CompareError, match=r"'dpr-s0' and 'dpr-lstm-s0' \(family 'x', seed 0\) is in both"
    ):
        collect_runs([a], renames={"dpr": "x", "dpr-lstm": "x"})
    for bad, why in (
        ("dpr", "expected FROM=TO"),
        ("=lstm", "expected FROM=TO"),
        ("expert=x", "expert"),
    ):
        with pytest.raises(CompareError, match=why):
            parse_renames([bad])
    with pytest.raises(CompareError, match="renamed twice"):
        parse_renames(["dpr=a", "dpr=b"])
