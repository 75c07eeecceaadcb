from pathlib import Path

import av
import numpy as np
import pytest

from driving.viz.visualize import (
    HIDDEN,
    FrameRenderer,
    NeuronLayout,
    RolloutTrack,
    VideoWriter,
    VisualizeError,
    figure_to_array,
    pca,
    render_video,
    save_wiring,
    summary_figure,
    wiring_figure,
    wiring_positions,
)

T = 12
CAMERA_HW = (16, 40)


def _layout() -> NeuronLayout:
    groups = ("inter",) * 3 + ("command",) * 2 + ("motor",)
    names = ("inter_0", "inter_1", "inter_2", "command_0", "command_1", "motor_0")
    adj = np.zeros((6, 6), np.int32)
    adj[0, 3] = adj[1, 4] = adj[2, 3] = 1
    adj[1, 3] = -1
    adj[3, 4] = -1  # recurrent command synapse
    adj[4, 4] = 1  # self synapse
    adj[3, 5] = adj[4, 5] = 1
    sens = np.zeros((4, 6), np.int32)
    sens[0, 0] = sens[1, 1] = sens[2, 2] = 1
    sens[3, 0] = -1
    return NeuronLayout(names, groups, adj, sens)


def _track(states_units: int | None = 6, seed: int = 0) -> RolloutTrack:
    rng = np.random.default_rng(seed)
    t = 10.0 + 0.05 * np.arange(T)
    yaw = np.linspace(0.0, 0.5, T)
    inter = np.zeros(T, bool)
    inter[7] = True
    return RolloutTrack(
        t_s=t,
        curvature_pred=rng.normal(size=T) * 0.01,
        curvature_expert=rng.normal(size=T) * 0.01,
        x_m=np.cumsum(np.cos(yaw)),
        y_m=np.cumsum(np.sin(yaw)),
        yaw_rad=yaw,
        intervention=inter,
        states=None if states_units is None else np.tanh(rng.normal(size=(T, states_units))),
        sensory=rng.random((T, 4)) if states_units == 6 else None,
    )


def _cameras(n=T):
    for k in range(n):
        yield np.full((*CAMERA_HW, 3), 20 * k, np.uint8)


def _decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def test_mp4_has_one_frame_per_step_and_the_requested_size(tmp_path):
    renderer = FrameRenderer(_track(), _layout(), CAMERA_HW, width_px=320, height_px=240)
    n = render_video(tmp_path / "v.mp4", renderer, _cameras(), fps=20.0)
    frames = _decode(tmp_path / "v.mp4")
    assert n == T and len(frames) == T
    assert frames[0].shape == (240, 320, 3)
    with av.open(str(tmp_path / "v.mp4")) as c:
        assert c.streams.video[0].codec_context.name == "h264"


def test_gif_keeps_every_nth_step_at_the_scaled_size(tmp_path):
    renderer = FrameRenderer(_track(), _layout(), CAMERA_HW, width_px=320, height_px=240)
    n = render_video(tmp_path / "v.gif", renderer, _cameras(), fps=10.0, every=3, scale=0.5)
    frames = _decode(tmp_path / "v.gif")
    assert n == 4 and len(frames) == 4
    assert frames[0].shape == (120, 160, 3)


def test_frames_are_deterministic_and_move_with_the_step():
    track, layout = _track(), _layout()
    a = FrameRenderer(track, layout, CAMERA_HW, width_px=320, height_px=240)
    b = FrameRenderer(track, layout, CAMERA_HW, width_px=320, height_px=240)
    cam = next(_cameras())
    f3 = a.render(3, cam)
    assert f3.shape == (240, 320, 3) and f3.dtype == np.uint8
    assert np.array_equal(f3, b.render(3, cam))
    assert not np.array_equal(f3, a.render(9, cam))  # marker, car and node colours moved
    r = a.cam_rect
    assert np.all(f3[r.y0 + 30 : r.y1 - 2, r.x0 + 2 : r.x1 - 2] == 0)  # the camera was pasted
    with pytest.raises(VisualizeError, match="step 12 outside"):
        a.render(T, cam)


