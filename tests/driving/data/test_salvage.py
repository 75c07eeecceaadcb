"""Salvage refuses an episode a live process is writing and finishes it once the writer died.

The writer runs in a real second process (a subprocess), as ``tools/record.py`` would while
``tools/inspect_dataset.py --salvage`` runs beside it.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from driving.data import episodes as ep
from driving.data.lock import LOCK_FILE
from tests.driving.data.recorded import make_dataset, write_episode
from tools.inspect_dataset import main as inspect_main

ROOT = Path(__file__).resolve().parents[3]

WRITER = """
import sys
from driving.data import episodes as ep
from tests.driving.data.recorded import frame, row

w = ep.EpisodeWriter(sys.argv[1], {"town": "hills", "weather": "clear"})
for i in range(4):
    w.write_step(frame(i), row(i))
print(w.path, flush=True)
if sys.stdin.readline().strip() == "go on":
    for i in range(4, 7):
        w.write_step(frame(i), row(i))
    print(w.finish({"outcome": "route_complete"}), flush=True)
"""


@pytest.fixture
def dataset(tmp_path):
    return make_dataset(tmp_path / "data")


def start_writer(dataset):
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(dataset)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return proc, Path(proc.stdout.readline().strip())


def snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_salvage_refuses_a_live_recording_and_the_recorder_carries_on(dataset):
    proc, partial = start_writer(dataset)
    try:
        assert partial.name == "episode_000000.partial" and (partial / LOCK_FILE).is_file()
        before = snapshot(partial)
        with pytest.raises(ep.LiveEpisodeError, match=rf"{partial}.*live process.*pid {proc.pid}"):
            ep.salvage_episode(partial)
        report = ep.salvage_dataset(dataset)
        assert report.salvaged == [] and len(report.live) == 1 and "live" in report.live[0]
        assert snapshot(partial) == before  # nothing truncated, renamed or added
        out, _ = proc.communicate("go on\n", timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0
    final = Path(out.strip())
    e = ep.read_episode(final, check_frames=True)
    assert len(e) == 7 and e.meta["num_steps"] == 7 and e.meta["outcome"] == "route_complete"
    assert not (final / LOCK_FILE).exists() and not partial.exists()


def test_after_the_writer_is_killed_salvage_finishes_the_episode(dataset, capsys):
    proc, partial = start_writer(dataset)
    assert inspect_main([str(dataset), "--salvage"]) == 0  # refused, not an error
    assert "NOT SALVAGED" in capsys.readouterr().out and partial.is_dir()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    final = ep.salvage_episode(partial)
    e = ep.read_episode(final, check_frames=True)
    assert len(e) == 4 and e.meta["outcome"] == "salvaged" and e.meta["num_steps"] == 4
    assert sorted(p.name for p in final.iterdir()) == ["episode.json", "frames", "steps.csv"]


def test_a_writer_in_this_process_is_live_too_until_closed(dataset):
    w = ep.EpisodeWriter(dataset, {})
    write = write_episode(dataset, n=2, finish=False)  # another writer, closed
    with pytest.raises(ep.LiveEpisodeError):
        ep.salvage_episode(w.path)
    assert ep.salvage_episode(write).name == "episode_000001"
    w.close()  # closing without finishing releases the lock
    assert ep.salvage_episode(w.path) is None  # no step written: left alone
    assert w.path.is_dir()


def test_a_legacy_partial_without_lock_file_is_salvaged(dataset):
    path = write_episode(dataset, n=3, finish=False)
    (path / LOCK_FILE).unlink()  # as written before the lock existed
    assert len(ep.read_episode(ep.salvage_episode(path))) == 3


def test_a_killed_writers_staging_folder_is_cleaned_but_a_live_one_kept(dataset):
    live = ep.EpisodeWriter(dataset, {})
    stale = dataset / "episodes" / ".new-episode-dead"
    stale.mkdir()
    (stale / LOCK_FILE).write_text("pid 1 on nowhere\n")
    ep.salvage_dataset(dataset)
    assert not stale.exists() and live.path.is_dir()
    live.close()
