"""The statistics of tools/compare.py: intervals, gaps, paired tests, parameters, README."""

import json
from pathlib import Path

import pytest

from driving.evaluate.compare import CompareConfig, compare
from driving.evaluate.evidence import BEGIN, END, StatsConfig
from driving.evaluate.report import EXPERT, EpisodeResult, build_document, write_metrics
from driving.evaluate.stats import StatsError
from driving.evaluate.suites import EpisodeSpec
from tests.driving.evaluate.helpers import untrained_cfc
from tests.driving.evaluate.test_report import _metrics

FAST = StatsConfig(resamples=300)


def _run(folder: Path, name: str, unseen: int, train: int = 0, checkpoint: str | None = None):
    """One evaluated model: 2 routes of 1 km per suite; ``unseen`` interventions per route in
    unseen-towns, ``train`` in train-towns (the expert drives the same routes cleanly)."""
    results = []
    for model, n_unseen, n_train in ((EXPERT, 0, 0), (name, unseen, train)):
        for suite, n in (("train-towns", n_train), ("unseen-towns", n_unseen)):
            for route in range(2):
                spec = EpisodeSpec(suite, "clean", "t", "w", route, 7001 + route, 1000.0)
                results.append(EpisodeResult(model, spec, _metrics(interventions=n, lat=0.1)))
    names = [{"name": EXPERT, "checkpoint": None}, {"name": name, "checkpoint": checkpoint}]
    doc = build_document(results, models=names, sim="builtin", mode="intervention", suite="all")
    (folder / name).mkdir(parents=True)
    return write_metrics(doc, folder / name / "metrics.json")


def _grid(tmp_path, seeds, cfc, lstm, gru=None):
    files = []
    for s in seeds:
        files.append(_run(tmp_path, f"cfc-ncp-s{s}", cfc(s)))
        files.append(_run(tmp_path, f"lstm-s{s}", lstm(s), train=1))
        if gru is not None:
            files.append(_run(tmp_path, f"gru-s{s}", gru(s)))
    return files


def test_six_seeds_support_a_difference_and_an_equal_baseline_does_not(tmp_path):
    files = _grid(
        tmp_path, range(6), cfc=lambda s: 0, lstm=lambda s: 1 + s % 2, gru=lambda s: s % 2
    )
    cfg = CompareConfig(
        tuple(files),
        out=tmp_path / "out",
        suites=("train-towns", "unseen-towns", "speed"),
        stats=FAST,
    )
    doc = compare(cfg)
    tests = {(t["baseline"], t["metric"]): t for t in doc["statistics"]["tests"]}
    assert {t["suite"] for t in tests.values()} == {"unseen-towns"}  # not train-towns, not speed
    lstm = tests["lstm", "interventions_per_km"]
    assert lstm["test"] == "paired sign-flip" and lstm["seeds"] == 6
    assert lstm["p"] == pytest.approx(2 / 64) and lstm["p_holm"] == pytest.approx(4 / 64)
    assert lstm["difference"] == pytest.approx(-1.5, rel=1e-3) and not lstm["significant"]
    gru = tests["gru", "interventions_per_km"]
    # three seeds tie (difference 0), so only 2 of the 8 sign patterns of the rest reach it
    assert gru["p"] == pytest.approx(2 / 8) and not gru["significant"]
    text = (tmp_path / "out" / "results.md").read_text()
    assert (
        "No significant difference in interventions per km between cfc-ncp and any baseline" in text
    )
    # the gap: unseen minus train-towns of the same run (lstm: 1.5 - 1 per km)
    gap = doc["statistics"]["gaps"]["lstm"]["unseen-towns"]["interventions_per_km"]
    assert (
        gap["mean"] == pytest.approx(0.5, rel=1e-3) and gap["ci"][0] <= gap["mean"] <= gap["ci"][1]
    )
    # the cell: mean over seeds [interval]; the suite never driven reads "–"
    row = next(line for line in text.splitlines() if line.startswith("| lstm |"))
    assert "**1.50** [" in row and row.rstrip().endswith("| – |")
    assert next(line for line in text.splitlines() if line.startswith("| expert |"))


