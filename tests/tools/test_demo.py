"""tools/demo.py: one drive in an unseen town, its report and video."""

from pathlib import Path

import av
import pytest
import torch

from driving.model.checkpoint import save_checkpoint
from driving.model.policy import PolicyConfig, SteeringPolicy
from tools.demo import DemoConfig, DemoError, run_demo


def test_demo_writes_report_video_and_rollout(tmp_path: Path):
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "ckpt", SteeringPolicy(PolicyConfig(core="cfc-ncp")))
    cfg = DemoConfig(
        checkpoint=ckpt,
        town="desert",
        route_km=0.05,
        out=tmp_path / "demo",
        video_width_px=480,
        video_height_px=270,
    )
    report = run_demo(cfg)
    text = report.read_text()
    assert "desert" in text and "unseen town" in text
    assert "| interventions |" in text and "expert" in text
    assert (tmp_path / "demo" / "metrics.json").is_file()
    video = tmp_path / "demo" / "video" / "rollout.mp4"
    episodes = list(
        (tmp_path / "demo" / "rollouts" / "ckpt" / "demo" / "clean" / "episodes").iterdir()
    )
    assert len(episodes) == 1
    steps = len((episodes[0] / "steps.csv").read_text().splitlines()) - 1
    with av.open(str(video)) as container:
        frames = [f for f in container.decode(video=0)]
    assert len(frames) == steps
    assert (frames[0].width, frames[0].height) == (480, 270)


def test_demo_rejects_unknown_town_with_the_valid_names(tmp_path: Path):
    with pytest.raises(DemoError, match="mountain_pass"):
        DemoConfig(town="atlantis", checkpoint=tmp_path)


def test_demo_rejects_a_folder_that_is_not_a_checkpoint(tmp_path: Path):
    with pytest.raises(DemoError, match="not a checkpoint"):
        DemoConfig(checkpoint=tmp_path)
