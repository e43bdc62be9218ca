"""RGB-D over DDS: the depth source runs in another process (video_source, generated scene with
aligned depth); the node (tiny random models) pairs depth with colour and publishes 3D; TF is
looked up by a tf2_ros.Buffer in a third process. Bad depth from the source: objects say why."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from conftest import wait_for
from test_node_ros import Harness, node_parameters
from visualization_msgs.msg import Marker, MarkerArray

from pam_ros.msg import TrackedObjectArray
from pam_ros.srv import AddObject, Describe
from pam_ros.tools.demo.frame_sources import GeneratedScene

pytest.importorskip("message_filters", reason="message_filters (ros2 extras) not installed")
vision_msgs = pytest.importorskip("vision_msgs.msg", reason="vision_msgs not installed")
pytest.importorskip("tf2_ros", reason="tf2_ros not installed")

SCENE = GeneratedScene(num_frames=1)  # what the source publishes with max_frames:=1: frame 0


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    from pam_ros.testing.random_sam2 import write_random_checkpoint
    from pam_ros.tracking import TrackerConfig

    folder = tmp_path_factory.mktemp("depth_models")
    sam = write_random_checkpoint(TrackerConfig(model_size="tiny", image_size=256), folder / "s.pt")
    return str(sam), ""


@pytest.fixture(scope="module")
def harness(ros_context, checkpoints):
    parameters = node_parameters(
        checkpoints,
        **{
            "semantics.enabled": False,
            "qos.reliability": "best_effort",  # the camera's sensor-data QoS
            "depth.enabled": True,
            "depth.slop_s": 0.01,
            "tf.enabled": True,
            "tf.prefix": "pam_test_object_",
        },
    )
    h = Harness(ros_context, parameters)
    h.detections: list = []
    h.client.create_subscription(
        vision_msgs.Detection3DArray, "detections_3d", h.detections.append, 10
    )
    h.markers_3d: list = []
    h.client.create_subscription(MarkerArray, "markers_3d", h.markers_3d.append, 10)
    yield h
    h.close()


def start_source(namespace: str, fault: str = "none") -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pam_ros.tools.demo.video_source", "--ros-args",
         "-r", f"__ns:={namespace}", "-p", "source:=generated", "-p", "rate_hz:=4.0",
         "-p", "loop:=true", "-p", "max_frames:=1", "-p", "depth:=true",
         "-p", "frame_id:=camera_optical", "-p", f"depth_fault:={fault}",
         "--log-level", "warn"],
    )  # fmt: skip


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def true_position_under(mask: np.ndarray) -> np.ndarray:
    depth = SCENE.depth_frame(0)  # analytic: one flat surface per pixel
    values, counts = np.unique(depth[mask], return_counts=True)
    surface = values[np.argmax(counts)]
    v, u = np.nonzero(mask & (depth == surface))
    k = SCENE.intrinsics()
    x, y = (u - k.cx) * surface / k.fx, (v - k.cy) * surface / k.fy
    return np.array([np.median(x), np.median(y), surface])


def newest_with_object(h, after: int) -> TrackedObjectArray | None:
    for msg in reversed(h.tracked[after:]):
        if msg.objects:
            return msg
    return None


TF_LOOKUP = """
import json, sys, time, rclpy, tf2_ros
from rclpy.time import Time
rclpy.init()
node = rclpy.create_node("tf_lookup_probe")
buffer = tf2_ros.Buffer()
listener = tf2_ros.TransformListener(buffer, node)
deadline = time.monotonic() + 40
while time.monotonic() < deadline:
    rclpy.spin_once(node, timeout_sec=0.1)
    try:
        t = buffer.lookup_transform(sys.argv[1], sys.argv[2], Time()).transform.translation
    except Exception as error:
        last = repr(error)
        continue
    print(json.dumps([t.x, t.y, t.z])); break
else:
    print(json.dumps({"error": last}))
