import math

import numpy as np
import pytest
import torch

from perception.preprocess import PreprocessError, Preprocessor, PreprocessSpec


def _frames(n=2, h=78, w=200, seed=0):
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8))


def test_default_is_per_image_standardisation_of_a_78x200_frame():
    pre = Preprocessor(PreprocessSpec())
    frames = _frames()
    x = pre(frames)
    assert x.shape == (2, 3, 78, 200) and x.dtype == torch.float32
    flat = x.flatten(1)
    assert torch.allclose(flat.mean(1), torch.zeros(2), atol=1e-5)
    assert torch.allclose(flat.std(1, unbiased=False), torch.ones(2), atol=1e-4)
    # Channel order is kept: RGB in, RGB planes out.
    raw = pre.prepare(frames)
    assert torch.equal(raw[0, 0], frames[0, :, :, 0].float() / 255)


def test_flat_image_uses_the_stddev_floor_instead_of_dividing_by_zero():
    frames = torch.full((1, 78, 200, 3), 77, dtype=torch.uint8)
    x = Preprocessor(PreprocessSpec())(frames)
    assert torch.isfinite(x).all() and x.abs().max() == 0
    floor = 1 / math.sqrt(3 * 78 * 200)
    frames[0, 0, 0, 0] = 78
    x = Preprocessor(PreprocessSpec())(frames)
    assert x.abs().max() < (1 / 255) / floor + 1e-3


def test_crop_and_resize():
    spec = PreprocessSpec(
        input_height_px=120,
        input_width_px=320,
        crop_top_px=30,
        crop_bottom_px=12,
        crop_left_px=10,
        crop_right_px=10,
        normalization="none",
    )
    assert (spec.crop_height_px, spec.crop_width_px) == (78, 300)
    frames = _frames(3, 120, 320)
    x = Preprocessor(spec)(frames)
    assert x.shape == (3, 3, 78, 200)
    assert x.min() >= 0 and x.max() <= 1
    # A crop that is already the output size is exact (no resampling).
    spec2 = PreprocessSpec(
        input_height_px=120,
        input_width_px=200,
        crop_top_px=30,
        crop_bottom_px=12,
        normalization="none",
    )
    y = Preprocessor(spec2).prepare(frames[:, :, :200].contiguous())
    assert torch.equal(y, frames[:, 30:108, :200].permute(0, 3, 1, 2).float() / 255)


def test_fixed_normalisation():
    spec = PreprocessSpec(normalization="fixed", mean=(0.5, 0.4, 0.3), std=(0.2, 0.2, 0.1))
    frames = _frames(1)
    x = Preprocessor(spec)(frames)
    raw = frames.permute(0, 3, 1, 2).float() / 255
    assert torch.allclose(x[0, 2], (raw[0, 2] - 0.3) / 0.1, atol=1e-5)


def test_spec_round_trips_through_json_form():
    spec = PreprocessSpec(crop_top_px=4, input_height_px=82, normalization="fixed")
    assert PreprocessSpec.from_dict(spec.to_dict()) == spec


def test_bad_frames_and_specs_are_clear_errors():
    pre = Preprocessor(PreprocessSpec())
    with pytest.raises(PreprocessError, match="66x200 px"):
        pre(_frames(1, 66, 200))
    with pytest.raises(PreprocessError, match="uint8"):
        pre(_frames(1).float())
    with pytest.raises(PreprocessError, match="leaves nothing"):
        PreprocessSpec(crop_top_px=50, crop_bottom_px=28)
    with pytest.raises(PreprocessError, match="normalization"):
        PreprocessSpec(normalization="imagenet")
    with pytest.raises(PreprocessError, match="unknown"):
        PreprocessSpec.from_dict({"crop_top": 3})
