"""Checkpoints: a self-describing folder, written atomically and loaded strictly.

Layout::

    <checkpoint>/
        config.json        format name + version, the full policy config (core, wiring
                           arguments and seed, conv head, preprocessing spec, label scale, time
                           scale), the rebuilt wiring for checking, parameter counts per part,
                           and the training provenance (train config, data, step, losses ...)
        model.safetensors  the policy's weights and buffers (``safetensors.torch.save_model``)
        train_state.pt     optional: optimizer state, step, RNG states; plain types and tensors
                           only, read with ``torch.load(weights_only=True)``
        metrics.jsonl      optional: one JSON object per logged training record

Writing: every file goes into a hidden temporary folder next to the target, each is fsynced,
then the folder is renamed into place. An existing checkpoint of the same name is first
renamed aside and deleted after the new one is in place, so a crash leaves either the old or
the new checkpoint complete (at worst the old one under a hidden ``.<name>.old-*`` name).

Loading (:func:`load_policy`): the policy is rebuilt from ``config.json`` and the weights are
loaded with ``strict=True``. A missing, corrupt or mismatched file is a
:class:`CheckpointError` naming the file; nothing is unpickled beyond ``weights_only=True``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model

from driving.model.policy import PolicyConfig, PolicyConfigError, SteeringPolicy
from liquid_drive.errors import LiquidDriveError

logger = logging.getLogger(__name__)

FORMAT_NAME = "liquid-drive-policy"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
TRAIN_STATE_FILE = "train_state.pt"
METRICS_FILE = "metrics.jsonl"
BEST_DIR = "best"
"""Sub-folder of a training run holding the checkpoint with the best validation loss."""
LAST_DIR = "last"
"""Sub-folder of a training run holding the latest checkpoint (with ``train_state.pt``)."""


class CheckpointError(LiquidDriveError, ValueError):
    """A checkpoint folder or file that cannot be used (the message names the file)."""


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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


def checkpoint_config(policy: SteeringPolicy, training: Mapping[str, Any] | None = None) -> dict:
    """The ``config.json`` content for a policy and its training provenance."""
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "torch_version": torch.__version__,
        "policy": policy.config.to_dict(),
        "wiring": policy.wiring_dict(),
        "parameters": policy.parameter_counts(),
        "neurons": {"names": list(policy.neuron_names), "groups": list(policy.neuron_groups)},
        "training": _jsonable(dict(training or {})),
    }


def save_checkpoint(
    path: Path | str,
    policy: SteeringPolicy,
    *,
    training: Mapping[str, Any] | None = None,
    train_state: Mapping[str, Any] | None = None,
    metrics: Iterable[Mapping[str, Any]] | None = None,
) -> Path:
    """Writes a checkpoint folder atomically.

    Args:
        path: The checkpoint folder to create or replace.
        policy: The policy to save (its config and all its weights and buffers).
        training: Provenance stored under ``"training"`` in ``config.json`` (train config,
            data, step, losses ...); plain JSON values, paths and tuples.
        train_state: Optional resumable state saved to ``train_state.pt``: plain Python
            types and tensors only (optimizer ``state_dict``, step, RNG states).
        metrics: Optional training records written one per line to ``metrics.jsonl``.

    Returns:
        The checkpoint folder.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    config = checkpoint_config(policy, training)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        save_model(policy, str(tmp / MODEL_FILE), metadata={"format_version": str(FORMAT_VERSION)})
        if train_state is not None:
            torch.save(dict(train_state), tmp / TRAIN_STATE_FILE)
        if metrics is not None:
            with open(tmp / METRICS_FILE, "w") as f:
                for record in metrics:
                    f.write(json.dumps(_jsonable(dict(record))) + "\n")
        for child in tmp.iterdir():
            _fsync_file(child)
        _fsync_dir(tmp)
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
            os.rename(path, old / path.name)
        os.rename(tmp, path)
        _fsync_dir(path.parent)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def resolve_checkpoint(path: Path | str) -> Path:
    """The checkpoint folder for a path: the folder itself, or a training run's ``best/``.

    Raises:
        CheckpointError: If neither ``path/config.json`` nor ``path/best/config.json`` exists.
    """
    path = Path(path)
    if (path / CONFIG_FILE).is_file():
        return path
    if (path / BEST_DIR / CONFIG_FILE).is_file():
        logger.info("%s is a training run: using its best checkpoint %s", path, path / BEST_DIR)
        return path / BEST_DIR
    raise CheckpointError(f"{path / CONFIG_FILE}: not found; {path} is not a checkpoint folder")


