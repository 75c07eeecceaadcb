"""Recovery views in the episode format: writing, reading, validation, salvage, windows."""

import numpy as np
import pytest
import torch

from driving.data import episodes as ep
from driving.data import views as V
from driving.data.salvage import salvage_episode
from driving.data.validate import validate_dataset
from driving.data.windows import WindowConfig, WindowDataset
from driving.train.data import CachedEpisode
from tests.driving.data.recorded import CAMERA, make_dataset, row

H, W = CAMERA["height_px"], CAMERA["width_px"]


def _view_row(i, k):
    out = {}
    for v in range(1, k + 1):
        out |= {
            V.lateral_column(v): 0.1 * v,
            V.yaw_column(v): -0.01 * v,
            V.label_column(v): 0.02 * np.sin(i) - 0.01 * v,
        }
    return out


def _frames(i, k):
    """(K + 1) frames whose colour encodes (step, view)."""
    return [np.full((H, W, 3), (10 * (i % 20), 60 * v, 30), np.uint8) for v in range(k + 1)]


def write_episode(root, n=40, k=2, finish=True):
    meta = {"town": "t", "weather": "w", V.RECOVERY_KEY: {"views": k}} if k else {"town": "t"}
    w = ep.EpisodeWriter(root, meta, V.view_columns(k), views=k)
    for i in range(n):
        frames = _frames(i, k)
        w.write_step(frames[0], row(i, **_view_row(i, k)), np.stack(frames[1:]) if k else None)
    if finish:
        w.finish({"outcome": "time_limit"})
    w.close()
    return w


def test_round_trip_reads_the_views_frames_columns_and_validates(tmp_path):
    root = make_dataset(tmp_path / "d")
    write_episode(root)
    write_episode(root, k=0)  # an episode without views (as recorded before views existed)
    with_views, without = ep.load_episodes(root)
    assert (with_views.views, without.views) == (2, 0)
    assert sorted(p.name for p in (with_views.path / V.VIEWS_DIR).iterdir()) == ["1", "2"]
    frames = with_views.view_frames(2, 3, 6)  # (3, H, W, 3)
    assert frames.shape == (3, H, W, 3)
    assert abs(int(frames[0, 0, 0, 1]) - 120) <= 3  # view 2's colour (JPEG)
    assert abs(int(with_views.view_frames(0, 3, 4)[0, 0, 0, 1]) - 0) <= 3
    np.testing.assert_allclose(
        with_views.columns[V.label_column(1)][:3], 0.02 * np.sin([0, 1, 2]) - 0.01
    )
    assert validate_dataset(root).problems == []
    with pytest.raises(IndexError, match="no view 3"):
        with_views.view_frame_path(3, 0)


def test_a_missing_view_frame_is_an_error_naming_the_folder(tmp_path):
    root = make_dataset(tmp_path / "d")
    path = write_episode(root).final_path
    (path / V.VIEWS_DIR / "2" / ep.frame_name(7)).unlink()
    with pytest.raises(ep.EpisodeFormatError, match=r"views/2: 39 frames of recovery view 2"):
        ep.read_episode(path)


def test_writer_refuses_missing_or_misshapen_views(tmp_path):
    root = make_dataset(tmp_path / "d")
    with pytest.raises(ValueError, match="metadata's recovery says 0"):
        ep.EpisodeWriter(root, {}, V.view_columns(2), views=2)
    w = ep.EpisodeWriter(root, {V.RECOVERY_KEY: {"views": 2}}, V.view_columns(2), views=2)
    with pytest.raises(ValueError, match="recovery view frames must be uint8"):
        w.write_step(_frames(0, 0)[0], row(0, **_view_row(0, 2)))
    w.close()


def test_salvage_drops_the_views_stray_frames(tmp_path):
    root = make_dataset(tmp_path / "d")
    w = write_episode(root, n=10, finish=False)
    stray = w.path / V.VIEWS_DIR / "1" / ep.frame_name(10)  # a view frame without its row
    stray.write_bytes((w.path / V.VIEWS_DIR / "1" / ep.frame_name(0)).read_bytes())
    final = salvage_episode(w.path)
    assert ep.read_episode(final).views == 2 and len(ep.read_episode(final)) == 10


def test_windows_draw_the_recovery_share_from_whole_view_tracks(tmp_path):
    root = make_dataset(tmp_path / "d")
    for _ in range(2):
        write_episode(root, n=40)
    episodes = ep.load_episodes(root)
    base = WindowDataset(episodes, WindowConfig(window_steps=8, stride_steps=4))
    assert np.all(base.view == 0)
    off = WindowDataset(episodes, WindowConfig(window_steps=8, stride_steps=4, recovery_share=0.0))
    np.testing.assert_array_equal(off.index, base.index)
    ds = WindowDataset(
        episodes, WindowConfig(window_steps=8, stride_steps=4, recovery_share=0.25, recovery_seed=1)
    )
    n = len(base)
    assert len(ds) == n + round(n / 3) and np.all(ds.view[:n] == 0)
    assert set(ds.view[n:].tolist()) <= {1, 2} and np.all(ds.view[n:] > 0)
    np.testing.assert_array_equal(ds.index[:n], base.index)
    j = n + int(np.flatnonzero(ds.view[n:] == 2)[0])
    item, (k, s) = ds[j], ds.index[j]
    label = episodes[k].columns[V.label_column(2)][s : s + 8].astype(np.float32)
    torch.testing.assert_close(item["label"], torch.from_numpy(label))
    assert torch.all((item["frames"][:, 0, 0, 1].int() - 120).abs() <= 3)  # every frame: view 2
    for jpeg in (False, True):  # frames held decoded or as JPEG bytes: the same windows
        cached = [CachedEpisode.load(e, views=True, jpeg=jpeg) for e in episodes]
        same = WindowDataset(cached, ds.config)
        assert torch.equal(same[j]["frames"], item["frames"])
        assert cached[k].digest == CachedEpisode.load(episodes[k], views=True).digest
    again = WindowDataset(episodes, ds.config)
    np.testing.assert_array_equal(again.view, ds.view)


def test_a_recovery_share_without_views_is_an_error(tmp_path):
    root = make_dataset(tmp_path / "d")
    write_episode(root, k=0)
    with pytest.raises(ValueError, match="has recovery views"):
        WindowDataset(ep.load_episodes(root), WindowConfig(window_steps=8, recovery_share=0.2))
