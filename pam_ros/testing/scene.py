"""Analytic depth images of planes, boxes, cylinders and spheres seen by a pinhole camera.

Ground truth for the geometry tests, the generated demo scene and the benchmark: each pixel's
ray through its centre is intersected with every shape exactly (ray casting), so the depth, the
object mask and the object's true visible surface, extent and volume centroid are known without
any estimation. `tabletop_scene` places one object on a table seen from above; `sensor_noise`
adds depth noise of a structured-light / stereo camera.
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


@dataclass(frozen=True)
class Cylinder:
    """A solid cylinder of `radius` and `height` centred at `center`, its axis along `axis`."""

    center: tuple[float, float, float]
    radius: float
    height: float
    axis: tuple[float, float, float] = (0.0, -1.0, 0.0)  # unit vector (default: image up)


@dataclass(frozen=True)
class Sphere:
    center: tuple[float, float, float]
    radius: float


Shape = Plane | Box | Cylinder | Sphere


def centroid(shape: Box | Cylinder | Sphere) -> np.ndarray:
    """(3,) volume centroid (all solids here are uniform and centrally symmetric)."""
    return np.asarray(shape.center, dtype=np.float64)


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


def _sphere_hits(rays: np.ndarray, sphere: Sphere) -> np.ndarray:
    c = np.asarray(sphere.center, dtype=np.float64)
    a = np.einsum("hwk,hwk->hw", rays, rays)
    b = rays @ c  # t^2 a - 2 t b + |c|^2 - r^2 = 0
    disc = b * b - a * (c @ c - sphere.radius**2)
    with np.errstate(invalid="ignore"):
        t = (b - np.sqrt(disc)) / a
    return np.where((disc >= 0) & (t > 0), t, np.inf)


def _cylinder_hits(rays: np.ndarray, cylinder: Cylinder) -> np.ndarray:
    axis = np.asarray(cylinder.axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    origin = -np.asarray(cylinder.center, dtype=np.float64)  # camera origin, cylinder-centred
    half = cylinder.height / 2
    d_axis = rays @ axis  # (H, W)
    o_axis = float(origin @ axis)
    d_perp = rays - d_axis[..., None] * axis  # (H, W, 3)
    o_perp = origin - o_axis * axis
    a = np.einsum("hwk,hwk->hw", d_perp, d_perp)
    b = d_perp @ o_perp
    disc = b * b - a * (o_perp @ o_perp - cylinder.radius**2)
    with np.errstate(invalid="ignore", divide="ignore"):
        t_side = (-b - np.sqrt(disc)) / a
        side_ok = (disc >= 0) & (t_side > 0) & (np.abs(o_axis + t_side * d_axis) <= half)
        best = np.where(side_ok, t_side, np.inf)
        for end in (-half, half):
            t_cap = (end - o_axis) / d_axis
            radial = o_perp + t_cap[..., None] * d_perp
            cap_ok = (t_cap > 0) & (np.einsum("hwk,hwk->hw", radial, radial) <= cylinder.radius**2)
            best = np.where(cap_ok & (t_cap < best), t_cap, best)
    return best


def _hits(rays: np.ndarray, shape: Shape) -> np.ndarray:
    if isinstance(shape, Plane):
        return _plane_hits(rays, shape)
    if isinstance(shape, Box):
        return _box_hits(rays, shape)
    if isinstance(shape, Cylinder):
        return _cylinder_hits(rays, shape)
    return _sphere_hits(rays, shape)


def render_depth(
    intrinsics: CameraIntrinsics, shapes: list[Shape]
) -> tuple[np.ndarray, np.ndarray]:
    """Depth (H, W) float64 metres (inf where nothing is hit) and the index (H, W) int of the
    shape seen at each pixel (-1: none)."""
    rays = pixel_rays(intrinsics)
    depth = np.full((intrinsics.height, intrinsics.width), np.inf)
    index = np.full(depth.shape, -1, dtype=np.int64)
    for i, shape in enumerate(shapes):
        t = _hits(rays, shape)
        nearer = t < depth
        depth[nearer] = t[nearer]
        index[nearer] = i
    return depth, index


def to_millimetres(depth_m: np.ndarray) -> np.ndarray:
    """16UC1 depth: millimetres, 0 where there is no depth (inf, NaN or beyond 65.535 m)."""
    mm = np.rint(np.where(np.isfinite(depth_m), depth_m, 0.0) * 1000.0)
    return np.where((mm > 0) & (mm <= 65535), mm, 0).astype(np.uint16)


def camera_up(pitch_rad: float) -> np.ndarray:
    """(3,) world up in the optical frame of a camera pitched down by `pitch_rad`."""
    return np.array([0.0, -np.cos(pitch_rad), -np.sin(pitch_rad)])


def _camera_forward(pitch_rad: float) -> np.ndarray:
    """(3,) the horizontal direction away from the camera, in its optical frame."""
    return np.array([0.0, -np.sin(pitch_rad), np.cos(pitch_rad)])


def tabletop_scene(
    shape: str,
    distance: float,
    pitch_rad: float,
    size: tuple[float, float, float],
    yaw_rad: float = 0.0,
    lateral: float = 0.0,
) -> tuple[Plane, Box | Cylinder | Sphere]:
    """A table and one object standing on it, seen by a camera pitched down by `pitch_rad`
    whose optical axis meets the table `distance` m away, at the object's base centre (moved
    `lateral` m to the right). shape: "box" (size = width, depth, height before the yaw about
    the vertical), "cylinder" (size[0] = radius, size[2] = height) or "sphere" (size[0] =
    radius). Returns (table, object); `centroid(object)` is the true volume centre."""
    up = camera_up(pitch_rad)
    camera_height = distance * np.sin(pitch_rad)
    right = np.array([1.0, 0.0, 0.0])
    base = np.array([lateral, 0.0, distance])  # on the table, on the optical axis
    table = Plane(tuple(up), float(-camera_height))
    if shape == "sphere":
        return table, Sphere(tuple(base + size[0] * up), size[0])
    if shape == "cylinder":
        return table, Cylinder(tuple(base + size[2] / 2 * up), size[0], size[2], tuple(-up))
    if shape == "box":
        # box axes: x right, y down (-up), z forward, then turned about the vertical
        forward = _camera_forward(pitch_rad)
        world = np.stack([right, -up, forward], axis=1)  # columns: box axes in the camera frame
        c, s = np.cos(yaw_rad), np.sin(yaw_rad)
        yaw = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
        center = base + size[2] / 2 * up
        return table, Box(tuple(center), (size[0], size[2], size[1]), world @ yaw)
    raise ValueError(f"unknown shape {shape!r}: expected box, cylinder or sphere")


def sensor_noise(
    depth_m: np.ndarray,
    rng: np.random.Generator,
    sigma_at_1m: float = 0.002,
    dropout: float = 0.02,
) -> np.ndarray:
    """Depth with the noise of an active stereo / structured-light camera: Gaussian with a
    standard deviation growing with z^2 (`sigma_at_1m` at 1 m) and a `dropout` share of
    pixels with no depth (inf), at random."""
    noisy = depth_m + rng.normal(0.0, 1.0, depth_m.shape) * sigma_at_1m * depth_m**2
    noisy[rng.random(depth_m.shape) < dropout] = np.inf
    return noisy


def visible_surface_truth(depth_m: np.ndarray, mask: np.ndarray, intrinsics: CameraIntrinsics):
    """The true visible-surface point (z^2-weighted component-wise median, what
    `Object3D.position` estimates) and extent (1st..99th percentile span) (3,), (3,) of the
    noise-free depth `depth_m` (H, W) inside `mask` (H, W) bool."""
    v, u = np.nonzero(mask)
    z = depth_m[v, u]
    points = intrinsics.deproject(u.astype(np.float64), v.astype(np.float64), z)
    weights = z * z
    point = []
    for axis in range(3):
        order = np.argsort(points[:, axis])
        cumulative = np.cumsum(weights[order])
        point.append(points[order[np.searchsorted(cumulative, 0.5 * cumulative[-1])], axis])
    lo, hi = np.percentile(points, (1.0, 99.0), axis=0)
    return np.array(point), hi - lo
