import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.utils.tensorboard import SummaryWriter

from driving.model.policy import PolicyConfig, SteeringPolicy
from driving.viz.tensorboard import log_training_figures, training_figures


@pytest.mark.parametrize("core", ["cfc-ncp", "cnn"])
def test_training_figures_for_tensorboard(tmp_path, core):
    torch.manual_seed(0)
    policy = SteeringPolicy(PolicyConfig(core=core)).train()
    g = torch.Generator().manual_seed(0)
    window = {
        "frames": torch.randint(0, 256, (4, 78, 200, 3), dtype=torch.uint8, generator=g),
        "dt_s": torch.full((4,), 0.05),
        "label": torch.linspace(-0.01, 0.01, 4),
    }
    a = training_figures(policy, window)
    assert policy.training  # the mode is restored
    b = training_figures(policy, {k: v[None] for k, v in window.items()})  # a batch of one
    assert set(a) == {"neuron_traces", "saliency"}
    for name in a:
        assert np.array_equal(a[name], b[name])
        assert a[name].dtype == np.uint8 and a[name].ndim == 3 and a[name].std() > 0
    assert a["saliency"].shape == (2 * (4 * 78 + 3 * 2), 400, 3)
    with SummaryWriter(tmp_path) as writer:
        log_training_figures(writer, policy, window, step=3)
    assert any(p.name.startswith("events.out.tfevents") for p in tmp_path.iterdir())


def test_the_training_figures_import_no_video_stack():
    code = (
        "import sys, driving.viz.tensorboard, driving.viz.layout, driving.viz.track\n"
        "print('av' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
    code = "import sys, driving.viz.layout, driving.viz.track; print('matplotlib' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
