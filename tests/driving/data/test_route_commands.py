"""Format version 2: the route-command columns, reading version-1 datasets, bad commands."""

import json
import logging

import numpy as np
import pytest

from driving.data import episodes as ep
from driving.data.summary import format_summary, summarize
from driving.data.validate import validate_dataset
from tests.driving.data.recorded import make_dataset, write_episode

COMMANDS = [0, 1, 1, 3, 2, 0]
JUNCTIONS = [-1, 0, 0, 1, 2, -1]


def write_commands(root):
    meta = {"town": "hills", "weather": "clear", "route_commands": [1, 3, 2]}
    return write_episode(
        root, n=6, meta=meta, command=COMMANDS.__getitem__, junction=JUNCTIONS.__getitem__
    )


def test_version_2_round_trip_of_commands_and_junctions(tmp_path):
    root = make_dataset(tmp_path / "d")
    info = json.loads((root / ep.INFO_PATH).read_text())
    assert info["format_version"] == ep.FORMAT_VERSION == 2
    columns = {c["name"]: c for c in info["columns"]}
    assert columns[ep.COMMAND]["dtype"] == columns[ep.JUNCTION]["dtype"] == "int"
    e = ep.read_episode(write_commands(root))
    assert e.meta["format_version"] == 2
    assert e.columns[ep.COMMAND].dtype == np.int64
    np.testing.assert_array_equal(e.columns[ep.COMMAND], COMMANDS)
    np.testing.assert_array_equal(e.columns[ep.JUNCTION], JUNCTIONS)
    validate_dataset(root)
    summary = summarize([e])
    by_command = summary["steps_by_command"]
    assert by_command == {"follow_lane": 2, "left": 2, "right": 1, "straight": 1}
    text = format_summary(summary | {"dataset": "d", "partial_episodes": 0, "bad_episodes": []})
    assert "steps by route command: follow_lane 2, left 2, right 1, straight 1" in text


def make_v1(root):
    """Rewrites a fresh dataset as format version 1 wrote it (no route-command columns)."""
    path = write_episode(root, n=4)
    steps = path / ep.STEPS_FILE
    lines = [line.split(",") for line in steps.read_text().splitlines()]
    keep = [i for i, name in enumerate(lines[0]) if name not in (ep.COMMAND, ep.JUNCTION)]
    steps.write_text("".join(",".join(row[i] for i in keep) + "\n" for row in lines))
    meta = json.loads((path / ep.EPISODE_FILE).read_text())
    del meta["format_version"]
    (path / ep.EPISODE_FILE).write_text(json.dumps(meta))
    info = json.loads((root / ep.INFO_PATH).read_text())
    info["format_version"] = 1
    info["columns"] = [c for c in info["columns"] if c["name"] not in (ep.COMMAND, ep.JUNCTION)]
    (root / ep.INFO_PATH).write_text(json.dumps(info))
    return path


def test_a_version_1_dataset_reads_as_follow_lane_and_logs_once(tmp_path, caplog):
    root = make_dataset(tmp_path / "d")
    make_v1(root)
    assert ep.read_info(root).format_version == 1
    with caplog.at_level(logging.INFO, logger="driving.data.reader"):
        episodes = ep.load_episodes(root) + ep.load_episodes(root)
    assert sum("format version 1" in r.message for r in caplog.records) == 1
    for e in episodes:
        np.testing.assert_array_equal(e.columns[ep.COMMAND], np.zeros(4, np.int64))
        np.testing.assert_array_equal(e.columns[ep.JUNCTION], np.full(4, -1))
    validate_dataset(root)


def test_appending_to_a_version_1_dataset_upgrades_its_info_and_keeps_old_episodes(tmp_path):
    root = make_dataset(tmp_path / "d")
    old = make_v1(root)
    before = json.loads((root / ep.INFO_PATH).read_text())
    with pytest.raises(ep.DatasetMismatchError, match="create_or_open_dataset"):
        ep.EpisodeWriter(root, {})  # a writer alone never mixes versions
    ep.create_or_open_dataset(root, ep.read_info(root))
    after = json.loads((root / ep.INFO_PATH).read_text())
    assert after["format_version"] == 2 and after["upgraded_from_version"] == 1
    assert {k: v for k, v in after.items() if k not in ("format_version", "columns")} == {
        k: v for k, v in before.items() if k != "format_version" and k != "columns"
    } | {"upgraded_from_version": 1}
    new = write_commands(root)
    old_e, new_e = ep.read_episode(old), ep.read_episode(new)
    assert list(old_e.columns[ep.COMMAND]) == [0] * 4
    np.testing.assert_array_equal(new_e.columns[ep.COMMAND], COMMANDS)
    assert len(validate_dataset(root).episodes) == 2


def test_a_version_2_episode_without_the_columns_is_an_error(tmp_path):
    root = make_dataset(tmp_path / "d")
    path = make_v1(root)
    info = json.loads((root / ep.INFO_PATH).read_text())
    (root / ep.INFO_PATH).write_text(json.dumps(info | {"format_version": 2}))
    meta = json.loads((path / ep.EPISODE_FILE).read_text())
    (path / ep.EPISODE_FILE).write_text(json.dumps(meta | {"format_version": 2}))
    with pytest.raises(ep.EpisodeFormatError, match=r"lacks columns.*command"):
        ep.read_episode(path)


@pytest.mark.parametrize(
    ("column", "value", "match"),
    [(ep.COMMAND, 4, "unknown command 4"), (ep.COMMAND, 1.5, "not an integer"),
     (ep.JUNCTION, -2, "below -1")],
)  # fmt: skip
def test_a_bad_command_or_junction_names_the_file_and_row(tmp_path, column, value, match):
    root = make_dataset(tmp_path / "d")
    path = write_commands(root)
    steps = path / ep.STEPS_FILE
    lines = steps.read_text().splitlines()
    col = lines[0].split(",").index(column)
    cells = lines[3].split(",")
    cells[col] = str(value)
    lines[3] = ",".join(cells)
    steps.write_text("\n".join(lines) + "\n")
    with pytest.raises(ep.InvalidDataError, match=match) as info:
        ep.read_episode(path)
    assert info.value.path == steps and info.value.row == 2 and info.value.field == column
    assert "line 4" in str(info.value)


def test_a_junction_beyond_the_route_commands_fails_validation(tmp_path):
    root = make_dataset(tmp_path / "d")
    meta = {"town": "hills", "weather": "clear", "route_commands": [1]}
    write_episode(root, n=3, meta=meta, junction=lambda i: i - 1)
    with pytest.raises(ep.InvalidDataError, match="junction 1 but the route has 1"):
        validate_dataset(root)
