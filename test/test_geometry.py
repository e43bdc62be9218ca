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
from pam_ros.testing.scene import Box, Plane, render_depth, rotation_y, to_millimetres

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