"""


def test_prompted_object_has_its_true_3d_position_on_every_output(harness):
    h = harness
    source = start_source(h.namespace)
    try:
        wait_for(lambda: h.node.camera().depth_cache.snapshot().pairs >= 2, what="depth pairs")
        wait_for(lambda: h.tracked, what="a tracked frame")
        disc_box = SCENE.object_boxes(0)[0]
        request = AddObject.Request(use_box=True)
        x0, y0, x1, y1 = disc_box
        request.box.x_offset, request.box.y_offset = x0, y0
        request.box.width, request.box.height = x1 - x0, y1 - y0
        assert h.call(h.add, request).success
        start = len(h.tracked)
        wait_for(lambda: (m := newest_with_object(h, start)) and m.objects[0].has_position,
                 what="a 3D position")  # fmt: skip
        msg = newest_with_object(h, start)
        (obj,) = msg.objects
        mask = np.frombuffer(bytes(obj.mask.data), np.uint8).reshape(480, 640) > 0
        # The random model's mask is informative (neither empty nor full) but need not be on
        # the disc: the truth is the surface most of the mask lies on (disc 1 m, square 1.4 m,
        # wall 2 m), its true 3D points under the mask, median per axis.
        assert 0 < mask.sum() < mask.size
        true_position = true_position_under(mask)
        got = np.array([obj.position.x, obj.position.y, obj.position.z])
        assert obj.position_frame_id == "camera_optical"
        assert abs(got[2] - true_position[2]) < 0.01, (got, true_position)
        # x, y generously: the random model's masks are fine stripes, and erosion (3 px) or the
        # sampled grid of a frame-sized box change which stripes count (up to ~15 cm at 2 m);
        # accuracy on real-shaped masks is tested against analytic truth in test_geometry.py.
        assert np.abs(got[:2] - true_position[:2]).max() < 0.2, (got, true_position)
        assert obj.valid_depth_fraction == pytest.approx(1.0)
        assert obj.no_position_reason == ""
        # detections_3d on the same source header
        stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        detection_msg = wait_for(
            lambda: next(
                (d for d in h.detections
                 if (d.header.stamp.sec, d.header.stamp.nanosec) == stamp), None),
            what="detections_3d of that frame",
        )  # fmt: skip
        (detection,) = detection_msg.detections
        assert detection_msg.header.frame_id == "camera_optical" and detection.id == obj.id
        assert detection.results[0].hypothesis.class_id == "unknown"  # semantics off
        pose = detection.results[0].pose.pose.position
        assert (pose.x, pose.y, pose.z) == pytest.approx(tuple(got), abs=1e-6)
        assert detection.bbox.size.x == pytest.approx(obj.extent.x)
        assert abs(detection.bbox.size.z) < 0.02  # a flat card
        # rviz: a box and a label in the camera frame
        markers = wait_for(
            lambda: next((m for m in reversed(h.markers_3d) if len(m.markers) == 3), None),
            what="markers_3d",
        )
        clear, cube, label = markers.markers
        assert (clear.action, cube.type, label.type) == (
            Marker.DELETEALL,
            Marker.CUBE,
            Marker.TEXT_VIEW_FACING,
        )
        assert cube.header.frame_id == "camera_optical" and label.text == obj.id
        assert abs(cube.pose.position.z - true_position[2]) < 0.02
        # Describe answers where it is
        # (the newest tracked frame's; under load that frame may still lack its depth pair,
        # no_depth, until the next one)
        answer = wait_for(
            lambda: (a := h.call(h.describe, Describe.Request(id=obj.id))).has_position and a,
            what="a describe answer with a position",
        )
        assert answer.position.header.frame_id == "camera_optical"
        assert abs(answer.position.point.z - true_position[2]) < 0.01
        # TF frame, looked up by a Buffer in another process
        probe = subprocess.run(
            [sys.executable, "-c", TF_LOOKUP, "camera_optical", f"pam_test_object_{obj.id}",
             "--ros-args", "-r", f"__ns:={h.namespace}"],
            capture_output=True, text=True, timeout=60, env=os.environ,
        )  # fmt: skip
        looked_up = json.loads(probe.stdout.strip().splitlines()[-1])
        assert isinstance(looked_up, list), looked_up
        assert abs(looked_up[2] - true_position[2]) < 0.01
    finally:
        stop(source)


@pytest.mark.parametrize(
    "fault, reason, counter",
    [
        ("zero", "no_valid_depth", None),
        ("bad_encoding", "bad_depth", "bad_depth"),
        ("zero_k", "bad_intrinsics", "bad_camera_info"),
        ("other_aspect", "bad_intrinsics", "bad_camera_info"),
        ("unpaired", "no_depth", "colour_without_depth"),
    ],
)
def test_bad_depth_never_stops_tracking_and_objects_say_why(harness, fault, reason, counter):
    h = harness
    wait_for(lambda: h.node.object_ids or _prompt(h),
             what="an object")  # fmt: skip
    before = h.node.camera().depth_cache.snapshot()
    start = len(h.tracked)
    source = start_source(h.namespace, fault)
    try:

        def said_why():
            msg = newest_with_object(h, start)
            return msg and msg.objects[0].no_position_reason.startswith(reason + ":")

        wait_for(said_why, what=f"objects saying {reason}")
        assert not newest_with_object(h, start).objects[0].has_position
        # Tracking goes on through the fault: more frames tracked, each with the object, its
        # presence and mask consistent with its score (the position may come and go with
        # frames that do or do not pair with depth).
        tracked_then = len(h.tracked)
        wait_for(lambda: len(h.tracked) >= tracked_then + 3, what="tracking going on")
        for msg in h.tracked[tracked_then:]:
            (obj,) = msg.objects
            assert obj.present == (obj.score > 0) and (obj.mask_area > 0) == obj.present
        if counter:
            wait_for(lambda: getattr(h.node.camera().depth_cache.snapshot(), counter)
                     > getattr(before, counter), what=counter)  # fmt: skip
            wait_for(lambda: _depth_status(h, counter), what=f"/diagnostics {counter}")
        assert h.node.lifecycle_state == "active"
    finally:
        stop(source)


def _prompt(h) -> bool:
    """Prompt the disc on whatever frame the node has (for the bad-input tests run alone)."""
    source = start_source(h.namespace)
    try:
        wait_for(lambda: h.tracked, what="a tracked frame")
        x0, y0, x1, y1 = SCENE.object_boxes(0)[0]
        request = AddObject.Request(use_box=True)
        request.box.x_offset, request.box.y_offset = x0, y0
        request.box.width, request.box.height = x1 - x0, y1 - y0
        return h.call(h.add, request).success
    finally:
        stop(source)


def _depth_status(h, counter: str) -> bool:
    for array in reversed(h.diagnostics[-5:]):
        for status in array.status:
            if status.name.endswith(": depth"):
                values = {kv.key: kv.value for kv in status.values}
                return int(values.get(counter, "0")) > 0 and status.level == status.WARN
    return False


def test_target_frame_when_tf_knows_it_and_a_diagnostic_when_not(ros_context, checkpoints):
    from geometry_msgs.msg import TransformStamped
    from tf2_ros import StaticTransformBroadcaster

    parameters = node_parameters(
        checkpoints,
        **{
            "semantics.enabled": False,
            "qos.reliability": "best_effort",
            "depth.enabled": True,
            "tf.target_frame": "pam_test_base",
        },
    )
    h = Harness(ros_context, parameters)
    detections: list = []
    h.client.create_subscription(
        vision_msgs.Detection3DArray, "detections_3d", detections.append, 10
    )
    source = start_source(h.namespace)
    try:
        wait_for(lambda: h.tracked, what="a tracked frame")
        x0, y0, x1, y1 = SCENE.object_boxes(0)[0]
        request = AddObject.Request(use_box=True)
        request.box.x_offset, request.box.y_offset = x0, y0
        request.box.width, request.box.height = x1 - x0, y1 - y0
        assert h.call(h.add, request).success
        # TF does not know pam_test_base yet: outputs stay in the camera frame, diagnostics say so
        wait_for(
            lambda: h.node.camera().outputs_3d.target_frame_failures > 0, what="a lookup failure"
        )
        wait_for(lambda: _depth_status(h, "target_frame_failures"), what="/diagnostics")
        assert "pam_test_base" in h.node.camera().outputs_3d.target_frame_error
        in_camera = wait_for(lambda: next((d for d in reversed(detections) if d.detections), None),
                             what="detections")  # fmt: skip
        assert in_camera.header.frame_id == "camera_optical"
        # camera_optical in pam_test_base: 0.5 m up (z), turned 90 degrees about z
        transform = TransformStamped()
        transform.header.frame_id, transform.child_frame_id = "pam_test_base", "camera_optical"
        transform.header.stamp = h.client.get_clock().now().to_msg()
        transform.transform.translation.z = 0.5
        transform.transform.rotation.z = transform.transform.rotation.w = float(np.sqrt(0.5))
        broadcaster = StaticTransformBroadcaster(h.client)
        broadcaster.sendTransform(transform)
        start = len(detections)

        def in_base_frame():
            for d in reversed(detections[start:]):
                if d.header.frame_id == "pam_test_base" and d.detections:
                    return d
            return None

        in_base = wait_for(in_base_frame, what="detections in pam_test_base")
        stamp = (in_base.header.stamp.sec, in_base.header.stamp.nanosec)
        tracked = wait_for(  # tracked_objects goes out just after the 3D outputs of a frame
            lambda: next(
                (m for m in h.tracked if (m.header.stamp.sec, m.header.stamp.nanosec) == stamp),
                None,
            ),
            what="the tracked_objects of those detections",
        )
        p = tracked.objects[0].position  # in the camera frame
        pose = in_base.detections[0].results[0].pose.pose.position
        assert (pose.x, pose.y, pose.z) == pytest.approx((-p.y, p.x, p.z + 0.5), abs=1e-5)
    finally:
        stop(source)
        h.close()
