"""The episode format: write, read, refuse bad input with errors naming the file, salvage."""

import functools
import json
import os
import shutil

import numpy as np
import pytest

from driving.data import episodes as ep
from tests.driving.data import recorded
from tests.driving.data.recorded import CAMERA, make_info, row


def frame(i):
    img = np.full((16, 40, 3), (20 + 9 * i) % 230, np.uint8)
    img[..., 0] = 200  # red channel: checks RGB order survives the round trip
    return img


write_episode = functools.partial(recorded.write_episode, frame_fn=frame)


@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "data"
    ep.create_or_open_dataset(root, make_info())
    return root


def test_round_trip_columns_units_frames_and_metadata(dataset):
    path = write_episode(dataset, n=6, meta={"town": "hills", "weather": "fog", "seed": 3})
    assert path.name == "episode_000000"
    e = ep.read_episode(path, check_frames=True)
    assert len(e) == 6 and e.index == 0 and e.town == "hills" and e.weather == "fog"
    assert e.meta["seed"] == 3 and e.meta["outcome"] == "route_complete"
    assert e.meta["num_steps"] == 6 and e.meta["status"] == "complete"
    np.testing.assert_allclose(e.columns[ep.T_S], 0.05 * np.arange(6))
    np.testing.assert_allclose(e.columns[ep.CURVATURE_EXPERT], 0.02 * np.sin(np.arange(6)))
    assert e.columns[ep.NOISE_ACTIVE].dtype == np.bool_
    assert e.columns[ep.NOISE_ACTIVE].tolist() == [i % 3 == 0 for i in range(6)]
    assert e.columns[ep.FRAME_INDEX].tolist() == list(range(6))
    assert e.units[ep.CURVATURE_EXPERT] == "1/m" and e.units[ep.T_S] == "s"
    img = e.frame(4)
    assert img.shape == (16, 40, 3) and img.dtype == np.uint8
    assert abs(int(img[..., 0].mean()) - 200) <= 3  # R stays R
    assert abs(int(img[..., 2].mean()) - frame(4)[0, 0, 2]) <= 3
    assert e.frames(1, 4).shape == (3, 16, 40, 3)


def test_info_json_describes_format_camera_rate_and_units(dataset):
    info = json.loads((dataset / "meta" / "info.json").read_text())
    assert info["format"] == ep.FORMAT_NAME and info["format_version"] == ep.FORMAT_VERSION
    assert info["camera"] == CAMERA and info["control_rate_hz"] == 20.0
    units = {c["name"]: c["unit"] for c in info["columns"]}
    assert units[ep.CURVATURE_APPLIED] == "1/m" and units[ep.SPEED_MPS] == "m/s"
    assert [c["name"] for c in info["columns"]] == list(ep.BASE_COLUMN_NAMES)


def test_extra_columns_carry_units_and_are_read_back(dataset):
    extra = {ep.CURVATURE_PRED: "1/m", ep.neuron_column(0): "1"}
    path = write_episode(
        dataset, n=4, extra_columns=extra, curvature_pred=lambda i: -i, neuron_000=lambda i: 0.5
    )
    e = ep.read_episode(path)
    assert e.columns[ep.CURVATURE_PRED].tolist() == [0.0, -1.0, -2.0, -3.0]
    assert e.units[ep.neuron_column(0)] == "1"
    with pytest.raises(ValueError, match="missing"):
        w = ep.EpisodeWriter(dataset, {}, extra)
        w.write_step(frame(0), row(0))


def test_ids_increase_when_appending_and_skip_partials(dataset):
    write_episode(dataset)
    write_episode(dataset, finish=False)
    third = write_episode(dataset)
    assert third.name == "episode_000002"
    assert [p.name for p in ep.list_episodes(dataset)] == ["episode_000000", "episode_000002"]
    assert [p.name for p in ep.list_partial_episodes(dataset)] == ["episode_000001.partial"]
    assert [e.index for e in ep.iter_episodes(dataset)] == [0, 2]


