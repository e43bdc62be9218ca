"""Image / CompressedImage → RGB conversion: every encoding, row padding, bad frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image

from pam_ros.ros.image_conversion import (
    EmptyImageError,
    ImageDecodeError,
    ImageTooLargeError,
    MalformedImageError,
    UnsupportedEncodingError,
    compressed_msg_to_rgb,
    image_msg_to_rgb,
    mono8_image_msg,
    rgb_to_image_msg,
)


def _frame(height=37, width=53) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _image_msg(pixels: np.ndarray, encoding: str, padding: int = 0) -> Image:
    """(H, W, C) uint8 in `encoding` → Image with `padding` junk bytes after every row."""
    height, width = pixels.shape[:2]
    rows = pixels.reshape(height, -1)
    junk = np.full((height, padding), 77, dtype=np.uint8)
    msg = Image()
    msg.height, msg.width, msg.encoding = height, width, encoding
    msg.step = rows.shape[1] + padding
    msg.data = np.concatenate([rows, junk], axis=1).tobytes()
    return msg


def _in_encoding(rgb: np.ndarray, encoding: str) -> np.ndarray:
    alpha = np.full((*rgb.shape[:2], 1), 200, dtype=np.uint8)
    return {
        "rgb8": rgb,
        "bgr8": rgb[:, :, ::-1],
        "rgba8": np.concatenate([rgb, alpha], axis=2),
        "bgra8": np.concatenate([rgb[:, :, ::-1], alpha], axis=2),
    }[encoding]


@pytest.mark.parametrize("padding", [0, 5])
@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
def test_colour_encodings_give_the_same_rgb(encoding, padding):
    rgb = _frame()
    out = image_msg_to_rgb(_image_msg(_in_encoding(rgb, encoding), encoding, padding))
    assert out.dtype == np.uint8 and out.shape == rgb.shape
    assert out.flags.c_contiguous and out.flags.writeable
    np.testing.assert_array_equal(out, rgb)


@pytest.mark.parametrize("padding", [0, 3])
def test_mono8_is_replicated_into_three_channels(padding):
    grey = _frame()[:, :, :1]
    out = image_msg_to_rgb(_image_msg(grey, "mono8", padding))
    assert out.shape == (37, 53, 3)
    for channel in range(3):
        np.testing.assert_array_equal(out[:, :, channel], grey[:, :, 0])


def test_encoding_names_are_case_insensitive_and_last_row_may_be_unpadded():
    rgb = _frame()
    msg = _image_msg(rgb, "RGB8", padding=4)
    msg.data = bytes(msg.data)[:-4]  # drop the last row's padding
    np.testing.assert_array_equal(image_msg_to_rgb(msg), rgb)


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1", "yuv422", "bayer_rggb8", ""])
def test_unsupported_encoding_is_named(encoding):
    msg = _image_msg(_frame(), "rgb8")
    msg.encoding = encoding
    with pytest.raises(UnsupportedEncodingError, match=repr(encoding)) as info:
        image_msg_to_rgb(msg)
    assert "rgb8" in str(info.value)  # the message lists what is supported


def test_zero_size_and_huge_frames_are_rejected():
    empty = Image(height=0, width=640, encoding="rgb8", step=1920)
    with pytest.raises(EmptyImageError, match="zero size"):
        image_msg_to_rgb(empty)
    msg = _image_msg(_frame(), "rgb8")
    with pytest.raises(ImageTooLargeError, match="max_image_pixels=100"):
        image_msg_to_rgb(msg, max_image_pixels=100)
    np.testing.assert_array_equal(image_msg_to_rgb(msg, max_image_pixels=37 * 53), _frame())


def test_inconsistent_step_or_short_data_is_rejected():
    msg = _image_msg(_frame(), "rgb8")
    msg.step = 53 * 3 - 1
    with pytest.raises(MalformedImageError, match="step"):
        image_msg_to_rgb(msg)
    msg = _image_msg(_frame(), "rgb8")
    msg.data = bytes(msg.data)[:-10]
    with pytest.raises(MalformedImageError, match="bytes"):
        image_msg_to_rgb(msg)


@pytest.mark.parametrize("extension, exact", [(".png", True), (".jpg", False)])
def test_compressed_images_decode_to_rgb(extension, exact):
    rgb = cv2.GaussianBlur(_frame(64, 96), (9, 9), 3)  # smooth, so jpeg stays close
    ok, encoded = cv2.imencode(extension, rgb[:, :, ::-1])
    assert ok
    msg = CompressedImage(format=extension[1:], data=encoded.tobytes())
    out = compressed_msg_to_rgb(msg)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    if exact:
        np.testing.assert_array_equal(out, rgb)
    else:
        assert np.abs(out.astype(int) - rgb.astype(int)).mean() < 4.0
    with pytest.raises(ImageTooLargeError):
        compressed_msg_to_rgb(msg, max_image_pixels=64 * 96 - 1)


def test_bad_compressed_data_is_rejected():
    with pytest.raises(EmptyImageError):
        compressed_msg_to_rgb(CompressedImage(format="jpeg", data=b""))
    with pytest.raises(ImageDecodeError, match="failed to decode"):
        compressed_msg_to_rgb(CompressedImage(format="jpeg", data=b"not an image at all"))


@pytest.mark.parametrize("keep", [0.5, 0.95])
def test_truncated_jpeg_says_it_failed_to_decode(keep):
    ok, encoded = cv2.imencode(".jpg", _frame(64, 96))
    assert ok
    data = encoded.tobytes()[: int(len(encoded) * keep)]
    with pytest.raises(ImageDecodeError, match=r"failed to decode.*'jpeg'.*truncated") as caught:
        compressed_msg_to_rgb(CompressedImage(format="jpeg", data=data))
    assert not isinstance(caught.value, UnsupportedEncodingError)
    assert "unsupported" not in str(caught.value)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8"])
def test_rgb_to_image_msg_round_trips(encoding):
    rgb = _frame()
    msg = rgb_to_image_msg(rgb, encoding=encoding)
    assert (msg.encoding, msg.step) == (encoding, 53 * 3)
    np.testing.assert_array_equal(image_msg_to_rgb(msg), rgb)
    with pytest.raises(UnsupportedEncodingError):
        rgb_to_image_msg(rgb, encoding="mono16")


def test_mono8_mask_message():
    mask = np.zeros((4, 6), dtype=bool)
    mask[1:3, 2:5] = True
    msg = mono8_image_msg(mask)
    assert (msg.width, msg.height, msg.step, msg.encoding) == (6, 4, 6, "mono8")
    data = np.frombuffer(bytes(msg.data), dtype=np.uint8).reshape(4, 6)
    np.testing.assert_array_equal(data == 255, mask)
    assert set(np.unique(data)) == {0, 255}


BOMB_CHILD = """
import struct, sys, zlib
import numpy as np
from sensor_msgs.msg import CompressedImage
from pam_ros.ros.image_conversion import ImageTooLargeError, compressed_msg_to_rgb

