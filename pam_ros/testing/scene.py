"""Analytic depth images of planes and boxes seen by a pinhole camera (ray casting).

Ground truth for the geometry tests, the generated demo scene and the benchmark: each pixel's
ray through its centre is intersected with every shape exactly, so the depth, the object mask
and the object's true position and extent are known without any estimation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pam_ros.geometry.intrinsics import CameraIntrinsics


def rotation_y(angle_rad: float) -> np.ndarray:
    """(3, 3) rotation about the optical y axis (down), e.g. to turn a box towards the camera."""
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


@dataclass(frozen=True)
class Plane:
    """Points p with normal . p = offset (e.g. a wall at z = 2: normal (0, 0, 1), offset 2)."""

    normal: tuple[float, float, float]
    offset: float


@dataclass(frozen=True)
class Box:
    """A box of `size` (x, y, z) metres centred at `center`, rotated by `rotation` (3x3)."""

    center: tuple[float, float, float]
    size: tuple[float, float, float]
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))

    def corners(self) -> np.ndarray:
        """(8, 3) corners in the camera frame."""
        half = np.asarray(self.size) / 2
        signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
        return (signs * half) @ np.asarray(self.rotation).T + np.asarray(self.center)


def pixel_rays(intrinsics: CameraIntrinsics) -> np.ndarray:
    """(H, W, 3) ray directions with z = 1 through every pixel centre."""
    u = np.arange(intrinsics.width, dtype=np.float64)
    v = np.arange(intrinsics.height, dtype=np.float64)
    uu, vv = np.meshgrid(u, v)
    x = (uu - intrinsics.cx) / intrinsics.fx
    y = (vv - intrinsics.cy) / intrinsics.fy
    return np.stack([x, y, np.ones_like(uu)], axis=-1)


def _plane_hits(rays: np.ndarray, plane: Plane) -> np.ndarray:
    normal = np.asarray(plane.normal, dtype=np.float64)
    denominator = rays @ normal
    with np.errstate(divide="ignore", invalid="ignore"):
        t = plane.offset / denominator
    return np.where(np.isfinite(t) & (t > 0), t, np.inf)


def _box_hits(rays: np.ndarray, box: Box) -> np.ndarray:
    """Ray parameter t (= depth, since rays have z = 1) of the nearest hit, inf where missed."""
    rotation = np.asarray(box.rotation, dtype=np.float64)
    origin = -rotation.T @ np.asarray(box.center, dtype=np.float64)  # camera origin in box frame
    directions = rays @ rotation  # (H, W, 3) = R^T d for each ray
    half = np.asarray(box.size, dtype=np.float64) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (-half - origin) / directions
        t2 = (half - origin) / directions
    t_near = np.nanmax(np.minimum(t1, t2), axis=-1)
    t_far = np.nanmin(np.maximum(t1, t2), axis=-1)
    hit = (t_near <= t_far) & (t_near > 0)
    return np.where(hit, t_near, np.inf)


def render_depth(
    intrinsics: CameraIntrinsics, shapes: list[Plane | Box]
) -> tuple[np.ndarray, np.ndarray]:
    """Depth (H, W) float64 metres (inf where nothing is hit) and the index (H, W) int of the
    shape seen at each pixel (-1: none)."""
    rays = pixel_rays(intrinsics)
    depth = np.full((intrinsics.height, intrinsics.width), np.inf)
    index = np.full(depth.shape, -1, dtype=np.int64)
    for i, shape in enumerate(shapes):
        t = _plane_hits(rays, shape) if isinstance(shape, Plane) else _box_hits(rays, shape)
        nearer = t < depth
        depth[nearer] = t[nearer]
        index[nearer] = i
    return depth, index


def to_millimetres(depth_m: np.ndarray) -> np.ndarray:
    """16UC1 depth: millimetres, 0 where there is no depth (inf, NaN or beyond 65.535 m)."""
    mm = np.rint(np.where(np.isfinite(depth_m), depth_m, 0.0) * 1000.0)
    return np.where((mm > 0) & (mm <= 65535), mm, 0).astype(np.uint16)
