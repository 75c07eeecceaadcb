"""Small inputs shared by the driving.viz tests: a 6-neuron wiring, a 12-step rollout."""

from pathlib import Path

import av
import numpy as np

from driving.viz.layout import NeuronLayout
from driving.viz.track import RolloutTrack

T = 12
CAMERA_HW = (16, 40)


def sample_layout() -> NeuronLayout:
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


def sample_track(states_units: int | None = 6, seed: int = 0) -> RolloutTrack:
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


def cameras(n: int = T):
    for k in range(n):
        yield np.full((*CAMERA_HW, 3), 20 * k, np.uint8)


def decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def write_rollout(root: Path, steps: int = T, neurons: int = 6) -> Path:
    from driving.data import episodes as E

    E.create_or_open_dataset(
        root, E.DatasetInfo("builtin", {"width_px": 40, "height_px": 16}, 20.0)
    )
    extra = {E.CURVATURE_PRED: "1/m"} | {E.neuron_column(i): "1" for i in range(neurons)}
    track = sample_track()
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
                E.COMMAND: 0,
                E.JUNCTION: -1,
            }
            row |= {E.neuron_column(k): track.states[i, k] for k in range(neurons)}
            w.write_step(np.full((16, 40, 3), 10 * i, np.uint8), row)
        return w.finish({"outcome": "route_complete"})
