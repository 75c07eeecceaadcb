"""PolicyConfig.command_input: the route command enters by embedding or by branches."""

import json

import numpy as np
import pytest
import torch

from driving.model.checkpoint import CONFIG_FILE, load_policy, save_checkpoint
from driving.model.command import BranchReadout, CommandInputError
from driving.model.policy import PolicyConfig, PolicyConfigError, SteeringPolicy
from driving.model.summary import policy_size

BRANCH_NCP = {"inter_neurons": 10, "command_neurons": 5, "motor_fanin": 5}
DESIGNS = {
    "embed cfc-ncp": {"core": "cfc-ncp", "command_input": "embed"},
    "embed lstm": {"core": "lstm", "command_input": "embed"},
    "embed cnn": {"core": "cnn", "command_input": "embed"},
    "branch cfc-ncp": {"core": "cfc-ncp", "command_input": "branch", **BRANCH_NCP},
    "branch ltc-ncp": {"core": "ltc-ncp", "command_input": "branch", **BRANCH_NCP},
    "branch gru": {"core": "gru", "command_input": "branch"},
    "branch lstm-19": {"core": "lstm-19", "command_input": "branch", **BRANCH_NCP},
}


def _policy(seed=0, **config):
    """A policy moved away from its initialisation (the embedding starts at zero)."""
    torch.manual_seed(seed)
    policy = SteeringPolicy(PolicyConfig(**config))
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return policy.eval()


def _frames(b, t, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, t, 78, 200, 3), dtype=torch.uint8, generator=g)


COMMANDS = torch.tensor([[0, 1, 2, 3], [3, 3, 0, 1]])
DT = torch.tensor([[0.05, 0.05, 0.1, 0.04], [0.05, 0.07, 0.05, 0.05]])


@pytest.mark.parametrize("design", DESIGNS)
def test_the_command_changes_the_output(design):
    policy = _policy(**DESIGNS[design])
    frames = _frames(2, 4)
    with torch.no_grad():
        outs = [policy(frames, DT, command=torch.full((2, 4), c))[0] for c in range(4)]
    for a in range(4):
        for b in range(a + 1, 4):
            assert not torch.allclose(outs[a], outs[b]), (a, b)


def test_none_ignores_commands_and_the_others_require_them():
    frames = _frames(1, 2)
    none = _policy()
    with torch.no_grad():
        a = none(frames, DT[:1, :2])[0]
        b = none(frames, DT[:1, :2], command=torch.tensor([[2, 3]]))[0]
    assert torch.equal(a, b) and none.command_input == "none"
    embed = _policy(command_input="embed")
    with pytest.raises(CommandInputError, match="needs the route commands"):
        embed(frames, DT[:1, :2])
    with pytest.raises(CommandInputError, match="int64"):
        embed(frames, DT[:1, :2], command=torch.tensor([[1.0, 2.0]]))


def test_an_untrained_embedding_is_zero_so_it_starts_as_the_no_command_model():
    torch.manual_seed(3)
    embed = SteeringPolicy(PolicyConfig(command_input="embed")).eval()
    torch.manual_seed(3)
    none = SteeringPolicy(PolicyConfig()).eval()
    frames = _frames(1, 3)
    with torch.no_grad():
        a = embed(frames, DT[:1, :3], command=torch.tensor([[1, 2, 3]]))[0]
        b = none(frames, DT[:1, :3])[0]
    assert torch.equal(a, b)


def test_gradients_reach_the_embedding_rows_of_the_commands_used():
    policy = _policy(command_input="embed").train()
    curv, _ = policy(_frames(1, 4), DT[:1], command=torch.tensor([[0, 2, 2, 0]]))
    curv.pow(2).sum().backward()
    grad = policy.command_embedding.table.weight.grad  # (4, F)
    assert grad.shape == (4, policy.head.num_features)
    assert grad[0].abs().sum() > 0 and grad[2].abs().sum() > 0
    assert torch.all(grad[1] == 0) and torch.all(grad[3] == 0)  # unused commands: no gradient


