"""The demo (driving.evaluate.demo): one drive in an unseen town, its report and video."""

from pathlib import Path

import av
import pytest
import torch

from driving.evaluate.demo import DemoConfig, DemoError, run_demo
from driving.model.checkpoint import save_checkpoint
from driving.model.policy import PolicyConfig, SteeringPolicy
from tests.driving.evaluate.helpers import set_camera


@pytest.mark.slow
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


def test_demo_refuses_a_checkpoint_trained_with_another_camera(tmp_path: Path):
    from driving.rollout.policies import CameraMismatchError
    from sim.spec import CameraSpec

    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "ckpt", SteeringPolicy(PolicyConfig(core="cfc-ncp")))
    set_camera(ckpt, CameraSpec(pitch_deg=12.0).to_dict())
    with pytest.raises(CameraMismatchError, match="pitch_deg"):
        run_demo(DemoConfig(checkpoint=ckpt, out=tmp_path / "demo"))
    assert not (tmp_path / "demo").exists()


@pytest.mark.slow
def test_a_rerun_replaces_the_rollout(tmp_path: Path):
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "ckpt", SteeringPolicy(PolicyConfig(core="cfc-ncp")))
    cfg = DemoConfig(checkpoint=ckpt, route_km=0.02, out=tmp_path / "demo",
                     video_width_px=320, video_height_px=240)  # fmt: skip
    run_demo(cfg)
    run_demo(cfg)
    rollouts = tmp_path / "demo" / "rollouts" / "ckpt" / "demo" / "clean" / "episodes"
    assert [p.name for p in rollouts.iterdir()] == ["episode_000000"]
