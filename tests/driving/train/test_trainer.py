import json
import subprocess
import sys

import pytest
import torch

from driving.data.episodes import CURVATURE_EXPERT, load_episodes
from driving.data.windows import WindowConfig, WindowDataset
from driving.model.checkpoint import BEST_DIR, LAST_DIR, load_policy, read_checkpoint_config
from driving.model.policy import CORE_NAMES, PolicyConfig, SteeringPolicy
from driving.train.trainer import (
    TrainConfig,
    TrainConfigError,
    batch_indices,
    evaluate_loss,
    learning_rate,
    train,
)
from perception.augment import AugmentConfig
from tests.driving.train.tiny import tiny_config, train_killed


@pytest.mark.parametrize("core", CORE_NAMES)
def test_every_core_trains_and_its_loss_falls(tiny_data, tmp_path, core):
    # The tiny task's curvatures (+-0.015 1/m) scaled to +-0.75, where the default scale puts
    # the tightest real bends, so that 16 steps show every core learning the bar.
    policy = PolicyConfig(core=core, label_scale=50.0)
    cfg = tiny_config(tiny_data, tmp_path / "run", policy=policy, val_fraction=0.0,
               lr=4e-3, steps=16, save_every=16, val_every=16)  # fmt: skip
    windows = WindowDataset(load_episodes(tiny_data), WindowConfig(8, 8, weight_alpha_m=30.0))
    idx = list(range(len(windows)))
    torch.manual_seed(cfg.seed)  # train() builds its initial policy from this seed
    before = evaluate_loss(SteeringPolicy(cfg.policy), windows, idx, 8)["loss"]
    best = train(cfg)
    after = evaluate_loss(load_policy(tmp_path / "run" / LAST_DIR), windows, idx, 8)["loss"]
    assert after < 0.75 * before, (core, before, after)
    assert best == tmp_path / "run" / BEST_DIR and (best / "model.safetensors").is_file()


def _weights(path):
    return load_policy(path).state_dict()


