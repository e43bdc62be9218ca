"""Per-object 3D position, extent and volume centre from a mask, an aligned depth image and
intrinsics.

Method (chosen for robustness to the failures masks and depth have in practice):

1. The mask (at the colour image's size; bool, 0/1 or 0/255 integers, 0..1 floats, (H, W) or
   (H, W, 1)) is sampled onto the depth image's pixel grid (nearest pixel centre), inside the
   object's box only: the cost is the box's, not the frame's. The depth image must be an exact
   scaling of the colour image (`intrinsics.is_scaling`): another size is another view.
2. Core: the mask with its interior holes filled, eroded, and back within the mask (edge pixels
   of a mask often fall on the background, and depth at object edges is smeared by the sensor;
   filling first keeps holes in the mask from growing by the erosion). The erosion radius is
   `erosion_px`, at most `erosion_fraction` of the object's half-thickness in pixels (its
   largest inscribed radius): a fixed radius eats most of a small or far object and keeps only
   its nearest middle. If the core has fewer than `min_valid_points` valid depth values, the
   whole mask is used.
3. Depth band: z_med = median depth of the core's valid points, band = max(`min_band_m`,
   `mad_factor` * 1.4826 * MAD). Points outside z_med +- band are rejected (background seen
   through holes or spilled edges, flying pixels). Robust while fewer than half of the core's
   points are off the object.
4. Position = component-wise median of the core's in-band points, deprojected, each point
   weighted by z^2 (the surface area a pixel covers grows with z^2; unweighted, a surface
   turned away from the camera is pulled towards its nearer, denser half: 1.2 cm for a 25 cm
   plate turned 40 degrees at 1 m). A point on the visible surface near the middle of the
   object (not the centre of its volume: depth sees only the front).
   Extent = the `percentiles` (default 1st..99th) span of the in-band points on each camera
   axis: x and y of the whole mask's points, z of the core's (a mask spilling onto a table
   adds table points just behind the object, inside the band, to the whole mask's depth span);
   an axis-aligned box in the optical frame around the visible surface; `center` is that
   box's centre. No oriented box (the visible surface alone does not determine one reliably).
5. Volume centre: on the ray through the centre of the mask's silhouette (for a centrally
   symmetric convex object, the projection of its centre), at distance t along it. The
   silhouette's centre is the mean of its pixels' lateral positions z d (d: the pixel's ray at
   z = 1) weighted by their footprint z^2 (pixels with no in-band depth at the median depth):
   the centre an orthographic view along the ray would see. A plain pixel mean leans towards
   the nearer end of an object deep along the view (its ray passes 0.8-1 cm beside the centre
   of a knife pointing away or a tall mug seen from above, at 0.7-1 m). t is the larger of two
   estimates:
   - mirror bound: the back half of a centrally symmetric object is its visible front mirrored
     through its centre (p -> 2c - p), and none of it can lie in front of what the camera sees.
     t is the smallest distance for which at most `mirror_outliers` of the visible points
     (noise, a mask spilling onto a surface behind), mirrored through t * ray, land in front
     of the visible surface at the depth pixel they project to (t searched in two passes of
     16 steps between the nearest and farthest visible point; at most `mirror_points`
     points). The silhouette's rim mirrors onto the rim, so the bound is met
     there: it is exact where the rim is an edge (boxes, a cylinder's caps) whatever the
     object's proportions and the camera's pitch (a tall mug seen from above is deeper along
     the ray than across it), and short where the surface turns smoothly away at the rim (a
     sphere's outline, a cylinder's sides): the depth pixel just inside the outline of a
     sphere 18 px in radius lies a third of the radius in front of the rim.
   - round floor: the front of the visible surface (`front_percentile` of the in-band points'
     distance along the ray) plus half the smaller of w, h, the visible size across the ray
     (x extent and the extent perpendicular to the ray in the y-z plane): exact for a sphere,
     less than the true half-depth for an upright cylinder. Alone it is wrong for objects
     flat or long across the ray (so is half a thickness sqrt(w h), the earlier estimate:
     1.1 cm median off on the benchmark, 1.6 cm for cylinders); here it only lifts the mirror
     bound where a smooth rim leaves it short. An object much thinner along the ray than
     across (a plate facing the camera) is placed too far back.
   On the benchmark's tabletop scenes at 0.4-1.5 m with sensor noise (bench/bench_depth.py
   --accuracy, true masks) it is 0.2 cm (median) / 0.6 cm (p95) from the true centroid over
   all shapes (cylinders 0.1, boxes 0.2, spheres 0.4, a knife 0.3 cm median); the
   visible-surface `position` lies 3.3 cm (median) in front of it. A mask spilling 3 px onto
   the table puts a thin knife 1.6 cm off (table points mirrored land above the table).
6. Cost: the object's box is read on a regular grid of depth pixels of stride s (about
   `max_points` samples in the box), so an object costs about the same whatever its size and
   the full depth image is never converted. Point counts are grid counts times s^2; the
   erosion radius is divided by s (rounded: no erosion when s > 2 `erosion_px`, where the
   box is so large that its edge pixels are a small share of it; eroding a whole grid
   sample there would cut fragmented masks to a few blobs).

Everything is in the depth camera's optical frame (x right, y down, z forward), in metres.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pam_ros.geometry.depth import DepthImage
from pam_ros.geometry.intrinsics import CameraIntrinsics, IntrinsicsError, is_scaling

# Reasons an object has no 3D position (codes; `Object3D.reason` is "<code>: <detail>").
NO_DEPTH = "no_depth"  # no depth image paired with this frame (yet)
NO_CAMERA_INFO = "no_camera_info"  # depth but no camera_info of it
BAD_INTRINSICS = "bad_intrinsics"  # zero / non-finite K, or its size does not fit the depth
SIZE_MISMATCH = "size_mismatch"  # depth not an exact scaling of the colour image
BAD_MASK = "bad_mask"  # a mask that is not an (H, W) image of 0/1, 0/255 or 0..1 values
BAD_DEPTH = "bad_depth"  # unsupported encoding or a malformed depth image
ABSENT = "absent"  # the object is not visible on this frame (empty mask)
NO_VALID_DEPTH = "no_valid_depth"  # too few mask pixels with valid depth (all 0 / NaN / inf)
TOO_SMALL = "too_small"  # the mask covers fewer depth pixels than min_valid_points
NO_POSITION_REASONS = (
    NO_DEPTH,
    NO_CAMERA_INFO,
    BAD_INTRINSICS,
    SIZE_MISMATCH,
    BAD_MASK,
    BAD_DEPTH,
    ABSENT,
    NO_VALID_DEPTH,
    TOO_SMALL,
)
# How `Object3D.volume_center` was estimated (module docstring, step 5).
VOLUME_FROM_SYMMETRY = "mirrored_visible_surface"

Vec3 = tuple[float, float, float]
ZERO3: Vec3 = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Estimator3DConfig:
    erosion_px: int = 3  # core erosion radius in depth pixels (at most)
    erosion_fraction: float = 0.15  # ... and at most this share of the inscribed radius
    front_percentile: float = 2.0  # the visible front along the centre ray (volume centre)
    mirror_outliers: float = 0.005  # volume centre: share of mirrored points allowed in front
    mirror_points: int = 400  # volume centre: at most this many points mirrored
    min_valid_points: int = 10  # fewer valid points than this: no position
    min_band_m: float = 0.05  # depth band half-width floor around the median
    mad_factor: float = 3.0  # band half-width in robust standard deviations
    percentiles: tuple[float, float] = (1.0, 99.0)  # extent span
    min_depth_m: float = 0.05  # depth outside [min, max] is invalid
    max_depth_m: float = 20.0
    max_points: int = 3000  # samples per object box; larger boxes use a coarser pixel grid

    def __post_init__(self) -> None:
        lo, hi = self.percentiles
        if not 0.0 <= lo < hi <= 100.0:
            raise ValueError(f"percentiles need 0 <= lo < hi <= 100, got {self.percentiles}")
        if self.erosion_px < 0 or self.min_valid_points < 1:
            raise ValueError("erosion_px must be >= 0 and min_valid_points >= 1")
        if not 0.0 <= self.erosion_fraction <= 1.0:
            raise ValueError(f"erosion_fraction must be in 0..1, got {self.erosion_fraction}")
        if not 0.0 <= self.min_depth_m < self.max_depth_m:
            raise ValueError("need 0 <= min_depth_m < max_depth_m")
        if not 0.0 <= self.mirror_outliers < 1.0 or self.mirror_points < 1:
            raise ValueError("need 0 <= mirror_outliers < 1 and mirror_points >= 1")


@dataclass(frozen=True)
class Object3D:
    has_position: bool
    position: Vec3 = ZERO3  # metres, optical frame: robust point on the visible surface
    extent: Vec3 = ZERO3  # metres along x, y, z of the axis-aligned box
    center: Vec3 = ZERO3  # centre of that box
    mask_points: int = 0  # mask pixels on the depth grid (sampled grid count x s^2)
    valid_points: int = 0  # of those, with valid depth (likewise)
    inlier_points: int = 0  # of those, inside the depth band (on the sampled grid, scaled)
    eroded: bool = False  # the position came from the eroded core (False: whole mask)
    reason: str = ""  # "" when has_position, else "<code>: <detail>"
    # Estimated centre of the object's volume (metres, optical frame), behind the visible
    # surface; `volume_method` says how it was estimated ("" without a position).
    volume_center: Vec3 = ZERO3
    volume_method: str = ""

    @property
    def valid_fraction(self) -> float:
        return self.valid_points / self.mask_points if self.mask_points else 0.0

    @property
    def reason_code(self) -> str:
        return self.reason.split(":", 1)[0]


def no_position(code: str, detail: str, **counts) -> Object3D:
    assert code in NO_POSITION_REASONS, code
    return Object3D(has_position=False, reason=f"{code}: {detail}", **counts)


def _mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask[rows[0] : rows[-1] + 1].any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _sample_grid(mask, box, depth_w, depth_h, max_points):
    """The depth pixels of the box on a regular grid of stride s, and the mask at their centres.

    Returns rows (h,) and cols (w,) of depth pixels, the mask there (h, w) bool, and s."""
    mask_h, mask_w = mask.shape
    x0, y0, x1, y1 = box
    sx, sy = depth_w / mask_w, depth_h / mask_h
    dx0, dy0 = int(np.floor(x0 * sx)), int(np.floor(y0 * sy))
    dx1 = max(dx0 + 1, min(depth_w, int(np.ceil(x1 * sx))))
    dy1 = max(dy0 + 1, min(depth_h, int(np.ceil(y1 * sy))))
    stride = max(1, int(np.sqrt((dx1 - dx0) * (dy1 - dy0) / max_points)))
    rows, cols = np.arange(dy0, dy1, stride), np.arange(dx0, dx1, stride)
    if (mask_w, mask_h) == (depth_w, depth_h):
        return rows, cols, mask[dy0:dy1:stride, dx0:dx1:stride], stride
    mask_cols = np.clip(np.rint((cols + 0.5) / sx - 0.5).astype(np.intp), 0, mask_w - 1)
    mask_rows = np.clip(np.rint((rows + 0.5) / sy - 0.5).astype(np.intp), 0, mask_h - 1)
    return rows, cols, mask[mask_rows[:, None], mask_cols[None, :]], stride


def _as_bool_mask(mask) -> tuple[np.ndarray | None, str]:
    """(H, W) bool from bool, integer (0/1, 0/255: nonzero is inside) or float (0..1: >= 0.5 is
    inside) masks of shape (H, W) or (H, W, 1); (None, why) for anything else."""
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[:, :, 0]
    if mask.ndim != 2 or mask.size == 0:
        return None, f"mask must be (H, W) or (H, W, 1) and non-empty, got shape {mask.shape}"
    if mask.dtype == bool:
        return mask, ""
    if mask.dtype.kind in "ui":
        return mask != 0, ""
    if mask.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            if not np.all((mask >= 0.0) & (mask <= 1.0)):
                return None, "float mask values must be in 0..1 (NaN, inf or others found)"
        return mask >= 0.5, ""
    return None, f"mask must be bool, integer or float, got {mask.dtype}"


def _core(filled, valid, radius, area, min_points) -> tuple[np.ndarray, bool]:
    """(h, w) bool: the valid pixels of `filled` eroded by `radius` grid pixels, and whether it
    was eroded (False: too few points left, all valid pixels of the mask)."""
    if radius <= 0:
        return valid, False
    size = 2 * radius + 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    core = cv2.erode(
        filled.view(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0
    ).view(bool)
    core &= valid
    if np.count_nonzero(core) * area < min_points:
        return valid, False
    return core, True


def _fill_holes(crop: np.ndarray) -> np.ndarray:
    """(h, w) bool: the mask with every background region not connected to the border filled."""
    padded = np.zeros((crop.shape[0] + 2, crop.shape[1] + 2), np.uint8)
    padded[1:-1, 1:-1] = crop
    outside = padded.copy()
    cv2.floodFill(outside, None, (0, 0), 1)  # outside: 1 on the mask and the outer background
    return crop | (outside[1:-1, 1:-1] == 0)


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return float(values[order[np.searchsorted(cumulative, 0.5 * cumulative[-1])]])


def estimate_object_3d(
    mask: np.ndarray,
    depth: DepthImage | None,
    intrinsics: CameraIntrinsics | None,
    box: tuple[int, int, int, int] | None = None,
    config: Estimator3DConfig = Estimator3DConfig(),
) -> Object3D:
    """3D state of one object. mask: (H, W) at the colour image's size, bool, 0/1 or 0/255
    integers or 0..1 floats ((H, W, 1) too); depth: the aligned depth image (the colour size or
    an exact scaling of it); intrinsics: of the depth image (scaled here if camera_info has
    another size); box: (x0, y0, x1, y1) of the mask if known (saves a scan).
    Never raises for bad data: the result says why there is no position."""
    if depth is None:
        return no_position(NO_DEPTH, "no depth image paired with this frame")
    if intrinsics is None:
        return no_position(NO_CAMERA_INFO, "no camera_info for the depth image")
    try:
        intrinsics = intrinsics.scaled_to(depth.width, depth.height)
    except IntrinsicsError as error:
        return no_position(BAD_INTRINSICS, str(error))
    mask, why = _as_bool_mask(mask)
    if mask is None:
        return no_position(BAD_MASK, why)
    mask_h, mask_w = mask.shape
    if not is_scaling(mask_w, mask_h, depth.width, depth.height):
        return no_position(
            SIZE_MISMATCH,
            f"depth {depth.width}x{depth.height} is not a scaling of colour {mask_w}x{mask_h} "
            "(the aspect ratio differs): depth not aligned to colour",
        )
    if box is None:
        box = _mask_box(mask)
    else:
        x0, y0, x1, y1 = box
        box = (max(0, x0), max(0, y0), min(mask_w, x1), min(mask_h, y1))
        if box[2] <= box[0] or box[3] <= box[1]:
            box = None
    if box is None:
        return no_position(ABSENT, "empty mask")
    rows, cols, crop, stride = _sample_grid(
        mask, box, depth.width, depth.height, config.max_points
    )  # crop: (h, w) bool on the sampled grid
    area = stride * stride  # depth pixels per grid sample
    mask_points = int(np.count_nonzero(crop)) * area
    if mask_points == 0:
        return no_position(ABSENT, "empty mask")
    z = depth.metres(rows[0], rows[-1] + 1, cols[0], cols[-1] + 1, stride)  # (h, w), NaN invalid
    with np.errstate(invalid="ignore"):
        valid = crop & (z >= config.min_depth_m) & (z <= config.max_depth_m)
    valid_points = int(np.count_nonzero(valid)) * area
    counts = dict(mask_points=mask_points, valid_points=valid_points)
    if mask_points < config.min_valid_points:
        return no_position(
            TOO_SMALL,
            f"the mask covers {mask_points} depth pixels ({valid_points} with valid depth), "
            f"fewer than {config.min_valid_points}",
            **counts,
        )
    if valid_points < config.min_valid_points:
        return no_position(
            NO_VALID_DEPTH,
            f"{valid_points} of {mask_points} mask pixels have valid depth "
            f"(need {config.min_valid_points}; 0 / NaN / inf / outside "
            f"{config.min_depth_m}..{config.max_depth_m} m are invalid)",
            **counts,
        )
    filled = _fill_holes(crop)  # (h, w) bool: holes in the mask do not grow by the erosion
    full_radius = round(config.erosion_px / stride)  # 0 on coarse grids: edges a small share
    radius = full_radius
    if radius > 0:
        inscribed = cv2.distanceTransform(
            np.pad(filled, 1).view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE
        ).max()  # the object's half-thickness in grid pixels
        radius = min(radius, round(config.erosion_fraction * float(inscribed)))
    core, eroded = _core(filled, valid, radius, area, config.min_valid_points)
    # the depth span: without the full erosion's rim (a mask spilling onto a table behind)
    depth_core = core
    if full_radius > radius:
        depth_core = _core(filled, valid, full_radius, area, config.min_valid_points)[0]
    core_z = z[core]
    z_med = float(np.median(core_z))
    mad = float(np.median(np.abs(core_z - z_med)))
    band = max(config.min_band_m, config.mad_factor * 1.4826 * mad)
    with np.errstate(invalid="ignore"):
        in_band = np.abs(z - z_med) <= band
    inliers = valid & in_band
    core_inliers = core & in_band
    v_core, u_core = np.nonzero(core_inliers)
    core_z = z[core_inliers]
    core_points = intrinsics.deproject(cols[u_core], rows[v_core], core_z)
    position = [_weighted_median(core_points[:, axis], core_z * core_z) for axis in range(3)]
    v_all, u_all = np.nonzero(inliers)
    points = intrinsics.deproject(cols[u_all], rows[v_all], z[inliers])  # (N, 3)
    lo, hi = np.percentile(points, config.percentiles, axis=0)
    # depth span of the core only: spill onto a surface just behind stays out of it
    lo[2], hi[2] = np.percentile(z[depth_core & in_band], config.percentiles)
    volume_center = _volume_center(
        filled, rows, cols, stride, points, z, inliers, z_med, intrinsics, config
    )
    return Object3D(
        has_position=True,
        position=tuple(float(c) for c in position),
        extent=tuple(float(c) for c in hi - lo),
        center=tuple(float(c) for c in (hi + lo) / 2),
        inlier_points=int(points.shape[0]) * area,
        eroded=eroded,
        volume_center=tuple(float(c) for c in volume_center),
        volume_method=VOLUME_FROM_SYMMETRY,
        **counts,
    )


def _volume_center(filled, rows, cols, stride, points, z, inliers, z_med, intrinsics, config):
    """(3,) estimated volume centre: on the ray through the silhouette's centre (perspective
    undone), as far along it as the larger of the mirror bound and the round floor (module
    docstring, step 5).
    filled: (h, w) bool silhouette on the grid of `rows` (h,) and `cols` (w,) (stride s);
    points: (N, 3) in-band visible points, those of the grid pixels `inliers` (h, w) bool;
    z: (h, w) depth on the grid; z_med: the core's median depth."""
    v, u = np.nonzero(filled)
    # each silhouette pixel's lateral position z d (d = ((u - cx) / fx, (v - cy) / fy, 1))
    # weighted by its footprint z^2, pixels with no in-band depth at the median depth: the
    # centre of the silhouette an orthographic view along the ray would see (a plain pixel
    # mean leans towards an object's nearer end)
    weight = np.where(inliers[v, u], z[v, u], z_med) ** 3  # (n,)
    ray = np.array(
        [
            weight @ (cols[u] - intrinsics.cx) / intrinsics.fx,
            weight @ (rows[v] - intrinsics.cy) / intrinsics.fy,
            weight.sum(),
        ]
    )  # (3,)
    ray /= np.linalg.norm(ray)
    across_y = np.cross(ray, (1.0, 0.0, 0.0))  # perpendicular to the ray in the y-z plane
    across_y /= np.linalg.norm(across_y)
    lo, hi = config.percentiles
    width = float(np.diff(np.percentile(points[:, 0], (lo, hi)))[0])
    height = float(np.diff(np.percentile(points @ across_y, (lo, hi)))[0])
    front = float(np.percentile(points @ ray, config.front_percentile))
    mirror = _mirror_bound(ray, rows, cols, stride, points, z, inliers, intrinsics, config)
    return ray * max(mirror, front + 0.5 * min(width, height))


