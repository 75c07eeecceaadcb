import pytest
import torch

from perception.encoder import ConvHead, ConvHeadConfig, EncoderConfigError


def test_default_head_has_the_ncp_parameter_count_and_shapes():
    head = ConvHead()
    assert sum(p.numel() for p in head.parameters()) == 79_420
    feats, maps = head.forward_with_maps(torch.randn(2, 3, 78, 200))
    assert feats.shape == (2, 32)
    assert [tuple(m.shape[1:]) for m in maps] == [
        (24, 39, 100),
        (36, 20, 50),
        (48, 10, 25),
        (64, 10, 25),
        (8, 10, 25),
    ]
    assert head.config.map_size == (10, 25)
    assert (feats >= 0).all()  # ReLU after each per-map Linear


def test_each_group_of_four_features_sees_only_its_own_map():
    head = ConvHead()
    maps = torch.randn(1, 8, 10, 25, requires_grad=True)
    feats = head.per_map(maps)
    # Use pre-activation so ReLU zeros cannot hide a dependency.
    pre = torch.einsum("ncv,cfv->ncf", maps.flatten(2), head.per_map.weight)
    for c in range(8):
        (grad,) = torch.autograd.grad(pre[0, c].sum(), maps, retain_graph=True)
        touched = grad.abs().sum(dim=(0, 2, 3)) > 0
        assert touched.tolist() == [i == c for i in range(8)]
    assert feats.shape == (1, 32)


def test_head_is_configurable_and_round_trips():
    cfg = ConvHeadConfig(
        input_height_px=40,
        input_width_px=64,
        channels=(8, 4),
        kernel_sizes=(3, 3),
        strides=(2, 2),
        features_per_map=2,
    )
    head = ConvHead(cfg)
    assert head(torch.randn(3, 3, 40, 64)).shape == (3, 8)
    assert ConvHeadConfig.from_dict(cfg.to_dict()) == cfg


def test_bad_configs_and_inputs_are_clear_errors():
    with pytest.raises(EncoderConfigError, match="odd"):
        ConvHeadConfig(kernel_sizes=(5, 5, 4, 3, 3))
    with pytest.raises(EncoderConfigError, match="same non-zero length"):
        ConvHeadConfig(channels=(24, 36))
    with pytest.raises(EncoderConfigError, match=r"\(N, 3, 78, 200\)"):
        ConvHead()(torch.randn(1, 3, 66, 200))
    with pytest.raises(EncoderConfigError, match="unknown"):
        ConvHeadConfig.from_dict({"channelz": [1]})


def test_conv_biases_start_at_ncp_value():
    head = ConvHead()
    for conv in head.convs:
        assert torch.all(conv.bias == 0.01)


def test_inference_runs_every_convolution_through_onednn_with_the_same_values():
    """Batch 1 with autograd off takes oneDNN where PyTorch would pick its im2col kernel."""
    torch.manual_seed(0)
    head = ConvHead().eval()
    x = torch.randn(1, 3, 78, 200)
    with torch.no_grad():
        fast, fast_maps = head.forward_with_maps(x)
    reference = x.contiguous(memory_format=torch.channels_last)
    for conv, got in zip(head.convs, fast_maps, strict=True):
        reference = torch.relu(conv(reference)).detach()  # autograd on: PyTorch's own choice
        assert torch.allclose(got, reference, atol=1e-6, rtol=1e-5)
    assert torch.allclose(fast, head(x).detach(), atol=1e-6)
    if torch.backends.mkldnn.is_available():
        with torch.no_grad(), torch.profiler.profile() as prof:
            head(x)
        kernels = {e.key for e in prof.key_averages()}
        assert "aten::mkldnn_convolution" in kernels
        assert "aten::_slow_conv2d_forward" not in kernels


def test_the_onednn_path_keeps_module_hooks_so_saliency_sees_every_convolution():
    from perception.saliency import visual_backprop_with_output

    head = ConvHead().eval()
    seen = []
    hooks = [c.register_forward_hook(lambda m, i, o: seen.append(m)) for c in head.convs]
    with torch.no_grad():
        head(torch.randn(1, 3, 78, 200))
    for h in hooks:
        h.remove()
    assert seen == list(head.convs)
    saliency, features = visual_backprop_with_output(head, torch.randn(1, 3, 78, 200))
    assert saliency.shape == (1, 78, 200) and features.shape == (1, 32)


def test_a_bf16_head_keeps_the_features_close_and_refuses_training():
    torch.manual_seed(0)
    head = ConvHead().eval()
    x = torch.randn(4, 3, 78, 200)
    with torch.no_grad():
        ref = head(x)
        assert head.set_precision("bf16") is head and head.precision == "bf16"
        got, maps = head.forward_with_maps(x)
    assert got.dtype == torch.float32 and all(m.dtype == torch.float32 for m in maps)
    assert head.per_map.weight.dtype == torch.float32  # only the convolutions are cast
    assert head.convs[0].weight.is_contiguous(memory_format=torch.channels_last)
    scale = ref.abs().max().item()
    assert 0 < (got - ref).abs().max().item() <= 0.02 * scale  # rounded, not exact, and close
    with pytest.raises(EncoderConfigError, match="bf16 for driving only"):
        head(x)  # autograd on
    head.set_precision("fp32")
    assert head.precision == "fp32" and head(x).requires_grad
    with pytest.raises(EncoderConfigError, match="precision must be one of fp32, bf16"):
        head.set_precision("fp16")
