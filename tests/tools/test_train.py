"""tools/train.py end to end: record a little builtin data, train, load, drive closed loop."""

import numpy as np
import pytest
import torch
import tyro

import sim
import tools.record as record
import tools.train as tool
from driving.model.checkpoint import LAST_DIR, load_policy, read_checkpoint_config
from driving.rollout.episode import run_episode
from driving.train.config import TrainConfig


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        tool.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--data", "--out", "--model", "--resume", "--device", "--steps"):
        assert option in text
    assert "cfc-ncp" in text and "ltc-ncp" in text


@pytest.mark.parametrize("model", ["cfc-ncp-random", "cfc-ncp-full", "lstm-19", "gru-19"])
def test_model_option_takes_the_baselines(model):
    cfg = tyro.cli(TrainConfig, args=["--data", "d", "--out", "o", "--model", model])
    assert cfg.policy.core == model


def test_record_train_and_drive(tmp_path, capsys):
    data = tmp_path / "data"
    record.record(
        record.RecordConfig(out=data, episodes=2, episode_s=2.0, towns=("countryside",),
                            weathers=("clear_noon",), progress=False)
    )  # fmt: skip
    out = tmp_path / "run"
    status = tool.main(
        ["--data", str(data), "--out", str(out), "--model", "cfc-ncp", "--steps", "3",
         "--batch-size", "2", "--window-steps", "8", "--val-fraction", "0.5", "--val-every", "3",
         "--save-every", "3", "--threads", "1", "--no-tensorboard", "--device", "cpu"]
    )  # fmt: skip
    assert status == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(out / "best")
    assert read_checkpoint_config(out / LAST_DIR)["training"]["step"] == 3
    assert (out / "metrics.jsonl").read_text().strip()

    policy = load_policy(out)  # a run folder loads its best checkpoint
    env = sim.make_env("builtin", town="countryside")
    try:
        with torch.inference_mode():
            log = run_episode(env, policy, seed=3, max_steps=15)
    finally:
        env.close()
    pred = np.asarray(log.columns["curvature_applied"])
    assert pred.shape == (15,) and np.all(np.isfinite(pred))