def _mirror_bound(ray, rows, cols, stride, points, z, inliers, intrinsics, config) -> float:
    """Smallest distance t along the unit `ray` such that at most `config.mirror_outliers` of
    the visible points, mirrored through t * ray, lie in front of the visible surface (the
    in-band depth `z` (h, w) of the grid pixel they project to). Mirroring through a nearer
    centre would put the object's hidden half in front of what the camera sees."""
    step = int(np.ceil(points.shape[0] / config.mirror_points))
    points = points[::step]  # (n, 3)
    along = points @ ray  # (n,)
    # at t = max(along) every mirror lies behind the farthest visible point: no violation
    near, far = float(along.min()), float(along.max())
    allowed = config.mirror_outliers * points.shape[0]
    target = np.where(inliers, z, -np.inf).ravel()  # (h w,) visible depth, -inf: nothing seen
    for _ in range(2):  # 16 x 16 steps: 1 mm for an object 25 cm deep, in two numpy passes
        ts = np.linspace(near, far, 17)[1:, None]  # (16, 1)
        # the mirrors' coordinates x, y, z, each (16, n)
        mx, my, mz = (2.0 * ts * ray[axis] - points[:, axis] for axis in range(3))
        counts = _in_front(mx, my, mz, rows, cols, stride, target, intrinsics)  # (16,)
        # the answer lies after the last step that fails (the count falls with t, not strictly)
        failing = np.flatnonzero(counts > allowed)
        if failing.size == 0:
            far = float(ts[0, 0])
        elif failing[-1] == ts.shape[0] - 1:
            break  # pixel rounding at the far end: keep the far end
        else:
            near, far = float(ts[failing[-1], 0]), float(ts[failing[-1] + 1, 0])
    return far


def _in_front(mx, my, mz, rows, cols, stride, target, intrinsics) -> np.ndarray:
    """(K,) how many of the points (mx, my, mz) (K, n each) project onto a grid pixel whose
    visible depth `target` (h w,) (-inf where nothing in-band is seen) is farther than theirs
    (points off the grid: not)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        gu = np.rint((intrinsics.fx * mx / mz + intrinsics.cx - cols[0]) / stride)
        gv = np.rint((intrinsics.fy * my / mz + intrinsics.cy - rows[0]) / stride)
        on_grid = (mz > 0) & (gu >= 0) & (gu < cols.size) & (gv >= 0) & (gv < rows.size)
    index = np.where(on_grid, gv * cols.size + gu, 0).astype(np.intp)  # (K, n) into target
    with np.errstate(invalid="ignore"):
        in_front = on_grid & (mz < target[index])
    return np.count_nonzero(in_front, axis=1)
