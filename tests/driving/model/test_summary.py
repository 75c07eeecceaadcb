"""driving.model.summary: the model sizes, and the README's model table generated from them."""

from pathlib import Path

import torch

from driving.model.policy import CORE_NAMES, PolicyConfig, SteeringPolicy
from driving.model.summary import markdown_table, model_size, policy_size

README = Path(__file__).resolve().parents[3] / "README.md"
HEADER = "| model | neurons / units |"


def test_sizes_are_the_policys_parameter_counts_and_leave_the_seed_alone():
    torch.manual_seed(0)
    expected = torch.rand(1)
    torch.manual_seed(0)
    size = model_size("cfc-ncp-random")
    assert torch.equal(torch.rand(1), expected)
    counts = SteeringPolicy(PolicyConfig(core="cfc-ncp-random")).parameter_counts()
    assert {k: size[k] for k in counts} == counts
    assert (size["units"], size["synapses"]) == (19, 252)
    gru = policy_size(SteeringPolicy(PolicyConfig(core="gru", rnn_units=7)))
    assert gru["units"] == 7 and gru["synapses"] is None and gru["core_connected"] == gru["core"]
    assert model_size("lstm-19")["units"] == model_size("cfc-ncp")["units"] == 19


def test_readme_model_table_is_the_generated_one():
    text = README.read_text(encoding="utf-8")
    start = text.index(HEADER)
    table = text[start : text.index("\n\n", start) + 1]
    expected = markdown_table()
    assert table == expected, f"README.md's model table is stale; replace it by:\n{expected}"
    assert len(table.splitlines()) == 2 + len(CORE_NAMES)
