"""Tile-sized buffers of the world texture, pooled per process.

A fresh multi-megabyte array costs more in page faults on its first write than the work done in
it (numpy advises huge pages for large arrays, which makes the first touch several times slower
still and brings the warps nothing), so buffers are plain anonymous memory maps, reused across
tiles and episodes.
"""

from __future__ import annotations

import math
import mmap
import sys
import threading
import weakref
from collections import OrderedDict

import numpy as np

BUFFER_SLACK = 1.25
"""New tile-sized buffers are this much larger than asked for, so that later (differently
sized) tiles can reuse them."""

POOL: list[np.ndarray] = []
POOL_LOCK = threading.Lock()
POOL_BUFFERS = 6
"""At most this many unused buffers are kept."""


def take(n: int) -> np.ndarray:
    """A flat uint8 buffer of at least ``n`` bytes: the smallest fitting pooled one, or new."""
    with POOL_LOCK:
        fits = [i for i, flat in enumerate(POOL) if flat.size >= n]
        if fits:
            return POOL.pop(min(fits, key=lambda i: POOL[i].size))
    # tiles differ in size: new buffers get some room
    return np.frombuffer(mmap.mmap(-1, int(n * BUFFER_SLACK)), np.uint8)


def give(flat: np.ndarray, wait: bool = True) -> None:
    """Returns a buffer that nothing uses any more to the pool.

    Args:
        flat: The buffer.
        wait: Block until the pool is free. A texture's finalizer passes False: the garbage
            collector may run it inside :func:`take` or :func:`give` on the same thread, with the
            (non-reentrant) lock held, where waiting would deadlock; the buffer is then simply
            not pooled (freed with its last reference).
    """
    if not POOL_LOCK.acquire(blocking=wait):
        return
    try:
        POOL.append(flat)
        if len(POOL) > POOL_BUFFERS:
            del POOL[min(range(len(POOL)), key=lambda i: POOL[i].size)]
    finally:
        POOL_LOCK.release()


def view(flat: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A C-contiguous uint8 array of ``shape`` on the front of a flat buffer."""
    return flat[: math.prod(shape)].reshape(shape)


def drop_tile(cache: OrderedDict, last: bool = False, wait: bool = True) -> None:
    """Removes a tile from a cache; pools its buffer unless the tile or a view of it lives on.

    ``wait`` goes to :func:`_give` (False from a finalizer).
    """
    tile = cache.popitem(last=last)[1]
    flat = tile.rgba.base
    alive = weakref.ref(tile)
    del tile
    # the tile is gone if nothing else held it; then only views made elsewhere (and this
    # frame's and getrefcount's references) can still refer to the buffer
    if alive() is None and isinstance(flat, np.ndarray) and sys.getrefcount(flat) <= 2:
        give(flat, wait)


def release_cache(cache: OrderedDict) -> None:
    """A collected texture's finalizer: its tiles' buffers back to the pool, never blocking."""
    while cache:
        drop_tile(cache, wait=False)
