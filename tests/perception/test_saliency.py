import numpy as np
import pytest
import torch
from torch import nn

from perception.saliency import (
    SaliencyError,
    grad_cam,
    integrated_gradients,
    overlay,
    saliency_maps,
    visual_backprop,
    visual_backprop_with_output,
)


class TinyConvNet(nn.Module):
    """Three strided convs with ReLU, then a linear readout: a miniature NCP conv head."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 4, 5, stride=2)
        self.c2 = nn.Conv2d(4, 6, 3, stride=2)
        self.c3 = nn.Conv2d(6, 2, 3, padding=1)
        self.fc = nn.LazyLinear(1)

    def forward(self, x):
        x = torch.relu(self.c1(x))
        x = torch.relu(self.c2(x))
        x = torch.relu(self.c3(x))
        return self.fc(x.flatten(1))


def _net(seed=0):
    torch.manual_seed(seed)
    net = TinyConvNet()
    net(torch.zeros(1, 3, 30, 46))  # materialise the lazy layer
    return net.eval()


def test_visualbackprop_shape_range_and_determinism():
    net = _net()
    images = torch.rand(2, 3, 30, 46, generator=torch.Generator().manual_seed(1))
    a = visual_backprop(net, images)
    b = visual_backprop(net, images)
    assert a.shape == (2, 30, 46)
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    assert float(a.max()) == pytest.approx(1.0)
    assert torch.equal(a, b)


def test_visualbackprop_finds_the_only_region_that_can_matter():
    # Positive weights and a negative bias: a conv unit fires only where it sees the bright
    # patch, so every deeper map is zero away from it and so must the mask be.
    net = _net()
    with torch.no_grad():
        for conv in (net.c1, net.c2, net.c3):
            conv.weight.fill_(0.1)
            conv.bias.fill_(-0.05)
    images = torch.zeros(1, 3, 30, 46)
    images[:, :, 4:10, 30:38] = 1.0  # the patch, top right
    mask = visual_backprop(net, images)[0]
    peak = np.unravel_index(int(mask.argmax()), mask.shape)
    assert 4 <= peak[0] < 10 and 30 <= peak[1] < 38
    assert float(mask[:, :20].max()) == 0.0  # the left part cannot matter
    assert float(mask[20:, :].max()) == 0.0  # nor can the bottom


def test_visualbackprop_all_zero_activations_give_a_zero_map():
    net = _net()
    with torch.no_grad():
        net.c1.weight.zero_()
        net.c1.bias.fill_(-1.0)
    mask = visual_backprop(net, torch.rand(1, 3, 30, 46))
    assert mask.shape == (1, 30, 46) and float(mask.abs().max()) == 0.0


def test_visualbackprop_rejects_models_without_convs_and_bad_shapes():
    with pytest.raises(SaliencyError, match=r"no nn\.Conv2d"):
        visual_backprop(nn.Linear(3, 1), torch.zeros(1, 3, 8, 8))
    with pytest.raises(SaliencyError, match=r"\(B, C, H, W\)"):
        visual_backprop(_net(), torch.zeros(3, 30, 46))


def test_captum_methods_give_normalised_maps():
    net = _net()
    images = torch.rand(2, 3, 30, 46, generator=torch.Generator().manual_seed(2))
    cam = grad_cam(net, net.c3, images)
    ig = integrated_gradients(net, images, steps=4)
    for m in (cam, ig):
        assert m.shape == (2, 30, 46)
        assert float(m.min()) >= 0.0 and float(m.max()) <= 1.0
    assert torch.equal(ig, integrated_gradients(net, images, steps=4))
    via = saliency_maps("gradcam", images, conv_stack=net, forward_fn=net)
    assert torch.allclose(via, cam)


def test_saliency_maps_errors_name_the_problem():
    net = _net()
    x = torch.rand(1, 3, 30, 46)
    with pytest.raises(SaliencyError, match="unknown saliency method 'occlusion'"):
        saliency_maps("occlusion", x, conv_stack=net)  # type: ignore[arg-type]
    with pytest.raises(SaliencyError, match="needs forward_fn"):
        saliency_maps("integrated_gradients", x, conv_stack=net)


def test_overlay_keeps_image_where_saliency_is_low():
    image = np.full((10, 20, 3), 100, np.uint8)
    mask = np.zeros((5, 10), np.float32)
    mask[2, 7] = 1.0
    out = overlay(image, mask)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.array_equal(out[:, :4], image[:, :4])
    assert not np.array_equal(out[3:6, 13:16], image[3:6, 13:16])
    with pytest.raises(SaliencyError, match="uint8"):
        overlay(image.astype(np.float32), mask)


def test_visualbackprop_with_output_returns_the_model_output_of_the_same_pass():
    net = _net()
    images = torch.rand(2, 3, 30, 46, generator=torch.Generator().manual_seed(3))
    mask, out = visual_backprop_with_output(net, images)
    assert torch.equal(mask, visual_backprop(net, images))
    with torch.no_grad():
        assert torch.equal(out, net(images))
