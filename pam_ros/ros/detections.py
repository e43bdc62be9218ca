"""vision_msgs in and out: detector boxes as prompts, tracked objects as Detection2DArray.

- in  `detections_in` (vision_msgs/Detection2DArray): boxes from an upstream detector
  (yolo_ros, Isaac ROS Grounding DINO, any OWL/YOLO node; remap it to the detector's topic).
  Each box becomes an object named after its best hypothesis' `class_id` (else the detection's
  `id`); a box overlapping a
  tracked object (IoU > 0.5) is skipped, as on `boxes`.
- out `detections` (vision_msgs/Detection2DArray, on the source image header): one Detection2D
  per present object: its box (centre + size, pixels), the track id as `id`, and one hypothesis
  whose `class_id` is the latest PAM category (else the object's name, else "object") and whose
  `score` is the object's presence probability (sigmoid of TrackedObject.score, a logit).
  rviz and Foxglove draw these; the custom TrackedObjectArray stays the full contract.

vision_msgs is not on PyPI (it comes from the ROS 2 install or ../shared/ros2_extras): imported
guarded; without it both topics are off with one log line.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from rclpy.qos import QoSProfile, ReliabilityPolicy

from pam_ros.ros.image_intake import DeliveryCounters, publisher_events, subscription_events
from pam_ros.ros.topics import camera_topic

DEFAULT_CLASS_ID = "object"  # class_id of an object with neither a category nor a name yet
BoxPixels = tuple[int, int, int, int]  # x0, y0, x1, y1: inclusive-exclusive pixel box


@dataclass(frozen=True)
class DetectionPrompt:
    box: BoxPixels
    name: str  # the best hypothesis' class_id, else the detection's id ("" when neither)


def import_error() -> str | None:
    """None when vision_msgs imports, else why not."""
    try:
        import vision_msgs.msg  # noqa: F401
    except ImportError as exc:
        return str(exc)
    return None


def prompts_from_detections(msg) -> list[DetectionPrompt]:
    """Detection2DArray (an rclpy message or a deserialised bag message) → boxes in pixels
    (rounded outwards), each named by its best hypothesis' class_id, else the detection's id.
    Boxes of zero or negative size are dropped. The node and the bag tool both use this."""
    prompts = []
    for detection in msg.detections:
        bbox = detection.bbox
        cx, cy = bbox.center.position.x, bbox.center.position.y
        half_w, half_h = bbox.size_x / 2.0, bbox.size_y / 2.0
        if not (half_w > 0 and half_h > 0) or not all(map(math.isfinite, (cx, cy))):
            continue
        box = (
            math.floor(cx - half_w),
            math.floor(cy - half_h),
            math.ceil(cx + half_w),
            math.ceil(cy + half_h),
        )
        best = max(detection.results, key=lambda r: r.hypothesis.score, default=None)
        name = best.hypothesis.class_id if best is not None else ""
        prompts.append(DetectionPrompt(box, name or str(detection.id or "")))
    return prompts


def _sigmoid(logit: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, logit))))


def detection_array_msg(header, result, names: dict[str, str], semantics: dict):
    """One tracker FrameResult (objects: id → ObjectResult with box, score, present) → the
    Detection2DArray of its present objects, on `header` (the source image's)."""
    from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

    array = Detection2DArray(header=header)
    for object_id, obj in result.objects.items():
        if not obj.present or obj.box is None:
            continue
        x0, y0, x1, y1 = (float(v) for v in obj.box)
        detection = Detection2D(header=header, id=str(object_id))
        detection.bbox.center.position.x = (x0 + x1) / 2.0
        detection.bbox.center.position.y = (y0 + y1) / 2.0
        detection.bbox.size_x, detection.bbox.size_y = x1 - x0, y1 - y0
        record = semantics.get(object_id)
        category = record.category if record is not None else ""
        hypothesis = ObjectHypothesisWithPose()
        hypothesis.hypothesis.class_id = category or names.get(object_id, "") or DEFAULT_CLASS_ID
        hypothesis.hypothesis.score = _sigmoid(float(obj.score))
        detection.results = [hypothesis]
        array.detections.append(detection)
    return array


class DetectionsIO:
    """The node's vision_msgs topics: the `detections` lifecycle publisher from configure to
    cleanup, the `detections_in` subscription while active. `create` returns None (and logs
    one line) without vision_msgs."""

    def __init__(self, node, publisher, counters: DeliveryCounters, camera: str = "") -> None:
        self._node = node
        self._publisher = publisher
        self._counters = counters
        self._camera = camera
        self._subscription = None

    @classmethod
    def create(cls, node, counters: DeliveryCounters, camera: str = "") -> DetectionsIO | None:
        """`camera`: the camera's name; its topics are `<camera>/detections` (and _in)."""
        error = import_error()
        if error is not None:
            node.get_logger().info(
                f"vision_msgs not installed ({error}): detections / detections_in are off"
            )
            return None
        from vision_msgs.msg import Detection2DArray

        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        topic = camera_topic(camera, "detections")
        publisher = node.create_lifecycle_publisher(
            Detection2DArray,
            topic,
            reliable,
            event_callbacks=publisher_events(node, topic, counters),
        )
        return cls(node, publisher, counters, camera)

    def subscribe(
        self, on_prompts: Callable[[list[DetectionPrompt]], None], callback_group=None
    ) -> None:
        from vision_msgs.msg import Detection2DArray

        topic = camera_topic(self._camera, "detections_in")
        self._subscription = self._node.create_subscription(
            Detection2DArray,
            topic,
            lambda msg: on_prompts(prompts_from_detections(msg)),
            10,
            callback_group=callback_group,
            event_callbacks=subscription_events(self._node, topic, self._counters),
        )

    def unsubscribe(self) -> None:
        if self._subscription is not None:
            self._node.destroy_subscription(self._subscription)
            self._subscription = None

    def publish(self, header, result, names: dict[str, str], semantics: dict) -> None:
        self._publisher.publish(detection_array_msg(header, result, names, semantics))

    def destroy(self) -> None:
        self.unsubscribe()
        self._node.destroy_lifecycle_publisher(self._publisher)
