"""vision_msgs in and out: detector boxes on `detections_in` become named objects, the node's
`detections` carry every present object with its box, track id and class, on the source header."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import rclpy

# Fixtures shared with the delivery tests (one rclpy context, a tiny random SAM 2, a node).
from conftest import davis_frames, wait_for
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from test_delivery import make_node, sam_checkpoint  # noqa: F401

from pam_ros.msg import TrackedObjectArray
from pam_ros.ros.image_conversion import rgb_to_image_msg
from pam_ros.ros.message_builders import stamp_from_ns, stamp_to_ns

vision_msgs_msg = pytest.importorskip("vision_msgs.msg", reason="vision_msgs not installed")
Detection2D = vision_msgs_msg.Detection2D
Detection2DArray = vision_msgs_msg.Detection2DArray
ObjectHypothesisWithPose = vision_msgs_msg.ObjectHypothesisWithPose


def _detection(box, *hypotheses) -> Detection2D:
    x0, y0, x1, y1 = box
    detection = Detection2D()
    detection.bbox.center.position.x, detection.bbox.center.position.y = (
        (x0 + x1) / 2,
        (y0 + y1) / 2,
    )
    detection.bbox.size_x, detection.bbox.size_y = float(x1 - x0), float(y1 - y0)
    for class_id, score in hypotheses:
        result = ObjectHypothesisWithPose()
        result.hypothesis.class_id, result.hypothesis.score = class_id, score
        detection.results.append(result)
    return detection


def test_prompts_from_detections_take_the_best_class_and_drop_empty_boxes():
    from pam_ros.ros.detections import DetectionPrompt, prompts_from_detections

    msg = Detection2DArray()
    msg.detections = [
        _detection((10, 20, 50, 60), ("truck", 0.2), ("car", 0.9)),
        _detection((5.5, 5.5, 9.5, 9.5)),  # no hypothesis: unnamed; rounded outwards
        _detection((30, 30, 30, 40), ("line", 1.0)),  # zero width: dropped
    ]
    assert prompts_from_detections(msg) == [
        DetectionPrompt((10, 20, 50, 60), "car"),
        DetectionPrompt((5, 5, 10, 10), ""),
    ]


def test_detection_array_names_each_present_object_by_its_latest_category():
    from types import SimpleNamespace

    from std_msgs.msg import Header

    from pam_ros.ros.detections import detection_array_msg

    header = Header(frame_id="camera", stamp=stamp_from_ns(5_000_000_123))
    result = SimpleNamespace(
        objects={
            "1": SimpleNamespace(box=(10, 20, 50, 80), score=2.0, present=True),
            "2": SimpleNamespace(box=(0, 0, 4, 4), score=-3.0, present=False),  # left out
            "3": SimpleNamespace(box=(1, 2, 3, 4), score=0.0, present=True),
        }
    )
    semantics = {"1": SimpleNamespace(category="coffee mug")}
    array = detection_array_msg(header, result, {"3": "cup"}, semantics)
    assert array.header == header and [d.id for d in array.detections] == ["1", "3"]
    mug, cup = array.detections
    assert (mug.bbox.center.position.x, mug.bbox.center.position.y) == (30.0, 50.0)
    assert (mug.bbox.size_x, mug.bbox.size_y) == (40.0, 60.0)
    assert mug.results[0].hypothesis.class_id == "coffee mug"  # human-readable category
    assert mug.results[0].hypothesis.score == pytest.approx(1 / (1 + np.exp(-2.0)))
    assert cup.results[0].hypothesis.class_id == "cup"  # no category yet: the name
    assert cup.header == header


def test_detector_boxes_in_and_detections_out_over_dds(make_node, ros_context):  # noqa: F811
    namespace = "/pam_vision_0"
    node = make_node(namespace, **{"qos.reliability": "reliable"})
    client = rclpy.create_node("vision_client", namespace=namespace, context=ros_context)
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    tracked: list[TrackedObjectArray] = []
    detections_out: list = []
    client.create_subscription(TrackedObjectArray, "tracked_objects", tracked.append, reliable)
    client.create_subscription(Detection2DArray, "detections", detections_out.append, reliable)
    image_pub = client.create_publisher(Image, "image", reliable)
    detector_pub = client.create_publisher(Detection2DArray, "detections_in", reliable)
    executor = rclpy.executors.SingleThreadedExecutor(context=ros_context)
    executor.add_node(client)
    import threading

    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        frames = [cv2.imread(str(p))[:, :, ::-1].copy() for p in davis_frames("car-shadow")[:3]]

        def track(index: int) -> TrackedObjectArray:
            stamp = stamp_from_ns((index + 1) * 1_000_000_000)
            image_pub.publish(rgb_to_image_msg(frames[index], _header(stamp), "rgb8"))
            return wait_for(
                lambda: next((m for m in tracked if m.header.stamp == stamp), None),
                what=f"frame {index} tracked",
            )

        wait_for(lambda: detector_pub.get_subscription_count() > 0, what="detections_in")
        wait_for(lambda: image_pub.get_subscription_count() > 0, what="image subscriber")
        track(0)
        car = (300, 180, 560, 360)  # the car in car-shadow's first frame (854x480)
        msg = Detection2DArray()
        msg.detections = [
            _detection(car, ("car", 0.9), ("truck", 0.3)),
            _detection((302, 182, 558, 358), ("car", 0.8)),  # the same car again: skipped
        ]
        detector_pub.publish(msg)
        wait_for(
            lambda: len(node.object_ids) == 1 and node.camera().pipeline.names, what="the prompt"
        )
        wait_for(lambda: True, timeout=0.5)  # the second box is handled in the same callback
        assert list(node.camera().pipeline.names.values()) == ["car"]
        result = track(1)
        (obj,) = result.objects
        assert obj.name == "car" and obj.present and 0 < obj.mask_area < 854 * 480
        out = wait_for(
            lambda: next(
                (m for m in detections_out if m.header.stamp == result.header.stamp), None
            ),
            what="detections for frame 1",
        )
        assert out.header == result.header  # the source image's header
        (detection,) = out.detections
        assert detection.id == obj.id
        assert detection.results[0].hypothesis.class_id == "car"  # semantics off: the name
        assert 0.5 < detection.results[0].hypothesis.score <= 1.0
        box = obj.box
        assert detection.bbox.size_x == box.width and detection.bbox.size_y == box.height
        assert detection.bbox.center.position.x == box.x_offset + box.width / 2
        assert stamp_to_ns(out.header.stamp) == 2_000_000_000
    finally:
        executor.shutdown(timeout_sec=10)
        client.destroy_node()


def _header(stamp):
    from std_msgs.msg import Header

    return Header(stamp=stamp, frame_id="camera")