@pytest.mark.parametrize("units", [None, 40], ids=["cnn-no-state", "lstm-hidden"])
def test_models_without_wiring_render_without_the_wiring_panel(tmp_path, units):
    track = _track(units)
    layout = None if units is None else NeuronLayout.hidden(units)
    renderer = FrameRenderer(track, layout, CAMERA_HW, width_px=320, height_px=240)
    assert renderer.ax_wiring is None
    assert len(renderer.trace_axes) == (0 if units is None else 1)
    assert render_video(tmp_path / "v.mp4", renderer, _cameras(), fps=20.0) == T
    img = figure_to_array(summary_figure(track, layout))
    assert img.std() > 0


def test_summary_figure_is_non_empty_and_deterministic():
    track, layout = _track(), _layout()
    a = figure_to_array(summary_figure(track, layout))
    b = figure_to_array(summary_figure(track, layout))
    assert np.array_equal(a, b)
    assert (a < 250).any(axis=2).mean() > 0.05  # a real share of drawn (non-white) pixels
    c = figure_to_array(summary_figure(_track(seed=1), layout))
    assert a.shape != c.shape or not np.array_equal(a, c)


def test_wiring_png_and_svg_are_written_and_deterministic(tmp_path):
    png, svg = save_wiring(_layout(), tmp_path / "a")
    png2, svg2 = save_wiring(_layout(), tmp_path / "b")
    assert png.stat().st_size > 1000 and svg.read_text().startswith("<?xml")
    assert png.read_bytes() == png2.read_bytes()
    assert svg.read_text() == svg2.read_text()
    img = figure_to_array(wiring_figure(_layout()))
    assert (img < 250).any(axis=2).mean() > 0.01


def test_wiring_layers_run_left_to_right_in_group_order():
    layout = _layout()
    pos = wiring_positions(layout)
    x = {g: {pos[("neuron", i)][0] for i in idx} for g, idx in layout.group_indices().items()}
    assert x == {"inter": {1.0}, "command": {2.0}, "motor": {3.0}}
    assert {pos[("sensory", i)][0] for i in range(4)} == {0.0}
    with pytest.raises(VisualizeError, match="no wiring"):
        wiring_positions(NeuronLayout.hidden(3))


def test_layout_groups_and_validation():
    layout = _layout()
    groups = layout.group_indices()
    assert list(groups) == ["inter", "command", "motor"]
    assert [list(v) for v in groups.values()] == [[0, 1, 2], [3, 4], [5]]
    assert NeuronLayout.hidden(3).groups == (HIDDEN,) * 3
    with pytest.raises(VisualizeError, match="unknown neuron groups"):
        NeuronLayout(("a",), ("sensor",))
    with pytest.raises(VisualizeError, match=r"adjacency must be \(1, 1\)"):
        NeuronLayout(("a",), ("inter",), np.zeros((2, 2)))


def test_track_validation_names_the_bad_column():
    with pytest.raises(VisualizeError, match=r"curvature_expert must have shape \(3,\)"):
        RolloutTrack(np.arange(3.0), np.zeros(3), np.zeros(4), *np.zeros((3, 3)), np.zeros(3))


def test_pca_explains_a_rank_one_signal_with_one_component():
    t = np.linspace(0, 1, 50)
    states = np.outer(np.sin(6 * t), [1.0, -2.0, 0.5])
    ratio, scores = pca(states)
    assert ratio[0] == pytest.approx(1.0) and ratio.sum() == pytest.approx(1.0)
    assert scores.shape == (50, 3)
    with pytest.raises(VisualizeError, match="PCA needs"):
        pca(np.zeros((1, 3)))


def test_video_writer_rejects_bad_sizes_and_suffixes(tmp_path):
    with pytest.raises(VisualizeError, match="even frame size"):
        VideoWriter(tmp_path / "a.mp4", 321, 240, 20)
    with pytest.raises(VisualizeError, match=r"\.mp4 or \.gif"):
        VideoWriter(tmp_path / "a.avi", 320, 240, 20)
    with VideoWriter(tmp_path / "b.mp4", 320, 240, 20) as w, pytest.raises(VisualizeError):
        w.write(np.zeros((240, 320), np.uint8))