def test_partial_episode_is_never_read(dataset):
    path = write_episode(dataset, finish=False)
    with pytest.raises(ep.PartialEpisodeError, match=r"partial.*--salvage"):
        ep.read_episode(path)


def test_create_refuses_other_camera_rate_sim_and_non_dataset_folders(tmp_path, dataset):
    assert ep.create_or_open_dataset(dataset, make_info()) == make_info()
    other_cam = ep.DatasetInfo("fake", {**CAMERA, "width_px": 41}, 20.0)
    with pytest.raises(ep.DatasetMismatchError, match="camera"):
        ep.create_or_open_dataset(dataset, other_cam)
    with pytest.raises(ep.DatasetMismatchError, match=r"control rate 20.0 Hz vs 10.0 Hz"):
        ep.create_or_open_dataset(dataset, ep.DatasetInfo("fake", dict(CAMERA), 10.0))
    with pytest.raises(ep.DatasetMismatchError, match="sim"):
        ep.create_or_open_dataset(dataset, ep.DatasetInfo("carla", dict(CAMERA), 20.0))
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("hi")
    with pytest.raises(ep.NotADatasetError, match="non-empty folder"):
        ep.create_or_open_dataset(junk, make_info())
    other_format = tmp_path / "other"
    (other_format / "meta").mkdir(parents=True)
    (other_format / "meta" / "info.json").write_text(json.dumps({"format": "lerobot"}))
    with pytest.raises(ep.NotADatasetError, match="lerobot"):
        ep.create_or_open_dataset(other_format, make_info())
    newer = json.loads((dataset / "meta" / "info.json").read_text()) | {"format_version": 99}
    (dataset / "meta" / "info.json").write_text(json.dumps(newer))
    with pytest.raises(ep.DatasetMismatchError, match="version 99"):
        ep.read_info(dataset)


def test_folder_that_is_not_a_dataset(tmp_path):
    with pytest.raises(ep.NotADatasetError, match=r"no meta/info\.json"):
        ep.list_episodes(tmp_path)
    with pytest.raises(ep.NotADatasetError, match="not a folder"):
        ep.read_info(tmp_path / "missing")
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "info.json").write_text("{not json")
    with pytest.raises(ep.NotADatasetError, match=r"info\.json"):
        ep.read_info(tmp_path)


# --- bad input: each is a clear EpisodeFormatError naming the file -----------------------------