def read_checkpoint_config(path: Path | str) -> dict[str, Any]:
    """Reads and checks ``config.json`` of a checkpoint folder (or a run's ``best/``).

    Raises:
        CheckpointError: If the file is missing, not JSON or of another format or version.
    """
    file = resolve_checkpoint(path) / CONFIG_FILE
    try:
        config = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{file}: unreadable checkpoint config ({e})") from e
    if not isinstance(config, dict) or config.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{file}: not a {FORMAT_NAME} checkpoint config")
    if config.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{file}: format_version {config.get('format_version')!r}, this code reads "
            f"{FORMAT_VERSION}"
        )
    if not isinstance(config.get("policy"), dict):
        raise CheckpointError(f"{file}: no 'policy' object")
    return config


def load_policy(path: Path | str, device: str | torch.device = "cpu") -> SteeringPolicy:
    """Rebuilds a policy from a checkpoint folder and loads its weights strictly.

    Args:
        path: A checkpoint folder, or a training run folder (its ``best/`` is used).
        device: Where to put the policy.

    Returns:
        The policy, in eval mode.

    Raises:
        CheckpointError: If ``config.json`` or ``model.safetensors`` is missing, corrupt, or
            does not match the policy the config describes (names the file).
    """
    folder = resolve_checkpoint(path)
    config = read_checkpoint_config(folder)
    try:
        policy = SteeringPolicy(PolicyConfig.from_dict(config["policy"]))
    except (PolicyConfigError, TypeError, ValueError) as e:
        raise CheckpointError(f"{folder / CONFIG_FILE}: bad policy config: {e}") from e
    stored_wiring = config.get("wiring")
    if stored_wiring != _jsonable(policy.wiring_dict()):
        raise CheckpointError(
            f"{folder / CONFIG_FILE}: the wiring rebuilt from the config (seed "
            f"{policy.config.wiring_seed}) differs from the stored one"
        )
    model_file = folder / MODEL_FILE
    if not model_file.is_file():
        raise CheckpointError(f"{model_file}: not found")
    try:
        missing, unexpected = load_model(policy, str(model_file), strict=True)
    except (SafetensorError, RuntimeError, OSError, ValueError) as e:
        raise CheckpointError(f"{model_file}: does not load into the configured policy: {e}") from e
    if missing or unexpected:  # strict=True raises first; kept as a guard
        raise CheckpointError(f"{model_file}: missing {missing}, unexpected {unexpected}")
    return policy.to(device).eval()


def load_train_state(path: Path | str) -> dict[str, Any]:
    """Reads ``train_state.pt`` with ``weights_only=True``.

    Raises:
        CheckpointError: If the file is missing, corrupt or holds anything beyond plain types
            and tensors.
    """
    file = Path(path) / TRAIN_STATE_FILE
    if not file.is_file():
        raise CheckpointError(f"{file}: not found (a checkpoint saved without training state?)")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, EOFError ...
        raise CheckpointError(f"{file}: unreadable training state ({type(e).__name__}: {e})") from e
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{file}: not a format_version {FORMAT_VERSION} training state")
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
    for i, line in enumerate(file.read_text().splitlines(), start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{file}: line {i} is not JSON ({e})") from e
        if not isinstance(record, dict):
            raise CheckpointError(f"{file}: line {i} is not a JSON object")
        records.append(record)
    return records
