"""The pam_ros lifecycle node: camera in, tracked masks and throttled semantics out.

    ros2 run pam_ros pam_node --ros-args --params-file config/pam.yaml

A thin adapter between ROS and the two model libraries (`pam_ros.tracking`,
`pam_ros.semantics`). Lifecycle (managed node, started configured + active when `autostart`):

- configure: build the tracker and the semantic engine from the parameters. Missing weights
  log a clear error and return FAILURE: the node stays up, unconfigured, and keeps answering
  services (with "not active") and /diagnostics.
- activate: subscribe to the image (`image` or `image/compressed`), `click` and `boxes`, start
  the tracking worker and the semantics worker; lifecycle publishers go live.
- deactivate: unsubscribe, stop both workers, free cached GPU memory (objects are kept).
- cleanup / shutdown: release both models (their `.release()` frees device memory).

Threads: the image callback only stores the message in a one-slot mailbox (`LatestFrameSlot`);
a dedicated tracking thread converts and tracks the newest frame and publishes the results, so
the node never works through a backlog. The semantics worker (`SemanticsScheduler`) runs the
perceiver-LLM at `semantic_rate_hz` without ever blocking tracking. Services each have their
own callback group on a MultiThreadedExecutor.

Topics (node-relative, remap as usual):
  in:  image (sensor_msgs/Image) | image/compressed (sensor_msgs/CompressedImage)
       click (geometry_msgs/PointStamped, x/y in image pixels): add an object at the point
       boxes (sensor_msgs/RegionOfInterest, pixels): add an object per box from an upstream
             detector; a box overlapping a tracked object's box (IoU > 0.5) is ignored
       detections_in (vision_msgs/Detection2DArray): the same, each box named by its class
  out: tracked_objects (pam_ros/TrackedObjectArray, on the source image header)
       detections (vision_msgs/Detection2DArray, on the source header; pam_ros.node.detections)
       overlay (sensor_msgs/Image, on the source header, at overlay_rate_hz)
       markers (visualization_msgs/MarkerArray), /diagnostics (diagnostic_msgs/DiagnosticArray)
Services: add_object (pam_ros/AddObject), remove_object (pam_ros/RemoveObject),
          reset (std_srvs/Trigger), describe (pam_ros/Describe)
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PointStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image, RegionOfInterest
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from pam_ros.memory import give_back_memory
from pam_ros.msg import TrackedObjectArray
from pam_ros.node import detections, message_builders, outputs_3d
from pam_ros.node.depth_intake import DepthCache
from pam_ros.node.health import ERROR_WINDOW_PERIODS, ErrorWindow
from pam_ros.node.image_conversion import (
    ImageConversionError,
    UnsupportedEncodingError,
    compressed_msg_to_rgb,
    image_msg_to_rgb,
    rgb_to_image_msg,
)
from pam_ros.node.image_intake import (
    DeliveryCounters,
    IntakeConfig,
    QosMatchedSubscription,
    fixed_qos,
    publisher_events,
    subscription_events,
)
from pam_ros.node.latest_frame import LatestFrameSlot
from pam_ros.node.lifecycle import TransitionGuard
from pam_ros.node.message_builders import NodeHealth, stamp_to_ns
from pam_ros.node.overlay import OverlayObject, draw_overlay
from pam_ros.node.parameters import (
    MAX_BATCH_SIZE_LIMIT,
    NodeParameters,
    ParameterValidationError,
    declare_parameters,
    validate_parameter,
)
from pam_ros.node.runner import run_node
from pam_ros.node.semantic_services import DescribeObjectAction, FindObjectsService
from pam_ros.node.semantics_scheduler import (
    DescribeFailedError,
    ObjectObservation,
    SchedulerConfig,
    SchedulerError,
    SemanticsScheduler,
)
from pam_ros.srv import AddObject, Describe, RemoveObject

NODE_NAME = "pam_ros"
BOX_DUPLICATE_IOU = 0.5  # a `boxes` message overlapping a tracked object more than this is skipped
WORKER_POLL_S = 0.2
# Tracking, semantics and the executor's callbacks share one interpreter. With Python's default
# 5 ms GIL switch interval a thread woken for an image or a service call can wait many
# intervals behind the model threads (seen: a 100 Hz publisher in the node's process managed
# 20 Hz); 1 ms keeps callbacks responsive at a negligible cost to model throughput.
GIL_SWITCH_INTERVAL_S = 0.001


class NodeNotActiveError(RuntimeError):
    """A service or prompt arrived while the node is not active."""


@dataclass
class NodeCounters:
    frames_received: int = 0  # image messages that reached the callback
    frames_skipped: int = 0  # not tracked because of track_every_n
    frames_rejected: int = 0  # unsupported encoding, zero size, too large, malformed
    frames_tracked: int = 0
    tracking_errors: int = 0  # the tracker raised on a frame
    last_error: str = ""


@dataclass(frozen=True)
class FrameTimings:
    """Where one tracked frame's time went (seconds, perf_counter)."""

    convert_s: float  # ROS image → RGB numpy
    track_s: float  # the tracker (the model)
    publish_s: float  # scheduler hand-over, message building, overlay, publishing

    @property
    def overhead_fraction(self) -> float:
        """The node's own work relative to the model's."""
        return (self.convert_s + self.publish_s) / self.track_s if self.track_s > 0 else 0.0


