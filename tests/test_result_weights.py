"""The weights kept beside the results (runs that are not shipped) load strictly as documented.

``checkpoints/results/transfer5/weights/<run>/`` holds the best checkpoint of each run of
``checkpoints/README.md``'s round 5 that is not ``checkpoints/cfc-ncp``, so the evaluations can
be repeated without retraining (training is not bit-reproducible across machines).
"""

import pytest

from driving.model.checkpoint import load_policy, read_checkpoint_config
from tests.shipped import CHECKPOINTS

WEIGHTS = CHECKPOINTS / "results" / "transfer5" / "weights"
RUNS = sorted(p.name for p in WEIGHTS.iterdir() if p.is_dir())


def test_the_documented_runs_are_kept():
    assert {"dpr-rv-a10-s1", "dpr-rv-a10-s2", "dpr-rv-a10-lstm-s0"} <= set(RUNS)


@pytest.mark.parametrize("run", RUNS)
def test_each_run_loads_strictly_and_names_its_recipe(run):
    config = read_checkpoint_config(WEIGHTS / run)
    trained = config["training"]["config"]
    core = next((m for m in ("lstm", "gru") if f"-{m}-" in run), "cfc-ncp")
    assert config["policy"]["core"] == core
    assert f"-s{trained['seed']}" == run[run.rindex("-s") :]
    assert (trained["recovery_share"], trained["weight_alpha_m"]) == (0.3, 10.0)
    assert load_policy(WEIGHTS / run).parameter_counts()["conv_head"] == 79_420
