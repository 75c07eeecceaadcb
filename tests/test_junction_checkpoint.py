"""The shipped junction checkpoint loads strictly and follows its route's commands.

Regenerate it with the commands in ``checkpoints/README.md`` ("Junctions and route commands");
the route below is a development route (seed 9001, not one of the suites' test routes).
"""

from driving.evaluate.junction_metrics import junction_metrics
from driving.model.checkpoint import checkpoint_camera, load_policy, read_checkpoint_config
from sim.spec import CameraSpec
from tests.shipped import CHECKPOINTS, drive_checkpoint

JUNCTIONS = CHECKPOINTS / "cfc-ncp-junctions"


def test_junction_checkpoint_is_the_documented_model():
    config = read_checkpoint_config(JUNCTIONS)
    assert config["policy"]["core"] == "cfc-ncp"
    assert config["policy"]["command_input"] == "embed"
    assert checkpoint_camera(JUNCTIONS) == CameraSpec()
    policy = load_policy(JUNCTIONS)
    counts = policy.parameter_counts()
    assert counts["total"] == 82_198 and counts["command_embedding"] == 128
    assert policy.state_size == 19


def test_junction_checkpoint_turns_as_commanded_in_a_training_town():
    log = drive_checkpoint(JUNCTIONS, 9001, town="village", weather="clear_noon",
                           route_length_m=700.0)  # fmt: skip
    metrics = junction_metrics(log.columns, route_commands=log.route_commands,
                               route_completed=log.outcome == "route_complete")  # fmt: skip
    assert metrics is not None
    commands = {j.command for j in metrics.passed}
    assert len(metrics.passed) >= 3 and commands - {"straight"}, commands
    assert [j.failure for j in metrics.passed] == [None] * len(metrics.passed)
    assert log.interventions == 0
