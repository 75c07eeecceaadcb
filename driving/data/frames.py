"""Frame files: JPEG encoding with a checksum, decoding, and a structural check.

Frames are baseline JPEGs (``frames/%06d.jpg``, RGB once decoded). The writer adds one JPEG
comment segment (``COM``, ignored by every decoder) right after the JFIF header holding the
CRC-32 of the rest of the file::

    FF D8 | FF E0 <JFIF APP0> | FF FE <len> "liquid-drive crc32=1a2b3c4d" | ... | FF D9

so a frame whose bytes changed after it was written (garbled data in the middle of the file,
which a JPEG decoder usually decodes into a plausible picture without an error) is found by
:func:`check_jpeg`. Frames without the comment (older recordings) get the structural checks
only: start and end markers, header segments that fit, no stray marker inside the
entropy-coded data, nothing after the end marker.
"""

from __future__ import annotations

import os
import stat
import zlib
from pathlib import Path

import cv2
import numpy as np

from driving.data.errors import EpisodeFormatError

SOI, EOI, SOS, COM, APP0 = b"\xff\xd8", b"\xff\xd9", 0xDA, 0xFE, 0xE0
CRC_TAG = b"liquid-drive crc32="
"""Start of the comment segment's text; 8 lowercase hex digits follow."""


def encode_frame(image: np.ndarray, quality: int) -> bytes:
    """Encodes uint8 (H, W, 3) RGB as a JPEG carrying its CRC-32 in a comment segment.

    Raises:
        RuntimeError: If OpenCV cannot encode the image.
    """
    # cvtColor writes a contiguous BGR copy: the same bytes as encoding the flipped view
    # ``image[..., ::-1]``, which OpenCV would first copy element by element (3x slower).
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    data = buf.tobytes()
    cut = 2  # after SOI, or after the JFIF APP0 segment (JFIF wants APP0 first)
    if data[2:4] == bytes([0xFF, APP0]):
        cut = 4 + int.from_bytes(data[4:6], "big")
    crc = zlib.crc32(data[cut:], zlib.crc32(data[:cut]))
    text = CRC_TAG + b"%08x" % crc
    segment = bytes([0xFF, COM]) + (len(text) + 2).to_bytes(2, "big") + text
    return data[:cut] + segment + data[cut:]


def decode_frame(path: Path, image_shape: tuple[int, int, int]) -> np.ndarray:
    """Reads and decodes one JPEG frame to uint8 (H, W, 3) RGB, checking its size.

    Raises:
        EpisodeFormatError: If the file is missing, not a decodable JPEG or of another size.
    """
    return decode_jpeg(path, read_frame_bytes(path), image_shape)


def read_frame_bytes(path: Path) -> bytes:
    """The bytes of a frame file.

    Raises:
        EpisodeFormatError: For an unreadable file or one that is not a regular file (a
            folder, a FIFO, a device), naming it.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not block the reader
    except OSError as e:
        raise EpisodeFormatError(f"{path}: frame not readable ({e.strerror})") from e
    try:
        size = os.fstat(fd)
        if not stat.S_ISREG(size.st_mode):
            raise EpisodeFormatError(f"{path}: frame is not a regular file")
        data = os.read(fd, size.st_size + 1)  # one call reads the whole file ...
        if len(data) != size.st_size:  # ... unless it changed size meanwhile: read to the end
            parts = [data]
            while chunk := os.read(fd, 1 << 16):
                parts.append(chunk)
            data = b"".join(parts)
        return data
    except OSError as e:
        raise EpisodeFormatError(f"{path}: frame not readable ({e.strerror})") from e
    finally:
        os.close(fd)


def decode_jpeg(path: Path, data: bytes, image_shape: tuple[int, int, int]) -> np.ndarray:
    """Decodes the JPEG ``data`` read from ``path``: uint8 (H, W, 3) RGB of ``image_shape``."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if img is None:
        raise EpisodeFormatError(f"{path}: corrupt or empty JPEG ({len(data)} bytes)")
    if img.shape != image_shape:
        raise EpisodeFormatError(
            f"{path}: frame is {img.shape[1]}x{img.shape[0]}, the dataset camera is "
            f"{image_shape[1]}x{image_shape[0]}"
        )
    return img[..., ::-1]  # BGR -> RGB (a view; callers copy into their batch)


def check_jpeg(path: Path, data: bytes) -> bool:
    """Checks a JPEG's checksum when it carries one, else its structure, without decoding.

    The checksum covers every byte but its own segment, so a frame that carries a matching
    one is exactly what the writer wrote; the structural walk is for frames without one.

    Returns:
        Whether the frame carried a checksum (which then matched).

    Raises:
        EpisodeFormatError: Naming ``path`` and what is wrong (the byte offset where found).
    """
    n = len(data)
    if data[:2] != SOI:
        raise EpisodeFormatError(f"{path}: not a JPEG (no start-of-image marker)")
    if data[-2:] != EOI:
        raise EpisodeFormatError(
            f"{path}: no end-of-image marker at the end (truncated, or bytes after it)"
        )
    i = 2
    while True:  # header segments: FF xx <2-byte length> ... up to the start of scan
        if i + 4 > n or data[i] != 0xFF:
            raise EpisodeFormatError(f"{path}: broken JPEG segment at byte {i}")
        marker, length = data[i + 1], int.from_bytes(data[i + 2 : i + 4], "big")
        if length < 2 or i + 2 + length > n:
            raise EpisodeFormatError(f"{path}: JPEG segment at byte {i} overruns the file")
        if marker == COM and data[i + 4 : i + 4 + len(CRC_TAG)] == CRC_TAG:
            _check_crc(path, data, i, i + 2 + length)
            return True
        i += 2 + length
        if marker == SOS:
            i = _skip_scan(path, data, i)
            if i == n - 2:  # the end marker
                return False


def _check_crc(path: Path, data: bytes, start: int, end: int) -> None:
    """Compares the checksum stored in the segment ``data[start:end]`` with the content."""
    stored = data[start + 4 + len(CRC_TAG) : end]
    crc = zlib.crc32(data[end:], zlib.crc32(data[:start]))
    if stored != b"%08x" % crc:
        raise EpisodeFormatError(
            f"{path}: JPEG checksum mismatch (stored {stored.decode('ascii', 'replace')}, "
            f"content {crc:08x}): the file changed after it was written"
        )


def _skip_scan(path: Path, data: bytes, i: int) -> int:
    """Offset of the first marker after the entropy-coded data that starts at ``i``."""
    scan = np.frombuffer(data, np.uint8, offset=i)
    ff = np.flatnonzero(scan[:-1] == 0xFF)
    nxt = scan[ff + 1]
    legal = (nxt == 0x00) | (nxt == 0xFF) | ((nxt >= 0xD0) & (nxt <= 0xD7))  # stuffing, RSTn
    bad = ff[~legal]
    if bad.size == 0:
        raise EpisodeFormatError(f"{path}: JPEG scan data runs to the end without a marker")
    end = i + int(bad[0])
    if data[end + 1] != EOI[1] and data[end + 1] < 0xC0:
        raise EpisodeFormatError(f"{path}: stray byte 0xff{data[end + 1]:02x} at byte {end}")
    if data[end + 1] == EOI[1] and end != len(data) - 2:
        raise EpisodeFormatError(f"{path}: data after the JPEG end marker at byte {end}")
    return end
