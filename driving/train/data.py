"""Training data: episodes decoded into memory, their split, batches, and the split's identity.

Frames are held in memory in one of two forms (``--frame-cache``). ``decoded``: every frame
decoded once into a uint8 array (30 simulated minutes at 78 x 200 are 1.7 GB; each recovery
view as much again) and windows sliced from it, so data loading costs nothing per step.
``jpeg``: the frames' JPEG bytes (6.8x smaller on 30 minutes of builtin data), decoded per
batch by a thread pool, which costs a few percent of a training step and lets two trainings
or much larger datasets share one machine. ``auto`` (the default) keeps decoded frames when
they take at most :data:`AUTO_DECODED_SHARE` of the available memory, else JPEG bytes. The
batches are the same bytes either way, so the run's result does not depend on the choice. A
run whose frames would not fit in the available memory is refused before loading
(:func:`choose_frame_cache`) instead of swapping the machine to a standstill.

The split's identity (:func:`split_fingerprint`) is stored in every checkpoint: for each role
(train, val, val_town) the episodes' folders and a content hash of each (its ``episode.json``
fields, its columns and its decoded frames), plus one hash over all of it. A resumed run
compares it with the data it finds (:func:`data_changes`), so episodes appended, removed or
rewritten between a kill and ``--resume`` are noticed instead of silently re-splitting
training and validation.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import default_collate

from driving.data.episodes import COMMAND, Episode, read_info
from driving.data.format import EPISODE_FILE, list_episodes
from driving.data.frames import decode_jpeg, read_frame_bytes
from driving.data.views import views_of
from driving.data.windows import WindowDataset, split_by_episode, split_by_town
from driving.train.config import TrainConfig, TrainConfigError
from sim.spec import COMMAND_NAMES, Command

logger = logging.getLogger(__name__)

ROLES = ("train", "val", "val_town")
"""The split's parts, in the order :func:`split_episodes` returns them."""
AUTO_DECODED_SHARE = 0.6
"""``auto`` keeps decoded frames when they need at most this share of the available memory."""
DEFAULT_RECOVERY_SHARE = 0.3
"""``--recovery-share`` unset: this share of windows from recovery views when the data hold
them (round 2 of the transfer ablations, ``checkpoints/README.md``)."""


@dataclass
class CachedEpisode(Episode):
    """An episode whose frames are held in memory: decoded (uint8 (N, H, W, 3)) or as JPEG bytes.

    View 0 is the car's camera, views 1..K the recovery views (loaded with ``views=True``).
    """

    digest: str = ""
    """BLAKE2b of the episode's meta, columns and decoded frames (hex), whatever the cache."""
    decoded: list[np.ndarray] = field(default_factory=list, repr=False)
    """``decoded`` cache: per loaded view, uint8 (N, H, W, 3); empty for the ``jpeg`` cache."""
    jpeg: list[list[bytes]] = field(default_factory=list, repr=False)
    """``jpeg`` cache: per loaded view, the N frames' JPEG bytes; empty for ``decoded``."""

    @classmethod
    def load(cls, episode: Episode, views: bool = False, jpeg: bool = False) -> CachedEpisode:
        """Reads every frame of ``episode`` into memory and hashes its content.

        Args:
            episode: The episode.
            views: Load (and hash) its recovery views' frames too (``--recovery-share``).
            jpeg: Keep the JPEG bytes instead of the decoded frames (the digest is the same:
                it hashes the decoded frames either way).
        """
        base = {f.name: getattr(episode, f.name) for f in dataclasses.fields(Episode)}
        h = hashlib.blake2b(digest_size=16)
        h.update(json.dumps(episode.meta, sort_keys=True, default=str).encode())
        for name in sorted(episode.columns):
            column = np.ascontiguousarray(episode.columns[name])
            h.update(f"{name}:{column.dtype}:{column.shape}".encode())
            h.update(column.tobytes())
        decoded, encoded = [], []
        for view in range(episode.views + 1 if views else 1):
            if not jpeg:
                frames = episode.view_frames(view, 0, len(episode))  # (N, H, W, 3)
                h.update(np.ascontiguousarray(frames).data)  # hashlib releases the GIL for this
                decoded.append(frames)
                continue
            data = []
            for i in range(len(episode)):
                path = episode.view_frame_path(view, i)
                data.append(read_frame_bytes(path))
                frame = decode_jpeg(path, data[-1], episode.image_shape)  # checked and hashed
                h.update(np.ascontiguousarray(frame).data)
            encoded.append(data)
        return cls(**base, digest=h.hexdigest(), decoded=decoded, jpeg=encoded)

    @property
    def loaded_views(self) -> int:
        """Views held in memory: 1 (the car's camera) or 1 + K."""
        return len(self.decoded) or len(self.jpeg)

    def frames(self, start: int, stop: int) -> np.ndarray:
        """Frames ``start..stop-1`` from memory: uint8 (stop - start, H, W, 3) RGB."""
        return self.view_frames(0, start, stop)

    def view_frames(self, view: int, start: int, stop: int) -> np.ndarray:
        """Frames of view ``view`` from memory (0 = the car's; 1..K loaded with ``views=True``)."""
        if not 0 <= view < self.loaded_views:
            raise RuntimeError(
                f"{self.path}: view {view} not loaded (views 0..{self.loaded_views - 1} are; "
                "recovery views need load(views=True))"
            )
        if self.decoded:
            return self.decoded[view][start:stop]  # a view of the cache
        out = np.empty((stop - start, *self.image_shape), dtype=np.uint8)
        for k, i in enumerate(range(start, stop)):
            # the bytes decoded once at load time; the episode folder names them should they
            # not now (a frame's own path costs ~3 % of its decode on this hot path)
            out[k] = decode_jpeg(self.path, self.jpeg[view][i], self.image_shape)
        return out


