"""Frame files: the checksum segment changes no pixel and finds changes a decoder would miss."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from driving.data import episodes as ep
from driving.data.frames import CRC_TAG, check_jpeg, decode_jpeg, encode_frame
from tests.driving.data.recorded import frame

PATH = Path("000007.jpg")


def plain_jpeg(img, quality=95):
    return cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()


def test_checksummed_frame_decodes_to_the_same_pixels_as_a_plain_jpeg():
    img = frame(3)
    data = encode_frame(img, 95)
    assert CRC_TAG in data[:64] and len(data) == len(plain_jpeg(img)) + 4 + len(CRC_TAG) + 8
    np.testing.assert_array_equal(
        decode_jpeg(PATH, data, img.shape), decode_jpeg(PATH, plain_jpeg(img), img.shape)
    )
    assert check_jpeg(PATH, data) is True
    assert check_jpeg(PATH, plain_jpeg(img)) is False  # an older frame: structure only


def test_a_frame_is_the_plain_jpeg_of_its_flipped_channels_plus_the_checksum_segment():
    """The encoder's colour conversion changes no byte: the JPEG data outside the comment
    segment is OpenCV's encoding of the RGB -> BGR flipped image, as recordings always had."""
    rng = np.random.default_rng(0)
    for img in (frame(5), rng.integers(0, 256, (78, 200, 3), dtype=np.uint8)):
        data, plain = encode_frame(img, 95), plain_jpeg(img)
        cut = data.index(b"\xff\xfe")  # the comment segment: FF FE, length, text
        length = int.from_bytes(data[cut + 2 : cut + 4], "big")
        assert data[:cut] + data[cut + 2 + length :] == plain


def test_a_garbled_frame_that_still_decodes_is_found_by_its_checksum():
    data = bytearray(encode_frame(frame(3), 95))
    data[len(data) // 2] ^= 0x01
    assert cv2.imdecode(np.frombuffer(bytes(data), np.uint8), cv2.IMREAD_COLOR) is not None
    with pytest.raises(ep.EpisodeFormatError, match=r"000007\.jpg: JPEG checksum mismatch"):
        check_jpeg(PATH, bytes(data))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: d[:-40], "no end-of-image marker"),
        (lambda d: d + b"\xff\xd9", "after the JPEG end marker"),
        (lambda d: d[:2] + b"\xff\xdb\xff\xff" + d[6:], "overruns the file"),
        (lambda d: b"\x89PNG" + d[4:], "not a JPEG"),
    ],
)
def test_structure_of_an_older_frame_is_checked(damage, message):
    with pytest.raises(ep.EpisodeFormatError, match=message):
        check_jpeg(PATH, damage(plain_jpeg(frame(3))))
