"""One camera of the node: its topics, its latest-frame mailbox, its counters and its outputs.

The node (`pam_node.py`) has one `CameraIO` per entry of the `cameras` parameter. A named
camera's topics live under its name (`head/image`, `head/tracked_objects`, ...;
`pam_ros.ros.topics.camera_topic`); the lone unnamed camera (the default) keeps the plain
names. What the camera tracks lives in its `FramePipeline` (`pam_ros.pipeline`, ROS-free);
this module only moves messages in and out:

- configure: `create_outputs` (lifecycle publishers tracked_objects, overlay, markers,
  detections); cleanup: `destroy_outputs`;
- activate: `subscribe` (image or image/compressed, click, boxes, detections_in, depth);
  deactivate: `unsubscribe`;
- the tracking thread: `convert` (ROS image -> RGB, counting rejections) and `publish`;
- the overlay timer: `publish_overlay`; /diagnostics: `health`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from geometry_msgs.msg import PointStamped
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image, RegionOfInterest
from visualization_msgs.msg import MarkerArray

from pam_ros.msg import TrackedObjectArray
from pam_ros.pipeline.latest_frame import LatestFrameSlot
from pam_ros.pipeline.overlay import draw_overlay, label_font, overlay_objects
from pam_ros.ros import detections, message_builders, outputs_3d
from pam_ros.ros.depth_intake import DepthCache
from pam_ros.ros.health import LOG_THROTTLE_S, KindThrottle
from pam_ros.ros.image_conversion import (
    ImageConversionError,
    UnsupportedEncodingError,
    compressed_msg_to_rgb,
    image_msg_to_rgb,
    rgb_to_image_msg,
)
from pam_ros.ros.image_intake import (
    IntakeConfig,
    QosMatchedSubscription,
    fixed_qos,
    publisher_events,
    subscription_events,
)
from pam_ros.ros.topics import camera_topic

SILENCE_LOG_REPEAT_S = 60.0  # a camera that stays silent is named in the log this often


@dataclass
class CameraCounters:
    frames_received: int = 0  # image messages that reached the callback
    frames_skipped: int = 0  # not tracked because of track_every_n
    frames_rejected: int = 0  # unsupported encoding, zero size, too large, malformed
    frames_tracked: int = 0
    tracking_errors: int = 0  # the tracker raised on a frame
    frame_failures: int = 0  # anything else raised while converting or publishing a frame
    last_error: str = ""


@dataclass(frozen=True)
class PendingFrame:
    msg: Image | CompressedImage
    arrival: float  # time.monotonic() when the callback stored it


@dataclass(frozen=True)
class CameraHealth:
    """What /diagnostics and the log say about one camera."""

    name: str
    topic: str  # the image topic, resolved
    frames_received: int
    frames_tracked: int
    frames_dropped: int
    frames_rejected: int
    objects: int
    frame_size: tuple[int, int] | None  # (width, height) of the newest tracked frame
    silent_s: float | None  # seconds without a frame (None: active and receiving)
    silent_after_s: float  # camera_timeout_s


class CameraIO:
    """See the module docstring. `name` "" is the lone unnamed camera."""

    def __init__(self, node, name: str, frames_ready: threading.Event) -> None:
        self.node = node
        self.name = name
        self.pipeline = None  # pam_ros.pipeline.FramePipeline after configure
        self.slot = LatestFrameSlot()
        self.counters = CameraCounters()
        self.last_discovery_at: float | None = None  # time.monotonic() of the last pass
        self.log_throttle = KindThrottle(LOG_THROTTLE_S)  # rejected-frame warnings, per kind
        self.counters_lock = threading.Lock()
        self.depth_cache = DepthCache()  # depth pairs by stamp (depth.enabled)
        self.depth_intake = self.outputs_3d = None
        self.image_intake: QosMatchedSubscription | None = None
        self.frame_size: tuple[int, int] | None = None  # (width, height) of the last frame
        self.latency_s = 0.0  # newest frame: arrival -> published
        self._frames_ready = frames_ready  # the tracking thread waits on it for every camera
        self._inputs: list = []
        self._detections: detections.DetectionsIO | None = None
        self._outputs: dict[str, object] = {}
        self._overlay_input: tuple | None = None  # (header, frame, result, semantics)
        self._overlay_lock = threading.Lock()
        self._listening_since: float | None = None  # monotonic, while subscribed
        self._last_frame_at: float | None = None
        self._silence_logged_at: float | None = None  # monotonic, while silent and said so

    def topic(self, name: str) -> str:
        return camera_topic(self.name, name)

    @property
    def label(self) -> str:
        return f"camera {self.name!r}" if self.name else "the camera"

    # ---- lifecycle ------------------------------------------------------------------------

    def create_outputs(self, delivery) -> None:
        """Configure: the lifecycle publishers of this camera's outputs."""
        node = self.node
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        latest = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self._outputs = {
            kind: node.create_lifecycle_publisher(
                msg_type, self.topic(kind), qos,
                event_callbacks=publisher_events(node, self.topic(kind), delivery),
            )
            for kind, msg_type, qos in (
                ("tracked_objects", TrackedObjectArray, reliable),
                ("overlay", Image, latest),
                ("markers", MarkerArray, reliable),
            )
        }  # fmt: skip
        self._detections = detections.DetectionsIO.create(node, delivery, self.name)

    def subscribe(self, params, delivery, on_image, on_click, on_box, on_detections, groups):
        """Activate: this camera's inputs. `groups`: (image group, prompt group)."""
        node = self.node
        image_group, prompt_group = groups
        intake = IntakeConfig(reliability=params.qos_reliability, depth=params.qos_depth)
        msg_type, topic = (
            (CompressedImage, self.topic("image/compressed"))
            if params.use_compressed
            else (Image, self.topic("image"))
        )
        self.image_intake = QosMatchedSubscription(
            node, msg_type, topic, on_image, intake, delivery, callback_group=image_group
        )
        self._inputs = [
            node.create_subscription(
                msg_type, self.topic(kind), callback, 10,
                callback_group=prompt_group,
                event_callbacks=subscription_events(node, self.topic(kind), delivery),
            )
            for kind, msg_type, callback in (
                ("click", PointStamped, on_click),
                ("boxes", RegionOfInterest, on_box),
            )
        ]  # fmt: skip
        if self._detections is not None:
            self._detections.subscribe(on_detections, prompt_group)
        self.depth_intake, self.outputs_3d = outputs_3d.start_3d(
            node, params, fixed_qos(intake), self.depth_cache, image_group, self.name
        )
        self.slot.reopen()
        self._listening_since, self._last_frame_at = time.monotonic(), None

    def unsubscribe(self) -> None:
        """Deactivate: stop taking frames and prompts (the tracking thread is stopped after)."""
        if self.image_intake is not None:
            self.image_intake.destroy()
            self.image_intake = None
        for subscription in self._inputs:
            self.node.destroy_subscription(subscription)
        self._inputs = []
        outputs_3d.stop_3d(self.depth_intake, self.outputs_3d)
        self.depth_intake = self.outputs_3d = None
        if self._detections is not None:
            self._detections.unsubscribe()
        self.slot.close()
        self._listening_since = self._silence_logged_at = None
        with self._overlay_lock:
            self._overlay_input = None

    def destroy_outputs(self) -> None:
        """Cleanup: the publishers go (a frame finishing now publishes nothing)."""
        outputs, self._outputs = self._outputs, {}
        for publisher in outputs.values():
            self.node.destroy_lifecycle_publisher(publisher)
        if self._detections is not None:
            self._detections.destroy()
            self._detections = None
        self.frame_size = None
        with self._overlay_lock:
            self._overlay_input = None

    # ---- frames ---------------------------------------------------------------------------

    def receive(self, msg, track_every_n: int) -> None:
        """The image callback: count, keep every n-th, store in the slot."""
        with self.counters_lock:
            self.counters.frames_received += 1
            self._last_frame_at = time.monotonic()
            if (self.counters.frames_received - 1) % track_every_n:
                self.counters.frames_skipped += 1
                return
        self.slot.put(PendingFrame(msg, time.monotonic()))
        self._frames_ready.set()

    def convert(self, msg, max_pixels: int) -> np.ndarray | None:
        """(H, W, 3) RGB uint8, or None when the frame is rejected (counted, logged)."""
        try:
            if isinstance(msg, CompressedImage):
                return compressed_msg_to_rgb(msg, max_pixels)
            return image_msg_to_rgb(msg, max_pixels)
        except ImageConversionError as exc:
            self.count_error("frames_rejected", f"frame rejected: {exc}")
            what = "dropping frames" if isinstance(exc, UnsupportedEncodingError) else "rejected"
            where = f" from {self.label}" if self.name else ""
            if self.log_throttle.allow(type(exc).__name__):  # per kind of fault
                self.node.get_logger().warning(f"{what}{where}: {exc}")
            return None

    def count_error(self, counter: str, message: str) -> None:
        with self.counters_lock:
            setattr(self.counters, counter, getattr(self.counters, counter) + 1)
            self.counters.last_error = f"{self.name}: {message}" if self.name else message

    def publish(self, output, header, arrival: float, params) -> bool:
        """Send one tracked frame's outputs (False when cleaned up meanwhile)."""
        latency = time.monotonic() - arrival
        outputs = self._outputs
        tracked_pub, markers_pub = outputs.get("tracked_objects"), outputs.get("markers")
        if tracked_pub is None or markers_pub is None:
            return False
        tracked = message_builders.tracked_object_array(
            header,
            output.result,
            output.image_size,
            output.names,
            output.semantics,
            params.mask_layout,
            latency,
            output.origins,
        )
        outputs_3d.publish_3d(
            self.node, self.outputs_3d, header, output.result, tracked, output.semantics
        )
        tracked_pub.publish(tracked)
        if (vision := self._detections) is not None:
            vision.publish(header, output.result, output.names, output.semantics)
        markers_pub.publish(
            message_builders.marker_array(
                header,
                output.result,
                output.semantics,
                params.marker_frame_id,
                params.marker_pixel_scale,
            )
        )
        if params.overlay_rate_hz > 0:
            with self._overlay_lock:  # rendered by the overlay timer, off the tracking thread
                self._overlay_input = (header, output.frame, output.result, output.semantics)
        with self.counters_lock:
            self.counters.frames_tracked += 1
            self.frame_size = output.image_size
            self.latency_s = time.monotonic() - arrival
        return True

    def publish_overlay(self, alpha: float, encoding: str) -> bool:
        """Draw the newest tracked frame once, on its source header (False: nothing new)."""
        with self._overlay_lock:
            latest, self._overlay_input = self._overlay_input, None
        publisher = self._outputs.get("overlay")
        if latest is None or publisher is None:
            return False
        header, frame, result, semantics = latest
        objects = overlay_objects(result, semantics)
        if not all(o.label.isascii() for o in objects) and label_font() is None:
            if self.log_throttle.allow("no_label_font"):
                self.node.get_logger().warning(
                    "overlay labels outside ASCII are drawn as '?': no CJK font found "
                    "(sudo apt install fonts-wqy-microhei, or set PAM_ROS_OVERLAY_FONT)"
                )
        canvas = draw_overlay(frame, objects, alpha)
        publisher.publish(rgb_to_image_msg(canvas, header, encoding))
        return True

    # ---- diagnostics ----------------------------------------------------------------------

    def health(self, now: float, silent_after_s: float) -> CameraHealth:
        with self.counters_lock:
            counters = CameraCounters(**vars(self.counters))
            since, last = self._listening_since, self._last_frame_at
            frame_size = self.frame_size
        silent = None
        if since is not None:
            quiet = now - (last if last is not None else since)
            silent = quiet if quiet > silent_after_s else None
        intake = self.image_intake
        return CameraHealth(
            name=self.name,
            topic=intake.topic_name if intake is not None else self.topic("image"),
            frames_received=counters.frames_received,
            frames_tracked=counters.frames_tracked,
            frames_dropped=self.slot.counters.dropped,
            frames_rejected=counters.frames_rejected,
            objects=len(self.pipeline.object_ids) if self.pipeline is not None else 0,
            frame_size=frame_size,
            silent_s=silent,
            silent_after_s=silent_after_s,
        )

    def log_silence(self, health: CameraHealth, logger, now: float) -> None:
        """The node's log says when the camera falls silent (a wrong topic, a camera that
        stopped), again every SILENCE_LOG_REPEAT_S while it stays so, and when frames come."""
        message = silence_message(health)
        if message:
            logged = self._silence_logged_at
            if logged is None or now - logged >= SILENCE_LOG_REPEAT_S:
                logger.warning(silence_warning(health))
                self._silence_logged_at = now
        elif self._silence_logged_at is not None:
            logger.info(f"frames arriving on {health.topic} ({health.frames_received} received)")
            self._silence_logged_at = None