@dataclass(frozen=True)
class _PendingFrame:
    msg: Image | CompressedImage
    arrival: float  # time.monotonic() when the callback stored it


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _box_iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    ix0, iy0, ix1, iy1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0, ix1 - ix0) * max(0, iy1 - iy0)
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0


def _never_raises(callback):
    """Service/topic callbacks must not raise: an exception would stop the whole executor.

    An unexpected error (a model raising something other than its documented ValueErrors) is
    logged and, for services, answered with success=False and the error.
    """

    @functools.wraps(callback)
    def guarded(self, request, response=None):
        try:
            if response is None:
                return callback(self, request)
            return callback(self, request, response)
        except Exception as exc:
            self.get_logger().error(f"{callback.__name__} failed: {exc!r}")
            with self._counters_lock:
                self.counters.last_error = f"{callback.__name__}: {exc!r}"
            if response is not None:
                response.success, response.message = False, f"internal error: {exc!r}"
            return response

    return guarded


def scheduler_config(params: NodeParameters) -> SchedulerConfig:
    return SchedulerConfig(
        rate_hz=params.semantic_rate_hz,
        refresh_period_s=params.refresh_period_s,
        appearance_change_threshold=params.appearance_change_threshold,
        video_segment_frames=params.video_caption_segment_frames,
        kinds=tuple(params.semantic_kinds),
        language=params.language,
        max_new_tokens=params.max_new_tokens or None,
        max_batch_size=params.max_batch_size,
    )


