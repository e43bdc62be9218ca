"""Frame sources of the demo and the video_source node publishing over real DDS."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest
import rclpy
from conftest import davis_frames
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from pam_ros.tools.demo.frame_sources import (
    FrameSourceError,
    GeneratedScene,
    ImageFolderFrames,
    VideoFileFrames,
    open_frame_source,
)
from pam_ros.tools.demo.video_source import VideoSourceNode


def test_image_folder_yields_rgb_frames_in_name_order():
    paths = davis_frames("car-shadow")
    frames = list(ImageFolderFrames(paths[0].parent, max_frames=3))
    assert len(frames) == 3
    expected = cv2.cvtColor(cv2.imread(str(paths[1])), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(frames[1], expected)
    assert frames[0].shape == (480, 854, 3) and frames[0].dtype == np.uint8


def test_video_file_round_trip(tmp_path):
    scene = GeneratedScene(width=160, height=120, num_frames=5)
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for frame in scene:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    frames = list(VideoFileFrames(path))
    assert len(frames) == 5
    first = next(iter(scene))
    assert np.abs(frames[0].astype(int) - first.astype(int)).mean() < 8  # lossy codec


def test_generated_scene_draws_its_objects_where_it_says():
    scene = GeneratedScene(width=320, height=240, num_frames=10)
    for i, frame in enumerate(scene):
        (x0, y0, x1, y1), (sx0, sy0, sx1, sy1) = scene.object_boxes(i)
        disc_centre = frame[(y0 + y1) // 2, (x0 + x1) // 2]
        square_centre = frame[(sy0 + sy1) // 2, (sx0 + sx1) // 2]
        assert tuple(disc_centre) == (220, 40, 40)
        assert tuple(square_centre) == (40, 200, 60)


def test_bad_sources_fail_clearly(tmp_path):
    with pytest.raises(FrameSourceError, match="neither"):
        open_frame_source(str(tmp_path / "nope"))
    with pytest.raises(FrameSourceError, match="no images"):
        ImageFolderFrames(tmp_path)


def test_video_source_node_publishes_the_folder_over_dds():
    context = rclpy.context.Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    try:
        folder = davis_frames("car-shadow")[0].parent
        source = VideoSourceNode(
            context=context,
            namespace="/demo_sources_test",
            parameter_overrides=[
                rclpy.parameter.Parameter("source", value=str(folder)),
                rclpy.parameter.Parameter("rate_hz", value=0.0),
                rclpy.parameter.Parameter("max_frames", value=4),
                rclpy.parameter.Parameter("frame_id", value="cam0"),
            ],
        )
        sink = Node("demo_sources_sink", context=context, namespace="/demo_sources_test")
        got: list[Image] = []
        sink.create_subscription(Image, "image", got.append, qos_profile_sensor_data)
        executor.add_node(source)
        executor.add_node(sink)
        thread = threading.Thread(target=executor.spin, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while source.publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        sent = []
        while (msg := source.publish_next()) is not None:
            sent.append(msg)
            time.sleep(0.05)
        assert source.finished and len(sent) == 4
        while len(got) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [m.header.stamp for m in got] == [m.header.stamp for m in sent]
        assert got[0].header.frame_id == "cam0" and got[0].encoding == "rgb8"
        assert (got[0].width, got[0].height) == (854, 480)
    finally:
        executor.shutdown()
        rclpy.shutdown(context=context)


def test_generated_scene_depth_puts_the_cards_where_it_says():
    from pam_ros.geometry import decode_depth, estimate_object_3d
    from pam_ros.testing.scene import to_millimetres

    scene = GeneratedScene(width=320, height=240, num_frames=10)
    for i in (0, 9):
        depth_m = scene.depth_frame(i)
        assert depth_m.shape == (240, 320) and depth_m.max() == scene.wall_depth_m
        depth = decode_depth(to_millimetres(depth_m), "16UC1")
        masks = scene._object_masks(i)
        truths = zip(scene.object_positions(i), scene.object_extents(i), strict=True)
        for mask, (position, extent) in zip(masks, truths, strict=True):
            result = estimate_object_3d(mask, depth, scene.intrinsics())
            assert np.abs(np.subtract(result.position, position)).max() < 0.01, result
            assert np.abs(np.subtract(result.extent, extent)).max() < 0.02, result


def test_video_source_publishes_aligned_depth_and_camera_info_with_the_colour_stamp():
    context = rclpy.context.Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    try:
        source = VideoSourceNode(
            context=context,
            namespace="/demo_depth_test",
            parameter_overrides=[
                rclpy.parameter.Parameter("rate_hz", value=0.0),
                rclpy.parameter.Parameter("max_frames", value=3),
                rclpy.parameter.Parameter("depth", value=True),
            ],
        )
        sink = Node("demo_depth_sink", context=context, namespace="/demo_depth_test")
        from sensor_msgs.msg import CameraInfo

        got: dict[str, list] = {"image": [], "depth": [], "info": []}
        qos = qos_profile_sensor_data
        sink.create_subscription(Image, "image", got["image"].append, qos)
        sink.create_subscription(Image, "depth/image", got["depth"].append, qos)
        sink.create_subscription(CameraInfo, "camera_info", got["info"].append, qos)
        executor.add_node(source)
        executor.add_node(sink)
        thread = threading.Thread(target=executor.spin, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while source.info_publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)
        sent = []
        while (msg := source.publish_next()) is not None:
            sent.append(msg)
            time.sleep(0.05)
        while min(len(v) for v in got.values()) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        stamps = [m.header.stamp for m in sent]
        assert [m.header.stamp for m in got["depth"]] == stamps
        assert [m.header.stamp for m in got["info"]] == stamps
        depth = got["depth"][0]
        assert (depth.encoding, depth.width, depth.height) == ("16UC1", 640, 480)
        mm = np.frombuffer(bytes(depth.data), np.uint16).reshape(480, 640)
        assert set(np.unique(mm)) == {1000, 1400, 2000}
        info = got["info"][0]
        k = GeneratedScene().intrinsics()
        assert list(info.k) == pytest.approx(k.k()) and (info.width, info.height) == (640, 480)
    finally:
        executor.shutdown()
        rclpy.shutdown(context=context)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_video_source_stops_cleanly_on_a_signal(stop):
    """Ctrl-C, launch's escalation, systemd: the source stops at once without a traceback."""
    source = subprocess.Popen(
        [sys.executable, "-m", "pam_ros.tools.demo.video_source", "--ros-args",
         "-p", "source:=generated", "-p", "rate_hz:=30.0", "-p", "loop:=true"],
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    time.sleep(3.0)  # publishing by now
    assert source.poll() is None
    source.send_signal(stop)
    _, errors = source.communicate(timeout=10)
    assert source.returncode == 0, errors
    assert "Traceback" not in errors and "context is invalid" not in errors, errors
