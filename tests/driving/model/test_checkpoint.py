import json
import math

import pytest
import torch
from safetensors.torch import load_file, save_file

from driving.model.checkpoint import (
    CONFIG_FILE,
    FORMAT_VERSION,
    MODEL_FILE,
    TRAIN_STATE_FILE,
    CheckpointError,
    checkpoint_camera,
    load_policy,
    load_train_state,
    read_checkpoint_config,
    read_metrics,
    save_checkpoint,
)
from driving.model.policy import PolicyConfig, SteeringPolicy
from sim.spec import CameraSpec


def _trained_like(core="cfc-ncp", seed=1):
    torch.manual_seed(seed)
    policy = SteeringPolicy(PolicyConfig(core=core))
    with torch.no_grad():  # move away from the init so a fresh build cannot match by chance
        for p in policy.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return policy.eval()


@pytest.mark.parametrize(
    "core", ["cfc-ncp", "ltc-ncp", "lstm", "cfc-ncp-random", "cfc-ncp-full", "lstm-19", "gru-19"]
)
def test_round_trip_is_exact(tmp_path, core):
    policy = _trained_like(core)
    path = save_checkpoint(
        tmp_path / "ck",
        policy,
        training={"step": 7, "data": [tmp_path / "data"]},
        metrics=[{"step": 7, "train/loss": 0.5}],
    )
    loaded = load_policy(path)
    a, b = policy.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    frames = torch.randint(0, 256, (1, 3, 78, 200, 3), dtype=torch.uint8)
    dt = torch.full((1, 3), 0.05)
    with torch.no_grad():
        assert torch.equal(policy(frames, dt)[0], loaded(frames, dt)[0])
    cfg = read_checkpoint_config(path)
    assert cfg["format_version"] == FORMAT_VERSION and cfg["policy"]["core"] == core
    assert cfg["training"] == {"step": 7, "data": [str(tmp_path / "data")]}
    assert cfg["parameters"]["conv_head"] == 79_420
    assert read_metrics(path) == [{"step": 7, "train/loss": 0.5}]
    assert not (path / TRAIN_STATE_FILE).exists()


def test_default_config_records_the_wiring_seed_and_preprocessing(tmp_path):
    path = save_checkpoint(tmp_path / "ck", _trained_like())
    cfg = json.loads((path / CONFIG_FILE).read_text())
    assert cfg["policy"]["wiring_seed"] == 20190120
    assert cfg["wiring"]["args"]["seed"] == 20190120
    assert cfg["policy"]["preprocess"]["normalization"] == "per_image"
    assert cfg["policy"]["label_scale"] > 0
    assert cfg["neurons"]["groups"][-1] == "motor"


def test_train_state_round_trip_and_weights_only(tmp_path):
    policy = _trained_like("gru")
    opt = torch.optim.Adam(policy.parameters())
    policy(torch.zeros(1, 1, 78, 200, 3, dtype=torch.uint8), torch.ones(1, 1))[0].sum().backward()
    opt.step()
    state = {"format_version": 1, "step": 3, "optimizer": opt.state_dict(),
             "torch_rng": torch.get_rng_state()}  # fmt: skip
    path = save_checkpoint(tmp_path / "ck", policy, train_state=state)
    back = load_train_state(path)
    assert back["step"] == 3 and torch.equal(back["torch_rng"], state["torch_rng"])
    opt2 = torch.optim.Adam(policy.parameters())
    opt2.load_state_dict(back["optimizer"])
    # Anything beyond plain types and tensors is refused (weights_only=True).
    torch.save({"format_version": 1, "evil": tmp_path}, path / TRAIN_STATE_FILE)
    with pytest.raises(CheckpointError, match=TRAIN_STATE_FILE):
        load_train_state(path)


def test_save_replaces_atomically_and_leaves_no_temporaries(tmp_path):
    first, second = _trained_like(seed=1), _trained_like(seed=2)
    save_checkpoint(tmp_path / "ck", first)
    save_checkpoint(tmp_path / "ck", second)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]
    loaded = load_policy(tmp_path / "ck")
    assert torch.equal(loaded.readout.weight, second.readout.weight)


