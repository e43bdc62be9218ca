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
