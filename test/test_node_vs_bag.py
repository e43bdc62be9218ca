"""The node and the bag tool answer the same for the same frames and prompts.

The same 6 DAVIS frames (bgr8, the same headers) and the same prompt (a box named "car" on the
first frame) go (a) to the pam_ros node running in its own process, from this process over DDS,
one frame at a time, the box through the add_object service once the first frame is tracked,
and (b) to `python -m pam_ros.tools.bag annotate` (its own process too) as a rosbag2 with a
prompts file. Both build their models with the one factory (pam_ros.pipeline.models) from the
same settings (tiny random SAM 2 at 256 px, float32, one torch thread), so frames 1-5 must give
identical `tracked_objects` (ids, names, origins, presence, scores, boxes, masks) and
`detections`. (Frame 0 differs by design: in the node the box arrives after frame 0 was
published, in the bag it is applied to frame 0's output.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import cv2
import numpy as np
import pytest
import rclpy
from conftest import REPO, WAIT_S, davis_frames
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, RegionOfInterest
from test_bag import header, read_bag, stamp_ns, write_source_bag

from pam_ros.msg import TrackedObjectArray
from pam_ros.ros.image_conversion import rgb_to_image_msg
from pam_ros.srv import AddObject

vision_msgs = pytest.importorskip("vision_msgs.msg", reason="vision_msgs not installed")
from rosbags.rosbag2 import StoragePlugin  # noqa: E402

FRAMES = 6
BOX = (300, 150, 600, 380)  # x0, y0, x1, y1 on the 854 x 480 car-shadow frames
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # the same arithmetic in both


def tracked_fields(msg: TrackedObjectArray) -> list[tuple]:
    return [
        (
            o.id, o.name, o.origin, o.present, o.score,
            (o.box.x_offset, o.box.y_offset, o.box.width, o.box.height),
            o.mask_layout, o.mask_area, bytes(o.mask.data),
        )
        for o in msg.objects
    ]  # fmt: skip


def detection_fields(msg) -> list[tuple]:
    return [
        (
            d.id, d.bbox.center.position.x, d.bbox.center.position.y, d.bbox.size_x,
            d.bbox.size_y, [(r.hypothesis.class_id, r.hypothesis.score) for r in d.results],
        )
        for d in msg.detections
    ]  # fmt: skip


def node_outputs(tmp_path, checkpoints, frames) -> tuple[dict, dict]:
    """{stamp: TrackedObjectArray}, {stamp: Detection2DArray} from the node in its process."""
    sam, _ = checkpoints
    namespace = f"/pam_vs_bag_{os.getpid()}"
    log_path = tmp_path / "node.log"
    command = [
        sys.executable, str(REPO / "bin" / "pam_node"), "--ros-args", "-r", f"__ns:={namespace}",
        "-p", "tracker.model_size:=tiny", "-p", "tracker.image_size:=256",
        "-p", f"tracker.checkpoint:={sam}", "-p", "semantics.enabled:=false",
        "-p", "device:=cpu", "-p", "dtype:=float32", "-p", "overlay_rate_hz:=0.0",
        "-p", "qos.reliability:=reliable",
    ]  # fmt: skip
    with log_path.open("w") as log:
        node = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **ONE_THREAD}
        )
    context = rclpy.Context()
    rclpy.init(context=context)
    client = rclpy.create_node("robot", namespace=namespace, context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(client)
    tracked: dict[int, TrackedObjectArray] = {}
    detections: dict[int, object] = {}
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    client.create_subscription(
        TrackedObjectArray, "tracked_objects", lambda m: tracked.update({stamp_ns(m): m}), reliable
    )
    client.create_subscription(
        vision_msgs.Detection2DArray,
        "detections",
        lambda m: detections.update({stamp_ns(m): m}),
        reliable,
    )
    images = client.create_publisher(Image, "image", reliable)
    add = client.create_client(AddObject, "add_object")

    def spin_until(condition, what):
        import time

        deadline = time.monotonic() + WAIT_S
        while not condition():
            assert time.monotonic() < deadline, f"timed out: {what}\n{log_path.read_text()}"
            assert node.poll() is None, log_path.read_text()
            executor.spin_once(timeout_sec=0.05)

    try:
        assert add.wait_for_service(timeout_sec=WAIT_S), log_path.read_text()
        spin_until(lambda: images.get_subscription_count() > 0, "the node's image subscription")
        for index, frame in enumerate(frames):
            msg = rgb_to_image_msg(frame, header(index), "bgr8")
            images.publish(msg)
            stamp = stamp_ns(msg)
            spin_until(lambda s=stamp: s in tracked and s in detections, f"frame {index}")
            if index == 0:
                request = AddObject.Request(name="car", use_box=True)
                x0, y0, x1, y1 = BOX
                request.box = RegionOfInterest(
                    x_offset=x0, y_offset=y0, width=x1 - x0, height=y1 - y0
                )
                future = add.call_async(request)
                executor.spin_until_future_complete(future, timeout_sec=WAIT_S)
                assert future.result().success, future.result().message
    finally:
        executor.shutdown()
        client.destroy_node()
        rclpy.shutdown(context=context)
        node.send_signal(signal.SIGINT)
        node.wait(timeout=30)
    return tracked, detections


def bag_outputs(tmp_path, checkpoints, frames) -> tuple[dict, dict]:
    sam, _ = checkpoints
    source = write_source_bag(tmp_path / "source", frames, compressed=False,
                              storage=StoragePlugin.MCAP)  # fmt: skip
    prompts = tmp_path / "prompts.yaml"
    prompts.write_text(f"prompts:\n  - {{frame: 0, name: car, box: {list(BOX)}}}\n")
    done = subprocess.run(
        [sys.executable, "-m", "pam_ros.tools.bag", "annotate", str(source),
         str(tmp_path / "annotated"), "--prompts", str(prompts), "--tracker-size", "tiny",
         "--image-size", "256", "--tracker-checkpoint", sam, "--no-semantics", "--device", "cpu",
         "--dtype", "float32", "--no-progress"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={**os.environ, **ONE_THREAD},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    messages = read_bag(tmp_path / "annotated")
    tracked = {stamp_ns(m): m for topic, _, _, _, m in messages if topic == "/tracked_objects"}
    found = {stamp_ns(m): m for topic, _, _, _, m in messages if topic == "/detections"}
    return tracked, found


def test_node_and_bag_tool_publish_the_same_for_the_same_frames(tmp_path, checkpoints):
    frames = [
        np.ascontiguousarray(cv2.imread(str(p))[:, :, ::-1])
        for p in davis_frames("car-shadow")[:FRAMES]
    ]
    (tmp_path / "node").mkdir()
    (tmp_path / "bag").mkdir()
    node_tracked, node_detections = node_outputs(tmp_path / "node", checkpoints, frames)
    bag_tracked, bag_detections = bag_outputs(tmp_path / "bag", checkpoints, frames)
    stamps = sorted(bag_tracked)
    assert len(stamps) == FRAMES and set(stamps) <= set(node_tracked)
    compared = 0
    for stamp in stamps[1:]:
        node_msg, bag_msg = node_tracked[stamp], bag_tracked[stamp]
        assert [o.id for o in node_msg.objects] == ["1"], "the prompted object is tracked"
        obj = node_msg.objects[0]
        area = node_msg.image_width * node_msg.image_height
        assert obj.present and 0 < obj.mask_area < area  # informative masks
        assert (node_msg.image_width, node_msg.image_height) == (
            bag_msg.image_width,
            bag_msg.image_height,
        )
        assert tracked_fields(node_msg) == tracked_fields(bag_msg), f"frame at {stamp}"
        assert detection_fields(node_detections[stamp]) == detection_fields(
            bag_detections[stamp]
        ), f"detections at {stamp}"
        assert node_detections[stamp].detections[0].results[0].hypothesis.class_id == "car"
        compared += 1
    assert compared == FRAMES - 1
    # what is compared is not trivially equal: the masks change from frame to frame
    masks = {tracked_fields(bag_tracked[s])[0][8] for s in stamps[1:]}
    assert len(masks) == FRAMES - 1