def test_a_run_folder_loads_its_best_checkpoint(tmp_path):
    policy = _trained_like()
    save_checkpoint(tmp_path / "run" / "best", policy)
    loaded = load_policy(tmp_path / "run")
    assert torch.equal(loaded.readout.bias, policy.readout.bias)


def test_corrupt_or_mismatched_files_are_errors_naming_the_file(tmp_path):
    path = save_checkpoint(tmp_path / "ck", _trained_like())
    model = path / MODEL_FILE
    good = model.read_bytes()

    model.write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match=MODEL_FILE):
        load_policy(path)
    model.write_bytes(b"not a safetensors file at all")
    with pytest.raises(CheckpointError, match=MODEL_FILE):
        load_policy(path)
    model.unlink()
    with pytest.raises(CheckpointError, match=MODEL_FILE):
        load_policy(path)
    model.write_bytes(good)
    load_policy(path)

    config_file = path / CONFIG_FILE
    cfg = json.loads(config_file.read_text())
    # Weights of another architecture: strict load fails, naming the weights file.
    config_file.write_text(json.dumps({**cfg, "policy": {**cfg["policy"], "cfc_mode": "pure"}}))
    with pytest.raises(CheckpointError, match=MODEL_FILE):
        load_policy(path)
    # Another wiring size: the stored wiring no longer matches.
    config_file.write_text(json.dumps({**cfg, "policy": {**cfg["policy"], "inter_neurons": 10}}))
    with pytest.raises(CheckpointError, match="wiring"):
        load_policy(path)
    # A wiring that no longer rebuilds from the stored seed.
    config_file.write_text(json.dumps({**cfg, "policy": {**cfg["policy"], "wiring_seed": 1}}))
    with pytest.raises(CheckpointError, match="wiring"):
        load_policy(path)
    config_file.write_text(json.dumps({**cfg, "format_version": 99}))
    with pytest.raises(CheckpointError, match="format_version"):
        load_policy(path)
    config_file.write_text(json.dumps({**cfg, "policy": {**cfg["policy"], "typo": 1}}))
    with pytest.raises(CheckpointError, match="typo"):
        load_policy(path)
    config_file.write_text("{ not json")
    with pytest.raises(CheckpointError, match=CONFIG_FILE):
        load_policy(path)
    with pytest.raises(CheckpointError, match="not a checkpoint folder"):
        load_policy(tmp_path / "nowhere")


def test_the_camera_is_recorded_and_version_1_configs_still_load(tmp_path):
    policy = _trained_like()
    camera = CameraSpec(hfov_deg=90.0, mount_height_m=1.2, pitch_deg=4.0)
    path = save_checkpoint(tmp_path / "ck", policy, camera=camera)
    assert read_checkpoint_config(path)["camera"] == camera.to_dict()
    assert checkpoint_camera(path) == camera
    assert checkpoint_camera(save_checkpoint(tmp_path / "unknown", policy)) is None

    config = json.loads((path / CONFIG_FILE).read_text())  # as written before version 2
    del config["camera"]
    (path / CONFIG_FILE).write_text(json.dumps({**config, "format_version": 1}))
    migrated = read_checkpoint_config(path)
    assert migrated["camera"] is None and migrated["format_version"] == FORMAT_VERSION
    assert checkpoint_camera(path) is None
    assert torch.equal(load_policy(path).readout.weight, policy.readout.weight)


def test_a_wiring_mask_or_a_nan_in_the_weights_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "ck", _trained_like())
    tensors = load_file(str(path / MODEL_FILE))
    good = dict(tensors)
    tensors["core.layers.1.ff_mask"] = torch.ones_like(tensors["core.layers.1.ff_mask"])
    save_file(tensors, str(path / MODEL_FILE))
    with pytest.raises(CheckpointError, match=r"'core\.layers\.1\.ff_mask' differs from"):
        load_policy(path)
    tensors = {**good, "readout.bias": torch.tensor([math.inf])}
    save_file(tensors, str(path / MODEL_FILE))
    with pytest.raises(CheckpointError, match=r"'readout\.bias' holds 1 NaN or infinite"):
        load_policy(path)