def test_resume_after_a_kill_gives_the_same_final_weights(tiny_data, tmp_path, monkeypatch):
    # Augmentation and skipped steps on: their draws from torch's generator must resume too.
    run = dict(augment=AugmentConfig(), step_skip_max=2, steps=10, save_every=4, val_every=4)
    full = tiny_config(tiny_data, tmp_path / "full", **run)
    train(full)

    killed = tiny_config(tiny_data, tmp_path / "killed", **run)
    # Killed after the checkpoint at step 4, mid-way to the one at 8.
    assert train_killed(killed, monkeypatch, at_loss_call=7) == 4
    with pytest.raises(TrainConfigError, match="--resume"):
        train(killed)  # the run folder exists
    with pytest.raises(TrainConfigError, match="lr"):
        train(tiny_config(tiny_data, tmp_path / "killed", **run, lr=1e-2, resume=True))
    train(tiny_config(tiny_data, tmp_path / "killed", **run, resume=True))

    a, b = _weights(tmp_path / "full" / LAST_DIR), _weights(tmp_path / "killed" / LAST_DIR)
    assert all(torch.equal(a[k], b[k]) for k in a)
    a, b = _weights(tmp_path / "full" / BEST_DIR), _weights(tmp_path / "killed" / BEST_DIR)
    assert all(torch.equal(a[k], b[k]) for k in a)

    def records(run):
        lines = (tmp_path / run / "metrics.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(x).items() if k != "time"} for x in lines]

    assert records("killed") == records("full")  # lines after the step-4 checkpoint dropped


def test_same_seed_same_weights_on_cpu(tiny_data, tmp_path):
    for run in ("a", "b"):
        train(tiny_config(tiny_data, tmp_path / run, steps=3, policy=PolicyConfig(core="gru")))
    a, b = _weights(tmp_path / "a" / LAST_DIR), _weights(tmp_path / "b" / LAST_DIR)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoint_provenance_and_held_out_town(tiny_data, tmp_path):
    cfg = tiny_config(tiny_data, tmp_path / "run", steps=2, val_every=2, val_towns=("c",),
               policy=PolicyConfig(core="cnn"))  # fmt: skip
    train(cfg)
    prov = read_checkpoint_config(tmp_path / "run" / LAST_DIR)["training"]
    assert prov["config"]["val_towns"] == ["c"] and prov["step"] == 2
    assert prov["label"] == {"column": CURVATURE_EXPERT, "unit": "1/m", "scale": 10.0}
    assert len(prov["val_town_episodes"]) == 1
    assert {"val/loss", "val_town/loss"} <= set(prov["validation"])
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert {"train/loss", "train/lr", "train/grad_norm"} <= set(lines[0])


def test_schedule_and_batches():
    cfg = TrainConfig(data=(), out=None, steps=100, warmup_steps=10, lr=1e-3, lr_final_fraction=0.1)
    assert learning_rate(0, cfg) == pytest.approx(1e-4)
    assert learning_rate(9, cfg) == pytest.approx(1e-3)
    assert learning_rate(99, cfg) == pytest.approx(1e-4, rel=0.01)
    assert batch_indices(5, 40, 8, 0) == batch_indices(5, 40, 8, 0)
    epoch = sorted(i for s in range(5) for i in batch_indices(s, 40, 8, 0))
    assert epoch == list(range(40))
    assert batch_indices(5, 40, 8, 0) != batch_indices(0, 40, 8, 0)
    assert len(batch_indices(0, 3, 8, 0)) == 8


def test_data_that_does_not_fit_the_policy_is_refused(tiny_data, tmp_path):
    from perception.preprocess import PreprocessSpec

    wrong_camera = PolicyConfig(preprocess=PreprocessSpec(input_height_px=120, crop_top_px=42))
    with pytest.raises(TrainConfigError, match="78x200 px"):
        train(tiny_config(tiny_data, tmp_path / "a", policy=wrong_camera))
    with pytest.raises(TrainConfigError, match=r"20\.0 Hz"):
        train(tiny_config(tiny_data, tmp_path / "b", policy=PolicyConfig(first_step_dt_s=0.1)))


def test_episodes_shorter_than_one_window_are_a_clear_error(tiny_data, tmp_path):
    # 24-step episodes; 8 window steps that may each skip up to 4 recorded steps span 29.
    with pytest.raises(TrainConfigError, match="at least 29 recorded steps"):
        train(tiny_config(tiny_data, tmp_path / "run", step_skip_max=4))


def test_bad_settings_are_clear_errors(tmp_path):
    with pytest.raises(TrainConfigError, match="batch_size"):
        TrainConfig(data=(), out=tmp_path, batch_size=0)
    with pytest.raises(TrainConfigError, match="--data"):
        train(TrainConfig(data=(), out=tmp_path / "x"))
    with pytest.raises(TrainConfigError, match=r"train_state\.pt"):
        train(TrainConfig(data=(tmp_path,), out=tmp_path / "x", resume=True))


def test_tensorboard_gets_curves_and_figures_without_changing_the_weights(tiny_data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for run, tb in (("tb", True), ("plain", False)):
        train(tiny_config(tiny_data, tmp_path / run, steps=4, val_every=4, tensorboard=tb))
    events = EventAccumulator(str(tmp_path / "tb" / "tb"), size_guidance={"images": 0})
    events.Reload()
    tags = events.Tags()
    assert {"train/loss", "train/lr", "train/grad_norm", "val/loss"} <= set(tags["scalars"])
    assert {"figures/neuron_traces", "figures/saliency"} <= set(tags["images"])
    a, b = _weights(tmp_path / "tb" / LAST_DIR), _weights(tmp_path / "plain" / LAST_DIR)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_importing_the_trainer_loads_neither_pyav_nor_matplotlib():
    code = (
        "import sys, driving.train.trainer; print(sorted({'av', 'matplotlib'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_data_larger_than_the_memory_is_refused_before_decoding(tiny_data, tmp_path, monkeypatch):
    import driving.train.trainer as trainer_module
    from driving.train.data import cache_bytes

    episodes = load_episodes(tiny_data)
    # 3 episodes x 24 frames x 78 x 200 x 3 bytes, no recovery views
    assert cache_bytes(episodes, [True] * len(episodes)) == 3 * 24 * 78 * 200 * 3
    jpeg = cache_bytes(episodes, [False] * len(episodes), jpeg=True)
    files = sum(p.stat().st_size for p in tiny_data.rglob("*.jpg"))
    assert 0.7 * files < jpeg < 1.3 * files  # an estimate from each episode's end frames
    monkeypatch.setattr(trainer_module, "available_memory_bytes", lambda: 1_000_000)
    loaded = []
    monkeypatch.setattr(trainer_module.CachedEpisode, "load", lambda *a: loaded.append(a))
    with pytest.raises(TrainConfigError, match=r"decode to 0\.0 GiB .*--frame-cache jpeg"):
        train(tiny_config(tiny_data, tmp_path / "run", frame_cache="decoded"))
    monkeypatch.setattr(trainer_module, "available_memory_bytes", lambda: int(jpeg))
    with pytest.raises(TrainConfigError, match=r"as JPEG bytes take 0\.0 GiB"):
        train(tiny_config(tiny_data, tmp_path / "run"))  # auto: too small even for the bytes
    assert not loaded and not (tmp_path / "run" / LAST_DIR).exists()


def test_jpeg_frame_cache_trains_the_same_weights_and_auto_falls_back_to_it(
    tiny_data, tmp_path, monkeypatch, caplog
):
    import driving.train.trainer as trainer_module

    run = dict(augment=AugmentConfig(), steps=6, save_every=3, val_every=3)
    train(tiny_config(tiny_data, tmp_path / "decoded", frame_cache="decoded", **run))
    # 1 MB: the decoded frames (3.4 MB) do not fit, their JPEG bytes do; killed after step 3
    monkeypatch.setattr(trainer_module, "available_memory_bytes", lambda: 1_000_000)
    with caplog.at_level("INFO", logger="driving.train.trainer"):
        assert train_killed(tiny_config(tiny_data, tmp_path / "auto", **run), monkeypatch, 5) == 3
    assert "JPEG bytes, decoded per batch" in caplog.text
    monkeypatch.undo()
    # the split's fingerprint hashes the decoded frames, so a resume may switch the cache
    train(tiny_config(tiny_data, tmp_path / "auto", frame_cache="decoded", resume=True, **run))
    a, b = _weights(tmp_path / "decoded" / LAST_DIR), _weights(tmp_path / "auto" / LAST_DIR)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_validation_reports_dead_core_states_and_the_trainer_warns_of_a_collapse(tiny_data, caplog):
    from driving.train.trainer import warn_collapse

    windows = WindowDataset(load_episodes(tiny_data), WindowConfig(8, 8))
    idx = list(range(len(windows)))
    torch.manual_seed(0)
    policy = SteeringPolicy(PolicyConfig())
    alive = evaluate_loss(policy, windows, idx, 8)
    assert alive["dead_states"] < policy.state_size / 2 and alive["state_std_median"] > 1e-3
    with torch.no_grad():
        for p in policy.core.parameters():
            p.zero_()  # every head's pre-activation 0: every state stays at 0
    dead = evaluate_loss(policy, windows, idx, 8)
    assert dead["dead_states"] == policy.state_size and dead["state_std_min"] < 1e-6
    assert dead["loss"] != alive["loss"]
    with caplog.at_level("WARNING", logger="driving.train.trainer"):
        assert not warn_collapse({f"val/{k}": v for k, v in alive.items()}, policy.state_size, 5)
        assert warn_collapse({f"val/{k}": v for k, v in dead.items()}, policy.state_size, 5)
    assert "19 of 19 core states are constant over the val windows" in caplog.text
    no_memory = evaluate_loss(SteeringPolicy(PolicyConfig(core="cnn")), windows, idx, 8)
    assert "dead_states" not in no_memory
