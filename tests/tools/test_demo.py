"""tools/demo.py: the command line (the demo itself: tests/driving/evaluate/test_demo.py)."""

import pytest

from tools.demo import main


def test_an_unknown_town_is_an_error_naming_the_valid_ones(capsys):
    with pytest.raises(SystemExit) as exited:  # tyro reports a bad option value itself
        main(["--town", "atlantis"])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "mountain_pass" in err and "Traceback" not in err


def test_a_broken_checkpoint_is_an_error_before_anything_is_written(tmp_path, capsys):
    ck = tmp_path / "ck"
    ck.mkdir()
    (ck / "config.json").write_text("{")
    out = tmp_path / "demo"
    assert main(["--checkpoint", str(ck), "--out", str(out)]) == 2
    assert "config.json" in capsys.readouterr().err
    assert not out.exists()