def _write_rollout(root: Path, steps: int = T, neurons: int = 6) -> Path:
    from driving.data import episodes as E

    E.create_or_open_dataset(
        root, E.DatasetInfo("builtin", {"width_px": 40, "height_px": 16}, 20.0)
    )
    extra = {E.CURVATURE_PRED: "1/m"} | {E.neuron_column(i): "1" for i in range(neurons)}
    track = _track()
    with E.EpisodeWriter(root, {"town": "hills", "weather": "noon"}, extra, fsync=False) as w:
        for i in range(steps):
            row = {c: 0.0 for c in E.BASE_COLUMN_NAMES if c != E.FRAME_INDEX}
            row |= {
                E.T_S: track.t_s[i],
                E.CURVATURE_EXPERT: track.curvature_expert[i],
                E.CURVATURE_PRED: track.curvature_pred[i],
                E.X_M: track.x_m[i],
                E.Y_M: track.y_m[i],
                E.YAW_RAD: track.yaw_rad[i],
                E.INTERVENTION: bool(track.intervention[i]),
                E.NOISE_ACTIVE: False,
                E.COLLISION: False,
            }
            row |= {E.neuron_column(k): track.states[i, k] for k in range(neurons)}
            w.write_step(np.full((16, 40, 3), 10 * i, np.uint8), row)
        return w.finish({"outcome": "route_complete"})


def test_track_from_a_rollout_on_disk_keeps_the_state_order(tmp_path):
    from driving.data.episodes import read_episode
    from driving.viz.visualize import resolve_episode, track_from_episode

    path = _write_rollout(tmp_path / "rollouts")
    assert resolve_episode(tmp_path / "rollouts") == path
    assert resolve_episode(path) == path
    track = track_from_episode(read_episode(path))
    want = _track()
    assert np.allclose(track.states, want.states)
    assert np.allclose(track.curvature_pred, want.curvature_pred)
    assert np.array_equal(track.intervention, want.intervention)
    assert "hills" in track.title and "1 interventions" in track.title
    with pytest.raises(VisualizeError, match="no episode 7"):
        resolve_episode(tmp_path / "rollouts", 7)
    with pytest.raises(VisualizeError, match="not an episode dataset"):
        resolve_episode(tmp_path)


def test_layout_from_the_ncp_wiring_groups_neurons_as_the_wiring_does(tmp_path):
    from driving.model.wiring import NCP, default_steering_wiring

    wiring = default_steering_wiring()
    layout = NeuronLayout.from_wiring(wiring)
    assert layout.names == tuple(wiring.neuron_names)
    groups = layout.group_indices()
    assert {g: list(v) for g, v in groups.items()} == {g: list(r) for g, r in wiring.groups.items()}
    assert np.array_equal(layout.adjacency, wiring.state_adjacency)
    assert np.array_equal(layout.sensory_adjacency, wiring.state_sensory_adjacency)
    # Every synapse the diagram draws runs between the layers the wiring says it does.
    src, dst = np.nonzero(layout.adjacency)
    pairs = {(layout.groups[s], layout.groups[d]) for s, d in zip(src, dst, strict=True)}
    assert pairs <= {("inter", "command"), ("command", "command"), ("command", "motor")}
    small = NCP(
        4,
        3,
        2,
        sensory_fanout=2,
        inter_fanout=2,
        recurrent_command_synapses=2,
        motor_fanin=2,
        seed=1,
    ).build(5)
    png, _ = save_wiring(NeuronLayout.from_wiring(small), tmp_path)
    assert png.stat().st_size > 1000


@pytest.mark.parametrize("core", ["cfc-ncp", "cnn"])
def test_training_figures_for_tensorboard(tmp_path, core):
    import torch
    from torch.utils.tensorboard import SummaryWriter

    from driving.model.policy import PolicyConfig, SteeringPolicy
    from driving.viz.visualize import log_training_figures, training_figures

    torch.manual_seed(0)
    policy = SteeringPolicy(PolicyConfig(core=core)).train()
    g = torch.Generator().manual_seed(0)
    window = {
        "frames": torch.randint(0, 256, (4, 78, 200, 3), dtype=torch.uint8, generator=g),
        "dt_s": torch.full((4,), 0.05),
        "label": torch.linspace(-0.01, 0.01, 4),
    }
    a = training_figures(policy, window)
    assert policy.training  # the mode is restored
    b = training_figures(policy, {k: v[None] for k, v in window.items()})  # a batch of one
    assert set(a) == {"neuron_traces", "saliency"}
    for name in a:
        assert np.array_equal(a[name], b[name])
        assert a[name].dtype == np.uint8 and a[name].ndim == 3 and a[name].std() > 0
    assert a["saliency"].shape == (2 * (4 * 78 + 3 * 2), 400, 3)
    with SummaryWriter(tmp_path) as writer:
        log_training_figures(writer, policy, window, step=3)
    assert any(p.name.startswith("events.out.tfevents") for p in tmp_path.iterdir())
