"""Frame preprocessing on the model's device: uint8 RGB (H, W, 3) -> normalised (1, 3, S, S).

The frame crosses to the device as uint8 (a quarter of the float bytes), and the resize
and ImageNet normalisation run there. Two resamplings (`TrackerConfig.resize`):

- "pil" (default): what sam2's offline loader does (PIL `Image.resize` bicubic on uint8,
  the resampling PAM's perceiver was trained on), reproduced bit-exactly with torch ops on
  the device: PIL's separable fixed-point passes (horizontal, then vertical), its filter
  support and coefficient rounding, and its rounding to uint8 between and after the passes.
- "float": torch's antialiased bicubic in float32 (no intermediate rounding); close to PIL's
  float mode, but up to ~10 levels from PIL's uint8 output.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F

from pam_ros.tracking.errors import InvalidFrameError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZE_MODES = ("pil", "float")

# PIL's fixed-point precision for 8-bit resampling (libImaging/Resample.c)
_PRECISION_BITS = 32 - 8 - 2
_BICUBIC_A = -0.5
_BICUBIC_SUPPORT = 2.0
_CACHED_TAPS = 4  # (input size, output size) pairs whose taps stay on the device


def validate_frame(frame: np.ndarray | torch.Tensor) -> tuple[int, int]:
    """Check that `frame` is a non-empty (H, W, 3) uint8 RGB image; return (H, W)."""
    if not isinstance(frame, np.ndarray | torch.Tensor):
        raise InvalidFrameError(
            f"frame must be a numpy array or torch tensor, got {type(frame).__name__}"
        )
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise InvalidFrameError(
            f"frame must be an RGB image of shape (H, W, 3), got shape {tuple(frame.shape)}"
        )
    height, width = int(frame.shape[0]), int(frame.shape[1])
    if height == 0 or width == 0:
        raise InvalidFrameError(f"frame is empty: shape {tuple(frame.shape)}")
    if frame.dtype not in (np.uint8, torch.uint8):
        raise InvalidFrameError(f"frame must be uint8, got dtype {frame.dtype}")
    return height, width


def _bicubic(x: float) -> float:
    x = abs(x)
    if x < 1.0:
        return ((_BICUBIC_A + 2.0) * x - (_BICUBIC_A + 3.0)) * x * x + 1.0
    if x < 2.0:
        return (((x - 5.0) * x + 8.0) * x - 4.0) * _BICUBIC_A
    return 0.0


def pil_bicubic_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """PIL's bicubic taps for one axis: indices (out, K) int64 and fixed-point weights
    (out, K) int32 (unused taps: index of the first tap, weight 0)."""
    scale = in_size / out_size
    filter_scale = max(scale, 1.0)
    support = _BICUBIC_SUPPORT * filter_scale
    inverse_scale = 1.0 / filter_scale  # PIL multiplies by this (rounding matters)
    ksize = math.ceil(support) * 2 + 1
    indices = np.zeros((out_size, ksize), np.int64)
    weights = np.zeros((out_size, ksize), np.int32)
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        w = [_bicubic((x + xmin - center + 0.5) * inverse_scale) for x in range(xmax)]
        total = sum(w)
        for x in range(xmax):
            k = w[x] / total if total != 0.0 else w[x]
            # C's (int) truncates toward zero after adding +-0.5
            weights[xx, x] = int(k * (1 << _PRECISION_BITS) + (0.5 if k >= 0 else -0.5))
            indices[xx, x] = xmin + x
        indices[xx, xmax:] = xmin
    return indices, weights


def _pil_pass(pixels: torch.Tensor, indices: torch.Tensor, weights: torch.Tensor):
    """One separable pass along the rows (dim 1) of (3, N, M) int32 pixels -> (3, S, M),
    uint8-rounded, in int32 (whole rows are gathered: fast on CPU and GPU alike)."""
    acc = None
    for k in range(indices.shape[1]):
        term = pixels.index_select(1, indices[:, k]) * weights[:, k].view(-1, 1)
        acc = term if acc is None else acc.add_(term)
    acc.add_(1 << (_PRECISION_BITS - 1))
    return acc.bitwise_right_shift_(_PRECISION_BITS).clamp_(0, 255)


def host_tensor(array: np.ndarray) -> torch.Tensor:
    """A contiguous CPU tensor over `array`, copied only when it is strided or read-only
    (np.asarray of a PIL image, a message's buffer: torch.from_numpy would warn that
    writing to it is undefined, in the user's log; nothing here writes to it)."""
    if not array.flags.writeable:
        return torch.from_numpy(np.array(array, order="C"))
    return torch.from_numpy(np.ascontiguousarray(array))


class FramePreprocessor:
    """Turns RGB uint8 frames into the model's normalised square input on `device`."""

    def __init__(self, image_size: int, device: torch.device, resize: str = "pil") -> None:
        if resize not in RESIZE_MODES:
            raise ValueError(f"resize must be one of {RESIZE_MODES}, got {resize!r}")
        self.image_size = image_size
        self.device = device
        self.resize = resize
        self.mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
        self._taps: OrderedDict[int, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()

    def __call__(self, frame: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(H, W, 3) uint8 -> (1, 3, S, S) float32 on the device."""
        validate_frame(frame)
        if isinstance(frame, np.ndarray):
            frame = host_tensor(frame)
        pixels = frame.to(self.device, non_blocking=True)  # uint8 over the bus
        pixels = pixels.permute(2, 0, 1)  # (3, H, W)
        size = self.image_size
        if self.resize == "pil":
            image = self.resize_like_pil(pixels).float().unsqueeze(0) / 255.0
        else:
            image = pixels.unsqueeze(0).float() / 255.0  # (1, 3, H, W)
            if image.shape[-2:] != (size, size):
                image = F.interpolate(
                    image, size=(size, size), mode="bicubic", align_corners=False, antialias=True
                ).clamp_(0.0, 1.0)
        return (image - self.mean) / self.std

    def resize_like_pil(self, pixels: torch.Tensor) -> torch.Tensor:
        """(3, H, W) uint8 -> (3, S, S) uint8, equal to PIL's `resize((S, S), BICUBIC)`.

        Horizontal pass first, then vertical, each skipped when that side already is S
        (as PIL does); int32 fixed-point sums (PIL's headroom makes them fit)."""
        size = self.image_size
        _, height, width = pixels.shape
        if (height, width) == (size, size):
            return pixels
        out = pixels.to(torch.int32)
        if width != size:  # horizontal: the same pass on the transposed frame
            columns = out.transpose(1, 2).contiguous()  # (3, W, H)
            out = _pil_pass(columns, *self._device_taps(width)).transpose(1, 2)  # (3, H, S)
        if height != size:
            out = _pil_pass(out.contiguous(), *self._device_taps(height))  # (3, S, S)
        return out.contiguous().to(torch.uint8)

    def _device_taps(self, in_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        taps = self._taps.get(in_size)
        if taps is None:
            indices, weights = pil_bicubic_taps(in_size, self.image_size)
            taps = (
                torch.from_numpy(indices).to(self.device),
                torch.from_numpy(weights).to(self.device),
            )
            self._taps[in_size] = taps
            while len(self._taps) > _CACHED_TAPS:  # a few frame sizes, never an unbounded cache
                self._taps.popitem(last=False)
        else:
            self._taps.move_to_end(in_size)
        return taps
