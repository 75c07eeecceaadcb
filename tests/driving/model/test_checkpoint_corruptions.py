# ruff: noqa: E501  (the table of corruptions reads best one case per line)
"""Fault injection: every corruption of a checkpoint is a CheckpointError naming file and field.

One tiny training run (cfc-ncp, 4 steps) gives a real ``last/`` checkpoint with its training
state; each case corrupts a copy of it and either loads it (``load_policy``) or resumes the run
from it (``train(resume=True)``), which reads every file. A hostile checkpoint never runs code:
the pickle case would create a file if it did.
"""

import json
import math
import pickle
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from driving.model.checkpoint import (
    CONFIG_FILE,
    LAST_DIR,
    METRICS_FILE,
    MODEL_FILE,
    TRAIN_STATE_FILE,
    CheckpointError,
    load_policy,
)
from driving.train.trainer import train
from tests.driving.train.tiny import tiny_config, write_tiny_dataset

RUN = dict(steps=4, save_every=4, val_every=4)
"""A 4-step run, saved once at its end."""
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished 4-step run: (dataset, run folder, a pristine copy of the run folder)."""
    base = tmp_path_factory.mktemp("trained")
    data = write_tiny_dataset(base / "data")
    train(tiny_config(data, base / "run", **RUN))
    return data, base / "run", shutil.copytree(base / "run", base / "pristine")


# --------------------------------------------------------------------------- corruptions


def edit_config(change):
    def corrupt(last: Path) -> None:
        config = json.loads((last / CONFIG_FILE).read_text())
        change(config)
        (last / CONFIG_FILE).write_text(json.dumps(config))

    return corrupt


def set_policy(**values):
    return edit_config(lambda c: c["policy"].update(values))


def write_bytes(name, data_of):
    def corrupt(last: Path) -> None:
        (last / name).write_bytes(data_of((last / name).read_bytes()))

    return corrupt


def edit_tensors(change):
    def corrupt(last: Path) -> None:
        tensors = load_file(str(last / MODEL_FILE))
        change(tensors)
        save_file(tensors, str(last / MODEL_FILE))

    return corrupt


def set_tensor(key, make):
    return edit_tensors(lambda t: t.__setitem__(key, make(t[key])))


def poke(value, at=0):
    def change(t):
        t = t.clone()
        t.view(-1)[at] = value
        return t

    return change


def edit_state(change):
    def corrupt(last: Path) -> None:
        state = torch.load(last / TRAIN_STATE_FILE, weights_only=True)
        change(state)
        torch.save(state, last / TRAIN_STATE_FILE)

    return corrupt


def set_state(**values):
    return edit_state(lambda s: s.update(values))


def drop(mapping_of, key):
    return lambda d: mapping_of(d).pop(key)


def optimizer_moment(change):
    def edit(state):
        moments = state["optimizer"]["state"][0]
        moments["exp_avg"] = change(moments["exp_avg"])

    return edit_state(edit)


class _Hostile:
    """Unpickling this would create a marker file (it must never happen)."""

    marker = Path()

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def hostile_pickle(last: Path) -> None:
    _Hostile.marker = last / "code-ran"
    (last / TRAIN_STATE_FILE).write_bytes(
        pickle.dumps({"format_version": 1, "x": _Hostile()}, protocol=2)
    )


MASK = "core.layers.0.ff_mask"
LOAD, RESUME = "load", "resume"
CASES = {
    # config.json
    "config not json": (CONFIG_FILE, write_bytes(CONFIG_FILE, lambda b: b"{ not json"), None, LOAD),
    "config truncated": (CONFIG_FILE, write_bytes(CONFIG_FILE, lambda b: b[: len(b) // 2]), None, LOAD),
    "config empty": (CONFIG_FILE, write_bytes(CONFIG_FILE, lambda b: b""), None, LOAD),
    "config binary": (CONFIG_FILE, write_bytes(CONFIG_FILE, lambda b: b"\xff\xfe\x00"), None, LOAD),
    "config an array": (CONFIG_FILE, write_bytes(CONFIG_FILE, lambda b: b"[1, 2]"), None, LOAD),
    "config deeply nested": (CONFIG_FILE, write_bytes(CONFIG_FILE, lambda b: b"[" * 100_000), None, LOAD),
    "other format": (CONFIG_FILE, edit_config(lambda c: c.update(format="x")), "format", LOAD),
    "future version": (CONFIG_FILE, edit_config(lambda c: c.update(format_version=99)), "format_version", LOAD),
    "version a string": (CONFIG_FILE, edit_config(lambda c: c.update(format_version="2")), "format_version", LOAD),
    "camera missing": (CONFIG_FILE, edit_config(drop(lambda c: c, "camera")), "camera", LOAD),
    "camera a string": (CONFIG_FILE, edit_config(lambda c: c.update(camera="wide")), "camera", LOAD),
    "camera absurd fov": (CONFIG_FILE, edit_config(lambda c: c["camera"].update(hfov_deg=500)), "camera", LOAD),
    "camera unknown key": (CONFIG_FILE, edit_config(lambda c: c["camera"].update(zoom=2)), "camera", LOAD),
    "camera in version 1": (CONFIG_FILE, edit_config(lambda c: c.update(format_version=1)), "camera", LOAD),
    "policy missing": (CONFIG_FILE, edit_config(drop(lambda c: c, "policy")), "policy", LOAD),
    "policy a list": (CONFIG_FILE, edit_config(lambda c: c.update(policy=[1])), "policy", LOAD),
    "policy unknown key": (CONFIG_FILE, set_policy(typo=1), "typo", LOAD),
    "policy key missing": (CONFIG_FILE, edit_config(drop(lambda c: c["policy"], "label_scale")), "label_scale", LOAD),
    "unknown core": (CONFIG_FILE, set_policy(core="transformer"), "core", LOAD),
    "neurons a string": (CONFIG_FILE, set_policy(inter_neurons="12"), "policy.inter_neurons", LOAD),
    "neurons a bool": (CONFIG_FILE, set_policy(command_neurons=True), "policy.command_neurons", LOAD),
    "neurons a float": (CONFIG_FILE, set_policy(inter_neurons=12.5), "policy.inter_neurons", LOAD),
    "negative label scale": (CONFIG_FILE, set_policy(label_scale=-1.0), "label_scale", LOAD),
    "nan label scale": (CONFIG_FILE, set_policy(label_scale=math.nan), "label_scale", LOAD),
    "channels with a string": (CONFIG_FILE, edit_config(lambda c: c["policy"]["conv"].update(channels=[24, "x"])), "policy.conv.channels[1]", LOAD),
    "conv not an object": (CONFIG_FILE, set_policy(conv=7), "policy.conv", LOAD),
    "huge ncp core": (CONFIG_FILE, set_policy(inter_neurons=500_000), "policy.inter_neurons", LOAD),
    "huge dense core": (CONFIG_FILE, set_policy(core="cfc-dense", dense_units=300_000), "policy.dense_units", LOAD),
    "huge lstm core": (CONFIG_FILE, set_policy(core="lstm", rnn_units=4000), "policy.rnn_units", LOAD),
    "huge conv channels": (CONFIG_FILE, edit_config(lambda c: c["policy"]["conv"].update(channels=[24, 36, 48, 64, 99_999])), "policy.conv.channels", LOAD),
    "huge image": (CONFIG_FILE, edit_config(lambda c: c["policy"]["preprocess"].update(input_height_px=10**9)), "policy.preprocess.input_height_px", LOAD),
    "impossible wiring": (CONFIG_FILE, set_policy(sensory_fanout=99), "policy", LOAD),
    "other wiring seed": (CONFIG_FILE, set_policy(wiring_seed=1), "wiring", LOAD),
    "stored wiring edited": (CONFIG_FILE, edit_config(lambda c: c["wiring"]["adjacency_matrix"][1].__setitem__(0, 7)), "wiring", LOAD),
    "training not an object": (CONFIG_FILE, edit_config(lambda c: c.update(training=[])), "training", LOAD),
    "another architecture": (MODEL_FILE, set_policy(cfc_mode="pure"), "tensors", LOAD),
    # model.safetensors
    "weights missing": (MODEL_FILE, lambda last: (last / MODEL_FILE).unlink(), None, LOAD),
    "weights truncated": (MODEL_FILE, write_bytes(MODEL_FILE, lambda b: b[: len(b) // 2]), None, LOAD),
    "weights garbage": (MODEL_FILE, write_bytes(MODEL_FILE, lambda b: b"not safetensors"), None, LOAD),
    "weights empty": (MODEL_FILE, write_bytes(MODEL_FILE, lambda b: b""), None, LOAD),
    "header length absurd": (MODEL_FILE, write_bytes(MODEL_FILE, lambda b: (2**62).to_bytes(8, "little") + b[8:]), None, LOAD),
    "header not json": (MODEL_FILE, write_bytes(MODEL_FILE, lambda b: b[:8] + b"#" * (int.from_bytes(b[:8], "little")) + b[8 + int.from_bytes(b[:8], "little"):]), None, LOAD),
    "tensor missing": (MODEL_FILE, edit_tensors(lambda t: t.pop("readout.bias")), "readout.bias", LOAD),
    "tensor extra": (MODEL_FILE, edit_tensors(lambda t: t.update(intruder=torch.zeros(1))), "intruder", LOAD),
    "tensor reshaped": (MODEL_FILE, set_tensor("readout.weight", lambda w: torch.zeros(1, 2)), "readout.weight", LOAD),
    "tensor float64": (MODEL_FILE, set_tensor("readout.weight", lambda w: w.double()), "readout.weight", LOAD),
    "tensor float16": (MODEL_FILE, set_tensor("head.per_map.weight", lambda w: w.half()), "head.per_map.weight", LOAD),
    "tensor int": (MODEL_FILE, set_tensor("readout.bias", lambda w: w.long()), "readout.bias", LOAD),
    "nan weight": (MODEL_FILE, set_tensor("readout.weight", poke(math.nan)), "readout.weight", LOAD),
    "inf weight": (MODEL_FILE, set_tensor("head.convs.0.weight", poke(math.inf, 5)), "head.convs.0.weight", LOAD),
    "-inf bias": (MODEL_FILE, set_tensor("readout.bias", poke(-math.inf)), "readout.bias", LOAD),
    "all-ones mask": (MODEL_FILE, set_tensor(MASK, torch.ones_like), MASK, LOAD),
    "mask with a 2": (MODEL_FILE, set_tensor(MASK, lambda m: m * 2), MASK, LOAD),
    "mask one synapse off": (MODEL_FILE, set_tensor(MASK, lambda m: poke(0.0, int(m.flatten().argmax()))(m)), MASK, LOAD),
    # train_state.pt (read on resume)
    "state truncated": (TRAIN_STATE_FILE, write_bytes(TRAIN_STATE_FILE, lambda b: b[: len(b) // 2]), None, RESUME),
    "state garbage": (TRAIN_STATE_FILE, write_bytes(TRAIN_STATE_FILE, lambda b: b"garbage" * 9), None, RESUME),
    "state hostile pickle": (TRAIN_STATE_FILE, hostile_pickle, None, RESUME),
    "state a list": (TRAIN_STATE_FILE, lambda last: torch.save([1], last / TRAIN_STATE_FILE), "format_version", RESUME),
    "state other version": (TRAIN_STATE_FILE, set_state(format_version=7), "format_version", RESUME),
    "negative step": (TRAIN_STATE_FILE, set_state(step=-1), "step", RESUME),
    "step past the end": (TRAIN_STATE_FILE, set_state(step=10**6), "step", RESUME),
    "step a string": (TRAIN_STATE_FILE, set_state(step="4"), "step", RESUME),
    "step unlike config.json": (TRAIN_STATE_FILE, set_state(step=2), "step", RESUME),
    "step missing": (TRAIN_STATE_FILE, edit_state(drop(lambda s: s, "step")), "step", RESUME),
    "best step ahead": (TRAIN_STATE_FILE, set_state(best_step=99), "best_step", RESUME),
    "best loss nan": (TRAIN_STATE_FILE, set_state(best_val_loss=math.nan), "best_val_loss", RESUME),
    "best loss missing": (TRAIN_STATE_FILE, edit_state(drop(lambda s: s, "best_val_loss")), "best_val_loss", RESUME),
    "optimizer missing": (TRAIN_STATE_FILE, edit_state(drop(lambda s: s, "optimizer")), "optimizer", RESUME),
    "optimizer a string": (TRAIN_STATE_FILE, set_state(optimizer="adam"), "optimizer", RESUME),
    "optimizer one group": (TRAIN_STATE_FILE, edit_state(lambda s: s["optimizer"]["param_groups"].pop()), "optimizer", RESUME),
    "moment reshaped": (TRAIN_STATE_FILE, optimizer_moment(lambda m: torch.zeros(3)), "optimizer.state.0.exp_avg", RESUME),
    "moment nan": (TRAIN_STATE_FILE, optimizer_moment(lambda m: m * math.nan), "optimizer.state.0.exp_avg", RESUME),
    "rng missing": (TRAIN_STATE_FILE, edit_state(drop(lambda s: s, "torch_rng")), "torch_rng", RESUME),
    "rng a string": (TRAIN_STATE_FILE, set_state(torch_rng="seed"), "torch_rng", RESUME),
    "rng too short": (TRAIN_STATE_FILE, set_state(torch_rng=torch.zeros(7, dtype=torch.uint8)), "torch_rng", RESUME),
    "rng float": (TRAIN_STATE_FILE, set_state(torch_rng=torch.zeros(5056)), "torch_rng", RESUME),
    "cuda rng garbage": (TRAIN_STATE_FILE, set_state(cuda_rng=[1, 2]), "cuda_rng", RESUME),
    # metrics.jsonl
    "metrics line not json": (METRICS_FILE, write_bytes(METRICS_FILE, lambda b: b + b"{oops\n"), "line", RESUME),
    "metrics line a list": (METRICS_FILE, write_bytes(METRICS_FILE, lambda b: b + b"[1]\n"), "line", RESUME),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_corruption_is_a_checkpoint_error_naming_file_and_field(trained, case):
    data, run, pristine = trained
    name, corrupt, field, action = CASES[case]
    shutil.rmtree(run)  # the run is resumed in place (its folder is part of its settings)
    shutil.copytree(pristine, run)
    last = run / LAST_DIR
    corrupt(last)
    with pytest.raises(CheckpointError) as refused:
        if action == LOAD:
            load_policy(last)
        else:
            train(tiny_config(data, run, **RUN, resume=True))
    message = str(refused.value)
    assert str(last / name) in message, message
    if field is not None:
        assert re.search(rf"(?<![\w.]){re.escape(field)}(?!\w)", message), message
    assert not (last / "code-ran").exists()  # nothing in a checkpoint ever runs


def test_at_least_fifty_corruptions():
    assert len(CASES) >= 50


def test_the_project_loads_torch_files_only_with_weights_only():
    calls = [
        (path, line)
        for folder in ("driving", "perception", "sim", "tools", "benchmarks", "liquid_drive")
        for path in (ROOT / folder).rglob("*.py")
        for line in path.read_text().splitlines()
        if "torch.load" + "(" in line
    ]
    assert calls, "torch.load is used by the checkpoint reader"
    assert all("weights_only=True" in line for _, line in calls), calls
    files = [p for folder in ("driving", "tools") for p in (ROOT / folder).rglob("*.py")]
    assert not any("pickle.load(" in p.read_text() for p in files)  # no pickle read from a file
