"""Every tool is a console script (``ld-<name>``) and runs as ``python tools/<name>.py``."""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
TOOLS = sorted(p.stem for p in (ROOT / "tools").glob("*.py") if not p.stem.startswith("_"))


def test_every_tool_has_a_console_script_and_nothing_else_does():
    targets = {v.split(":")[0].removeprefix("tools."): k for k, v in SCRIPTS.items()}
    assert sorted(targets) == TOOLS
    for module, script in targets.items():
        assert script == "ld-" + module.replace("_", "-")
        assert callable(importlib.import_module(f"tools.{module}").main)


@pytest.mark.parametrize("tool", TOOLS)
def test_tool_runs_as_a_script_and_prints_its_help(tool):
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / f"{tool}.py"), "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout
