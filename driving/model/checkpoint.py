"""Checkpoints: a self-describing folder, written atomically and loaded strictly.

Layout::

    <checkpoint>/
        config.json        format name + version, the full policy config (core, wiring
                           arguments and seed, conv head, preprocessing spec, label scale, time
                           scale), the rebuilt wiring for checking, parameter counts per part,
                           the camera the training data were recorded with (``camera``:
                           ``sim.spec.CameraSpec.to_dict()``, null when unknown), and the
                           training provenance (train config, data and its split, step ...)
        model.safetensors  the policy's weights and buffers (``safetensors.torch.save_model``)
        train_state.pt     optional: optimizer state, step, RNG states; plain types and tensors
                           only, read with ``torch.load(weights_only=True)``
        metrics.jsonl      optional: one JSON object per logged training record

Format versions: 2 added ``camera``. A version-1 ``config.json`` still loads, as a checkpoint
whose camera is unknown (``camera`` None). ``train_state.pt`` has its own version
(:data:`TRAIN_STATE_VERSION`, unchanged).

Writing: every file goes into a hidden temporary folder next to the target, each is fsynced,
then the folder replaces the target (``driving.data.atomic.replace_dir``), so a crash leaves
either the old or the new checkpoint complete; a kill between the two renames leaves the old
one parked, which :func:`driving.data.atomic.recover_dir` puts back (training does that when
it opens a run).

Loading (:func:`load_policy`) refuses, with a :class:`CheckpointError` naming the file and the
field, anything that would not give the policy that was saved: a config of the wrong type,
size (more than :data:`MAX_UNITS` neurons, :data:`MAX_IMAGE_PX` pixels or
:data:`MAX_PARAMETERS` parameters in a part) or wiring; a
weights file with missing, extra, reshaped or retyped tensors, non-finite values, or wiring
masks that differ from the ones the config's wiring builds. Nothing is unpickled beyond
``weights_only=True``, and safetensors holds no code.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_model

from driving.data.atomic import make_temp_dir, parked_copies, replace_dir
from driving.model.policy import PolicyConfig, SteeringPolicy
from liquid_drive.errors import LiquidDriveError
from sim.spec import CameraSpec

logger = logging.getLogger(__name__)

FORMAT_NAME = "liquid-drive-policy"
FORMAT_VERSION = 2
"""Version of ``config.json`` written by this code (2: the ``camera`` key)."""
READABLE_VERSIONS = (1, 2)
"""Versions of ``config.json`` this code reads (1 is migrated: camera unknown)."""
TRAIN_STATE_VERSION = 1
"""Version of ``train_state.pt`` (its content did not change with config version 2)."""
CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
TRAIN_STATE_FILE = "train_state.pt"
METRICS_FILE = "metrics.jsonl"
BEST_DIR = "best"
"""Sub-folder of a training run holding the checkpoint with the best validation loss."""
LAST_DIR = "last"
"""Sub-folder of a training run holding the latest checkpoint (with ``train_state.pt``)."""
CAMERA_KEY = "camera"
"""Top-level key of ``config.json`` holding the training data's camera spec (or null)."""
MAX_UNITS = 4096
"""Largest neuron or channel count a checkpoint may configure (the shipped one has 19, 64)."""
MAX_IMAGE_PX = 8192
"""Largest image side a checkpoint may configure (the data checks' camera limit)."""
MAX_PARAMETERS = 50_000_000
"""Largest number of parameters of one part (conv head, core, readout) a checkpoint may have."""
_UNIT_FIELDS = ("inter_neurons", "command_neurons", "dense_units", "rnn_units", "cnn_hidden_units")
_CORE_FIELDS = {
    "cfc-ncp": "inter_neurons/command_neurons",
    "ltc-ncp": "inter_neurons/command_neurons",
    "cfc-ncp-random": "inter_neurons/command_neurons",
    "cfc-ncp-full": "inter_neurons/command_neurons",
    "lstm-19": "inter_neurons/command_neurons",
    "gru-19": "inter_neurons/command_neurons",
    "cfc-dense": "dense_units",
    "lstm": "rnn_units",
    "gru": "rnn_units",
    "cnn": "cnn_hidden_units",
}


class CheckpointError(LiquidDriveError, ValueError):
    """A checkpoint folder or file that cannot be used (the message names the file)."""


def _jsonable(value: Any) -> Any:
    """Plain-JSON copy of provenance values (paths and tuples become strings and lists)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} {value!r} in {CONFIG_FILE}")


def checkpoint_config(
    policy: SteeringPolicy,
    training: Mapping[str, Any] | None = None,
    camera: CameraSpec | Mapping[str, Any] | None = None,
) -> dict:
    """The ``config.json`` content for a policy, its training data's camera and provenance."""
    if isinstance(camera, CameraSpec):
        camera = camera.to_dict()
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "torch_version": torch.__version__,
        "policy": policy.config.to_dict(),
        "wiring": policy.wiring_dict(),
        "parameters": policy.parameter_counts(),
        "neurons": {"names": list(policy.neuron_names), "groups": list(policy.neuron_groups)},
        CAMERA_KEY: None if camera is None else _jsonable(dict(camera)),
        "training": _jsonable(dict(training or {})),
    }


def save_checkpoint(
    path: Path | str,
    policy: SteeringPolicy,
    *,
    training: Mapping[str, Any] | None = None,
    camera: CameraSpec | Mapping[str, Any] | None = None,
    train_state: Mapping[str, Any] | None = None,
    metrics: Iterable[Mapping[str, Any]] | None = None,
) -> Path:
    """Writes a checkpoint folder atomically.

    Args:
        path: The checkpoint folder to create or replace.
        policy: The policy to save (its config and all its weights and buffers).
        training: Provenance stored under ``"training"`` in ``config.json`` (train config,
            data, step, losses ...); plain JSON values, paths and tuples.
        camera: The camera the training data were recorded with (a ``CameraSpec`` or its
            ``to_dict()``, as in a dataset's ``meta/info.json``); None: unknown.
        train_state: Optional resumable state saved to ``train_state.pt``: plain Python
            types and tensors only (optimizer ``state_dict``, step, RNG states).
        metrics: Optional training records written one per line to ``metrics.jsonl``.

    Returns:
        The checkpoint folder.

    Raises:
        CheckpointError: If the policy's conv head runs in bf16 (a driving-only copy whose
            rounded weights would be saved as if trained); nothing is written.
    """
    path = Path(path)
    if policy.head.precision != "fp32":
        raise CheckpointError(
            f"{path}: the policy's conv head runs in {policy.head.precision} (for driving "
            "only); save the fp32 policy it was made from"
        )
    config = checkpoint_config(policy, training, camera)
    tmp = make_temp_dir(path)
    try:
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        save_model(policy, str(tmp / MODEL_FILE), metadata={"format_version": str(FORMAT_VERSION)})
        (tmp / MODEL_FILE).chmod((tmp / CONFIG_FILE).stat().st_mode)  # safetensors makes 0600
        if train_state is not None:
            torch.save(dict(train_state), tmp / TRAIN_STATE_FILE)
        if metrics is not None:
            with open(tmp / METRICS_FILE, "w") as f:
                for record in metrics:
                    f.write(json.dumps(_jsonable(dict(record))) + "\n")
        replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def resolve_checkpoint(path: Path | str) -> Path:
    """The checkpoint folder for a path: the folder itself, or a training run's ``best/``.

    Raises:
        CheckpointError: If neither ``path/config.json`` nor ``path/best/config.json`` exists
            (saying where a copy parked by an interrupted replacement waits, if one does).
    """
    path = Path(path)
    if (path / CONFIG_FILE).is_file():
        return path
    if (path / BEST_DIR / CONFIG_FILE).is_file():
        logger.info("%s is a training run: using its best checkpoint %s", path, path / BEST_DIR)
        return path / BEST_DIR
    for folder in (path, path / BEST_DIR):
        parked = parked_copies(folder)
        if parked and not folder.exists():
            raise CheckpointError(
                f"{folder / CONFIG_FILE}: not found: a process was killed while replacing "
                f"{folder}, whose previous version waits in {parked[-1]}; move it back "
                f"(mv {parked[-1]} {folder}) or resume the training run, which does that"
            )
    raise CheckpointError(f"{path / CONFIG_FILE}: not found; {path} is not a checkpoint folder")


