import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from driving.data import episodes as E
from driving.model.checkpoint import save_checkpoint
from driving.model.policy import PolicyConfig, SteeringPolicy
from driving.viz.replay import replay_with_saliency
from driving.viz.visualize import VisualizeConfig, VisualizeError, visualize
from tools.visualize import main

ROOT = Path(__file__).resolve().parents[2]
STEPS = 8


def _rollout(root: Path, neurons: int, seed: int = 0) -> Path:
    """A tiny rollout in the episode format, as tools/evaluate.py writes them."""
    rng = np.random.default_rng(seed)
    E.create_or_open_dataset(
        root, E.DatasetInfo("builtin", {"width_px": 200, "height_px": 78}, 20.0)
    )
    extra = {E.CURVATURE_PRED: "1/m"} | {E.neuron_column(i): "1" for i in range(neurons)}
    with E.EpisodeWriter(root, {"town": "hills", "weather": "noon"}, extra, fsync=False) as w:
        for i in range(STEPS):
            row = {c: 0.0 for c in E.BASE_COLUMN_NAMES if c != E.FRAME_INDEX}
            row |= {
                E.T_S: 0.05 * i,
                E.X_M: float(i),
                E.Y_M: 0.1 * i**2,
                E.YAW_RAD: 0.05 * i,
                E.CURVATURE_EXPERT: 0.01 * np.sin(i),
                E.CURVATURE_PRED: 0.01 * np.cos(i),
                E.INTERVENTION: i == 5,
                E.NOISE_ACTIVE: False,
                E.COLLISION: False,
                E.COMMAND: 0,
                E.JUNCTION: -1,
            }
            row |= {E.neuron_column(k): float(v) for k, v in enumerate(rng.normal(size=neurons))}
            w.write_step(rng.integers(0, 256, (78, 200, 3), dtype=np.uint8), row)
        return w.finish({"outcome": "route_complete"})


def _checkpoint(path: Path, core: str) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(path, SteeringPolicy(PolicyConfig(core=core)))


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def test_cli_writes_video_gif_and_figures_for_a_cfc_ncp_rollout(tmp_path):
    episode = _rollout(tmp_path / "rollouts", neurons=19)
    ckpt = _checkpoint(tmp_path / "ckpt", "cfc-ncp")
    out = tmp_path / "vis"
    cmd = [sys.executable, str(ROOT / "tools" / "visualize.py"), "--rollout", str(episode)]
    cmd += ["--checkpoint", str(ckpt), "--out", str(out), "--width-px", "320"]
    cmd += ["--height-px", "240", "--gif", "--gif-every", "2"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["steps"] == STEPS
    assert set(result["files"]) == {"summary", "wiring_png", "wiring_svg", "frame", "video", "gif"}
    video = _frames(out / "rollout.mp4")
    assert len(video) == STEPS and video[0].shape == (240, 320, 3)
    gif = _frames(out / "rollout.gif")
    assert len(gif) == STEPS // 2 and gif[0].shape == (120, 160, 3)
    for name in ("summary.png", "wiring.png", "frame.png"):
        assert (out / name).stat().st_size > 5000


@pytest.mark.parametrize(("core", "neurons"), [("gru", 64), ("cnn", 0)])
def test_cores_without_wiring_get_no_wiring_figure(tmp_path, core, neurons):
    episode = _rollout(tmp_path / "rollouts", neurons=neurons)
    ckpt = _checkpoint(tmp_path / "ckpt", core)
    cfg = VisualizeConfig(episode, ckpt, tmp_path / "vis", width_px=320, height_px=240)
    result = visualize(cfg)
    assert "wiring_png" not in result["files"]
    assert len(_frames(tmp_path / "vis" / "rollout.mp4")) == STEPS


def test_saliency_methods_replay_the_same_commands_and_states(tmp_path):
    episode = E.read_episode(_rollout(tmp_path / "rollouts", neurons=19))
    torch.manual_seed(0)
    policy = SteeringPolicy(PolicyConfig()).eval()
    frames = [episode.frame(i) for i in range(STEPS)]
    t_s = episode.columns[E.T_S]
    runs = {
        m: replay_with_saliency(policy, frames, t_s, m, batch=3, ig_steps=2)
        for m in ("visualbackprop", "gradcam", "integrated_gradients")
    }
    vbp = runs["visualbackprop"]
    assert vbp.views.shape == (STEPS, 78, 200, 3) and vbp.views.dtype == np.uint8
    assert vbp.features.shape == (STEPS, 32) and vbp.states.shape == (STEPS, 19)
    # The replay carries the state across batches exactly as one pass over the episode.
    with torch.no_grad():
        frames_t = torch.from_numpy(np.stack(frames))[None]
        dt = torch.full((1, STEPS), 0.05)
        curvature, states = policy(frames_t, dt)
    assert np.allclose(vbp.curvature, curvature[0].numpy(), atol=1e-6)
    assert np.allclose(vbp.states, states[0].numpy(), atol=1e-6)
    for run in runs.values():
        assert np.array_equal(run.curvature, vbp.curvature)
    assert not np.array_equal(runs["gradcam"].views, vbp.views)
    again = replay_with_saliency(policy, frames, t_s, "gradcam", batch=3)
    assert np.array_equal(again.views, runs["gradcam"].views)


def test_a_rollout_from_another_model_is_refused_by_name(tmp_path):
    episode = _rollout(tmp_path / "rollouts", neurons=5)
    ckpt = _checkpoint(tmp_path / "ckpt", "cfc-ncp")
    with pytest.raises(VisualizeError, match="5 neuron columns but the checkpoint's core has 19"):
        visualize(VisualizeConfig(episode, ckpt, tmp_path / "vis"))
    with pytest.raises(VisualizeError, match="--saliency must be one of"):
        VisualizeConfig(episode, ckpt, saliency="occlusion")  # type: ignore[arg-type]


def test_without_a_checkpoint_it_draws_the_recorded_states_and_plain_camera(tmp_path):
    episode = _rollout(tmp_path / "rollouts", neurons=3)
    cfg = VisualizeConfig(
        tmp_path / "rollouts", None, tmp_path / "vis", width_px=320, height_px=240
    )
    result = visualize(cfg)
    assert result["episode"] == str(episode)
    assert set(result["files"]) == {"summary", "frame", "video"}
    assert len(_frames(tmp_path / "vis" / "rollout.mp4")) == STEPS


def test_cli_errors_print_one_line_and_exit_2(tmp_path, capsys):
    args = ["--rollout", str(tmp_path / "nothing"), "--out", str(tmp_path / "vis")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --rollout") and "Traceback" not in err
    with pytest.raises(SystemExit) as exited:  # tyro refuses a bad option before anything runs
        main([*args, "--crf", "99"])
    assert exited.value.code == 2 and "--crf must be in 0..51" in capsys.readouterr().err
    assert not (tmp_path / "vis").exists()
