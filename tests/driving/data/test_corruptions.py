"""Fault injection: corrupted datasets through the one validation that inspection and training run.

Each case damages a good two-episode dataset in one way (``info.json``, ``episode.json``,
``steps.csv``, frames, names, links, truncation, NUL bytes, wrong types, absurd values) and
asserts the project's error type and that the message names the damaged file (and, for
values, the field and the row).
"""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from driving.data import episodes as ep
from driving.data.frames import encode_frame
from driving.data.summary import InspectConfig, inspect_dataset
from driving.data.validate import load_valid_episodes, validate_dataset
from liquid_drive.errors import LiquidDriveError
from tests.driving.data.recorded import make_dataset, write_episode

N = 6  # steps of the damaged episode


# --- how to damage ---------------------------------------------------------------------------


def info_path(root):
    return root / "meta" / "info.json"


def edit_json(path, **changes):
    content = json.loads(path.read_text())
    for key, value in changes.items():
        *parents, last = key.split(".")
        d = content
        for p in parents:
            d = d[p]
        d[last] = value
    path.write_text(json.dumps(content))
    return path


def edit_cell(episode, step, column, value):
    path = episode / "steps.csv"
    lines = path.read_text().split("\n")
    col = lines[0].split(",").index(column)
    cells = lines[step + 1].split(",")
    cells[col] = value
    lines[step + 1] = ",".join(cells)
    path.write_text("\n".join(lines))
    return path


def edit_lines(episode, fn):
    path = episode / "steps.csv"
    path.write_text("\n".join(fn(path.read_text().split("\n"))))
    return path


def write_bytes(path, data):
    path.write_bytes(data)
    return path


def frame_path(episode, i=2):
    return episode / "frames" / f"{i:06d}.jpg"


def garble_middle(episode, how):
    path = frame_path(episode)
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    if how == "random":
        data[mid : mid + 48] = np.random.default_rng(0).integers(0, 255, 48, np.uint8).tobytes()
    elif how == "zeros":
        data[mid : mid + 48] = bytes(48)
    else:  # one flipped bit
        data[mid] ^= 0x04
    return write_bytes(path, bytes(data))


def replace_with_link(path, target):
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()
    path.symlink_to(target)
    return path