def silence_message(health: CameraHealth) -> str:
    """'no frames (yet) on TOPIC for N s' while the camera is silent, else ""."""
    if health.silent_s is None:
        return ""
    never = "no frames yet" if health.frames_received == 0 else "no frames"
    return f"{never} on {health.topic} for {health.silent_s:.1f} s"


def silence_warning(health: CameraHealth) -> str:
    """The log line for a silent camera: what, and how to point it at the right topic."""
    remap = f"{health.name}/image" if health.name else "image"
    if health.topic.endswith("/compressed"):  # use_compressed
        remap += "/compressed"
    launch = f"camera_topics:={health.name}:<topic>" if health.name else "camera_topic:=<topic>"
    return (
        f"{silence_message(health)}: is a camera publishing there? (ros2 topic info "
        f"{health.topic}; set the topic with -r {remap}:=<topic>, or {launch} in "
        "camera.launch.py)"
    )


def camera_status(node_name: str, health: CameraHealth, active: bool) -> DiagnosticStatus:
    """One named camera's /diagnostics entry: WARN while it sends no frames."""
    status = DiagnosticStatus()
    status.name = f"{node_name}: camera {health.name}"
    status.hardware_id = node_name
    if not active:
        status.level, status.message = DiagnosticStatus.STALE, "node is not active"
    elif health.silent_s is not None:
        status.level, status.message = DiagnosticStatus.WARN, silence_message(health)
    else:
        status.level, status.message = DiagnosticStatus.OK, "receiving"
    values = {
        "topic": health.topic,
        "frames_received": str(health.frames_received),
        "frames_tracked": str(health.frames_tracked),
        "frames_dropped": str(health.frames_dropped),
        "frames_rejected": str(health.frames_rejected),
        "objects": str(health.objects),
        "frame_size": "" if health.frame_size is None else "x".join(map(str, health.frame_size)),
        "silent_s": "" if health.silent_s is None else f"{health.silent_s:.1f}",
    }
    status.values = [KeyValue(key=key, value=value) for key, value in values.items()]
    return status