@pytest.mark.parametrize("core", ["cfc-ncp", "gru"])
def test_branch_selects_the_head_of_the_given_command(core):
    config = {"core": core, "command_input": "branch", **(BRANCH_NCP if core == "cfc-ncp" else {})}
    policy = _policy(**config)
    assert isinstance(policy.readout, BranchReadout)
    frames = _frames(2, 4)
    with torch.no_grad():
        features = policy.encode(frames)
        y, _ = policy.core(features, DT / policy.config.time_scale_s)  # (B, T, M)
        heads = policy.readout.branches(y) / policy.config.label_scale  # (B, T, 4)
        curv, _ = policy(frames, DT, command=COMMANDS)
    expected = heads.gather(-1, COMMANDS.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(curv, expected, rtol=0, atol=0)


def test_the_branch_ncp_keeps_the_19_neuron_budget():
    policy = _policy(command_input="branch", **BRANCH_NCP)
    groups = policy.neuron_groups
    counts = {g: groups.count(g) for g in ("inter", "command", "motor")}
    assert counts == {"inter": 10, "command": 5, "motor": 4} and policy.state_size == 19
    size = policy_size(policy)
    assert size["units"] == 19 and size["readout"] == 8  # a gain and a bias per motor neuron
    with pytest.raises(PolicyConfigError, match=r"22 neurons.*--policy.inter-neurons 10"):
        PolicyConfig(command_input="branch")
    with pytest.raises(PolicyConfigError, match="command_input"):
        PolicyConfig(command_input="concat")
    assert SteeringPolicy(PolicyConfig(core="lstm-19", command_input="branch", **BRANCH_NCP))


def _obs(image, t_s, command):
    return {"image": image, "t_s": np.array([t_s]), "command": np.array([command], np.int64)}


@pytest.mark.parametrize("design", DESIGNS)
def test_closed_loop_step_is_the_training_forward_bit_for_bit(design):
    policy = _policy(**DESIGNS[design])
    frames = _frames(1, 4)
    commands = COMMANDS[:1]
    h_window, state = None, policy.reset()
    with torch.no_grad():
        for t, t_s in enumerate([2.0, 2.05, 2.15, 2.19]):
            c_window, s = policy(
                frames[:, t : t + 1], DT[:1, t : t + 1], h_window, command=commands[:, t : t + 1]
            )
            h_window = s[:, -1]
            action, state = policy.act(_obs(frames[0, t].numpy(), t_s, int(commands[0, t])), state)
            assert action[0] == c_window.float().numpy()[0, 0]
            if policy.state_size:
                assert torch.equal(state.h, h_window)


def test_the_closed_loop_refuses_a_missing_or_unknown_command():
    policy = _policy(command_input="embed")
    image = _frames(1, 1)[0, 0].numpy()
    with pytest.raises(CommandInputError, match="no 'command'"):
        policy.act({"image": image, "t_s": np.array([0.0])}, policy.reset())
    with pytest.raises(CommandInputError, match="unknown command"):
        policy.act(_obs(image, 0.0, 9), policy.reset())
    none = _policy()  # a none policy drives without a command in the observation
    none.act({"image": image, "t_s": np.array([0.0])}, none.reset())


@pytest.mark.parametrize("design", ["embed cfc-ncp", "branch cfc-ncp"])
def test_checkpoints_record_command_input_and_load_strictly(tmp_path, design):
    policy = _policy(**DESIGNS[design])
    path = save_checkpoint(tmp_path / "ck", policy, training={}, metrics=[])
    config = json.loads((path / CONFIG_FILE).read_text())
    assert config["policy"]["command_input"] == DESIGNS[design]["command_input"]
    loaded = load_policy(path)
    assert loaded.command_input == policy.command_input
    a, b = policy.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_an_old_checkpoint_without_the_field_loads_as_none(tmp_path):
    policy = _policy()
    path = save_checkpoint(tmp_path / "ck", policy, training={}, metrics=[])
    config = json.loads((path / CONFIG_FILE).read_text())
    del config["policy"]["command_input"]
    (path / CONFIG_FILE).write_text(json.dumps(config))
    loaded = load_policy(path)
    assert loaded.command_input == "none"
    frames = _frames(1, 2)
    with torch.no_grad():
        assert torch.equal(policy(frames, DT[:1, :2])[0], loaded(frames, DT[:1, :2])[0])


def test_the_shipped_checkpoint_is_a_none_policy():
    loaded = load_policy("checkpoints/cfc-ncp")
    assert loaded.command_input == "none" and loaded.state_size == 19