# Each case: (name, damage(root, episode) -> the path the message must name, error, field).
F = ep.InvalidDataError
CASES = [
    # meta/info.json
    ("info_missing", lambda r, e: info_path(r).unlink() or r, ep.NotADatasetError, None),
    ("info_not_json", lambda r, e: write_bytes(info_path(r), b"{"), ep.NotADatasetError, None),
    (
        "info_nul_bytes",
        lambda r, e: write_bytes(info_path(r), bytes(64)),
        ep.NotADatasetError,
        None,
    ),
    ("info_a_list", lambda r, e: write_bytes(info_path(r), b"[1]"), ep.NotADatasetError, None),
    (
        "info_deep_nesting",
        lambda r, e: write_bytes(info_path(r), b"[" * 100_000),
        ep.NotADatasetError,
        None,
    ),
    (
        "info_other_format",
        lambda r, e: edit_json(info_path(r), format="lerobot"),
        ep.NotADatasetError,
        None,
    ),
    (
        "info_newer_version",
        lambda r, e: edit_json(info_path(r), format_version=ep.FORMAT_VERSION + 1),
        ep.DatasetMismatchError,
        None,
    ),
    (
        "info_rate_a_string",
        lambda r, e: edit_json(info_path(r), control_rate_hz="20"),
        F,
        "control_rate_hz",
    ),
    (
        "info_rate_zero",
        lambda r, e: edit_json(info_path(r), control_rate_hz=0),
        ep.EpisodeFormatError,
        None,
    ),
    (
        "info_rate_absurd",
        lambda r, e: edit_json(info_path(r), control_rate_hz=5000.0),
        F,
        "control_rate_hz",
    ),
    (
        "info_width_a_bool",
        lambda r, e: edit_json(info_path(r), **{"camera.width_px": True}),
        ep.EpisodeFormatError,
        None,
    ),
    (
        "info_height_absurd",
        lambda r, e: edit_json(info_path(r), **{"camera.height_px": 10**6}),
        F,
        "camera.height_px",
    ),
    (
        "info_fov_absurd",
        lambda r, e: edit_json(info_path(r), **{"camera.hfov_deg": 270}),
        F,
        "camera.hfov_deg",
    ),
    (
        "info_no_frames_table",
        lambda r, e: edit_json(info_path(r), frames=None),
        ep.EpisodeFormatError,
        None,
    ),
    # entries of episodes/
    ("entry_a_file", lambda r, e: write_bytes(r / "episodes" / "episode_000009", b"x"), F, None),
    ("entry_a_link_loop", lambda r, e: replace_with_link(e, e.name), F, None),
    ("entry_a_dangling_link", lambda r, e: replace_with_link(e, "/nonexistent/episode"), F, None),
    (
        "entry_a_bad_name",
        lambda r, e: e.rename(r / "episodes" / "episode_12") or r / "episodes" / "episode_12",
        F,
        None,
    ),
    (
        "entry_a_duplicate_id",
        lambda r, e: shutil.copytree(e, r / "episodes" / "episode_0000000"),
        F,
        None,
    ),
    (
        "episodes_a_file",
        lambda r, e: shutil.rmtree(r / "episodes") or write_bytes(r / "episodes", b""),
        F,
        None,
    ),
    # episode.json
    (
        "meta_missing",
        lambda r, e: (e / "episode.json").unlink() or e / "episode.json",
        ep.EpisodeFormatError,
        None,
    ),
    (
        "meta_truncated",
        lambda r, e: write_bytes(e / "episode.json", b'{"town": '),
        ep.EpisodeFormatError,
        None,
    ),
    (
        "meta_nul_bytes",
        lambda r, e: write_bytes(e / "episode.json", bytes(100)),
        ep.EpisodeFormatError,
        None,
    ),
    (
        "meta_a_list",
        lambda r, e: write_bytes(e / "episode.json", b"[]"),
        ep.EpisodeFormatError,
        None,
    ),
    (
        "meta_num_steps_wrong",
        lambda r, e: edit_json(e / "episode.json", num_steps=N + 1).parent,
        ep.EpisodeFormatError,
        None,
    ),
    (
        "meta_num_steps_a_string",
        lambda r, e: edit_json(e / "episode.json", num_steps=str(N)).parent,
        ep.EpisodeFormatError,
        None,
    ),
    (
        "meta_still_recording",
        lambda r, e: edit_json(e / "episode.json", status="recording"),
        F,
        "status",
    ),
    ("meta_town_a_number", lambda r, e: edit_json(e / "episode.json", town=3), F, "town"),
    (
        "meta_extra_columns_a_list",
        lambda r, e: edit_json(e / "episode.json", extra_columns=[]),
        ep.EpisodeFormatError,
        None,
    ),
    (
        "meta_unit_a_number",
        lambda r, e: edit_json(e / "episode.json", extra_columns={"a": 1}),
        F,
        "a",
    ),
    # steps.csv: structure
    (
        "steps_missing",
        lambda r, e: (e / "steps.csv").unlink() or e / "steps.csv",
        ep.EpisodeFormatError,
        None,
    ),
    ("steps_empty", lambda r, e: write_bytes(e / "steps.csv", b""), ep.EpisodeFormatError, None),
    (
        "steps_truncated_row",
        lambda r, e: write_bytes(e / "steps.csv", (e / "steps.csv").read_bytes()[:-9]),
        ep.EpisodeFormatError,
        None,
    ),
    (
        "steps_nul_hole",
        lambda r, e: edit_lines(e, lambda ls: [*ls[:3], "\0" * 40, *ls[4:]]),
        ep.EpisodeFormatError,
        None,
    ),
    (
        "steps_not_utf8",
        lambda r, e: write_bytes(e / "steps.csv", b"\xff\xfe" + (e / "steps.csv").read_bytes()),
        ep.EpisodeFormatError,
        None,
    ),
    (
        "steps_extra_field",
        lambda r, e: edit_lines(e, lambda ls: [*ls[:2], ls[2] + ",1", *ls[3:]]),
        ep.EpisodeFormatError,
        None,
    ),
    (
        "steps_missing_column",
        lambda r, e: edit_lines(e, lambda ls: [",".join(x.split(",")[:-1]) for x in ls]),
        ep.EpisodeFormatError,
        None,
    ),
    (
        "steps_duplicate_column",
        lambda r, e: edit_lines(e, lambda ls: [ls[0].replace("y_m", "x_m"), *ls[1:]]),
        ep.EpisodeFormatError,
        None,
    ),
    (
        "steps_undeclared_column",
        lambda r, e: edit_lines(
            e, lambda ls: [ls[0] + ",z", *(x + ",0" if x else x for x in ls[1:])]
        ),
        ep.EpisodeFormatError,
        None,
    ),
    (
        "steps_text_value",
        lambda r, e: edit_cell(e, 3, ep.SPEED_MPS, "fast"),
        ep.EpisodeFormatError,
        None,
    ),
    ("steps_nan", lambda r, e: edit_cell(e, 3, ep.X_M, "nan"), ep.EpisodeFormatError, None),
    ("steps_inf", lambda r, e: edit_cell(e, 3, ep.Y_M, "-inf"), ep.EpisodeFormatError, None),
    (
        "steps_header_only",
        lambda r, e: edit_lines(e, lambda ls: [ls[0], ""]).parent,
        ep.EpisodeFormatError,
        None,
    ),
    # steps.csv: types and physics
    (
        "frame_index_swapped",
        lambda r, e: edit_cell(e, 1, ep.FRAME_INDEX, "2"),
        ep.EpisodeFormatError,
        None,
    ),
    (
        "frame_index_fraction",
        lambda r, e: edit_cell(e, 1, ep.FRAME_INDEX, "1.5"),
        F,
        ep.FRAME_INDEX,
    ),
    ("flag_two", lambda r, e: edit_cell(e, 2, ep.NOISE_ACTIVE, "2"), F, ep.NOISE_ACTIVE),
    ("flag_negative", lambda r, e: edit_cell(e, 4, ep.COLLISION, "-1"), F, ep.COLLISION),
    ("time_backwards", lambda r, e: edit_cell(e, 3, ep.T_S, "0.01"), F, ep.T_S),
    ("time_stands_still", lambda r, e: edit_cell(e, 3, ep.T_S, "0.1"), F, ep.T_S),
    ("time_jumps_an_hour", lambda r, e: edit_cell(e, 5, ep.T_S, "3600.0"), F, ep.T_S),
    (
        "label_absurd",
        lambda r, e: edit_cell(e, 2, ep.CURVATURE_EXPERT, "5.0"),
        F,
        ep.CURVATURE_EXPERT,
    ),
    (
        "applied_absurd",
        lambda r, e: edit_cell(e, 2, ep.CURVATURE_APPLIED, "-1e6"),
        F,
        ep.CURVATURE_APPLIED,
    ),
    ("speed_negative", lambda r, e: edit_cell(e, 1, ep.SPEED_MPS, "-3.0"), F, ep.SPEED_MPS),
    ("speed_absurd", lambda r, e: edit_cell(e, 1, ep.SPEED_MPS, "1e4"), F, ep.SPEED_MPS),
    (
        "heading_absurd",
        lambda r, e: edit_cell(e, 1, ep.HEADING_ERROR_RAD, "10.0"),
        F,
        ep.HEADING_ERROR_RAD,
    ),
    (
        "lane_width_negative",
        lambda r, e: edit_cell(e, 1, ep.LANE_HALF_WIDTH_M, "-1.75"),
        F,
        ep.LANE_HALF_WIDTH_M,
    ),
    (
        "offset_absurd",
        lambda r, e: edit_cell(e, 1, ep.LATERAL_OFFSET_M, "1000"),
        F,
        ep.LATERAL_OFFSET_M,
    ),
    ("position_absurd", lambda r, e: edit_cell(e, 1, ep.X_M, "1e12"), F, ep.X_M),
    # frames
    (
        "frame_not_a_jpeg",
        lambda r, e: write_bytes(frame_path(e), b"\xff\xd8 not a jpeg"),
        ep.EpisodeFormatError,
        None,
    ),
    ("frame_empty", lambda r, e: write_bytes(frame_path(e), b""), ep.EpisodeFormatError, None),
    (
        "frame_truncated",
        lambda r, e: write_bytes(frame_path(e), frame_path(e).read_bytes()[:300]),
        ep.EpisodeFormatError,
        None,
    ),
    ("frame_garbled_middle", lambda r, e: garble_middle(e, "random"), ep.EpisodeFormatError, None),
    ("frame_zeroed_middle", lambda r, e: garble_middle(e, "zeros"), ep.EpisodeFormatError, None),
    ("frame_one_bit_flipped", lambda r, e: garble_middle(e, "bit"), ep.EpisodeFormatError, None),
    (
        "frame_trailing_garbage",
        lambda r, e: write_bytes(frame_path(e), frame_path(e).read_bytes() + b"junk"),
        ep.EpisodeFormatError,
        None,
    ),
    (
        "frame_wrong_size",
        lambda r, e: write_bytes(frame_path(e), encode_frame(np.zeros((20, 40, 3), np.uint8), 90)),
        ep.EpisodeFormatError,
        None,
    ),
    (
        "frame_missing",
        lambda r, e: frame_path(e, 3).unlink() or e / "frames",
        ep.EpisodeFormatError,
        None,
    ),
    (
        "frame_extra",
        lambda r, e: shutil.copy(frame_path(e, 0), frame_path(e, N)) and e / "frames",
        ep.EpisodeFormatError,
        None,
    ),
    (
        "frame_a_folder",
        lambda r, e: frame_path(e).unlink() or frame_path(e).mkdir() or frame_path(e),
        ep.EpisodeFormatError,
        None,
    ),
    (
        "frame_a_link_loop",
        lambda r, e: replace_with_link(frame_path(e), frame_path(e).name),
        ep.EpisodeFormatError,
        None,
    ),
    (
        "frame_a_fifo",
        lambda r, e: frame_path(e).unlink() or os.mkfifo(frame_path(e)) or frame_path(e),
        ep.EpisodeFormatError,
        None,
    ),
    (
        "frame_a_device",
        lambda r, e: replace_with_link(frame_path(e), "/dev/zero"),
        ep.EpisodeFormatError,
        None,
    ),
    (
        "frames_folder_missing",
        lambda r, e: shutil.rmtree(e / "frames") or e / "frames",
        ep.EpisodeFormatError,
        None,
    ),
]


