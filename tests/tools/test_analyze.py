"""tools/analyze.py end to end on a synthetic evaluation folder, and its refusals."""

import json

import numpy as np
import pytest
import torch

from driving.data import episodes as E
from driving.evaluate.analysis_report import BEGIN
from driving.evaluate.report import FORMAT, VERSION
from driving.evaluate.run_folder import checkpoint_digest
from driving.model.checkpoint import save_checkpoint
from driving.model.policy import PolicyConfig, SteeringPolicy
from tools.analyze import main

STEPS = 12


def _rollout(root, model, neurons, seed=0, episodes=2):
    rng = np.random.default_rng(seed)
    E.create_or_open_dataset(
        root, E.DatasetInfo("builtin", {"width_px": 200, "height_px": 78}, 20.0)
    )
    extra = {E.neuron_column(i): "1" for i in range(neurons)}
    for _ in range(episodes):
        with E.EpisodeWriter(root, {"model": model, "town": "t"}, extra, fsync=False) as w:
            for i in range(STEPS):
                row = {c: 0.0 for c in E.BASE_COLUMN_NAMES if c != E.FRAME_INDEX}
                row |= {E.T_S: 0.05 * i, E.INTERVENTION: False, E.NOISE_ACTIVE: False,
                        E.COLLISION: False}  # fmt: skip
                row |= {
                    E.neuron_column(k): float(v) for k, v in enumerate(rng.normal(size=neurons))
                }
                w.write_step(rng.integers(0, 256, (78, 200, 3), dtype=np.uint8), row)
            w.finish({"outcome": "route_complete"})


def _summary(model, suite, key, rate):
    stats = {"interventions_per_km": {"mean": rate, "std": 0.1}}
    return {"model": model, "suite": suite, "group": "condition", "key": key,
            "interventions_per_km": rate, "stats": stats}  # fmt: skip


@pytest.fixture()
def evaluation(tmp_path):
    """An evaluation folder of one untrained cfc-ncp named ``model``: rollouts, metrics, run."""
    torch.manual_seed(0)
    ck = save_checkpoint(tmp_path / "model", SteeringPolicy(PolicyConfig(core="cfc-ncp")))
    out = tmp_path / "eval"
    _rollout(out / "rollouts/expert/train-towns/clean", "expert", 0, seed=1)
    _rollout(out / "rollouts/model/train-towns/clean", "model", 19)
    rows = [_summary("model", "train-towns", "clean", 0.5),
            _summary("model", "noise-variance", "variance 0.1", 2.0)]  # fmt: skip
    doc = {"format": FORMAT, "version": VERSION, "models": [], "episodes": [], "summary": rows}
    (out / "metrics.json").write_text(json.dumps(doc))
    run = {"run": {"models": {"expert": None, "model": checkpoint_digest(ck)}}}
    (out / "run.json").write_text(json.dumps(run))
    (out / "report.md").write_text("# Evaluation\n")
    return ck, out


def test_tool_writes_json_figures_and_the_report_section(evaluation, tmp_path, capsys):
    ck, out = evaluation
    argv = ["--checkpoint", str(ck), "--rollouts", str(out), "--out", str(tmp_path / "an"),
            "--ssim-frames", "10"]  # fmt: skip
    assert main(argv) == 0
    assert "model: PC1" in capsys.readouterr().out
    doc = json.loads((tmp_path / "an/analyses.json").read_text())
    (m,) = doc["models"]
    assert m["name"] == "model" and m["neurons"] == 19 and m["steps"] == 2 * STEPS
    assert m["ssim"]["frames"] == 10 and set(m["ssim"]["by_variance"]) == {"0.1", "0.2", "0.3"}
    assert 0 < m["pca"]["pc1_share"] < 1 and len(m["lipschitz"]["per_neuron"]) == 19
    assert doc["noise_curve"]["model"]["variance"] == [0.0, 0.1]
    for name in ("noise_curve", "ssim", "lipschitz", "pca"):
        assert (tmp_path / "an" / f"{name}.png").stat().st_size > 1000
    report = (out / "report.md").read_text()
    assert "## The NCP paper's analyses" in report and "../an/pca.png" in report
    assert main(argv) == 0  # a rerun replaces the section
    assert (out / "report.md").read_text().count(BEGIN) == 1


def test_a_rollout_without_neuron_columns_is_refused(evaluation, tmp_path, capsys):
    ck, _ = evaluation
    bare = tmp_path / "bare"
    _rollout(bare / "rollouts/expert/train-towns/clean", "expert", 0)
    _rollout(bare / "rollouts/model/train-towns/clean", "model", 0)
    argv = ["--checkpoint", str(ck), "--rollouts", str(bare), "--out", str(tmp_path / "an")]
    assert main(argv) == 2
    assert "no neuron columns" in capsys.readouterr().err
    assert not (tmp_path / "an").exists()


def test_a_checkpoint_the_evaluation_did_not_drive_is_refused(evaluation, tmp_path, capsys):
    _, out = evaluation
    torch.manual_seed(1)
    other = save_checkpoint(tmp_path / "x/model", SteeringPolicy(PolicyConfig(core="cfc-ncp")))
    argv = ["--checkpoint", str(other), "--rollouts", str(out), "--out", str(tmp_path / "an")]
    assert main(argv) == 2
    assert "does not match the model 'model'" in capsys.readouterr().err
    (out / "run.json").unlink()  # without the run record: the neuron count still tells
    lstm = save_checkpoint(tmp_path / "y/model", SteeringPolicy(PolicyConfig(core="lstm")))
    argv[1] = str(lstm)
    assert main(argv) == 2
    assert "driven by another model" in capsys.readouterr().err
    assert not (tmp_path / "an").exists()