def _check_like(file: Path, name: str, value: Any, like: Any) -> None:
    """Raises if a stored config value is not of the JSON type of ``like`` (its default)."""
    if like is None:
        return
    if isinstance(like, bool):
        ok = isinstance(value, bool)
    elif isinstance(like, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(like, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif isinstance(like, (list, tuple)):
        ok = isinstance(value, list)
        if ok and like:
            for i, item in enumerate(value):
                _check_like(file, f"{name}[{i}]", item, like[0])
    elif isinstance(like, Mapping):
        ok = isinstance(value, dict)
        if ok:
            for key in like.keys() & value.keys():
                _check_like(file, f"{name}.{key}", value[key], like[key])
    else:
        ok = isinstance(value, type(like))
    if not ok:
        raise CheckpointError(
            f"{file}: field '{name}' is {value!r}, expected a {type(like).__name__}"
        )


def _migrate(file: Path, config: dict[str, Any]) -> dict[str, Any]:
    """A config of a readable older version in the current format (version 1: camera None)."""
    version = config.get("format_version")
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        raise CheckpointError(
            f"{file}: field 'format_version' is {version!r}, this code reads "
            f"{list(READABLE_VERSIONS)}"
        )
    if version == 1:
        if CAMERA_KEY in config:
            raise CheckpointError(f"{file}: a format_version 1 config has no '{CAMERA_KEY}'")
        config = {**config, "format_version": FORMAT_VERSION, CAMERA_KEY: None}
        config["migrated_from_version"] = 1
    elif CAMERA_KEY not in config:
        raise CheckpointError(f"{file}: field '{CAMERA_KEY}' missing (null when unknown)")
    return config


def read_checkpoint_config(path: Path | str) -> dict[str, Any]:
    """Reads and checks ``config.json`` of a checkpoint folder (or a run's ``best/``).

    The result is in the current format (a version-1 config gets ``camera`` None).

    Raises:
        CheckpointError: If the file is missing, not JSON, of another format or version, or
            a field has the wrong type (names the file and the field).
    """
    file = resolve_checkpoint(path) / CONFIG_FILE
    try:
        config = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise CheckpointError(f"{file}: unreadable checkpoint config ({e})") from e
    if not isinstance(config, dict):
        raise CheckpointError(f"{file}: not a {FORMAT_NAME} checkpoint config (no object)")
    if config.get("format") != FORMAT_NAME:
        raise CheckpointError(
            f"{file}: field 'format' is {config.get('format')!r}: not a {FORMAT_NAME} "
            "checkpoint config"
        )
    config = _migrate(file, config)
    if not isinstance(config.get("policy"), dict):
        raise CheckpointError(f"{file}: field 'policy' missing or not an object")
    _check_like(file, "policy", config["policy"], PolicyConfig().to_dict())
    if not isinstance(config.get("training", {}), dict):
        raise CheckpointError(f"{file}: field 'training' is not an object")
    camera = config[CAMERA_KEY]
    if camera is not None and not isinstance(camera, dict):
        raise CheckpointError(f"{file}: field '{CAMERA_KEY}' is {camera!r}, not an object")
    if camera is not None:
        try:
            CameraSpec.from_dict(camera)
        except LiquidDriveError as e:
            raise CheckpointError(f"{file}: field '{CAMERA_KEY}': {e}") from e
    return config


def checkpoint_camera(path: Path | str) -> CameraSpec | None:
    """The camera a checkpoint's training data were recorded with; None when unknown.

    Keys a dataset did not record take :class:`~sim.spec.CameraSpec`'s defaults.

    Raises:
        CheckpointError: If ``config.json`` is unreadable or its ``camera`` is malformed.
    """
    camera = read_checkpoint_config(path)[CAMERA_KEY]
    return None if camera is None else CameraSpec.from_dict(camera)


def _check_size(file: Path, policy: dict[str, Any]) -> None:
    """Refuses sizes that would not fit in memory before anything is allocated."""
    conv = policy.get("conv", {})
    limits = [(k, policy.get(k), MAX_UNITS) for k in _UNIT_FIELDS]
    limits += [("conv.channels", v, MAX_UNITS) for v in conv.get("channels", [])]
    limits.append(("conv.features_per_map", conv.get("features_per_map"), MAX_UNITS))
    for part in ("preprocess", "conv"):
        items = policy.get(part, {}).items()
        limits += [(f"{part}.{k}", v, MAX_IMAGE_PX) for k, v in items if k.endswith("_px")]
    for name, value, limit in limits:
        if isinstance(value, int) and value > limit:
            raise CheckpointError(
                f"{file}: field 'policy.{name}' is {value}, more than this code loads ({limit})"
            )


def _count_parameters(file: Path, config: PolicyConfig) -> None:
    """Builds the policy without memory (torch's meta device) and refuses huge parts."""
    try:
        with torch.random.fork_rng(devices=[]), torch.device("meta"):
            ghost = SteeringPolicy(config)
    except Exception:  # the real build below reports any config problem
        return
    fields = {"head": "conv.channels/conv.features_per_map", "core": _CORE_FIELDS[config.core]}
    for part, module in (("head", ghost.head), ("core", ghost.core)):
        n = sum(p.numel() for p in module.parameters())
        if n > MAX_PARAMETERS:
            raise CheckpointError(
                f"{file}: fields 'policy.{fields[part]}' give a {part} of {n:,} parameters, "
                f"more than this code loads ({MAX_PARAMETERS:,})"
            )


def build_policy(path: Path | str) -> tuple[SteeringPolicy, dict[str, Any]]:
    """The policy a checkpoint's ``config.json`` describes (fresh weights) and that config.

    Raises:
        CheckpointError: If the config is unreadable, too large, inconsistent, or its stored
            wiring differs from the one rebuilt from its arguments.
    """
    folder = resolve_checkpoint(path)
    file = folder / CONFIG_FILE
    config = read_checkpoint_config(folder)
    _check_size(file, config["policy"])
    try:
        policy_config = PolicyConfig.from_dict(config["policy"])
        _count_parameters(file, policy_config)
        policy = SteeringPolicy(policy_config)
    except (LiquidDriveError, TypeError, ValueError, KeyError, MemoryError, RuntimeError) as e:
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(f"{file}: bad field in 'policy': {e}") from e
    if config.get("wiring") != _jsonable(policy.wiring_dict()):
        raise CheckpointError(
            f"{file}: field 'wiring': the wiring rebuilt from the config (seed "
            f"{policy.config.wiring_seed}) differs from the stored one"
        )
    return policy, config


def _read_tensors(file: Path, policy: SteeringPolicy) -> dict[str, torch.Tensor]:
    """The tensors of ``model.safetensors``, checked against the policy's own, by name."""
    if not file.is_file():
        raise CheckpointError(f"{file}: not found")
    try:
        tensors = load_file(str(file))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{file}: unreadable weights ({e})") from e
    expected = policy.state_dict()
    missing, unexpected = sorted(expected.keys() - tensors), sorted(tensors.keys() - expected)
    if missing or unexpected:
        raise CheckpointError(
            f"{file}: does not load into the configured policy: missing tensors {missing}, "
            f"unexpected tensors {unexpected}"
        )
    for key, want in expected.items():
        got = tensors[key]
        if got.dtype != want.dtype or got.shape != want.shape:
            raise CheckpointError(
                f"{file}: tensor '{key}' is {got.dtype} {tuple(got.shape)}, the configured "
                f"policy has {want.dtype} {tuple(want.shape)}"
            )
        if got.is_floating_point() and not bool(torch.isfinite(got).all()):
            bad = int((~torch.isfinite(got)).sum())
            raise CheckpointError(f"{file}: tensor '{key}' holds {bad} NaN or infinite values")
    # Buffers (the wiring masks) follow from config.json alone: they must be the rebuilt ones.
    params = {name for name, _ in policy.named_parameters()}
    for key in expected.keys() - params:
        if not torch.equal(tensors[key], expected[key]):
            diff = int((tensors[key] != expected[key]).sum())
            raise CheckpointError(
                f"{file}: tensor '{key}' differs from the wiring in {CONFIG_FILE} in {diff} "
                "entries (a wiring mask must match the config's wiring)"
            )
    return tensors


def load_policy(path: Path | str, device: str | torch.device = "cpu") -> SteeringPolicy:
    """Rebuilds a policy from a checkpoint folder and loads its weights strictly.

    Args:
        path: A checkpoint folder, or a training run folder (its ``best/`` is used).
        device: Where to put the policy.

    Returns:
        The policy, in eval mode.

    Raises:
        CheckpointError: If ``config.json`` or ``model.safetensors`` is missing, corrupt, or
            does not match the policy the config describes (names the file and the field).
    """
    policy, _ = build_policy(path)
    model_file = resolve_checkpoint(path) / MODEL_FILE
    tensors = _read_tensors(model_file, policy)
    try:
        policy.load_state_dict(tensors, strict=True)
    except RuntimeError as e:  # checked above; kept as a guard
        raise CheckpointError(f"{model_file}: does not load into the configured policy: {e}") from e
    return policy.to(device).eval()


def load_train_state(path: Path | str) -> dict[str, Any]:
    """Reads ``train_state.pt`` with ``weights_only=True`` (its fields are checked on resume).

    Raises:
        CheckpointError: If the file is missing, corrupt, of another version or holds
            anything beyond plain types and tensors.
    """
    file = Path(path) / TRAIN_STATE_FILE
    if not file.is_file():
        raise CheckpointError(f"{file}: not found (a checkpoint saved without training state?)")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, EOFError ...
        raise CheckpointError(f"{file}: unreadable training state ({type(e).__name__}: {e})") from e
    if not isinstance(state, dict) or state.get("format_version") != TRAIN_STATE_VERSION:
        version = state.get("format_version") if isinstance(state, dict) else None
        raise CheckpointError(
            f"{file}: field 'format_version' is {version!r}, not a version "
            f"{TRAIN_STATE_VERSION} training state"
        )
    return state


def read_metrics(path: Path | str) -> list[dict[str, Any]]:
    """Reads ``metrics.jsonl`` of a checkpoint (an empty list if it has none).

    Raises:
        CheckpointError: If a line is not a JSON object.
    """
    file = Path(path) / METRICS_FILE
    if not file.is_file():
        return []
    records = []
    try:
        lines = file.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{file}: unreadable ({e})") from e
    for i, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{file}: line {i} is not JSON ({e})") from e
        if not isinstance(record, dict):
            raise CheckpointError(f"{file}: line {i} is not a JSON object")
        records.append(record)
    return records
