"""Route commands in training: windows carry them, balance weights, warnings, a run."""

import logging

import numpy as np
import pytest
import torch

from driving.data.episodes import load_episodes
from driving.data.windows import WindowConfig, WindowDataset
from driving.model.checkpoint import LAST_DIR, load_policy, read_checkpoint_config
from driving.model.policy import PolicyConfig
from driving.train.data import make_batch
from driving.train.trainer import train
from tests.driving.train.tiny import tiny_config, write_tiny_dataset


def junction_command(e, i):
    """Left on steps 8-11 and straight on steps 16-17 of every episode; else follow-lane."""
    return 1 if 8 <= i < 12 else 3 if 16 <= i < 18 else 0


@pytest.fixture(scope="module")
def junction_data(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("cmd") / "data", command=junction_command)


def test_windows_carry_the_commands_and_balance_weighs_rare_ones_up(junction_data):
    episodes = load_episodes(junction_data)
    plain = WindowDataset(episodes, WindowConfig(window_steps=8, stride_steps=4))
    item = plain[2]  # steps 8..15 of episode 0
    assert item["command"].dtype == torch.int64
    assert item["command"].tolist() == [1, 1, 1, 1, 0, 0, 0, 0]
    batch = make_batch(plain, [0, 2, 4], torch.device("cpu"))
    assert batch["command"].shape == (3, 8) and batch["command"].dtype == torch.int64
    assert torch.all(batch["weight"] == 1)
    balanced = WindowDataset(
        episodes, WindowConfig(window_steps=8, stride_steps=4, command_balance=True)
    )
    # 24 steps per episode: 18 follow-lane, 4 left, 2 straight, no right.
    w = balanced.command_weights
    np.testing.assert_allclose(w, [72 / (3 * 54), 72 / (3 * 12), 1.0, 72 / (3 * 6)])
    weight = balanced[2]["weight"].numpy()
    np.testing.assert_allclose(weight, w[[1, 1, 1, 1, 0, 0, 0, 0]], rtol=1e-6)


def test_a_none_policy_on_junction_data_warns_once(junction_data, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="driving.train.data"):
        train(tiny_config(junction_data, tmp_path / "run", steps=2, val_every=2, save_every=2))
    warnings = [r for r in caplog.records if "cannot see them" in r.message]
    assert len(warnings) == 1 and "left, straight" in warnings[0].message


@pytest.mark.parametrize("design", ["embed", "branch"])
def test_a_command_policy_trains_with_balance_and_records_its_design(
    junction_data, tmp_path, caplog, design
):
    policy = {"command_input": design, "core": "gru"}
    cfg = tiny_config(
        junction_data, tmp_path / "run", steps=4, val_every=2, save_every=2,
        command_balance=True, policy=PolicyConfig(**policy), tensorboard=True,
    )  # fmt: skip
    with caplog.at_level(logging.INFO):
        train(cfg)
    assert any(f"command input {design}" in r.message for r in caplog.records)
    assert (tmp_path / "run" / "tb").is_dir()  # TensorBoard records the design as text
    assert not any("cannot see them" in r.message for r in caplog.records)
    config = read_checkpoint_config(tmp_path / "run" / LAST_DIR)
    assert config["policy"]["command_input"] == design
    assert load_policy(tmp_path / "run" / LAST_DIR).command_input == design
