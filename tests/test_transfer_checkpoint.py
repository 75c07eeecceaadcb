"""The shipped transfer checkpoint loads strictly and drives a held-out town in held-out weather.

Regenerate it with the commands in ``checkpoints/README.md`` ("Transfer techniques, round 2").
The route is a development route (seed 9003, not one of the suites' test routes): `desert` at
`night`, both held out. Measured when it was added: this checkpoint 0 interventions, lateral RMS
0.19 m; the default-recipe ``checkpoints/cfc-ncp`` 23 interventions, 0.83 m on the same route.
"""

import numpy as np

from driving.model.checkpoint import checkpoint_camera, load_policy, read_checkpoint_config
from sim.spec import INFO_LATERAL_OFFSET_M, CameraSpec
from tests.shipped import CHECKPOINTS, drive_checkpoint

TRANSFER = CHECKPOINTS / "cfc-ncp-transfer"


def test_transfer_checkpoint_is_the_documented_recipe():
    config = read_checkpoint_config(TRANSFER)
    assert config["policy"]["core"] == "cfc-ncp" and config["policy"]["command_input"] == "none"
    trained = config["training"]["config"]
    assert (trained["recovery_share"], trained["weight_alpha_m"], trained["seed"]) == (0.3, 10.0, 2)
    assert checkpoint_camera(TRANSFER) == CameraSpec()
    assert load_policy(TRANSFER).parameter_counts()["total"] == 82_070


def test_transfer_checkpoint_keeps_its_lane_in_the_desert_at_night():
    log = drive_checkpoint(TRANSFER, 9003, town="desert", weather="night", route_length_m=600.0)
    offset = np.asarray(log.columns[INFO_LATERAL_OFFSET_M])
    assert log.interventions == 0
    assert float(np.sqrt(np.mean(offset**2))) < 0.35
