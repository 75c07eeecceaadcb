import pytest
import torch
import torchvision.transforms.v2.functional as TF

from perception.augment import (
    AugmentConfig,
    AugmentConfigError,
    Augmenter,
    color_jitter,
    random_shadow,
    side_occlusion,
)


def _windows(b=4, t=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, t, 3, 78, 200, generator=g) * 0.6 + 0.2


def test_identity_in_eval_mode_and_when_disabled():
    x = _windows()
    aug = Augmenter().eval()
    assert aug(x) is x
    off = Augmenter(AugmentConfig(enabled=False)).train()
    assert off(x) is x


def test_training_changes_images_keeps_range_and_is_seeded():
    x = _windows(8)
    aug = Augmenter().train()
    torch.manual_seed(3)
    y1 = aug(x)
    torch.manual_seed(3)
    y2 = aug(x)
    assert torch.equal(y1, y2)
    assert y1.shape == x.shape and not torch.equal(y1, x)
    assert y1.min() >= 0 and y1.max() <= 1


def test_colour_jitter_matches_torchvision_for_each_factor():
    x = _windows(2, 2)
    one, zero = torch.ones(2), torch.zeros(2)
    f = torch.tensor([1.2, 0.8])
    ref = TF.adjust_brightness(x[0], 1.2)
    assert torch.allclose(color_jitter(x, f, one, one, zero)[0], ref, atol=1e-6)
    ref = TF.adjust_contrast(x[1], 0.8)
    assert torch.allclose(color_jitter(x, one, f, one, zero)[1], ref, atol=1e-6)
    ref = TF.adjust_saturation(x[0], 1.2)
    assert torch.allclose(color_jitter(x, one, one, f, zero)[0], ref, atol=1e-6)


def test_hue_rotation_keeps_grey_and_luma():
    x = _windows(2, 1)
    grey = x.mean(dim=2, keepdim=True).expand_as(x).contiguous()
    one = torch.ones(2)
    hue = torch.tensor([0.05, -0.05])
    assert torch.allclose(color_jitter(grey, one, one, one, hue), grey, atol=1e-5)
    y = color_jitter(x * 0.5 + 0.25, one, one, one, hue)  # no clipping in this range
    w = torch.tensor([0.299, 0.587, 0.114]).view(1, 1, 3, 1, 1)
    luma = lambda z: (z * w).sum(2)  # noqa: E731
    assert torch.allclose(luma(y), luma(x * 0.5 + 0.25), atol=1e-5)
    assert not torch.allclose(y, x * 0.5 + 0.25, atol=1e-3)


def test_shadow_is_the_same_on_every_frame_of_a_window_and_darkens_or_lightens():
    x = torch.full((6, 2, 3, 78, 200), 0.5)
    torch.manual_seed(0)
    y = random_shadow(x, darken_fraction=1.0)
    assert torch.equal(y[:, 0], y[:, 1])
    assert (y <= 0.5 + 1e-6).all() and (y < 0.45).any()
    # Most of each image stays untouched: a band, not a global change.
    untouched = (y == 0.5).float().mean(dim=(1, 2, 3, 4))
    assert (untouched > 0.2).all()
    y = random_shadow(x, darken_fraction=0.0)
    assert (y >= 0.5 - 1e-6).all() and (y > 0.55).any()


def test_side_occlusion_hides_one_border_per_window_behind_the_mean_colour():
    x = _windows(64, 2)
    torch.manual_seed(0)
    y = side_occlusion(x, max_width=0.4)
    changed = (y != x).any(dim=(1, 2, 3))  # (B, W): which columns were hidden
    widths = changed.sum(dim=1)
    assert ((widths >= 20) & (widths <= 80)).all()  # 10-40 % of 200 px
    left, right = changed[:, 0], changed[:, -1]
    assert torch.equal(left, ~right)  # exactly one side per window, both sides drawn
    assert left.any() and right.any()
    for i in range(len(x)):  # a border strip of the frame's own mean colour, the rest kept
        cols = changed[i].nonzero().flatten()
        assert cols.max() - cols.min() + 1 == len(cols)
        for t in range(2):
            mean = x[i, t].mean(dim=(-2, -1))
            assert torch.allclose(y[i, t, :, :, cols], mean.view(3, 1, 1).expand(3, 78, len(cols)))
    kept = ~changed.view(64, 1, 1, 1, 200).expand_as(x)
    assert torch.equal(y[kept], x[kept])


def test_side_occlusion_is_off_by_default_and_leaves_earlier_draws_unchanged():
    x = _windows(8)
    torch.manual_seed(5)
    default = Augmenter().train()(x)
    after_default = torch.rand(1)
    torch.manual_seed(5)
    on = Augmenter(AugmentConfig(side_occlusion_prob=1.0)).train()(x)
    assert AugmentConfig().side_occlusion_prob == 0.0
    assert not torch.equal(on, default)
    torch.manual_seed(5)
    Augmenter(AugmentConfig(side_occlusion_prob=0.0)).train()(x)
    assert torch.equal(torch.rand(1), after_default)  # nothing extra drawn when off


def test_bad_settings_are_clear_errors():
    with pytest.raises(AugmentConfigError, match="hue"):
        AugmentConfig(hue=0.7)
    with pytest.raises(AugmentConfigError, match="shadow_prob"):
        AugmentConfig(shadow_prob=1.5)
    with pytest.raises(AugmentConfigError, match="side_occlusion_max_width"):
        AugmentConfig(side_occlusion_max_width=1.0)
    with pytest.raises(AugmentConfigError, match=r"\(B, T, 3, H, W\)"):
        Augmenter().train()(torch.rand(2, 3, 78, 200))