side = int(sys.argv[1])
def chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
rows = zlib.compressobj(9)
row = b"\\0" * (1 + side)  # filter byte + one grey row
idat = b"".join(rows.compress(row) for _ in range(side)) + rows.flush()
header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
png = b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat)
png += chunk(b"IEND", b"")
msg = CompressedImage(format="png", data=png)
def peak_kb():  # VmHWM: this process's peak RSS (ru_maxrss would start at the parent's peak)
    status = open("/proc/self/status").read()
    return int(status.split("VmHWM:")[1].split()[0])
small = zlib.compress(b"\\0" * 9 * 8)  # an 8 x 8 PNG first: imports cv2 and Pillow
tiny = b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 0, 0, 0, 0))
tiny += chunk(b"IDAT", small) + chunk(b"IEND", b"")
assert compressed_msg_to_rgb(CompressedImage(format="png", data=tiny)).shape == (8, 8, 3)
before = peak_kb()
try:
    compressed_msg_to_rgb(msg, max_image_pixels=int(sys.argv[2]))
    outcome = "decoded"
except ImageTooLargeError as exc:
    outcome = "refused: " + str(exc)
grown_mb = (peak_kb() - before) / 1024
print(len(png), round(grown_mb, 1), outcome)
"""


def test_png_bomb_is_refused_before_it_is_decoded(tmp_path):
    """A 6000 x 6000 grey PNG of a few tens of KiB (108 MB once decoded to RGB) with
    max_image_pixels = 1 M: refused from its header, the process's peak memory barely moves.
    The same file under a limit that allows it decodes and costs >= 100 MB, so the memory
    measure can see a decode."""
    import subprocess
    import sys

    def run(limit: int) -> tuple[int, float, str]:
        done = subprocess.run(
            [sys.executable, "-c", BOMB_CHILD, "6000", str(limit)],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        size, grown, outcome = done.stdout.split(" ", 2)
        return int(size), float(grown), outcome.strip()

    size, grown, outcome = run(1_000_000)
    assert size < 100 * 1024, size
    assert outcome.startswith("refused") and "6000x6000" in outcome, outcome
    assert grown < 20, f"peak memory grew {grown} MB while refusing the bomb"
    _, grown_decoded, outcome = run(6000 * 6000)
    assert outcome == "decoded" and grown_decoded > 100, (outcome, grown_decoded)