@pytest.fixture
def damaged(tmp_path, request):
    root = make_dataset(tmp_path / "data")
    bad = write_episode(root, n=N)
    write_episode(root, n=4)
    _, damage, error, field = request.param
    return root, Path(damage(root, bad)), error, field


def assert_names(err, error, named, field):
    assert isinstance(err, error) and isinstance(err, LiquidDriveError), repr(err)
    assert str(named) in str(err), (str(named), str(err))
    if field is not None:
        assert err.field == field, str(err)


@pytest.mark.parametrize("damaged", CASES, ids=[c[0] for c in CASES], indirect=True)
def test_each_corruption_is_the_projects_error_naming_the_file(damaged):
    root, named, error, field = damaged
    with pytest.raises(ep.EpisodeFormatError) as info:
        validate_dataset(root)
    assert_names(info.value, error, named, field)
    with pytest.raises(ep.EpisodeFormatError) as info:  # what training does: the same checks
        for e in load_valid_episodes([root], frames="structure"):
            e.frames(0, len(e))  # training decodes every frame next (size checked there)
    assert_names(info.value, error, named, field)


def test_there_are_at_least_35_dataset_corruptions():
    assert len(CASES) >= 35


def test_a_good_dataset_passes_every_level_unchanged(tmp_path):
    root = make_dataset(tmp_path / "data")
    paths = [write_episode(root, n=5), write_episode(root, n=3)]
    for frames in ("decode", "structure", "exist"):
        check = validate_dataset(root, frames=frames)
        assert [e.path for e in check.episodes] == paths and check.problems == []
    loaded = ep.load_episodes(root)
    for a, b in zip(loaded, check.episodes, strict=True):
        assert a.meta == b.meta and all(
            np.array_equal(a.columns[k], b.columns[k]) for k in a.columns
        )