def split_episodes(
    episodes: list[Episode], cfg: TrainConfig
) -> tuple[list[Episode], list[Episode], list[Episode]]:
    """(train, validation, held-out-town validation) episodes, reproducibly for the seed."""
    rest, town_val = split_by_town(episodes, cfg.val_towns) if cfg.val_towns else (episodes, [])
    train, val = split_by_episode(rest, cfg.val_fraction, seed=cfg.seed)
    if not train:
        raise TrainConfigError(f"no training episodes left in {[str(p) for p in cfg.data]}")
    return train, val, town_val


def resolve_recovery_share(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with an unset ``recovery_share`` decided from the data, before anything is read.

    :data:`DEFAULT_RECOVERY_SHARE` when an episode of ``cfg.data`` declares recovery views
    in its ``episode.json``, else 0. A folder that cannot be read counts as having none: the
    dataset checks after it name the problem.
    """
    if cfg.recovery_share is not None:
        return cfg
    share = DEFAULT_RECOVERY_SHARE if any(_declares_views(p) for p in cfg.data) else 0.0
    return dataclasses.replace(cfg, recovery_share=share)


def _declares_views(dataset: os.PathLike[str] | str) -> bool:
    try:
        return any(
            views_of(json.loads((e / EPISODE_FILE).read_text()), e) > 0
            for e in list_episodes(dataset)
        )
    except (OSError, ValueError):  # not a dataset, an unreadable episode.json: checked later
        return False


def check_recovery_data(train: list[Episode], cfg: TrainConfig) -> None:
    """Refuses ``--recovery-share`` > 0 when no training episode has recovery views.

    Raises:
        TrainConfigError: Naming the datasets.
    """
    if cfg.recovery_share and not any(e.views for e in train):
        raise TrainConfigError(
            f"--recovery-share {cfg.recovery_share}: no training episode of "
            f"{[str(p) for p in cfg.data]} has recovery views (record them with "
            "tools/record.py --recovery-views K)"
        )


def cache_bytes(episodes: list[Episode], views: list[bool], jpeg: bool = False) -> int:
    """Bytes the frames of ``episodes`` take in memory (with the views where asked).

    Decoded: H x W x 3 per frame. JPEG: each view's mean file size of its first and last
    frame per frame (an estimate: the files are not all read to size them).
    """
    total = 0
    for e, v in zip(episodes, views, strict=True):
        for view in range(e.views + 1 if v else 1):
            if not jpeg:
                total += len(e) * math.prod(e.image_shape)
                continue
            ends = {0, len(e) - 1}
            size = sum(e.view_frame_path(view, i).stat().st_size for i in ends) / len(ends)
            total += int(len(e) * size)
    return total


def available_memory_bytes() -> int | None:
    """The memory the system can still give this process (``MemAvailable``); None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def choose_frame_cache(
    episodes: list[Episode], views: list[bool], cfg: TrainConfig, available: int | None
) -> tuple[bool, int]:
    """Picks how the frames are held (``cfg.frame_cache``) and refuses what would not fit.

    Args:
        episodes: Every episode to load (train, validation, held-out town).
        views: Per episode, whether its recovery views are loaded too.
        cfg: The run's config (its datasets are named in the error).
        available: Bytes of memory available (:func:`available_memory_bytes`); None = unknown:
            ``auto`` decodes, nothing is refused.

    Returns:
        ``(jpeg, bytes)``: whether the JPEG bytes are kept instead of decoded frames, and the
        bytes the cache will take.

    Raises:
        TrainConfigError: If the chosen cache needs more than 90 % of ``available``, naming
            both sizes.
    """
    decoded = cache_bytes(episodes, views)
    jpeg = cfg.frame_cache == "jpeg" or (
        cfg.frame_cache == "auto"
        and available is not None
        and decoded > AUTO_DECODED_SHARE * available
    )
    need = cache_bytes(episodes, views, jpeg=True) if jpeg else decoded
    if available is not None and need > 0.9 * available:
        what = "as JPEG bytes take" if jpeg else "decode to"
        hint = (
            "" if jpeg else " or keep them as JPEG bytes (--frame-cache jpeg, a few % slower)"
        ) + (" or train without --recovery-share" if any(views) else "")
        raise TrainConfigError(
            f"the frames of {[str(p) for p in cfg.data]} {what} {need / 2**30:.1f} GiB "
            f"(every frame is held in memory) but only {available / 2**30:.1f} GiB are "
            f"available; train on fewer or shorter datasets{hint}, or stop other trainings"
        )
    return jpeg, need


def warn_unseen_commands(command_input: str, train: list[Episode]) -> int:
    """Warns (once per run) when a policy that cannot see commands trains on junction data.

    Returns:
        The training steps with a command other than follow-lane.
    """
    steps = sum(int(np.count_nonzero(e.columns[COMMAND] != Command.FOLLOW_LANE)) for e in train)
    if command_input == "none" and steps:
        names = sorted(
            {COMMAND_NAMES[int(c)] for e in train for c in np.unique(e.columns[COMMAND])}
        )
        logger.warning(
            "%d training steps have route commands other than follow_lane (%s) but the policy "
            "has command_input=none and cannot see them; train with --policy.command-input "
            "embed or branch",
            steps,
            ", ".join(names),
        )
    return steps


def check_data_fits_policy(cfg: TrainConfig) -> dict[str, Any]:
    """Checks the datasets' camera and rate against the policy; returns the camera spec.

    Returns:
        The first dataset's camera (``meta/info.json``; the reader checks the others match).

    Raises:
        TrainConfigError: If the frame size differs from the policy's preprocessing input or
            the control rate from its first-step interval.
    """
    pre = cfg.policy.preprocess
    cameras = []
    for root in cfg.data:
        info = read_info(root)
        cameras.append(info.camera)
        h, w, _ = info.image_shape
        if (h, w) != (pre.input_height_px, pre.input_width_px):
            raise TrainConfigError(
                f"{root}: frames are {h}x{w} px (HxW) but the policy's preprocessing expects "
                f"{pre.input_height_px}x{pre.input_width_px}; set --policy.preprocess.input-"
                "height-px/--policy.preprocess.input-width-px (and a crop/resize)"
            )
        dt = 1.0 / info.control_rate_hz
        if not math.isclose(dt, cfg.policy.first_step_dt_s, rel_tol=1e-6):
            raise TrainConfigError(
                f"{root}: recorded at {info.control_rate_hz} Hz but the policy assumes "
                f"{cfg.policy.first_step_dt_s} s before an episode's first frame; pass "
                f"--policy.first-step-dt-s {dt:.6g}"
            )
    return dict(cameras[0])


def split_fingerprint(*parts: list[CachedEpisode]) -> dict[str, Any]:
    """What a run trains and validates on: per role, episode folder -> content hash.

    Args:
        parts: The train, val and val_town episodes (:data:`ROLES` order).

    Returns:
        ``{"sha256": hash of the whole split, "episodes": {role: {folder: digest}}}``.
    """
    episodes = {
        role: {str(e.path): e.digest for e in eps} for role, eps in zip(ROLES, parts, strict=True)
    }
    text = json.dumps(episodes, sort_keys=True).encode()
    return {"sha256": hashlib.sha256(text).hexdigest(), "episodes": episodes}


def data_changes(stored: dict[str, Any], now: dict[str, Any], limit: int = 4) -> list[str]:
    """What differs between two :func:`split_fingerprint` results (empty: the same data)."""
    if stored.get("sha256") == now["sha256"]:
        return []
    before = stored.get("episodes") if isinstance(stored.get("episodes"), dict) else {}
    role_of = {p: r for r in ROLES for p in (before.get(r) or {})}
    digest_of = {p: d for r in ROLES for p, d in (before.get(r) or {}).items()}
    found: dict[str, list[str]] = {}
    for role in ROLES:
        for path, digest in now["episodes"][role].items():
            if path not in role_of:
                found.setdefault(f"new {role} episodes", []).append(path)
            elif role_of[path] != role:
                found.setdefault(f"{role_of[path]} episodes now {role}", []).append(path)
            elif digest_of[path] != digest:
                found.setdefault("episodes whose content changed", []).append(path)
    current = {p for r in ROLES for p in now["episodes"][r]}
    gone = sorted(p for p in role_of if p not in current)
    if gone:
        found["episodes no longer found"] = gone
    if not found:
        found["the split's hash"] = [f"{stored.get('sha256')!r} vs {now['sha256']!r}"]

    def shown(paths: list[str]) -> str:
        more = f" and {len(paths) - limit} more" if len(paths) > limit else ""
        return ", ".join(paths[:limit]) + more

    return [f"{what}: {shown(paths)}" for what, paths in found.items()]


def validation_windows(dataset: WindowDataset, max_windows: int) -> list[int]:
    """Up to ``max_windows`` window indices evenly spread over the dataset."""
    n = len(dataset)
    if n <= max_windows:
        return list(range(n))
    return np.linspace(0, n - 1, max_windows).round().astype(int).tolist()


def make_batch(
    dataset: WindowDataset,
    indices: list[int],
    device: torch.device,
    pool: Executor | None = None,
) -> dict[str, Tensor]:
    """The windows ``indices`` of ``dataset`` collated into tensors on ``device``.

    Args:
        dataset: The windows.
        indices: Which windows, in batch order.
        device: Where the tensors go.
        pool: Threads to read the windows with (the ``jpeg`` cache decodes them; OpenCV
            releases the GIL); None reads them in this thread.
    """
    read = dataset.__getitem__
    windows = list(pool.map(read, indices)) if pool is not None else [read(i) for i in indices]
    items = default_collate(windows)
    return {k: v.to(device, non_blocking=True) for k, v in items.items()}


def batch_indices(step: int, num_windows: int, batch_size: int, seed: int) -> list[int]:
    """Window indices of batch ``step``: epochs of seeded permutations, last partial dropped.

    A pure function of its arguments, so a resumed run sees the same batches.
    """
    per_epoch = max(num_windows // batch_size, 1)
    epoch, pos = divmod(step, per_epoch)
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(num_windows, generator=g)
    chunk = perm[pos * batch_size : (pos + 1) * batch_size]
    if len(chunk) < batch_size:  # fewer windows than a batch: repeat the permutation
        chunk = perm.repeat(math.ceil(batch_size / num_windows))[:batch_size]
    return chunk.tolist()
