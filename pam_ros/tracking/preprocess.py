"""Frame preprocessing on the model's device: uint8 RGB (H, W, 3) -> normalised (1, 3, S, S).

The frame crosses to the device as uint8 (a quarter of the float bytes), and the resize
and ImageNet normalisation run there. SAM 2's offline loader resizes with PIL bicubic on
the CPU; torch's antialiased bicubic is close to it but not bit-equal, so a parity test
feeds frames that are already S x S (no resize on either side).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from pam_ros.tracking.errors import InvalidFrameError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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


class FramePreprocessor:
    """Turns RGB uint8 frames into the model's normalised square input on `device`."""

    def __init__(self, image_size: int, device: torch.device) -> None:
        self.image_size = image_size
        self.device = device
        self.mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)

    def __call__(self, frame: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(H, W, 3) uint8 -> (1, 3, S, S) float32 on the device."""
        validate_frame(frame)
        if isinstance(frame, np.ndarray):
            frame = torch.from_numpy(np.ascontiguousarray(frame))
        pixels = frame.to(self.device, non_blocking=True)  # uint8 over the bus
        image = pixels.permute(2, 0, 1).unsqueeze(0).float() / 255.0  # (1, 3, H, W)
        if image.shape[-2:] != (self.image_size, self.image_size):
            image = F.interpolate(
                image,
                size=(self.image_size, self.image_size),
                mode="bicubic",
                align_corners=False,
                antialias=True,
            ).clamp_(0.0, 1.0)
        return (image - self.mean) / self.std