class PamNode(LifecycleNode):
    """See the module docstring."""

    def __init__(self, command_line: dict | None = None, **kwargs) -> None:
        """`command_line`: the `-p` values as typed (`parameters.command_line_parameters`)."""
        super().__init__(NODE_NAME, **kwargs)
        sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_INTERVAL_S))
        self.params: NodeParameters = declare_parameters(self, command_line)
        self.lifecycle_guard = TransitionGuard(self)
        self.shutting_down = threading.Event()
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self.tracker = None  # pam_ros.tracking.StreamingTracker after configure
        self.engine = None  # pam_ros.semantics.SemanticEngine after configure (or None)
        self.scheduler: SemanticsScheduler | None = None
        self.device = "cpu"
        self.counters = NodeCounters()
        self.slot = LatestFrameSlot()
        self.timings: deque[FrameTimings] = deque(maxlen=1000)  # newest last
        self._tracker_lock = threading.Lock()  # the tracker is used by the worker and services
        self._counters_lock = threading.Lock()
        self._names: dict[str, str] = {}  # object id → human name
        self._frame_size: tuple[int, int] | None = None  # (width, height) of the last frame
        self._last_stamp_ns = 0
        self._last_latency = 0.0
        # The newest tracked frame for the overlay timer: (header, frame, result, semantics).
        self._overlay_input: tuple | None = None
        self._overlay_lock = threading.Lock()
        self._overlay_timer = None
        self.overlay_render_s: deque[float] = deque(maxlen=1000)
        self._rate_window: tuple[float, int] = (time.monotonic(), 0)
        self._error_window = ErrorWindow(ERROR_WINDOW_PERIODS * self.params.diagnostics_period_s)
        self._qos_window = ErrorWindow(ERROR_WINDOW_PERIODS * self.params.diagnostics_period_s)
        self._stop_worker = threading.Event()
        self._worker: threading.Thread | None = None
        self._inputs: list = []
        self._image_intake: QosMatchedSubscription | None = None
        self._detections: detections.DetectionsIO | None = None  # vision_msgs topics
        self.delivery = DeliveryCounters()  # QoS events of all subscriptions and publishers
        self._outputs: dict[str, object] = {}
        self.depth_cache = DepthCache()  # depth pairs by stamp (depth.enabled)
        self._depth_intake = self.outputs_3d = None

        self._image_group = MutuallyExclusiveCallbackGroup()
        self._prompt_group = MutuallyExclusiveCallbackGroup()
        self._timer_group = MutuallyExclusiveCallbackGroup()
        self._overlay_group = MutuallyExclusiveCallbackGroup()
        # Services live for the node's whole life (answering "not active" when not active),
        # each in its own group so a slow describe never holds up add/remove/reset.
        self.create_service(
            AddObject,
            "add_object",
            self._on_add_object,
            callback_group=MutuallyExclusiveCallbackGroup(),
        )
        self.create_service(
            RemoveObject,
            "remove_object",
            self._on_remove_object,
            callback_group=MutuallyExclusiveCallbackGroup(),
        )
        self.create_service(
            Trigger, "reset", self._on_reset, callback_group=MutuallyExclusiveCallbackGroup()
        )
        self.create_service(
            Describe, "describe", self._on_describe, callback_group=MutuallyExclusiveCallbackGroup()
        )
        self._find_objects = FindObjectsService(
            self, lambda: self.scheduler, self._not_active_reason
        )
        self._describe_action = DescribeObjectAction(
            self, lambda: self.scheduler, self._not_active_reason
        )
        # /diagnostics reports in every state, so a node that failed to configure says why.
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diagnostics_timer = self.create_timer(
            self.params.diagnostics_period_s,
            self._publish_diagnostics,
            callback_group=self._timer_group,
        )

    # ---- state --------------------------------------------------------------------------

    @property
    def lifecycle_state(self) -> str:
        """'unconfigured', 'inactive', 'active', 'finalized' (or a transition state)."""
        return self._state_machine.current_state[1]

    def _require_active(self) -> None:
        if self.shutting_down.is_set():
            raise NodeNotActiveError("pam_ros is shutting down")
        if self.lifecycle_state != "active":
            raise NodeNotActiveError(f"pam_ros is {self.lifecycle_state}, not active")

    def _not_active_reason(self) -> str | None:
        try:
            self._require_active()
        except NodeNotActiveError as exc:
            return str(exc)
        return None

    # ---- lifecycle ----------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        params = self.params
        self.get_logger().info("configuring: loading the models")
        try:
            self.device = _resolve_device(params.device)
            self.tracker = self._build_tracker(params)
            if params.semantics_enabled:
                self.engine = self._build_engine(params)
                self.scheduler = SemanticsScheduler(
                    self.engine, scheduler_config(params), log_error=self._log_semantics_error
                )
        except Exception as exc:  # missing weights, bad checkpoint, out of memory ...
            self.get_logger().error(f"configure failed, the node stays unconfigured: {exc}")
            with self._counters_lock:
                self.counters.last_error = f"configure failed: {exc}"
            self._release_models()
            return TransitionCallbackReturn.FAILURE
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        latest = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self._outputs = {
            "tracked_objects": self.create_lifecycle_publisher(
                TrackedObjectArray, "tracked_objects", reliable,
                event_callbacks=publisher_events(self, "tracked_objects", self.delivery),
            ),
            "overlay": self.create_lifecycle_publisher(
                Image, "overlay", latest,
                event_callbacks=publisher_events(self, "overlay", self.delivery),
            ),
            "markers": self.create_lifecycle_publisher(
                MarkerArray, "markers", reliable,
                event_callbacks=publisher_events(self, "markers", self.delivery),
            ),
        }  # fmt: skip
        self._detections = detections.DetectionsIO.create(self, self.delivery)
        semantics = self.engine.model_name if self.engine is not None else "disabled"
        self.get_logger().info(
            f"configured: SAM 2.1-{params.tracker_model_size} @ {params.tracker_image_size} px "
            f"on {self.device}, semantics: {semantics}"
        )
        return TransitionCallbackReturn.SUCCESS

    def _build_tracker(self, params: NodeParameters):
        from pam_ros.tracking import StreamingTracker, TrackerConfig

        config = TrackerConfig(
            model_size=params.tracker_model_size,
            image_size=params.tracker_image_size,
            checkpoint=os.path.expanduser(params.tracker_checkpoint) or None,
            device=self.device,
            dtype=params.dtype,
            num_maskmem=params.tracker_num_maskmem,
            max_obj_ptrs=params.tracker_max_obj_ptrs,
            compile=params.compile,
            random_weights=params.tracker_random_weights,
            allow_download=params.tracker_allow_download,
            resize=params.tracker_resize,
        )
        if params.tracker_random_weights:
            self.get_logger().warning("tracker.random_weights: SAM 2 has RANDOM weights")
        return StreamingTracker.from_config(config)

    def _build_engine(self, params: NodeParameters):
        from pam_ros.semantics import GenerationSettings, SemanticEngine

        if not params.semantics_model_path:
            raise FileNotFoundError(
                "semantics.model_path is empty: give a PAM checkpoint folder (e.g. PAM-1.5B) "
                "or set semantics.enabled:=false"
            )
        engine = SemanticEngine.from_pretrained(
            os.path.expanduser(params.semantics_model_path),
            device=self.device,
            dtype=params.dtype,
            compile=params.compile,
            # Rows per generate: the scheduler's max_batch_size (run-time) is the bound.
            generation=GenerationSettings(max_batch_size=MAX_BATCH_SIZE_LIMIT),
        )
        if engine.random_weights:
            self.get_logger().warning("the semantic engine has RANDOM weights: text is noise")
        return engine

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        params = self.params
        intake = IntakeConfig(reliability=params.qos_reliability, depth=params.qos_depth)
        if params.use_compressed:
            self._image_intake = QosMatchedSubscription(
                self, CompressedImage, "image/compressed", self._on_image, intake,
                self.delivery, callback_group=self._image_group,
            )  # fmt: skip
        else:
            self._image_intake = QosMatchedSubscription(
                self, Image, "image", self._on_image, intake,
                self.delivery, callback_group=self._image_group,
            )  # fmt: skip
        self._inputs = [
            self.create_subscription(
                PointStamped,
                "click",
                self._on_click,
                10,
                callback_group=self._prompt_group,
                event_callbacks=subscription_events(self, "click", self.delivery),
            ),
            self.create_subscription(
                RegionOfInterest,
                "boxes",
                self._on_box,
                10,
                callback_group=self._prompt_group,
                event_callbacks=subscription_events(self, "boxes", self.delivery),
            ),
        ]
        if self._detections is not None:
            self._detections.subscribe(self._on_detection_prompts, self._prompt_group)
        self._depth_intake, self.outputs_3d = outputs_3d.start_3d(
            self, params, fixed_qos(intake), self.depth_cache, self._image_group
        )
        self.slot.reopen()
        self._stop_worker.clear()
        self._worker = threading.Thread(
            target=self._tracking_loop, name="pam_tracking", daemon=True
        )
        self._worker.start()
        if self.scheduler is not None:
            self.scheduler.start()
        self._restart_overlay_timer()
        self.get_logger().info(f"active: listening on {self._image_intake.describe()}")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_workers()
        self._free_cached_device_memory()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def _stop_workers(self) -> None:
        if self._overlay_timer is not None:
            self.destroy_timer(self._overlay_timer)
            self._overlay_timer = None
        with self._overlay_lock:
            self._overlay_input = None
        if self._image_intake is not None:
            self._image_intake.destroy()
            self._image_intake = None
        for subscription in self._inputs:
            self.destroy_subscription(subscription)
        self._inputs = []
        outputs_3d.stop_3d(self._depth_intake, self.outputs_3d)
        self._depth_intake = self.outputs_3d = None
        self._stop_worker.set()
        self.slot.close()
        if self._worker is not None:
            self._worker.join(timeout=60.0)
            self._worker = None
        if self._detections is not None:
            self._detections.unsubscribe()
        self.slot.clear()
        if self.scheduler is not None:
            self.scheduler.stop()

    def _teardown(self) -> None:
        self._stop_workers()
        for publisher in self._outputs.values():
            self.destroy_lifecycle_publisher(publisher)
        if self._detections is not None:
            self._detections.destroy()
            self._detections = None
        self._outputs = {}
        self._release_models()

    def _release_models(self) -> None:
        if self.scheduler is not None:
            self.scheduler.stop()
        with self._tracker_lock:
            if self.tracker is not None:
                self.tracker.release()
            if self.engine is not None:
                self.engine.release()
            self.tracker, self.engine, self.scheduler = None, None, None
            self._names.clear()
            self._frame_size = None
        self._overlay_input = None  # the last frame, result and semantics
        give_back_memory(self.device)  # gc, CUDA cache, glibc heap (pam_ros/memory.py)

    def _free_cached_device_memory(self) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    def begin_shutdown(self) -> None:
        """Refuse new requests and transitions, stop taking frames (returns at once).

        A frame being tracked finishes but is not published; `destroy_node` does the rest.
        """
        self.shutting_down.set()
        self.lifecycle_guard.refusing_reason = "pam_ros is shutting down"
        self._stop_worker.set()
        self.slot.close()

    def destroy_node(self) -> None:
        self._teardown()
        super().destroy_node()

    # ---- parameters at run time ---------------------------------------------------------

    def _on_set_parameters(self, parameters) -> SetParametersResult:
        values = {}
        for parameter in parameters:
            try:
                values[parameter.name] = validate_parameter(parameter.name, parameter.value)
            except ParameterValidationError as exc:
                return SetParametersResult(successful=False, reason=str(exc))
        try:
            updated = self.params.updated(values)
            config = scheduler_config(updated)
        except (ParameterValidationError, SchedulerError) as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        self.params = updated
        if self.scheduler is not None:
            self.scheduler.update_config(config)
        if "overlay_rate_hz" in values:
            self._restart_overlay_timer()
        if "diagnostics_period_s" in values:
            self._diagnostics_timer.cancel()
            self.destroy_timer(self._diagnostics_timer)
            self._diagnostics_timer = self.create_timer(
                updated.diagnostics_period_s,
                self._publish_diagnostics,
                callback_group=self._timer_group,
            )
        return SetParametersResult(successful=True)

    # ---- images -------------------------------------------------------------------------

    def _on_image(self, msg: Image | CompressedImage) -> None:
        """Store only; the tracking thread does the work on the newest frame."""
        with self._counters_lock:
            self.counters.frames_received += 1
            received = self.counters.frames_received
            if (received - 1) % self.params.track_every_n:
                self.counters.frames_skipped += 1
                return
        self.slot.put(_PendingFrame(msg, time.monotonic()))

    def _tracking_loop(self) -> None:
        while not self._stop_worker.is_set():
            pending = self.slot.take(timeout=WORKER_POLL_S)
            if pending is None:
                continue
            try:
                self._process(pending)
            except Exception as exc:  # never let one bad frame or model error stop tracking
                if self._stop_worker.is_set():  # stopping: outputs may already be gone
                    self.get_logger().debug(f"frame abandoned while stopping: {exc!r}")
                    break
                with self._counters_lock:
                    self.counters.tracking_errors += 1
                    self.counters.last_error = f"tracking failed: {exc!r}"
                self.get_logger().error(
                    f"tracking failed on a frame, continuing: {exc!r}", throttle_duration_sec=5.0
                )

    def _convert(self, msg: Image | CompressedImage) -> np.ndarray | None:
        try:
            if isinstance(msg, CompressedImage):
                return compressed_msg_to_rgb(msg, self.params.max_image_pixels)
            return image_msg_to_rgb(msg, self.params.max_image_pixels)
        except ImageConversionError as exc:
            with self._counters_lock:
                self.counters.frames_rejected += 1
                self.counters.last_error = f"frame rejected: {exc}"
            if isinstance(exc, UnsupportedEncodingError):
                self.get_logger().warning(f"dropping frames: {exc}", throttle_duration_sec=5.0)
            else:
                self.get_logger().warning(f"frame rejected: {exc}", throttle_duration_sec=5.0)
            return None

    def _process(self, pending: _PendingFrame) -> None:
        started = time.perf_counter()
        frame = self._convert(pending.msg)  # (H, W, 3) RGB uint8
        if frame is None:
            return
        converted = time.perf_counter()
        header = pending.msg.header
        stamp_ns = stamp_to_ns(header.stamp)
        with self._tracker_lock:
            if self.tracker is None:
                return
            tracking = time.perf_counter()
            result = self.tracker.track(frame, stamp_ns=stamp_ns)
            tracked = time.perf_counter()
            self._frame_size = (frame.shape[1], frame.shape[0])
            self._last_stamp_ns = stamp_ns
            observations = self._observations(result)
            names = dict(self._names)
        if self.scheduler is not None:
            self.scheduler.observe(stamp_ns, observations)
        semantics = self.scheduler.all_semantics() if self.scheduler is not None else {}
        if self._stop_worker.is_set():  # deactivating or shutting down: nothing goes out
            return
        self._publish_outputs(pending, header, frame, result, names, semantics)
        finished = time.perf_counter()
        with self._counters_lock:
            self.counters.frames_tracked += 1
            self._last_latency = time.monotonic() - pending.arrival
        self.timings.append(
            FrameTimings(
                convert_s=converted - started,
                track_s=tracked - tracking,
                publish_s=finished - tracked,
            )
        )

    def _publish_outputs(self, pending, header, frame, result, names, semantics) -> None:
        params = self.params
        latency = time.monotonic() - pending.arrival
        tracked = message_builders.tracked_object_array(
            header,
            result,
            (frame.shape[1], frame.shape[0]),
            names,
            semantics,
            params.mask_layout,
            latency,
        )
        outputs = self._outputs
        tracked_pub, markers_pub = outputs.get("tracked_objects"), outputs.get("markers")
        if tracked_pub is None or markers_pub is None:  # cleaned up while this frame ran
            return
        outputs_3d.publish_3d(self, self.outputs_3d, header, result, tracked, semantics)
        tracked_pub.publish(tracked)
        if (vision := self._detections) is not None:
            vision.publish(header, result, names, semantics)
        markers_pub.publish(
            message_builders.marker_array(
                header, result, semantics, params.marker_frame_id, params.marker_pixel_scale
            )
        )
        if params.overlay_rate_hz > 0:
            with self._overlay_lock:  # rendered by the overlay timer, off the tracking thread
                self._overlay_input = (header, frame, result, semantics)

    def _publish_overlay(self) -> None:
        """Overlay timer: draw the newest tracked frame once, on its source header."""
        with self._overlay_lock:
            latest, self._overlay_input = self._overlay_input, None
        publisher = self._outputs.get("overlay")  # gone after cleanup
        if latest is None or publisher is None:
            return
        started = time.perf_counter()
        header, frame, result, semantics = latest
        try:
            objects = [
                OverlayObject(
                    oid,
                    obj.mask,
                    obj.box,
                    obj.present,
                    semantics[oid].category if oid in semantics else "",
                )
                for oid, obj in result.objects.items()
            ]
            canvas = draw_overlay(frame, objects, self.params.overlay_alpha)
            publisher.publish(rgb_to_image_msg(canvas, header, self.params.overlay_encoding))
        except Exception as exc:  # an exception here would stop the executor
            self.get_logger().error(f"overlay failed: {exc!r}", throttle_duration_sec=5.0)
            return
        self.overlay_render_s.append(time.perf_counter() - started)

    def _restart_overlay_timer(self) -> None:
        if self._overlay_timer is not None:
            self.destroy_timer(self._overlay_timer)
            self._overlay_timer = None
        if self.params.overlay_rate_hz > 0 and self.lifecycle_state in ("active", "activating"):
            self._overlay_timer = self.create_timer(
                1.0 / self.params.overlay_rate_hz,
                self._publish_overlay,
                callback_group=self._overlay_group,
            )

    def _observations(self, result) -> list[ObjectObservation]:
        """The scheduler's view of `result` (call with the tracker lock held)."""
        return [
            ObjectObservation(oid, self.tracker.latest_features(oid), obj.mask, obj.present)
            for oid, obj in result.objects.items()
        ]

    # ---- prompts ------------------------------------------------------------------------

    def add_object(self, points, labels, box, object_id: str | None, name: str) -> str:
        """Prompt a new object on the newest tracked frame. Raises ValueError-derived errors
        (unknown frame, point outside the image, too many objects) or NodeNotActiveError."""
        self._require_active()
        with self._tracker_lock:
            if self.tracker is None:
                raise NodeNotActiveError("pam_ros has no tracker (not configured)")
            if len(self.tracker.object_ids) >= self.params.max_objects:
                raise ValueError(
                    f"already tracking max_objects={self.params.max_objects} objects; "
                    "remove one first"
                )
            new_id = self.tracker.add_object(
                points=points or None, labels=labels or None, box=box, object_id=object_id
            )
            self._names[new_id] = name
            result = self.tracker.last_result
            observations = [obs for obs in self._observations(result) if obs.object_id == new_id]
            stamp_ns = self._last_stamp_ns
        if self.scheduler is not None:
            self.scheduler.observe(stamp_ns, observations)
        return new_id

    @_never_raises
    def _on_add_object(self, request: AddObject.Request, response: AddObject.Response):
        points = [(float(p.x), float(p.y)) for p in request.points]
        labels = [int(v) for v in request.labels] or [1] * len(points)
        box = None
        if request.use_box:
            roi = request.box
            box = (roi.x_offset, roi.y_offset, roi.x_offset + roi.width, roi.y_offset + roi.height)
        try:
            if len(labels) != len(points):
                raise ValueError(f"{len(points)} points but {len(labels)} labels")
            if not points and box is None:
                raise ValueError("give at least one point or set use_box")
            response.id = self.add_object(points, labels, box, request.id or None, request.name)
        except (ValueError, NodeNotActiveError) as exc:
            response.success, response.message = False, str(exc)
            self.get_logger().warning(f"add_object refused: {exc}")
            return response
        response.success, response.message = True, f"tracking object {response.id!r}"
        return response

    @_never_raises
    def _on_click(self, msg: PointStamped) -> None:
        try:
            new_id = self.add_object([(msg.point.x, msg.point.y)], [1], None, None, "")
        except (ValueError, NodeNotActiveError) as exc:
            self.get_logger().warning(f"click at ({msg.point.x}, {msg.point.y}) ignored: {exc}")
            return
        self.get_logger().info(f"click at ({msg.point.x:.0f}, {msg.point.y:.0f}) → {new_id!r}")

    @_never_raises
    def _on_box(self, msg: RegionOfInterest) -> None:
        box = (msg.x_offset, msg.y_offset, msg.x_offset + msg.width, msg.y_offset + msg.height)
        self._prompt_box(box, "")

    @_never_raises
    def _on_detection_prompts(self, prompts: list[detections.DetectionPrompt]) -> None:
        taken: list[tuple[int, int, int, int]] = []  # boxes of this message already prompted
        for prompt in prompts:  # `detections_in`: one object per new box, named by its class
            if any(_box_iou(prompt.box, other) > BOX_DUPLICATE_IOU for other in taken):
                continue
            taken.append(prompt.box)
            self._prompt_box(prompt.box, prompt.name)

    def _prompt_box(self, box: tuple[int, int, int, int], name: str) -> None:
        with self._tracker_lock:
            last = self.tracker.last_result if self.tracker is not None else None
            tracked_boxes = (
                []
                if last is None
                else [obj.box for obj in last.objects.values() if obj.box is not None]
            )
        if any(_box_iou(box, tracked) > BOX_DUPLICATE_IOU for tracked in tracked_boxes):
            return
        try:
            new_id = self.add_object(None, None, box, None, name)
        except (ValueError, NodeNotActiveError) as exc:
            self.get_logger().warning(f"box {box} ignored: {exc}", throttle_duration_sec=5.0)
            return
        self.get_logger().info(f"box {box} {name!r} → {new_id!r}".replace(" '' ", " "))

    @_never_raises
    def _on_remove_object(self, request: RemoveObject.Request, response: RemoveObject.Response):
        try:
            self._require_active()
            with self._tracker_lock:
                self.tracker.remove_object(request.id)
                self._names.pop(request.id, None)
            if self.scheduler is not None:
                self.scheduler.forget(request.id)
        except (KeyError, ValueError, NodeNotActiveError) as exc:
            response.success, response.message = False, str(exc)
            return response
        response.success, response.message = True, f"removed {request.id!r}"
        return response

    @_never_raises
    def _on_reset(self, request: Trigger.Request, response: Trigger.Response):
        try:
            self._require_active()
        except NodeNotActiveError as exc:
            response.success, response.message = False, str(exc)
            return response
        with self._tracker_lock:
            count = len(self.tracker.object_ids)
            self.tracker.reset()
            self._names.clear()
            self._frame_size = None
        if self.scheduler is not None:
            self.scheduler.reset()
        response.success, response.message = True, f"reset: forgot {count} object(s)"
        return response

    @_never_raises
    def _on_describe(self, request: Describe.Request, response: Describe.Response):
        kind = request.kind or Describe.Request.KIND_CATEGORY
        outputs_3d.fill_describe_response(response, self.outputs_3d, request.id)
        try:
            self._require_active()
            if self.scheduler is None:
                raise NodeNotActiveError("semantics are disabled (semantics.enabled:=false)")
            answer = self.scheduler.describe_now(
                request.id, kind, float(request.max_age), request.language or None
            )
        except (SchedulerError, NodeNotActiveError) as exc:
            response.success, response.message = False, str(exc)
            if isinstance(exc, DescribeFailedError):
                self.get_logger().error(str(exc))
            return response
        response.success = True
        response.message = "from cache" if answer.from_cache else "computed"
        response.semantics = message_builders.semantics_msg(answer.semantics)
        response.text = answer.text
        response.from_cache = answer.from_cache
        response.latency = float(answer.latency)
        return response

    def _log_semantics_error(self, message: str) -> None:
        self.get_logger().error(message, throttle_duration_sec=5.0)

    # ---- diagnostics --------------------------------------------------------------------

    def health(self) -> NodeHealth:
        now = time.monotonic()
        with self._counters_lock:
            counters = dataclasses.replace(self.counters)
            window_start, window_frames = self._rate_window
            elapsed = now - window_start
            rate = (counters.frames_tracked - window_frames) / elapsed if elapsed > 0 else 0.0
            self._rate_window = (now, counters.frames_tracked)
            latency = self._last_latency
        scheduler = self.scheduler
        stats = scheduler.stats if scheduler is not None else None
        tracker = self.tracker
        gpu_mb = 0.0
        if self.device.startswith("cuda"):
            import torch

            gpu_mb = torch.cuda.memory_allocated() / 2**20
        semantic_errors = stats.engine_errors if stats else 0
        last_error = counters.last_error or (stats.last_error if stats else "")
        self._error_window.window_s = ERROR_WINDOW_PERIODS * self.params.diagnostics_period_s
        recent = self._error_window.update(
            now, counters.frames_rejected + counters.tracking_errors + semantic_errors, last_error
        )
        return NodeHealth(
            state=self.lifecycle_state,
            frame_rate_hz=rate,
            tracking_latency_s=latency,
            frames_received=counters.frames_received,
            frames_dropped=self.slot.counters.dropped,
            frames_rejected=counters.frames_rejected,
            tracking_errors=counters.tracking_errors,
            objects=len(tracker.object_ids) if tracker is not None else 0,
            semantic_queue_depth=scheduler.queue_depth() if scheduler is not None else 0,
            semantic_calls=stats.engine_calls if stats else 0,
            semantic_errors=semantic_errors,
            gpu_memory_mb=gpu_mb,
            last_error=recent.last_error,
            recent_errors=recent.count,
            last_error_age_s=recent.last_error_age_s,
            **self._delivery_health(),
        )

    def _delivery_health(self) -> dict:
        delivery = self.delivery.snapshot()
        intake = self._image_intake
        # QoS events warn while recent, like errors (the counters only grow)
        self._qos_window.window_s = self._error_window.window_s
        recent = self._qos_window.update(
            time.monotonic(), delivery.messages_lost + delivery.incompatible_qos, ""
        )
        return {
            "messages_lost": delivery.messages_lost,
            "incompatible_qos": delivery.incompatible_qos,
            "recent_qos_events": recent.count,
            "image_qos": intake.reliability if intake is not None else "",
        }

    def _publish_diagnostics(self) -> None:
        try:
            msg = message_builders.diagnostics_msg(
                self.get_clock().now().to_msg(), self.get_fully_qualified_name(), self.health()
            )
        except Exception as exc:  # never let a report stop the executor
            self.get_logger().error(f"diagnostics failed: {exc!r}", throttle_duration_sec=5.0)
            return
        if self.outputs_3d is not None:
            msg.status.append(self.outputs_3d.diagnostic_status(self.get_fully_qualified_name()))
        self._diagnostics_pub.publish(msg)


def main(args: list[str] | None = None) -> int:
    """`pam_node`: run the node until SIGINT/SIGTERM (see `pam_ros.node.runner`)."""
    return run_node(PamNode, args)


if __name__ == "__main__":
    sys.exit(main())
