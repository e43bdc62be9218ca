"""Tracker results + cached semantics → the node's output messages.

Pure functions, no node state: TrackedObjectArray (on the SOURCE image's header), rviz
MarkerArray (text labels and boxes), and the DiagnosticArray the node publishes periodically.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from builtin_interfaces.msg import Duration, Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point
from sensor_msgs.msg import RegionOfInterest
from std_msgs.msg import Header
from visualization_msgs.msg import Marker, MarkerArray

from pam_ros.msg import ObjectSemantics, TrackedObject, TrackedObjectArray
from pam_ros.pipeline.frame_pipeline import ORIGIN_PROMPT
from pam_ros.pipeline.overlay import color_for
from pam_ros.pipeline.semantics_scheduler import ObjectSemanticsRecord
from pam_ros.ros.image_conversion import mono8_image_msg
from pam_ros.ros.stamps import stamp_from_ns, stamp_to_ns  # noqa: F401 (re-exported)

MASK_LAYOUT_CODES = {
    "none": TrackedObject.MASK_NONE,
    "full_frame": TrackedObject.MASK_FULL_FRAME,
    "cropped": TrackedObject.MASK_CROPPED,
}


def semantics_msg(record: ObjectSemanticsRecord | None) -> ObjectSemantics:
    msg = ObjectSemantics()
    if record is None:
        return msg
    msg.stamp = stamp_from_ns(record.stamp_ns)
    msg.category = record.category
    msg.definition = record.definition
    msg.function = record.function
    msg.caption = record.caption
    msg.detailed_caption = record.detailed_caption
    msg.video_caption = record.video_caption
    msg.language = record.language
    msg.latency = float(record.latency)
    msg.model = record.model
    msg.random_weights = bool(record.random_weights)
    return msg


def roi_msg(box: tuple[int, int, int, int] | None) -> RegionOfInterest:
    roi = RegionOfInterest()
    if box is not None:
        x0, y0, x1, y1 = (int(v) for v in box)
        roi.x_offset, roi.y_offset = x0, y0
        roi.width, roi.height = max(0, x1 - x0), max(0, y1 - y0)
    return roi


def tracked_object_msg(
    obj,
    name: str,
    record: ObjectSemanticsRecord | None,
    mask_layout: str,
    header,
    origin: str = ORIGIN_PROMPT,
) -> TrackedObject:
    """One tracker ObjectResult (object_id, mask, score, present, box) → TrackedObject."""
    msg = TrackedObject()
    msg.id = obj.object_id
    msg.name = name
    msg.origin = origin
    msg.present = bool(obj.present)
    msg.score = float(obj.score)
    msg.box = roi_msg(obj.box)
    mask = obj.mask  # (H, W) bool at the source resolution
    msg.mask_area = int(np.count_nonzero(mask))
    if mask_layout == "full_frame":
        msg.mask_layout = TrackedObject.MASK_FULL_FRAME
        msg.mask = mono8_image_msg(mask, header)
    elif mask_layout == "cropped" and obj.box is not None and msg.mask_area > 0:
        x0, y0, x1, y1 = obj.box
        msg.mask_layout = TrackedObject.MASK_CROPPED
        msg.mask = mono8_image_msg(mask[y0:y1, x0:x1], header)
    else:
        msg.mask_layout = TrackedObject.MASK_NONE
    msg.semantics = semantics_msg(record)
    return msg


def tracked_object_array(
    header,
    frame_result,
    image_size: tuple[int, int],
    names: dict[str, str],
    semantics: dict[str, ObjectSemanticsRecord],
    mask_layout: str,
    tracking_latency: float,
    origins: dict[str, str] | None = None,
) -> TrackedObjectArray:
    """FrameResult (frame_index, objects) → TrackedObjectArray on the source `header`;
    `origins`: object id → how it was found (ORIGINS; "prompt" when not given)."""
    if mask_layout not in MASK_LAYOUT_CODES:
        raise ValueError(f"mask_layout {mask_layout!r} is not one of {list(MASK_LAYOUT_CODES)}")
    msg = TrackedObjectArray()
    msg.header = header
    msg.image_width, msg.image_height = int(image_size[0]), int(image_size[1])
    msg.frame_index = int(frame_result.frame_index)
    msg.tracking_latency = float(tracking_latency)
    msg.objects = [
        tracked_object_msg(
            obj,
            names.get(oid, ""),
            semantics.get(oid),
            mask_layout,
            header,
            (origins or {}).get(oid, ORIGIN_PROMPT),
        )
        for oid, obj in frame_result.objects.items()
    ]
    return msg


def marker_array(
    header,
    frame_result,
    semantics: dict[str, ObjectSemanticsRecord],
    frame_id: str,
    pixel_scale: float,
    lifetime_s: float = 1.0,
) -> MarkerArray:
    """A DELETEALL, then per present object a box (LINE_STRIP) and a label (TEXT_VIEW_FACING).

    Markers live in `frame_id` (the image frame when empty) on the image plane z = 0, with
    x = column * pixel_scale and y = row * pixel_scale.
    """
    # A new header: rclpy messages hold references, and `header` is the source image's header,
    # which the overlay and tracked_objects still carry (they must keep the image's frame).
    marker_header = Header(stamp=header.stamp, frame_id=frame_id or header.frame_id)
    markers = MarkerArray()
    clear = Marker()
    clear.header = marker_header
    clear.action = Marker.DELETEALL
    markers.markers.append(clear)
    lifetime = Duration(sec=int(lifetime_s), nanosec=int((lifetime_s % 1) * 1e9))
    for index, (oid, obj) in enumerate(frame_result.objects.items()):
        if not obj.present or obj.box is None:
            continue
        red, green, blue = (c / 255.0 for c in color_for(oid))
        x0, y0, x1, y1 = (v * pixel_scale for v in obj.box)
        box = Marker()
        box.header = marker_header
        box.ns, box.id, box.type, box.action = "pam_boxes", index, Marker.LINE_STRIP, Marker.ADD
        box.pose.orientation.w = 1.0
        box.scale.x = 2.0 * pixel_scale  # line width
        box.color.r, box.color.g, box.color.b, box.color.a = red, green, blue, 1.0
        box.points = [
            Point(x=x, y=y, z=0.0) for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0))
        ]
        box.lifetime = lifetime
        label = Marker()
        label.header = box.header
        label.ns, label.id = "pam_labels", index
        label.type, label.action = Marker.TEXT_VIEW_FACING, Marker.ADD
        label.pose.position = Point(x=(x0 + x1) / 2.0, y=y0 - 10.0 * pixel_scale, z=0.0)
        label.pose.orientation.w = 1.0
        label.scale.z = 20.0 * pixel_scale  # text height
        label.color.r, label.color.g, label.color.b, label.color.a = red, green, blue, 1.0
        record = semantics.get(oid)
        label.text = f"{oid}: {record.category}" if record and record.category else oid
        label.lifetime = lifetime
        markers.markers.extend([box, label])
    return markers


@dataclass(frozen=True)
class NodeHealth:
    """What /diagnostics reports about the node."""

    state: str  # lifecycle state label
    frame_rate_hz: float  # tracked frames per second over the last period
    tracking_latency_s: float  # newest frame: arrival → published
    frames_received: int
    frames_dropped: int
    frames_rejected: int  # bad encoding, zero size, too large
    tracking_errors: int
    objects: int
    semantic_queue_depth: int
    semantic_calls: int
    semantic_errors: int
    gpu_memory_mb: float  # allocated by torch on the device (0 on CPU)
    last_error: str = ""
    messages_lost: int = 0  # reported lost by DDS on the node's subscriptions (QoS events)
    incompatible_qos: int = 0  # QoS-incompatible peers seen by the node's subscriptions/publishers
    recent_qos_events: int = 0  # of those, seen within the recent window (what warns)
    image_qos: str = ""  # the image subscription's reliability now (it follows the camera)
    recent_errors: int = 0  # rejected frames + tracking + semantic errors in the recent window
    frame_failures: int = 0  # unexpected errors converting or publishing a frame
    recent_failures: int = 0  # tracking errors + frame failures in the recent window (ERROR)
    last_error_age_s: float | None = None  # seconds since last_error was seen (None: never)
    image_encoder: str = ""  # "torch" or "onnxruntime:<provider in use>" ("" unconfigured)
    silent_camera: str = ""  # the lone (unnamed) camera's "no frames ... for N s", else ""


def diagnostics_msg(stamp: Time, node_name: str, health: NodeHealth) -> DiagnosticArray:
    status = DiagnosticStatus()
    status.name = f"{node_name}: tracking and semantics"
    status.hardware_id = node_name
    if health.state != "active":
        status.level, status.message = DiagnosticStatus.STALE, f"node is {health.state}"
    elif health.recent_failures:
        status.level = DiagnosticStatus.ERROR
        status.message = health.last_error or "frames failed"
    elif health.recent_errors:
        status.level, status.message = DiagnosticStatus.WARN, health.last_error or "errors seen"
    elif health.recent_qos_events:
        status.level = DiagnosticStatus.WARN
        status.message = (
            f"QoS: {health.incompatible_qos} incompatible peer(s), "
            f"{health.messages_lost} message(s) lost by DDS"
        )
    elif health.silent_camera:
        status.level, status.message = DiagnosticStatus.WARN, health.silent_camera
    else:
        status.level, status.message = DiagnosticStatus.OK, "tracking"
    values = {
        "frame_rate_hz": f"{health.frame_rate_hz:.2f}",
        "tracking_latency_s": f"{health.tracking_latency_s:.4f}",
        "frames_received": str(health.frames_received),
        "frames_dropped": str(health.frames_dropped),
        "frames_rejected": str(health.frames_rejected),
        "tracking_errors": str(health.tracking_errors),
        "objects": str(health.objects),
        "semantic_queue_depth": str(health.semantic_queue_depth),
        "semantic_calls": str(health.semantic_calls),
        "semantic_errors": str(health.semantic_errors),
        "gpu_memory_mb": f"{health.gpu_memory_mb:.1f}",
        "image_encoder": health.image_encoder,
        "messages_lost": str(health.messages_lost),
        "incompatible_qos": str(health.incompatible_qos),
        "image_qos": health.image_qos,
        "recent_errors": str(health.recent_errors),
        "frame_failures": str(health.frame_failures),
        "recent_failures": str(health.recent_failures),
        "last_error": health.last_error,
        "last_error_age_s": (
            "" if health.last_error_age_s is None else f"{health.last_error_age_s:.1f}"
        ),
    }
    status.values = [KeyValue(key=key, value=value) for key, value in values.items()]
    array = DiagnosticArray()
    array.header.stamp = stamp
    array.status = [status]
    return array
