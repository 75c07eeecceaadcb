"""Policies with a route-command input in the training figures and the saliency replay."""

import numpy as np
import torch

from driving.model.policy import PolicyConfig, SteeringPolicy
from driving.viz.replay import replay_with_saliency
from driving.viz.tensorboard import training_figures
from sim.spec import Command

BRANCH = dict(command_input="branch", inter_neurons=10, command_neurons=5, motor_fanin=5)


def _frames(t: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (t, 78, 200, 3), dtype=torch.uint8, generator=g)


def test_training_figures_feed_the_window_commands():
    torch.manual_seed(0)
    policy = SteeringPolicy(PolicyConfig(core="cfc-ncp", **BRANCH)).train()
    window = {"frames": _frames(4), "dt_s": torch.full((4,), 0.05), "label": torch.zeros(4)}
    follow = training_figures(policy, window)  # no command key: follow lane
    left = training_figures(policy, {**window, "command": torch.full((4,), int(Command.LEFT))})
    assert not np.array_equal(follow["neuron_traces"], left["neuron_traces"])
    same = training_figures(policy, {**window, "command": torch.zeros(4, dtype=torch.int64)})
    assert np.array_equal(follow["neuron_traces"], same["neuron_traces"])


def test_replay_steers_with_the_rollout_commands_like_the_forward_pass():
    torch.manual_seed(0)
    policy = SteeringPolicy(PolicyConfig(core="cfc-ncp", **BRANCH)).eval()
    frames = _frames(5)
    t_s = np.arange(5) * 0.05
    commands = np.array([0, 1, 1, 2, 3])
    replay = replay_with_saliency(policy, list(frames.numpy()), t_s, batch=2, commands=commands)
    dt = torch.as_tensor(np.r_[policy.config.first_step_dt_s, np.diff(t_s)], dtype=torch.float32)
    with torch.no_grad():
        expected, _ = policy(frames[None], dt[None], command=torch.as_tensor(commands)[None])
    np.testing.assert_allclose(replay.curvature, expected[0].double().numpy(), atol=1e-6)
    follow = replay_with_saliency(policy, list(frames.numpy()), t_s, batch=2)
    assert not np.allclose(follow.curvature, replay.curvature)
