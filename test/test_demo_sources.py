"""Frame sources of the demo and the video_source node publishing over real DDS."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest
import rclpy
from conftest import DAVIS, davis_frames
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from pam_ros.demo.frame_sources import (
    FrameSourceError,
    GeneratedScene,
    ImageFolderFrames,
    VideoFileFrames,
    open_frame_source,
)
from pam_ros.demo.video_source import VideoSourceNode


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
    if not DAVIS.exists():
        pytest.skip("no DAVIS data")
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
