"""Training windows: alignment, boundaries, stride, real timestamps, weights, sampling, splits."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from driving.data import episodes as ep
from driving.data.windows import (
    BalancedWindowSampler,
    WindowConfig,
    WindowDataset,
    split_by_episode,
    split_by_town,
    split_by_weather,
)

H, W = 16, 40


def level(e_idx, i):
    return (10 + 3 * i + 50 * e_idx) % 250


def write(root, e_idx, n, town="hills", weather="clear", jitter=False):
    w = ep.EpisodeWriter(root, {"town": town, "weather": weather})
    rng = np.random.default_rng(e_idx)
    t = np.cumsum(0.05 + (rng.uniform(-0.01, 0.01, n) if jitter else np.zeros(n))) - 0.05
    for i in range(n):
        row = {name: 0.0 for name in ep.BASE_COLUMN_NAMES if name != ep.FRAME_INDEX}
        row |= {ep.T_S: t[i], ep.SPEED_MPS: 5.0 + e_idx, ep.CURVATURE_EXPERT: 0.001 * i}
        w.write_step(np.full((H, W, 3), level(e_idx, i), np.uint8), row)
    return w.finish({"outcome": "route_complete"})


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("windows") / "data"
    ep.create_or_open_dataset(root, ep.DatasetInfo("fake", {"width_px": W, "height_px": H}, 20.0))
    write(root, 0, 30, town="hills", weather="clear", jitter=True)
    write(root, 1, 12, town="city", weather="fog")
    write(root, 2, 3, town="city", weather="clear")  # shorter than a window: unused
    return root


def test_windows_are_consecutive_aligned_and_never_cross_episodes(root):
    ds = WindowDataset.from_roots(root, WindowConfig(window_steps=8, stride_steps=4))
    # episode 0: starts 0,4,...,20 (6 windows); episode 1: 0, 4 (2); episode 2: none.
    assert len(ds) == 8
    assert ds.index.tolist() == [[0, s] for s in range(0, 23, 4)] + [[1, 0], [1, 4]]
    for i in range(len(ds)):
        item = ds[i]
        k, s = int(item["episode"]), int(item["start"])
        e = ds.episodes[k]
        assert item["frames"].shape == (8, H, W, 3) and item["frames"].dtype == torch.uint8
        means = item["frames"].float().mean(dim=(1, 2, 3)).numpy()
        np.testing.assert_allclose(means, [level(k, j) for j in range(s, s + 8)], atol=2)
        np.testing.assert_array_equal(item["t_s"].numpy(), e.columns[ep.T_S][s : s + 8])
        np.testing.assert_allclose(item["label"].numpy(), 0.001 * np.arange(s, s + 8), atol=1e-7)
        assert torch.all(item["speed_mps"] == 5.0 + k)
        assert s + 8 <= len(e)


def test_elapsed_time_comes_from_the_real_timestamps(root):
    ds = WindowDataset.from_roots(root, WindowConfig(window_steps=5, stride_steps=5))
    t = ds.episodes[0].columns[ep.T_S]
    assert np.ptp(np.diff(t)) > 0.005  # jittered timestamps
    item = ds[1]  # episode 0, start 5
    np.testing.assert_allclose(item["dt_s"].numpy(), np.diff(t)[4:9], rtol=1e-6)
    first = ds[0]["dt_s"].numpy()
    assert first[0] == pytest.approx(t[1] - t[0], rel=1e-6)


def test_skipped_steps_sample_the_recording_at_irregular_longer_periods(root):
    ds = WindowDataset.from_roots(
        root, WindowConfig(window_steps=5, stride_steps=2, step_skip_max=3)
    )
    # A window may span (5 - 1) * 3 + 1 = 13 steps: episode 0 (30 steps) has starts 0..16,
    # episode 1 (12 steps) none.
    assert ds.index.tolist() == [[0, s] for s in range(0, 18, 2)]
    torch.manual_seed(0)
    items = [ds[i] for i in range(len(ds))]
    t = ds.episodes[0].columns[ep.T_S]
    skips = []
    for item in items:
        s = int(item["start"])
        steps = np.flatnonzero(np.isin(t, item["t_s"].numpy()))  # the recorded steps it took
        assert len(steps) == 5 and steps[0] == s
        skips += np.diff(steps).tolist()
        means = item["frames"].float().mean(dim=(1, 2, 3)).numpy()
        np.testing.assert_allclose(means, [level(0, j) for j in steps], atol=2)
        np.testing.assert_allclose(item["label"].numpy(), 0.001 * steps, atol=1e-7)
        np.testing.assert_allclose(item["dt_s"].numpy()[1:], np.diff(t[steps]), rtol=1e-6)
    assert set(skips) == {1, 2, 3}  # every period drawn, each a whole number of steps
    torch.manual_seed(0)
    again = ds[0]
    assert torch.equal(again["t_s"], items[0]["t_s"])  # reproducible from torch's seed


def test_loss_weights_follow_the_ncp_formula(root):
    ds = WindowDataset.from_roots(root, WindowConfig(window_steps=8, weight_alpha_m=100.0))
    item = ds[2]
    np.testing.assert_allclose(
        item["weight"].numpy(), np.exp(100.0 * np.abs(item["label"].numpy())), rtol=1e-6
    )
    assert torch.all(WindowDataset.from_roots(root, WindowConfig(window_steps=8))[2]["weight"] == 1)


@pytest.mark.parametrize("method", ["rejection", "multinomial"])
def test_balanced_sampler_favours_curvy_windows(root, method):
    ds = WindowDataset.from_roots(root, WindowConfig(window_steps=8, stride_steps=4))
    w = ds.window_weights(200.0)
    sampler = BalancedWindowSampler(ds, alpha_m=200.0, num_samples=20000, seed=1, method=method)
    counts = np.bincount(list(sampler), minlength=len(ds))
    assert counts.sum() == 20000
    np.testing.assert_allclose(counts / 20000, w / w.sum(), atol=0.015)
    assert list(sampler)[:50] != list(sampler)[:50] or len(ds) == 1  # new draws each pass
    again = BalancedWindowSampler(ds, alpha_m=200.0, num_samples=50, seed=1, method=method)
    assert list(again) == list(BalancedWindowSampler(ds, 200.0, 50, seed=1, method=method))


def test_works_with_dataloader_workers(root):
    ds = WindowDataset.from_roots(root, WindowConfig(window_steps=6, stride_steps=3))
    loader = DataLoader(ds, batch_size=4, num_workers=2, shuffle=False)
    batches = list(loader)
    assert sum(b["frames"].shape[0] for b in batches) == len(ds)
    assert batches[0]["frames"].shape == (4, 6, H, W, 3)
    torch.testing.assert_close(batches[0]["label"][1], ds[1]["label"])


def test_splits_by_episode_town_and_weather(root):
    episodes = ep.load_episodes(root)
    train, val = split_by_episode(episodes, val_fraction=0.34, seed=0)
    assert len(val) == 1 and len(train) == 2
    assert {e.index for e in train} | {e.index for e in val} == {0, 1, 2}
    assert split_by_episode(episodes, 0.34, seed=0)[1][0].index == val[0].index
    train, val = split_by_town(episodes, ["city"])
    assert [e.index for e in train] == [0] and [e.index for e in val] == [1, 2]
    train, val = split_by_weather(episodes, ["fog"])
    assert [e.index for e in val] == [1]
    with pytest.raises(ValueError, match="val_fraction"):
        split_by_episode(episodes, 1.0)


def test_config_validation_and_missing_label(root):
    with pytest.raises(ValueError, match="window_steps must be >= 1, got 0"):
        WindowConfig(window_steps=0)
    with pytest.raises(ValueError, match="weight_alpha_m"):
        WindowConfig(weight_alpha_m=-1.0)
    with pytest.raises(ValueError, match="step_skip_max must be >= 1, got 0"):
        WindowConfig(step_skip_max=0)
    with pytest.raises(KeyError, match="curvature_pred"):
        WindowDataset.from_roots(root, WindowConfig(label=ep.CURVATURE_PRED))


def test_no_window_spans_an_intervention_reset(tmp_path):
    """On-policy data: the car is put back on the lane at an intervention, so frames jump."""
    root = tmp_path / "data"
    ep.create_or_open_dataset(root, ep.DatasetInfo("fake", {"width_px": W, "height_px": H}, 20.0))
    w = ep.EpisodeWriter(root, {"town": "hills", "weather": "clear"})
    for i in range(30):
        row = {name: 0.0 for name in ep.BASE_COLUMN_NAMES if name != ep.FRAME_INDEX}
        row |= {ep.T_S: 0.05 * i, ep.SPEED_MPS: 5.0, ep.INTERVENTION: float(i == 13)}
        w.write_step(np.full((H, W, 3), 10, np.uint8), row)
    w.finish({"outcome": "time_limit"})
    ds = WindowDataset.from_roots(root, WindowConfig(window_steps=8, stride_steps=1))
    starts = ds.index[:, 1].tolist()
    assert starts == [s for s in range(0, 23) if not s <= 13 < s + 8]
    assert 5 in starts and 14 in starts and 6 not in starts and 13 not in starts
