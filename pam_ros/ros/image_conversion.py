"""sensor_msgs/Image and CompressedImage → RGB uint8 numpy, and back, without per-pixel Python.

The tracker wants a (H, W, 3) RGB uint8 array. Camera drivers publish many layouts; this module
accepts the 8-bit colour and grey encodings a ROS camera commonly uses and rejects anything else
with an error that names the encoding. Rows may be padded (`step` > width * channels).

One path on every install: numpy (frombuffer + a strided view that skips row padding + one
channel shuffle, one copy). cv_bridge is deliberately not used: for these 8-bit encodings its
`imgmsg_to_cv2` is the same frombuffer + reshape + cvtColor, so it adds nothing, and the real
Jazzy cv_bridge gets layouts wrong that cameras send — rows padded by a number of bytes that is
not a multiple of the pixel size come back shifted, an upper-case encoding ("RGB8") or a last
row without its padding raises `CvBridgeError` instead of a conversion error (5 of the 26 tests
in test/test_node_image_conversion.py failed with the cv_bridge built from its Jazzy sources).
Depth images are read with numpy too (pam_ros.geometry.depth).
"""

from __future__ import annotations

import array
import io

import numpy as np

# encoding → (channels, how to reach RGB)
SUPPORTED_ENCODINGS: dict[str, int] = {
    "rgb8": 3,
    "bgr8": 3,
    "rgba8": 4,
    "bgra8": 4,
    "mono8": 1,
}
DEFAULT_MAX_IMAGE_PIXELS = 4096 * 4096


class ImageConversionError(ValueError):
    """A frame that cannot be turned into an RGB array; the message says why."""


class UnsupportedEncodingError(ImageConversionError):
    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        supported = ", ".join(SUPPORTED_ENCODINGS)
        super().__init__(f"unsupported image encoding {encoding!r} (supported: {supported})")


class EmptyImageError(ImageConversionError):
    """Zero width or height, or no data."""


class ImageTooLargeError(ImageConversionError):
    """More pixels than the node's `max_image_pixels`."""


class MalformedImageError(ImageConversionError):
    """`step` or `data` inconsistent with width, height and encoding."""


class ImageDecodeError(ImageConversionError):
    """Compressed data that does not decode (truncated, corrupt, or not jpeg / png)."""


def _check_size(width: int, height: int, max_image_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise EmptyImageError(f"image has zero size ({width}x{height})")
    if width * height > max_image_pixels:
        raise ImageTooLargeError(
            f"image {width}x{height} has {width * height} pixels, more than "
            f"max_image_pixels={max_image_pixels}"
        )


def image_msg_to_rgb(msg, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """sensor_msgs/Image → (H, W, 3) RGB uint8, a fresh contiguous array."""
    encoding = msg.encoding.lower()
    if encoding not in SUPPORTED_ENCODINGS:
        raise UnsupportedEncodingError(msg.encoding)
    width, height = int(msg.width), int(msg.height)
    _check_size(width, height, max_image_pixels)
    channels = SUPPORTED_ENCODINGS[encoding]
    row_bytes = width * channels
    step = int(msg.step)
    if step < row_bytes:
        raise MalformedImageError(
            f"{encoding} image step {step} is smaller than width*channels = {row_bytes}"
        )
    # The last row need not carry its padding.
    needed = step * (height - 1) + row_bytes
    if len(msg.data) < needed:
        raise MalformedImageError(
            f"{width}x{height} {encoding} image with step {step} needs {needed} bytes, "
            f"got {len(msg.data)}"
        )
    buffer = np.frombuffer(msg.data, dtype=np.uint8, count=needed)
    # (H, step) byte rows → (H, W, C) without copying, padding skipped by the stride.
    pixels = np.lib.stride_tricks.as_strided(
        buffer, shape=(height, width, channels), strides=(step, channels, 1), writeable=False
    )
    return _to_rgb(pixels, encoding)


def _to_rgb(pixels: np.ndarray, encoding: str) -> np.ndarray:
    # pixels: (H, W, C) uint8 in `encoding` → (H, W, 3) RGB uint8, contiguous copy
    if encoding == "rgb8":
        return pixels.copy()  # owns its memory, writable, independent of the message
    if encoding == "rgba8":
        return np.ascontiguousarray(pixels[:, :, :3])
    if encoding in ("bgr8", "bgra8"):
        return np.ascontiguousarray(pixels[:, :, 2::-1])
    return np.ascontiguousarray(np.repeat(pixels, 3, axis=2))  # mono8


def compressed_msg_to_rgb(msg, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg / png, as image_transport writes them) → RGB uint8.

    The size is read from the header before anything is decoded: a small compressed frame
    can claim a huge image (a "PNG bomb": 136 KiB that decode to 600 MB), refused here by
    `max_image_pixels` without allocating it.
    """
    import cv2

    if len(msg.data) == 0:
        raise EmptyImageError("compressed image has no data")
    raw = bytes(msg.data)
    width, height = _compressed_size(raw, msg.format)
    _check_size(width, height, max_image_pixels)
    data = np.frombuffer(raw, dtype=np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)  # (H, W, 3) BGR, grey inputs expanded
    if bgr is None:
        raise ImageDecodeError(
            f"compressed image failed to decode (format {msg.format or '<empty>'!r}, "
            f"{len(data)} bytes): truncated or corrupt data, or not jpeg / png"
        )
    return np.ascontiguousarray(bgr[:, :, ::-1])


def _compressed_size(raw: bytes, fmt: str) -> tuple[int, int]:
    """(width, height) from a jpeg / png header, nothing decoded (Pillow reads headers lazily)."""
    from PIL import Image as PilImage
    from PIL import UnidentifiedImageError

    try:
        with PilImage.open(io.BytesIO(raw)) as image:
            return image.size
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageDecodeError(
            f"compressed image failed to decode (format {fmt or '<empty>'!r}, {len(raw)} bytes): "
            f"truncated or corrupt data, or not jpeg / png ({exc})"
        ) from None


def uint8_field(pixels: np.ndarray) -> array.array:
    """Pixels as the array.array('B') a uint8[] message field stores.

    Assigning bytes or a list to a generated message's uint8[] field makes its setter check
    every element in Python (seconds for an HD frame); an array.array('B') is taken as is.
    """
    field = array.array("B")
    field.frombytes(np.ascontiguousarray(pixels, dtype=np.uint8).data)  # one memcpy
    return field


def rgb_to_image_msg(frame: np.ndarray, header=None, encoding: str = "rgb8"):
    """(H, W, 3) RGB uint8 → sensor_msgs/Image in rgb8 or bgr8, on `header` when given."""
    from sensor_msgs.msg import Image

    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ImageConversionError(f"expected (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
    if encoding == "bgr8":
        frame = frame[:, :, ::-1]
    elif encoding != "rgb8":
        raise UnsupportedEncodingError(encoding)
    frame = np.ascontiguousarray(frame)
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(frame.shape[0]), int(frame.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = msg.width * 3
    msg.data = uint8_field(frame)
    return msg


def mono8_image_msg(mask: np.ndarray, header=None):
    """(H, W) bool mask → mono8 sensor_msgs/Image, 255 inside, 0 outside."""
    from sensor_msgs.msg import Image

    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(mask.shape[0]), int(mask.shape[1])
    msg.encoding = "mono8"
    msg.is_bigendian = 0
    msg.step = msg.width
    msg.data = uint8_field(mask.astype(np.uint8) * 255)
    return msg
