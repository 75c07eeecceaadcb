"""tools/compare.py: the documented command line writes the table, its JSON and its plot."""

import json

from tests.driving.evaluate.test_compare import _evaluation
from tools.compare import main


def test_cli_writes_table_json_and_plot(tmp_path, capsys):
    a = _evaluation(tmp_path / "a", {"cfc-ncp-s0": [(1, 0.2)] * 2})
    b = _evaluation(tmp_path / "b", {"cfc-ncp-s1": [(0, 0.1)] * 2})
    out = tmp_path / "out"
    assert main([str(a), str(b), "--out", str(out), "--suites", "unseen-towns"]) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0] == "| model | seeds | conv head | core | unseen-towns |"
    assert "| cfc-ncp | 0, 1 |" in printed
    doc = json.loads((out / "results.json").read_text())
    assert doc["format"] == "liquid-drive-seeds" and doc["suites"] == ["unseen-towns"]
    assert "| cfc-ncp | 0, 1 |" in (out / "results.md").read_text()
    assert (out / "seeds.png").read_bytes()[:4] == b"\x89PNG"

    assert main([str(tmp_path / "nothing.json"), "--out", str(out)]) == 2
    assert "nothing.json: no such metrics file" in capsys.readouterr().err
