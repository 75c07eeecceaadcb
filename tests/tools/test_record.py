"""tools/record.py: the command line, crash safety (SIGKILL/SIGTERM) and workers ending with it."""

import contextlib
import json
import os
import signal

import pytest

from driving.data import episodes as ep
from tests.driving.rollout.processes import children, start_tool, wait_for, wait_gone
from tools.record import main


def _start(out, *args):
    return start_tool(
        "record", "--out", str(out), "--no-progress", "--towns", "countryside",
        "--weathers", "clear_noon", *args,
    )  # fmt: skip


def _rows(partial_dirs):
    """Rows written so far in the partial episodes (they may appear or be renamed meanwhile)."""
    best = 0
    for p in partial_dirs:
        with contextlib.suppress(FileNotFoundError):
            best = max(best, len((p / "steps.csv").read_text().splitlines()) - 1)
    return best


def test_sigkill_mid_episode_keeps_finished_episodes_and_never_reads_the_partial(tmp_path):
    out = tmp_path / "d"
    proc = _start(out, "--episodes", "100", "--episode-s", "2")
    folder = out / "episodes"

    def two_done_and_one_midway():
        if not (out / "meta" / "info.json").exists() or len(ep.list_episodes(out)) < 2:
            return False
        return _rows(ep.list_partial_episodes(out)) >= 5

    wait_for(two_done_and_one_midway, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    finished = ep.list_episodes(out)
    partial = ep.list_partial_episodes(out)
    assert len(finished) >= 2 and len(partial) == 1, sorted(os.listdir(folder))
    for path in finished:  # every finished episode is complete and intact
        e = ep.read_episode(path, check_frames=True)
        assert len(e) == 40 and e.meta["status"] == "complete"
    assert [e.path for e in ep.iter_episodes(out)] == finished  # the partial one is not read
    with pytest.raises(ep.PartialEpisodeError):
        ep.read_episode(partial[0])
    salvaged = ep.salvage_episode(partial[0])
    assert salvaged is not None and len(ep.read_episode(salvaged, check_frames=True)) >= 5


def test_sigterm_ends_the_episode_cleanly(tmp_path):
    out = tmp_path / "d"
    proc = _start(out, "--episodes", "3", "--episode-s", "30")
    wait_for(
        lambda: (
            (out / "meta" / "info.json").exists() and _rows(ep.list_partial_episodes(out)) >= 10
        ),
        proc,
    )
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert "stopped early" in stdout and "recorded 1 episodes" in stdout
    assert ep.list_partial_episodes(out) == []
    (e,) = ep.iter_episodes(out, check_frames=True)
    assert e.meta["outcome"] == "stopped" and 10 <= len(e) < 600


def test_cli_refuses_a_folder_of_another_kind(tmp_path):
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "x.txt").write_text("x")
    proc = _start(junk, "--episodes", "1")
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "refusing" in stderr and "Traceback" not in stderr
    info = tmp_path / "other" / "meta" / "info.json"
    info.parent.mkdir(parents=True)
    info.write_text(json.dumps({"format": "lerobot"}))
    proc = _start(tmp_path / "other", "--episodes", "1")
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "lerobot" in stderr


def test_workers_die_with_a_killed_recorder(tmp_path):
    out = tmp_path / "d"
    proc = _start(out, "--episodes", "100", "--episode-s", "30", "--workers", "2")
    wait_for(
        lambda: (out / "meta" / "info.json").exists() and _rows(ep.list_partial_episodes(out)) >= 5,
        proc,
    )
    workers = children(proc.pid)
    assert len(workers) >= 2
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert wait_gone(workers) == []


def test_a_bad_environment_option_is_an_error_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "d"
    assert main(["--out", str(out), "--episodes", "1", "--control-rate-hz", "5000"]) == 2
    assert "control_rate_hz" in capsys.readouterr().err
    assert not out.exists()