def test_one_baseline_with_six_better_seeds_is_significant_with_its_sentence(tmp_path):
    files = _grid(tmp_path, range(6), cfc=lambda s: 0, lstm=lambda s: 1 + s % 2)
    doc = compare(
        CompareConfig(tuple(files), out=tmp_path / "o", suites=("unseen-towns",), stats=FAST)
    )
    t = next(t for t in doc["statistics"]["tests"] if t["metric"] == "interventions_per_km")
    assert t["significant"] and t["p_holm"] == pytest.approx(2 / 64)
    assert doc["statistics"]["sentences"][0].startswith(
        "cfc-ncp has fewer interventions per km than lstm in unseen-towns (Holm-adjusted p = 0.031"
    )


def test_differing_seeds_take_the_unpaired_test(tmp_path):
    files = [_run(tmp_path, f"cfc-ncp-s{s}", 0) for s in (0, 1, 2)]
    files += [_run(tmp_path, f"lstm-s{s}", 2) for s in (3, 4, 5)]
    doc = compare(
        CompareConfig(tuple(files), out=tmp_path / "o", suites=("unseen-towns",), stats=FAST)
    )
    t = doc["statistics"]["tests"][0]
    assert t["test"] == "unpaired permutation" and t["p"] == pytest.approx(2 / 20)
    assert t["seeds"] == 6 and t["min_p"] is None


def test_parameter_columns_from_checkpoint_fallback_or_dash(tmp_path):
    ckpt = untrained_cfc(tmp_path / "ckpt")
    files = [_run(tmp_path, "cfc-ncp-s0", 0, checkpoint=str(ckpt))]
    files.append(_run(tmp_path, "lstm-s0", 0, checkpoint=str(tmp_path / "gone")))
    doc = compare(
        CompareConfig(tuple(files), out=tmp_path / "o", suites=("unseen-towns",), stats=FAST)
    )
    cfc, lstm = doc["models"][1], doc["models"][2]
    assert cfc["parameters"]["conv_head"] == 79_420 and cfc["parameters"]["core_connected"] == 1_160
    assert lstm["parameters"] is None
    text = (tmp_path / "o" / "results.md").read_text()
    assert "| cfc-ncp | 0 | 79,420 | 2,648 (1,160 synapses) |" in text
    assert "| lstm | 0 | - | - |" in text
    fallback = CompareConfig(
        tuple(files), out=tmp_path / "p", suites=("unseen-towns",), stats=FAST, parameters_from=ckpt
    )
    lstm = compare(fallback)["models"][2]["parameters"]
    assert lstm["conv_head"] == 79_420 and lstm["core"] > 10_000 and "core lstm" in lstm["source"]


def test_readme_block_is_replaced_and_bad_readme_refused_before_writing(tmp_path):
    files = [_run(tmp_path, f"cfc-ncp-s{s}", 0) for s in (0, 1)]
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n{BEGIN}\nold table\n{END}\nafter\n")
    compare(
        CompareConfig(
            tuple(files), out=tmp_path / "o", suites=("unseen-towns",), stats=FAST, readme=readme
        )
    )
    text = readme.read_text()
    assert "old table" not in text and "| cfc-ncp | 0, 1 |" in text
    assert text.startswith("# x\n\nbefore\n") and text.endswith(f"{END}\nafter\n")
    readme.write_text("no markers\n")
    with pytest.raises(StatsError, match=r"README\.md: needs one block"):
        compare(CompareConfig(tuple(files), out=tmp_path / "n", readme=readme))
    assert not (tmp_path / "n").exists()
    with pytest.raises(StatsError, match="confidence"):
        StatsConfig(confidence=1.5)


def test_results_json_is_strict_json_with_intervals(tmp_path):
    files = [_run(tmp_path, "cfc-ncp-s0", 1)]
    compare(CompareConfig(tuple(files), out=tmp_path / "o", stats=FAST))  # every suite, most absent
    doc = json.loads((tmp_path / "o" / "results.json").read_text())
    cell = doc["models"][1]["suites"]["unseen-towns"]["interventions_per_km"]
    assert cell["ci_method"] == "hierarchical" and cell["ci"] == pytest.approx([1.0, 1.0], rel=1e-3)
    assert doc["statistics"]["tests"] == []  # no baseline