def corrupt(path, case):
    frames = path / "frames"
    if case == "corrupt_jpeg":
        (frames / "000002.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
        return "000002.jpg", True
    if case == "missing_jpeg":
        (frames / "000003.jpg").unlink()
        return "frames", False
    if case == "truncated_csv":
        data = (path / "steps.csv").read_bytes()
        (path / "steps.csv").write_bytes(data[:-7])
        return "steps.csv", False
    if case == "malformed_csv":
        lines = (path / "steps.csv").read_text().split("\n")
        lines[2] = lines[2].replace(",", ",abc,", 1)
        (path / "steps.csv").write_text("\n".join(lines))
        return "steps.csv", False
    if case == "non_numeric_csv":
        lines = (path / "steps.csv").read_text().split("\n")
        parts = lines[3].split(",")
        parts[1] = "fast"
        lines[3] = ",".join(parts)
        (path / "steps.csv").write_text("\n".join(lines))
        return "steps.csv", False
    if case == "missing_column":
        lines = (path / "steps.csv").read_text().split("\n")
        lines = [",".join(x.split(",")[:-1]) if x else x for x in lines]
        (path / "steps.csv").write_text("\n".join(lines))
        return "steps.csv", False
    if case == "rows_vs_frames":
        shutil.copy(frames / "000000.jpg", frames / "000005.jpg")
        return "frames", False
    if case == "rows_vs_episode_json":
        lines = (path / "steps.csv").read_text().split("\n")
        (path / "steps.csv").write_text("\n".join([*lines[:-2], ""]))
        return "episode_000000", False
    if case == "wrong_image_size":
        import cv2

        big = np.zeros((20, 40, 3), np.uint8)
        cv2.imwrite(str(frames / "000004.jpg"), big)
        return "000004.jpg", False
    if case == "missing_episode_json":
        (path / "episode.json").unlink()
        return "episode.json", False
    if case == "malformed_episode_json":
        (path / "episode.json").write_text('{"town": ')
        return "episode.json", False
    raise AssertionError(case)


BAD_CASES = [
    "corrupt_jpeg",
    "missing_jpeg",
    "truncated_csv",
    "malformed_csv",
    "non_numeric_csv",
    "missing_column",
    "rows_vs_frames",
    "rows_vs_episode_json",
    "wrong_image_size",
    "missing_episode_json",
    "malformed_episode_json",
]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_episode_is_a_clear_error_naming_the_file(dataset, case):
    path = write_episode(dataset, n=5)
    good = write_episode(dataset, n=3)
    names, only_on_decode = corrupt(path, case)
    if only_on_decode:  # a corrupt middle frame is found when it is decoded (or checked)
        e = ep.read_episode(path)
        with pytest.raises(ep.EpisodeFormatError, match=names):
            e.frame(2)
    with pytest.raises(ep.EpisodeFormatError, match=names):
        ep.read_episode(path, check_frames=True)
    with pytest.raises(ep.EpisodeFormatError, match=names):
        list(ep.iter_episodes(dataset, check_frames=True))
    kept = list(ep.iter_episodes(dataset, skip_bad=True, check_frames=True))
    assert [e.path for e in kept] == [good]


def test_bad_episode_is_skipped_with_a_warning(dataset, caplog):
    path = write_episode(dataset, n=5)
    corrupt(path, "truncated_csv")
    assert ep.load_episodes(dataset, skip_bad=True) == []
    assert "skipping episode" in caplog.text and "steps.csv" in caplog.text


def test_writer_rejects_bad_steps(dataset):
    w = ep.EpisodeWriter(dataset, {})
    with pytest.raises(ValueError, match="uint8"):
        w.write_step(np.zeros((16, 41, 3), np.uint8), row(0))
    with pytest.raises(ValueError, match="speed_mps"):
        w.write_step(frame(0), row(0) | {ep.SPEED_MPS: float("nan")})
    with pytest.raises(ValueError, match="unknown"):
        w.write_step(frame(0), row(0) | {"bogus": 1.0})
    with pytest.raises(ValueError, match="at least one step"):
        w.finish()
    w.close()


def test_salvage_keeps_complete_rows_only(dataset):
    path = write_episode(dataset, n=6, finish=False)
    # Simulate a kill mid-step: half a row and a frame without a row.
    with open(path / "steps.csv", "a") as f:
        f.write("6,0.3,8.0,0.01")
    (path / "frames" / "000006.jpg").write_bytes(b"\xff\xd8partial")
    final = ep.salvage_episode(path)
    assert final is not None and final.name == "episode_000000" and not path.exists()
    e = ep.read_episode(final, check_frames=True)
    assert len(e) == 6 and e.meta["outcome"] == "salvaged" and e.town == "hills"


def test_salvage_stops_at_a_corrupt_frame_and_gives_up_on_nothing(dataset):
    path = write_episode(dataset, n=6, finish=False)
    (path / "frames" / "000004.jpg").write_bytes(b"junk")
    final = ep.salvage_episode(path)
    assert len(ep.read_episode(final, check_frames=True)) == 4
    empty = write_episode(dataset, n=0, finish=False)
    assert ep.salvage_episode(empty) is None and empty.exists()


def test_files_and_folders_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        root = recorded.make_dataset(tmp_path / "data")
        path = write_episode(root, n=2)
    finally:
        os.umask(old)
    modes = {
        p.name: p.stat().st_mode & 0o777
        for p in (root / "meta" / "info.json", path, *path.rglob("*"))
    }
    assert modes.pop(path.name) == modes.pop("frames") == 0o755
    assert set(modes.values()) == {0o644}, modes
