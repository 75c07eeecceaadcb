"""The weights kept beside the results (runs that are not shipped) load strictly as documented.

``checkpoints/results/transfer{5,6}/weights/<run>/`` holds the best checkpoint of each run of
``checkpoints/README.md``'s rounds 5 and 6 that is not ``checkpoints/cfc-ncp``, so the
evaluations can be repeated without retraining (training is not bit-reproducible across
machines).
"""

from pathlib import Path

import pytest

from driving.model.checkpoint import load_policy, read_checkpoint_config
from tests.shipped import CHECKPOINTS

ROUNDS = {n: CHECKPOINTS / "results" / f"transfer{n}" / "weights" for n in (5, 6)}
RUNS = sorted((n, p.name) for n, w in ROUNDS.items() for p in w.iterdir() if p.is_dir())


def test_the_documented_runs_are_kept():
    assert {(5, "dpr-rv-a10-s1"), (5, "dpr-rv-a10-s2"), (5, "dpr-rv-a10-lstm-s0")} <= set(RUNS)
    assert {(6, "dpr-rv-rate-s0"), (6, "dpr-rv-rate-s1")} <= set(RUNS)


@pytest.mark.parametrize(("round_", "run"), RUNS)
def test_each_run_loads_strictly_and_names_its_recipe(round_, run):
    config = read_checkpoint_config(ROUNDS[round_] / run)
    trained = config["training"]["config"]
    core = next((m for m in ("lstm", "gru") if f"-{m}-" in run), "cfc-ncp")
    assert config["policy"]["core"] == core
    assert f"-s{trained['seed']}" == run[run.rindex("-s") :]
    assert (trained["recovery_share"], trained["weight_alpha_m"]) == (0.3, 10.0)
    if run.startswith("dpr-rv-rate-"):  # round 6: recorded at a random control rate
        assert Path(trained["data"][0]).name == "dpr-rv-rate-30min"
    assert load_policy(ROUNDS[round_] / run).parameter_counts()["conv_head"] == 79_420
