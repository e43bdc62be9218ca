"""Pinhole intrinsics of the depth image (sensor_msgs/CameraInfo K), and scaling them.

Pixel convention (ROS / OpenCV): pixel (u, v) is centred at integer coordinates, and a point
(x, y, z) in the optical frame (x right, y down, z forward) projects to
u = fx x / z + cx, v = fy y / z + cy. Distortion is ignored: aligned depth from RealSense, ZED
and Orbbec drivers is published rectified (D all zero or not applied to the aligned stream).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


class IntrinsicsError(ValueError):
    """Intrinsics that cannot be used (zero or non-finite K, no size, another aspect ratio)."""


def is_scaling(width: int, height: int, other_width: int, other_height: int) -> bool:
    """Whether other_width x other_height is width x height scaled by one factor s, each side
    rounded to a whole pixel (|s w - w'| < 1 and |s h - h'| < 1): 1280x720 -> 640x360 or
    426x240 (a decimation by 3) are, 1280x720 -> 848x480 (a RealSense's unaligned native
    depth: aspect ratios 0.6 % apart) is not."""
    lo = max((other_width - 1) / width, (other_height - 1) / height)
    hi = min((other_width + 1) / width, (other_height + 1) / height)
    return lo < hi


@dataclass(frozen=True)
class CameraIntrinsics:
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        values = (self.fx, self.fy, self.cx, self.cy)
        if not all(math.isfinite(v) for v in values):
            raise IntrinsicsError(f"intrinsics must be finite, got fx fy cx cy = {values}")
        if self.fx <= 0 or self.fy <= 0:
            raise IntrinsicsError(
                f"focal lengths must be > 0, got fx={self.fx} fy={self.fy} (a zero K means the "
                "camera_info is uncalibrated)"
            )
        if self.width <= 0 or self.height <= 0:
            raise IntrinsicsError(f"image size must be > 0, got {self.width}x{self.height}")

    @classmethod
    def from_k(cls, k: Sequence[float], width: int, height: int) -> CameraIntrinsics:
        """From CameraInfo.k (row-major 3x3)."""
        k = np.asarray(k, dtype=np.float64).reshape(-1)
        if k.size != 9:
            raise IntrinsicsError(f"K must have 9 values, got {k.size}")
        if not np.any(k):
            raise IntrinsicsError("K is all zero (uncalibrated camera_info)")
        return cls(float(k[0]), float(k[4]), float(k[2]), float(k[5]), int(width), int(height))

    def k(self) -> list[float]:
        return [self.fx, 0.0, self.cx, 0.0, self.fy, self.cy, 0.0, 0.0, 1.0]

    def same_aspect(self, width: int, height: int) -> bool:
        """Whether width x height is an exact scaling of this image's size (`is_scaling`)."""
        return is_scaling(self.width, self.height, width, height)

    def scaled_to(self, width: int, height: int) -> CameraIntrinsics:
        """The same camera at another resolution (same field of view); refuses a size that is
        not an exact scaling (`is_scaling`: another aspect ratio, another view).

        Scaling keeps pixel centres consistent: u' + 0.5 = s (u + 0.5).
        """
        if (width, height) == (self.width, self.height):
            return self
        if width <= 0 or height <= 0:
            raise IntrinsicsError(f"cannot scale intrinsics to {width}x{height}")
        if not self.same_aspect(width, height):
            raise IntrinsicsError(
                f"cannot scale intrinsics of a {self.width}x{self.height} image to "
                f"{width}x{height}: not one scale factor, the aspect ratio differs (not the same "
                "camera view; e.g. a RealSense's unaligned depth)"
            )
        sx, sy = width / self.width, height / self.height
        return CameraIntrinsics(
            self.fx * sx,
            self.fy * sy,
            (self.cx + 0.5) * sx - 0.5,
            (self.cy + 0.5) * sy - 0.5,
            int(width),
            int(height),
        )

    def deproject(self, u: np.ndarray, v: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Pixels (u, v) at depth z (metres) -> (N, 3) points in the optical frame."""
        x = (u - self.cx) * z / self.fx
        y = (v - self.cy) * z / self.fy
        return np.stack([x, y, z], axis=-1)