def test_inspection_lists_every_bad_episode_and_keeps_the_good(tmp_path):
    root = make_dataset(tmp_path / "data")
    good = write_episode(root, n=5)
    flag = write_episode(root, n=5)
    edit_cell(flag, 2, ep.INTERVENTION, "3")
    garbled = write_episode(root, n=5)
    garble_middle(garbled, "zeros")
    (root / "episodes" / "episode_000099").write_text("not an episode")
    s = inspect_dataset(InspectConfig(root, out_dir=tmp_path / "report"))
    assert s["episodes"] == 1 and s["steps"] == 5
    errors = {Path(b["episode"]).name: b["error"] for b in s["bad_episodes"]}
    assert sorted(errors) == ["episode_000001", "episode_000002", "episode_000099"]
    assert "steps.csv" in errors["episode_000001"] and "intervention" in errors["episode_000001"]
    assert "000002.jpg" in errors["episode_000002"] and "checksum" in errors["episode_000002"]
    assert good.name not in errors


@pytest.mark.parametrize(
    ("column", "value"), [(ep.T_S, "0.0"), (ep.NOISE_ACTIVE, "2"), (ep.CURVATURE_EXPERT, "7")]
)
def test_training_refuses_bad_data_up_front_with_the_projects_message(
    tmp_path, capsys, column, value
):
    from driving.train.trainer import TrainConfig, train
    from tools._cli import EXIT_ERROR, run

    data = make_dataset(tmp_path / "data", camera={"width_px": 200, "height_px": 78})
    for _ in range(2):  # the policy's default input: 200 x 78 px
        last = write_episode(data, n=12, frame_fn=lambda i: np.full((78, 200, 3), 90 + i, np.uint8))
    steps = edit_cell(last, 5, column, value)
    cfg = TrainConfig(data=(data,), out=tmp_path / "run", steps=2, batch_size=2, window_steps=4,
                      val_fraction=0.0, tensorboard=False, threads=1)  # fmt: skip
    with pytest.raises(ep.InvalidDataError) as info:
        train(cfg)
    assert_names(info.value, ep.InvalidDataError, steps, column)
    assert info.value.row == 5 and not (tmp_path / "run" / "last").exists()
    argv = ["--data", str(data), "--out", str(tmp_path / "cli"), "--steps", "2"]
    assert run(TrainConfig, train, argv=argv) == EXIT_ERROR  # what tools/train.py will print
    err = capsys.readouterr().err
    assert f"error: {steps}: line 7 (step 5) {column!r}" in err and "Traceback" not in err
