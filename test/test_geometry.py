"""3D position and extent of objects against analytic ground truth (ray-cast planes and boxes)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from pam_ros.geometry import (
    CameraIntrinsics,
    DepthError,
    Estimator3DConfig,
    IntrinsicsError,
    UnsupportedDepthEncodingError,
    decode_depth,
    estimate_object_3d,
)
from pam_ros.geometry.depth import depth_from_buffer
from pam_ros.testing.scene import (
    Box,
    Cylinder,
    Plane,
    Sphere,
    centroid,
    render_depth,
    rotation_y,
    sensor_noise,
    tabletop_scene,
    to_millimetres,
    visible_surface_truth,
)

K = CameraIntrinsics(fx=600.0, fy=600.0, cx=319.5, cy=239.5, width=640, height=480)
WALL = Plane((0.0, 0.0, 1.0), 2.0)  # background 2 m away
POSITION_TOL = 0.01  # 1 cm at ~1 m
EXTENT_TOL = 0.02  # 2 cm


def scene(box: Box, intrinsics: CameraIntrinsics = K):
    depth_m, index = render_depth(intrinsics, [WALL, box])
    return depth_m, index == 1  # depth, true mask of the box


def front_box(center=(0.05, -0.03, 1.0), size=(0.20, 0.15, 0.10)) -> Box:
    return Box(center, size)


def front_face_truth(box: Box):
    """Fronto-parallel box: the visible surface is the front face, centred at (x, y, z - d/2)."""
    x, y, z = box.center
    return np.array([x, y, z - box.size[2] / 2]), np.array([box.size[0], box.size[1], 0.0])


def check(result, position, extent):
    assert result.has_position, result.reason
    assert np.abs(np.array(result.position) - position).max() <= POSITION_TOL, result
    assert np.abs(np.array(result.extent) - extent).max() <= EXTENT_TOL, result


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_box_position_and_extent_mm_and_m(encoding):
    box = front_box()
    depth_m, mask = scene(box)
    raw = to_millimetres(depth_m) if encoding == "16UC1" else depth_m.astype(np.float32)
    result = estimate_object_3d(mask, decode_depth(raw, encoding), K)
    check(result, *front_face_truth(box))
    assert result.valid_points == result.mask_points == mask.sum()
    assert result.valid_fraction == 1.0 and result.eroded


def test_mask_spilling_onto_the_background_is_rejected_by_the_depth_band():
    box = front_box()
    depth_m, mask = scene(box)
    spilled = cv2.dilate(mask.astype(np.uint8), np.ones((31, 31), np.uint8)).astype(bool)
    assert spilled.sum() > 1.4 * mask.sum()  # > 40 % more pixels, all on the wall 1 m behind
    result = estimate_object_3d(spilled, decode_depth(to_millimetres(depth_m), "16UC1"), K)
    check(result, *front_face_truth(box))
    assert result.inlier_points == pytest.approx(mask.sum(), rel=0.03)


def test_holes_and_dropouts_in_depth():
    box = front_box()
    depth_m, mask = scene(box)
    rng = np.random.default_rng(0)
    mm = to_millimetres(depth_m)
    mm[rng.random(mm.shape) < 0.3] = 0  # 30 % dropouts
    mm[200:230, 300:330] = 0  # a hole in the middle of the object
    result = estimate_object_3d(mask, decode_depth(mm, "16UC1"), K)
    check(result, *front_face_truth(box))
    assert 0.6 < result.valid_fraction < 0.75


def test_noisy_depth():
    box = front_box()
    depth_m, mask = scene(box)
    rng = np.random.default_rng(1)
    noisy = depth_m + rng.normal(0.0, 0.003, depth_m.shape)  # 3 mm sensor noise at 1 m
    result = estimate_object_3d(mask, decode_depth(to_millimetres(noisy), "16UC1"), K)
    check(result, *front_face_truth(box))


def test_tilted_plate_extent_and_position():
    angle = math.radians(40)
    plate = Box((-0.1, 0.05, 1.0), (0.25, 0.2, 0.004), rotation_y(angle))
    depth_m, mask = scene(plate)
    result = estimate_object_3d(mask, decode_depth(depth_m.astype(np.float32), "32FC1"), K)
    span = np.ptp(plate.corners(), axis=0)  # x: w cos + t sin, y: h, z: w sin + t cos
    check(result, np.array(plate.center), span)


def test_cube_turned_45_degrees_shows_two_faces():
    side = 0.2
    cube = Box((0.0, 0.0, 1.1), (side, side, side), rotation_y(math.radians(45)))
    depth_m, mask = scene(cube)
    result = estimate_object_3d(mask, decode_depth(to_millimetres(depth_m), "16UC1"), K)
    assert result.has_position
    diagonal = side * math.sqrt(2)
    # Visible: the front edge at z = 1.1 - d/2 back to the side edges at z = 1.1 (the back
    # edge is hidden), left to right edge over the full diagonal.
    expected = np.array([diagonal, side, diagonal / 2])
    assert np.abs(np.array(result.extent) - expected).max() <= EXTENT_TOL, result
    assert abs(result.position[0]) <= POSITION_TOL and abs(result.position[1]) <= POSITION_TOL
    assert 1.1 - diagonal / 2 < result.position[2] < 1.1


def test_thin_mask_falls_back_from_erosion():
    pole = Box((0.0, 0.0, 1.0), (0.006, 0.3, 0.006))  # ~3.6 px wide at 1 m
    depth_m, mask = scene(pole)
    result = estimate_object_3d(mask, decode_depth(to_millimetres(depth_m), "16UC1"), K)
    assert not result.eroded
    check(result, np.array([0.0, 0.0, 0.997]), np.array([0.006, 0.3, 0.0]))


def test_depth_at_half_resolution_of_colour():
    box = front_box()
    _, mask = scene(box)  # colour (mask) at 640x480
    half = K.scaled_to(320, 240)
    depth_half, _ = render_depth(half, [WALL, box])
    depth = decode_depth(to_millimetres(depth_half), "16UC1")
    # camera_info of the depth image (320x240), or of the colour image (scaled here)
    for intrinsics in (half, K):
        check(estimate_object_3d(mask, depth, intrinsics), *front_face_truth(box))


def test_intrinsics_scaling_keeps_projection():
    point = np.array([0.1, -0.05, 1.2])
    scaled = K.scaled_to(1280, 960)
    u, v = K.fx * point[0] / point[2] + K.cx, K.fy * point[1] / point[2] + K.cy
    u2 = scaled.fx * point[0] / point[2] + scaled.cx
    v2 = scaled.fy * point[1] / point[2] + scaled.cy
    assert u2 + 0.5 == pytest.approx(2 * (u + 0.5)) and v2 + 0.5 == pytest.approx(2 * (v + 0.5))
    with pytest.raises(IntrinsicsError, match="aspect ratio"):
        K.scaled_to(640, 360)


def test_other_aspect_ratio_is_refused_with_a_reason():
    wide = CameraIntrinsics(600, 600, 319.5, 179.5, 640, 360)  # a 16:9 depth image
    depth_m, _ = scene(front_box(), wide)
    depth = decode_depth(to_millimetres(depth_m), "16UC1")
    # camera_info of a 4:3 image for 16:9 depth: cannot be scaled
    result = estimate_object_3d(np.ones((360, 640), bool), depth, K)
    assert not result.has_position and result.reason_code == "bad_intrinsics"
    assert "aspect ratio" in result.reason
    # 4:3 colour (mask) for 16:9 depth: not aligned
    result = estimate_object_3d(np.ones((480, 640), bool), depth, wide)
    assert result.reason_code == "size_mismatch", result.reason


@pytest.mark.parametrize(
    "raw, encoding",
    [
        (np.zeros((480, 640), np.uint16), "16UC1"),
        (np.full((480, 640), np.nan, np.float32), "32FC1"),
        (np.full((480, 640), np.inf, np.float32), "32FC1"),
        (np.full((480, 640), -1.0, np.float32), "32FC1"),
    ],
)
def test_invalid_depth_everywhere_gives_no_valid_depth(raw, encoding):
    _, mask = scene(front_box())
    result = estimate_object_3d(mask, decode_depth(raw, encoding), K)
    assert not result.has_position and result.reason_code == "no_valid_depth"
    assert result.valid_points == 0 and result.mask_points == mask.sum()
    assert "0 of" in result.reason


def test_missing_inputs_and_absent_object_say_why():
    depth_m, mask = scene(front_box())
    depth = decode_depth(to_millimetres(depth_m), "16UC1")
    assert estimate_object_3d(mask, None, K).reason_code == "no_depth"
    assert estimate_object_3d(mask, depth, None).reason_code == "no_camera_info"
    assert estimate_object_3d(np.zeros_like(mask), depth, K).reason_code == "absent"
    assert estimate_object_3d(mask, depth, K, box=(5, 5, 5, 9)).reason_code == "absent"


def test_bad_encodings_and_zero_k():
    with pytest.raises(UnsupportedDepthEncodingError, match="rgb8"):
        decode_depth(np.zeros((4, 4), np.uint16), "rgb8")
    with pytest.raises(DepthError, match="must be uint16"):
        decode_depth(np.zeros((4, 4), np.float32), "16UC1")
    with pytest.raises(DepthError, match="metres per depth unit"):
        decode_depth(np.zeros((4, 4), np.uint16), "16UC1", metres_per_unit=-1.0)
    with pytest.raises(IntrinsicsError, match="all zero"):
        CameraIntrinsics.from_k([0.0] * 9, 640, 480)
    with pytest.raises(IntrinsicsError, match="focal"):
        CameraIntrinsics.from_k([0, 0, 320, 0, 0, 240, 0, 0, 1], 640, 480)


def test_unit_override_and_row_padded_big_endian_buffer():
    box = front_box()
    depth_m, mask = scene(box)
    tenth_mm = np.rint(depth_m.clip(0, 6.5) * 10000).astype(np.uint16)  # 0.1 mm units
    step = 640 * 2 + 8  # padded rows
    buffer = np.zeros((480, step), np.uint8)
    buffer[:, : 640 * 2] = tenth_mm.astype(">u2").view(np.uint8).reshape(480, -1)
    depth = depth_from_buffer(
        buffer.tobytes(), 640, 480, step, "16UC1", metres_per_unit=1e-4, big_endian=True
    )
    check(estimate_object_3d(mask, depth, K), *front_face_truth(box))
    with pytest.raises(DepthError, match="bytes"):
        depth_from_buffer(b"\0" * 100, 640, 480, 1280, "16UC1")


def test_config_is_validated():
    with pytest.raises(ValueError, match="percentiles"):
        Estimator3DConfig(percentiles=(50.0, 10.0))


def test_sampled_grid_for_large_boxes_keeps_the_accuracy():
    box = front_box(center=(0.0, 0.0, 0.6), size=(0.3, 0.25, 0.1))  # ~ 350 x 290 px
    depth_m, mask = scene(box)
    depth = decode_depth(to_millimetres(depth_m), "16UC1")
    coarse = estimate_object_3d(mask, depth, K, config=Estimator3DConfig(max_points=500))
    check(coarse, *front_face_truth(box))
    assert coarse.mask_points == pytest.approx(mask.sum(), rel=0.05)
    assert not coarse.eroded  # stride > 2 x erosion_px: no erosion on the coarse grid


# --- tabletop scenes (objects standing on a table, camera pitched down) -------------------

K720 = CameraIntrinsics(909.0, 909.0, 639.5, 359.5, 1280, 720)


def tabletop(shape, distance, size, seed, yaw=0.3, pitch_deg=35.0, intrinsics=K720):
    """Noisy 16UC1 depth, true mask, noise-free depth and the object of a tabletop scene."""
    table, obj = tabletop_scene(shape, distance, math.radians(pitch_deg), size, yaw)
    depth_m, index = render_depth(intrinsics, [table, obj])
    noisy = to_millimetres(sensor_noise(depth_m, np.random.default_rng(seed)))
    return decode_depth(noisy, "16UC1"), index == 1, depth_m, obj


def test_renderer_solids_hit_their_analytic_surfaces():
    sphere = Sphere((0.05, 0.02, 1.0), 0.1)
    depth_m, index = render_depth(K, [WALL, sphere])
    v, u = np.nonzero(index == 1)
    points = K.deproject(u.astype(float), v.astype(float), depth_m[v, u])
    assert np.allclose(np.linalg.norm(points - sphere.center, axis=1), 0.1, atol=1e-9)
    assert depth_m[index == 1].min() == pytest.approx(0.9, abs=2e-3)
    cylinder = Cylinder((0.0, 0.0, 1.0), 0.05, 0.2)  # axis up (-y)
    depth_m, index = render_depth(K, [WALL, cylinder])
    v, u = np.nonzero(index == 1)
    points = K.deproject(u.astype(float), v.astype(float), depth_m[v, u])
    radial = np.hypot(points[:, 0], points[:, 2] - 1.0)
    assert np.all(radial <= 0.05 + 1e-9) and np.all(np.abs(points[:, 1]) <= 0.1 + 1e-9)
    assert np.mean(np.isclose(radial, 0.05)) > 0.9  # a horizontal view sees mostly the side
    assert np.ptp(points[:, 1]) == pytest.approx(0.2, abs=0.01)


def test_mask_holes_do_not_grow_by_the_erosion():
    # A knife (2.5 cm wide) at 1.5 m with 15 % of its mask in holes: eroding around the holes
    # left a core of scattered bits (position off by 1-3 cm before holes were filled first).
    rng = np.random.default_rng(3)
    errors = []
    for seed, yaw in enumerate((0.3, 0.9, 1.4, 2.2)):
        depth, mask, depth_m, _ = tabletop("box", 1.5, (0.025, 0.2, 0.015), seed, yaw)
        truth, _ = visible_surface_truth(depth_m, mask, K720)
        holed = mask.copy()
        ys, xs = np.nonzero(mask)
        while holed.sum() > 0.85 * mask.sum():
            i = rng.integers(ys.size)
            cv2.circle(holed.view(np.uint8), (int(xs[i]), int(ys[i])), 3, 0, -1)
        result = estimate_object_3d(holed, depth, K720)
        errors.append(np.linalg.norm(np.array(result.position) - truth))
    assert np.median(errors) < 0.008 and max(errors) < 0.015, errors


def test_erosion_scales_with_the_object_size():
    # Spheres 2 m away on 640x360 depth for 1280x720 masks: a fixed 3 px erosion kept only
    # their nearest middle (mean z 0.70 cm short with the true masks, 0.87 cm with masks 2 px
    # too small; without any erosion 0.0 / 0.35 cm, the floor of the smaller mask).
    half = K720.scaled_to(640, 360)
    for eroded_mask, bound in ((False, 0.005), (True, 0.007)):
        z_errors = []
        for radius in (0.03, 0.04, 0.05, 0.06):
            table, obj = tabletop_scene("sphere", 2.0, math.radians(35.0), (radius, 0.0, 0.0))
            depth_m, index = render_depth(K720, [table, obj])
            depth_half = decode_depth(to_millimetres(render_depth(half, [table, obj])[0]), "16UC1")
            mask = index == 1
            truth, _ = visible_surface_truth(depth_m, mask, K720)
            if eroded_mask:
                mask = cv2.erode(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
            result = estimate_object_3d(mask, depth_half, K720)
            z_errors.append(result.position[2] - truth[2])
        assert abs(np.mean(z_errors)) < bound, (eroded_mask, z_errors)


@pytest.mark.parametrize(
    "shape, size, distance",
    [("box", (0.025, 0.2, 0.015), 1.0), ("cylinder", (0.04, 0.0, 0.1), 1.4)],
)
def test_depth_extent_ignores_a_mask_spilling_onto_the_table(shape, size, distance):
    # A mask 3 px too large all round covers table just behind the object, inside the depth
    # band: the whole mask's depth span was 3.5 cm (a knife lying flat) / 1.3 cm too long.
    depth, mask, depth_m, _ = tabletop(shape, distance, size, seed=5)
    _, true_extent = visible_surface_truth(depth_m, mask, K720)
    spilled = cv2.dilate(mask.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    result = estimate_object_3d(spilled, depth, K720)
    assert abs(result.extent[2] - true_extent[2]) < 0.01, (result.extent, true_extent)


def test_volume_center_is_behind_the_visible_surface():
    # Cylinders, boxes and spheres on a table at 0.5-1.4 m with sensor noise: the visible-
    # surface point lies a few cm in front of the true centroid, the volume centre within
    # 6 mm (median; 2.5 mm measured, 1 cm with half a thickness sqrt(w h) behind the front).
    rng = np.random.default_rng(7)
    surface, volume = [], []
    for i in range(12):
        shape = ("cylinder", "box", "sphere")[i % 3]
        size = {
            "cylinder": (rng.uniform(0.03, 0.05), 0.0, rng.uniform(0.06, 0.2)),
            "box": tuple(rng.uniform(0.05, 0.15, 3)),
            "sphere": (rng.uniform(0.03, 0.06), 0.0, 0.0),
        }[shape]
        depth, mask, _, obj = tabletop(
            shape, rng.uniform(0.5, 1.4), size, i, rng.uniform(0, np.pi), rng.uniform(25, 50)
        )
        result = estimate_object_3d(mask, depth, K720)
        assert result.has_position and result.volume_method, result.reason
        surface.append(np.linalg.norm(np.array(result.position) - centroid(obj)))
        volume.append(np.linalg.norm(np.array(result.volume_center) - centroid(obj)))
    assert np.median(surface) > 0.025, surface
    assert np.median(volume) < 0.006, volume


@pytest.mark.parametrize(
    "shape, size, distance, yaw, pitch_deg",
    [
        ("cylinder", (0.04, 0.0, 0.2), 1.0, 0.0, 50.0),  # a tall mug seen steeply from above
        ("box", (0.025, 0.2, 0.015), 0.7, 0.0, 35.0),  # a knife pointing away from the camera
        ("box", (0.025, 0.2, 0.015), 0.7, 1.0, 35.0),  # ... turned
        ("box", (0.12, 0.06, 0.15), 0.8, 0.4, 30.0),
        ("sphere", (0.05, 0.0, 0.0), 1.2, 0.0, 40.0),
    ],
)
def test_volume_center_of_objects_deeper_along_the_view_than_across(
    shape, size, distance, yaw, pitch_deg
):
    # Seen from above, a tall mug is deeper along the viewing ray (its height slants away)
    # than its visible cross-section suggests, and a knife pointing away is 20 cm deep and
    # 2.5 cm wide: half a thickness sqrt(w h) behind the front put their centres 3.7 / 5.8 cm
    # off. The mirror bound follows the visible surface to the rim; the silhouette's centre
    # undone for perspective keeps the ray on the centre (a plain pixel mean: 1.2 / 1.7 cm).
    depth, mask, _, obj = tabletop(shape, distance, size, 3, yaw, pitch_deg)
    result = estimate_object_3d(mask, depth, K720)
    error = np.linalg.norm(np.array(result.volume_center) - centroid(obj))
    assert error < 0.008, (error, result.volume_center, centroid(obj))


def test_volume_center_of_a_flat_surface_is_finite_and_behind_it():
    # No rim to mirror (a wall patch facing the camera): the round floor, half the patch's
    # smaller size behind it, still gives a finite point behind the visible surface.
    depth_m, _ = scene(front_box())
    mask = np.zeros(depth_m.shape, bool)
    mask[100:200, 100:160] = True  # on the wall at 2 m
    result = estimate_object_3d(mask, decode_depth(to_millimetres(depth_m), "16UC1"), K)
    assert result.has_position and np.all(np.isfinite(result.volume_center)), result
    assert result.volume_center[2] > result.position[2] + 0.01, result


@pytest.mark.parametrize(
    "convert",
    [
        lambda m: m.astype(np.uint8),
        lambda m: m.astype(np.uint8) * 255,
        lambda m: m.astype(np.float32),
        lambda m: m.astype(np.float64) * 0.9,
        lambda m: m[:, :, None],
        lambda m: (m.astype(np.uint8) * 255)[:, :, None],
    ],
)
def test_masks_of_other_types_give_the_bool_result(convert):
    box = front_box()
    depth_m, mask = scene(box)
    depth = decode_depth(to_millimetres(depth_m), "16UC1")
    assert estimate_object_3d(convert(mask), depth, K) == estimate_object_3d(mask, depth, K)


@pytest.mark.parametrize(
    "mask, why",
    [
        (np.ones((480, 640, 3), bool), "shape"),
        (np.ones((480,), bool), "shape"),
        (np.zeros((0, 0), bool), "shape"),
        (np.full((480, 640), 2.0), "0..1"),
        (np.full((480, 640), np.nan, np.float32), "0..1"),
        (np.full((480, 640), "a"), "bool, integer or float"),
    ],
)
def test_bad_masks_give_no_position_with_a_reason(mask, why):
    depth_m, _ = scene(front_box())
    result = estimate_object_3d(mask, decode_depth(to_millimetres(depth_m), "16UC1"), K)
    assert not result.has_position and result.reason_code == "bad_mask", result.reason
    assert why in result.reason


def test_depth_that_is_not_an_exact_scaling_is_refused():
    # A RealSense's unaligned native depth (848x480) for 1280x720 colour: aspect ratios 0.6 %
    # apart, but no single scale maps one onto the other.
    native = CameraIntrinsics(424.0, 424.0, 423.5, 239.5, 848, 480)
    depth = decode_depth(np.full((480, 848), 1000, np.uint16), "16UC1")
    result = estimate_object_3d(np.ones((720, 1280), bool), depth, native)
    assert result.reason_code == "size_mismatch", result.reason
    with pytest.raises(IntrinsicsError, match="aspect ratio"):
        K720.scaled_to(848, 480)
    # exact scalings (to the pixel) stay accepted: 2x, and a decimation by 3 (426.7 -> 426)
    for width, height in ((640, 360), (426, 240)):
        scaled = K720.scaled_to(width, height)
        depth = decode_depth(np.full((height, width), 1000, np.uint16), "16UC1")
        mask = np.zeros((720, 1280), bool)
        mask[300:420, 580:700] = True
        result = estimate_object_3d(mask, depth, scaled)
        assert result.has_position and result.position[2] == pytest.approx(1.0), result


def test_a_tiny_mask_says_it_is_too_small():
    depth_m, _ = scene(front_box())
    mask = np.zeros((480, 640), bool)
    mask[238:241, 318:321] = True  # 3x3, all on the box with valid depth
    result = estimate_object_3d(mask, decode_depth(to_millimetres(depth_m), "16UC1"), K)
    assert not result.has_position and result.reason_code == "too_small", result.reason
    assert "covers 9 depth pixels (9 with valid depth)" in result.reason
    assert "no_valid_depth" not in result.reason
