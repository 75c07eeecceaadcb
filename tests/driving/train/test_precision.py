"""bf16 autocast of the conv head in training: fp32 unchanged, bf16 close, weights stay fp32."""

import torch

from driving.model.policy import PolicyConfig, SteeringPolicy
from driving.train.config import TrainConfig
from driving.train.loss import weighted_mse, window_loss


def _batch(b=2, t=4):
    g = torch.Generator().manual_seed(0)
    return {
        "frames": torch.randint(0, 256, (b, t, 78, 200, 3), dtype=torch.uint8, generator=g),
        "dt_s": torch.full((b, t), 0.05),
        "label": torch.randn(b, t, generator=g) * 0.01,
        "weight": torch.ones(b, t),
    }


def test_fp32_loss_is_the_policy_forward_exactly():
    torch.manual_seed(0)
    policy = SteeringPolicy(PolicyConfig())
    batch = _batch()
    pred, _ = policy(batch["frames"], batch["dt_s"])
    s = policy.config.label_scale
    expected = weighted_mse(pred * s, batch["label"] * s, batch["weight"])
    assert torch.equal(window_loss(policy, batch), expected)


def test_bf16_loss_is_close_and_gradients_reach_fp32_weights():
    torch.manual_seed(0)
    policy = SteeringPolicy(PolicyConfig())
    batch = _batch()
    fp32 = window_loss(policy, batch, precision="fp32")
    bf16 = window_loss(policy, batch, precision="bf16")
    assert bf16.dtype == torch.float32
    assert torch.allclose(bf16, fp32, rtol=0.05), (float(bf16), float(fp32))
    bf16.backward()
    head = [p for p in policy.head.parameters()]
    assert all(p.dtype == torch.float32 and p.grad is not None for p in head)
    assert all(torch.isfinite(p.grad).all() for p in policy.parameters() if p.grad is not None)


def test_precision_is_a_validated_config_field():
    assert TrainConfig(data=(), out="x").precision == "fp32"
