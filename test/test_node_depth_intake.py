"""The depth cache and message decoding of the node's depth input (no node, no DDS)."""

from __future__ import annotations

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo

from pam_ros.ros.depth_intake import DepthCache, DepthFrame, depth_frame_from_msgs
from pam_ros.ros.outputs_3d import quaternion_matrix
from pam_ros.tools.demo.frame_sources import GeneratedScene
from pam_ros.tools.demo.video_source import camera_info_msg, depth_image_msg

MS = 1_000_000


def test_cache_matches_the_nearest_stamp_within_the_slop_and_counts_the_rest():
    cache = DepthCache(capacity=3)
    for stamp in (100 * MS, 133 * MS, 166 * MS):
        cache.put(DepthFrame(stamp, "cam"))
    assert cache.match(135 * MS, 5 * MS).stamp_ns == 133 * MS
    assert cache.match(150 * MS, 5 * MS) is None  # 16 ms from the nearest
    counters = cache.snapshot()
    assert (counters.pairs, counters.matched, counters.colour_without_depth) == (3, 1, 1)
    assert "no depth within 0.005 s" in counters.last_error
    cache.put(DepthFrame(200 * MS, "cam"))  # evicts 100 ms, never used: depth without colour
    cache.put(DepthFrame(233 * MS, "cam"))  # evicts 133 ms, used: not counted
    assert cache.snapshot().depth_without_colour == 1
    cache.clear()
    assert cache.match(233 * MS, 5 * MS) is None


def test_messages_decode_into_depth_and_intrinsics_or_say_what_is_wrong():
    scene = GeneratedScene(width=320, height=240)
    image = depth_image_msg(scene.depth_frame(0), "16UC1")
    image.header.stamp.sec, image.header.frame_id = 7, "cam"
    info = camera_info_msg(scene, 320, 240, zero_k=False)
    frame = depth_frame_from_msgs(image, info)
    assert not frame.error_code and frame.stamp_ns == 7_000_000_000 and frame.frame_id == "cam"
    assert frame.depth.metres(0, 1, 0, 1)[0, 0] == np.float32(2.0)
    assert frame.intrinsics.fx == scene.intrinsics().fx
    metres = depth_frame_from_msgs(depth_image_msg(scene.depth_frame(0), "32FC1"), info)
    assert metres.depth.encoding == "32FC1" and metres.depth.metres_per_unit == 1.0
    override = depth_frame_from_msgs(image, info, metres_per_unit=0.0001)
    assert override.depth.metres(0, 1, 0, 1)[0, 0] == pytest.approx(0.2)
    image.encoding = "8UC1"
    bad = depth_frame_from_msgs(image, info)
    assert bad.error_code == "bad_depth" and "8UC1" in bad.error
    image.encoding = "16UC1"
    assert depth_frame_from_msgs(image, CameraInfo(width=320, height=240)).error_code == (
        "bad_intrinsics"
    )
    other = camera_info_msg(scene, 320, 180, zero_k=False)
    assert "aspect" in depth_frame_from_msgs(image, other).error
    image.data = bytes(image.data)[:100]
    assert "bytes" in depth_frame_from_msgs(image, info).error


def test_quaternion_matrix_is_a_rotation():
    half = np.sqrt(0.5)
    rotation = quaternion_matrix(0.0, 0.0, half, half)  # 90 degrees about z
    np.testing.assert_allclose(rotation @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], atol=1e-12)
