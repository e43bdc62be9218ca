"""The pam_ros lifecycle node: cameras in, tracked masks and throttled semantics out.

    ros2 run pam_ros pam_node --ros-args --params-file config/pam.yaml

A thin adapter between ROS and the ROS-free libraries (`pam_ros.tracking`, `pam_ros.semantics`,
`pam_ros.pipeline`). Lifecycle (managed node, started configured + active when `autostart`):

- configure: build ONE tracker model and ONE semantic engine for all cameras from the
  parameters. Missing weights log a clear error and return FAILURE: the node stays up,
  unconfigured, and keeps answering services (with "not active") and /diagnostics.
- activate: subscribe to every camera's image, click, boxes (and depth), start the tracking
  worker and the semantics worker; lifecycle publishers go live.
- deactivate: unsubscribe, stop both workers, free cached GPU memory (objects are kept).
- cleanup / shutdown: release both models (their `.release()` frees device memory).

Cameras (`cameras` parameter): the default is one unnamed camera with the topics below. Named
cameras (`cameras: [head, wrist]`) each have these topics under their name (`head/image`,
`head/tracked_objects`, ...) and object ids that name them (`head/1`); one SAM 2 model serves
them all, frames waiting on several cameras share one batched encoder pass, and one semantics
worker takes turns between them. Per-camera I/O is `pam_ros.ros.camera_io`.

Threads: image callbacks only store the message in the camera's one-slot mailbox
(`LatestFrameSlot`); a dedicated tracking thread converts and tracks the newest frame of every
camera and publishes the results, so the node never works through a backlog. The semantics
worker (`SemanticsScheduler`) runs the perceiver-LLM at `semantic_rate_hz` without ever blocking
tracking. Services each have their own callback group on a multi-threaded executor.

Topics (node-relative, per camera, remap as usual):
  in:  image (sensor_msgs/Image) | image/compressed (sensor_msgs/CompressedImage)
       click (geometry_msgs/PointStamped, x/y in image pixels): add an object at the point
       boxes (sensor_msgs/RegionOfInterest, pixels): add an object per box from an upstream
             detector; a box overlapping a tracked object's box (IoU > 0.5) is ignored
       detections_in (vision_msgs/Detection2DArray): the same, each box named by its class
  out: tracked_objects (pam_ros/TrackedObjectArray, on the source image header)
       detections (vision_msgs/Detection2DArray, on the source header; pam_ros.ros.detections)
       overlay (sensor_msgs/Image, on the source header, at overlay_rate_hz)
       markers (visualization_msgs/MarkerArray); node-wide: /diagnostics
Services: add_object (pam_ros/AddObject, `camera` field), remove_object (pam_ros/RemoveObject),
          reset (std_srvs/Trigger), describe (pam_ros/Describe), find_objects, describe_object
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from pam_ros.core.memory import HeapTrimmer, give_back_memory
from pam_ros.pipeline import (
    CameraPipelines,
    PipelineConfig,
    UnknownCameraError,
)
from pam_ros.pipeline.models import build_models, resolve_device
from pam_ros.pipeline.semantics_scheduler import (
    SchedulerError,
    SemanticsScheduler,
)
from pam_ros.ros import message_builders
from pam_ros.ros.camera_io import (
    CameraHealth,
    CameraIO,
    PendingFrame,
    camera_status,
    silence_message,
)
from pam_ros.ros.health import ERROR_WINDOW_PERIODS, ErrorWindow, KindThrottle
from pam_ros.ros.image_intake import DeliveryCounters
from pam_ros.ros.lifecycle import TransitionGuard
from pam_ros.ros.message_builders import NodeHealth, stamp_to_ns
from pam_ros.ros.model_settings import model_settings, scheduler_config
from pam_ros.ros.object_services import NodeNotActiveError, ObjectServices
from pam_ros.ros.parameters import (
    NodeParameters,
    ParameterValidationError,
    declare_parameters,
    integers_as_doubles,
    validate_parameter,
)
from pam_ros.ros.runner import run_node
from pam_ros.ros.semantic_services import DescribeObjectAction, FindObjectsService
from pam_ros.tracking.onnx_encoder import image_encoder_label

NODE_NAME = "pam_ros"
WORKER_POLL_S = 0.2
DISCOVERY_POLL_S = 0.25  # how often the discovery thread looks whether a pass is due
# Tracking, semantics and the executor's callbacks share one interpreter. With Python's default
# 5 ms GIL switch interval a thread woken for an image or a service call can wait many
# intervals behind the model threads (seen: a 100 Hz publisher in the node's process managed
# 20 Hz); 1 ms keeps callbacks responsive at a negligible cost to model throughput.
GIL_SWITCH_INTERVAL_S = 0.001


@dataclass(frozen=True)
class FrameTimings:
    """Where one tracking step's time went (seconds, perf_counter); a step tracks the frames
    waiting on every camera together."""

    convert_s: float  # ROS image → RGB numpy
    track_s: float  # the tracker (the model)
    publish_s: float  # scheduler hand-over, message building, publishing
    frames: int = 1  # camera frames tracked together in the step

    @property
    def overhead_fraction(self) -> float:
        """The node's own work relative to the model's."""
        return (self.convert_s + self.publish_s) / self.track_s if self.track_s > 0 else 0.0


class PamNode(LifecycleNode):
    """See the module docstring."""

    def __init__(self, command_line: dict | None = None, **kwargs) -> None:
        """`command_line`: the `-p` values as typed (`parameters.command_line_parameters`)."""
        super().__init__(NODE_NAME, **kwargs)
        sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_INTERVAL_S))
        self.params: NodeParameters = declare_parameters(self, command_line)
        self.lifecycle_guard = TransitionGuard(self)
        self.shutting_down = threading.Event()
        self.add_pre_set_parameters_callback(integers_as_doubles)
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self.tracker = None  # pam_ros.tracking.MultiStreamTracker after configure
        self.image_encoder = ""  # "torch" / "onnxruntime:<provider>" after configure
        self.pipelines: CameraPipelines | None = None  # one FramePipeline per camera
        self.engine = None  # pam_ros.semantics.SemanticEngine after configure (or None)
        self.scheduler: SemanticsScheduler | None = None
        self.device = "cpu"
        self.last_error = ""  # the newest error of the node itself (configure, services)
        self._frames_ready = threading.Event()  # set by every camera's image callback
        self.cameras: dict[str, CameraIO] = {
            name: CameraIO(self, name, self._frames_ready) for name in self.params.cameras
        }
        self.timings: deque[FrameTimings] = deque(maxlen=1000)  # newest last
        self._models_lock = threading.Lock()  # swapping the models (configure / cleanup)
        self._overlay_timer = None
        self.overlay_render_s: deque[float] = deque(maxlen=1000)
        self._rate_window: tuple[float, int] = (time.monotonic(), 0)
        self._error_window = ErrorWindow(ERROR_WINDOW_PERIODS * self.params.diagnostics_period_s)
        self._qos_window = ErrorWindow(ERROR_WINDOW_PERIODS * self.params.diagnostics_period_s)
        self._failure_log = KindThrottle()
        self._failure_window = ErrorWindow(ERROR_WINDOW_PERIODS * self.params.diagnostics_period_s)
        self._stop_worker = threading.Event()
        self._worker: threading.Thread | None = None
        self._discovery_worker: threading.Thread | None = None
        self.heap_trimmer = HeapTrimmer(self.params.memory_trim_period_s)
        self.delivery = DeliveryCounters()  # QoS events of all subscriptions and publishers

        self._image_group = MutuallyExclusiveCallbackGroup()
        self._prompt_group = MutuallyExclusiveCallbackGroup()
        self._timer_group = MutuallyExclusiveCallbackGroup()
        self._overlay_group = MutuallyExclusiveCallbackGroup()
        self.objects = ObjectServices(self)  # add_object, remove_object, reset, describe
        self._find_objects = FindObjectsService(
            self,
            lambda: self.scheduler,
            self._not_active_reason,
            discover=self.objects.discover_where_due,
            locate=self.objects.locate,
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

    def camera(self, name: str | None = None) -> CameraIO:
        """A camera by name; None: the only camera (UnknownCameraError otherwise)."""
        if name is None and len(self.cameras) == 1:
            return next(iter(self.cameras.values()))
        if name not in self.cameras:
            cameras = ", ".join(repr(n) for n in self.cameras)
            raise UnknownCameraError(f"unknown camera {name!r}; cameras: {cameras}")
        return self.cameras[name]

    @property
    def object_ids(self) -> list[str]:
        """Every tracked object id, camera by camera."""
        pipelines = self.pipelines
        return pipelines.object_ids if pipelines is not None else []

    def require_active(self) -> CameraPipelines:
        if self.shutting_down.is_set():
            raise NodeNotActiveError("pam_ros is shutting down")
        if self.lifecycle_state != "active":
            raise NodeNotActiveError(f"pam_ros is {self.lifecycle_state}, not active")
        pipelines = self.pipelines
        if pipelines is None:
            raise NodeNotActiveError("pam_ros has no tracker (not configured)")
        return pipelines

    def _not_active_reason(self) -> str | None:
        try:
            self.require_active()
        except NodeNotActiveError as exc:
            return str(exc)
        return None

    # ---- lifecycle ----------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        params = self.params
        self.get_logger().info("configuring: loading the models")
        models = None
        try:
            self._check_camera_topics()
            self.device = resolve_device(params.device)
            models = build_models(model_settings(params), log_error=self._log_semantics_error)
            pipelines = CameraPipelines(
                models.tracker,
                list(self.cameras),
                models.scheduler,
                PipelineConfig(params.max_objects),
            )
        except Exception as exc:  # missing weights, bad checkpoint, out of memory ...
            failure = str(exc)
        else:
            failure = None
        if failure is not None:
            # Outside the except clause: the exception's traceback (and the half-loaded weights
            # its frames reference) is gone before the memory is given back.
            self.get_logger().error(f"configure failed, the node stays unconfigured: {failure}")
            self.last_error = f"configure failed: {failure}"
            if models is not None:
                models.release()
            models = None
            give_back_memory(self.device)
            return TransitionCallbackReturn.FAILURE
        if params.tracker_random_weights:
            self.get_logger().warning("tracker.random_weights: SAM 2 has RANDOM weights")
        if models.engine is not None and models.engine.random_weights:
            self.get_logger().warning("the semantic engine has RANDOM weights: text is noise")
        tracker, engine, scheduler = models.tracker, models.engine, models.scheduler
        del models
        with self._models_lock:
            self.tracker, self.engine, self.scheduler = tracker, engine, scheduler
            self.pipelines = pipelines
            for name, camera in self.cameras.items():
                camera.pipeline = pipelines.camera(name)
        for camera in self.cameras.values():
            camera.create_outputs(self.delivery)
        semantics = self.engine.model_name if self.engine is not None else "disabled"
        cameras = ", ".join(self.cameras) if len(self.cameras) > 1 or params.cameras[0] else "1"
        self.image_encoder = image_encoder_label(tracker.model)
        self.get_logger().info(
            f"configured: SAM 2.1-{params.tracker_model_size} @ {params.tracker_image_size} px "
            f"on {self.device}, image encoder: {self.image_encoder}, semantics: {semantics}, "
            f"cameras: {cameras}"
        )
        return TransitionCallbackReturn.SUCCESS

    def _check_camera_topics(self) -> None:
        """Two cameras on one topic would track every frame twice as two cameras: refuse."""
        kind = "image/compressed" if self.params.use_compressed else "image"
        seen: dict[str, str] = {}
        for camera in self.cameras.values():
            topic = self.resolve_topic_name(camera.topic(kind))
            if topic in seen:
                raise ValueError(
                    f"cameras {seen[topic]!r} and {camera.name!r} both subscribe to {topic}: "
                    "remap each camera's image to its own topic"
                )
            seen[topic] = camera.name

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        groups = (self._image_group, self._prompt_group)
        for camera in self.cameras.values():
            camera.subscribe(
                self.params,
                self.delivery,
                lambda msg, c=camera: c.receive(msg, self.params.track_every_n),
                lambda msg, c=camera: self.objects.on_click(c, msg),
                lambda msg, c=camera: self.objects.on_box(c, msg),
                lambda prompts, c=camera: self.objects.on_detection_prompts(c, prompts),
                groups,
            )
        self._stop_worker.clear()
        self._worker = threading.Thread(
            target=self._tracking_loop, name="pam_tracking", daemon=True
        )
        self._worker.start()
        self._discovery_worker = threading.Thread(
            target=self._discovery_loop, name="pam_discovery", daemon=True
        )
        self._discovery_worker.start()
        if self.scheduler is not None:
            self.scheduler.start()
        self._restart_overlay_timer()
        listening = ", ".join(c.image_intake.describe() for c in self.cameras.values())
        self.get_logger().info(f"active: listening on {listening}")
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
        for camera in self.cameras.values():
            camera.unsubscribe()
        self._stop_worker.set()
        self._frames_ready.set()
        for worker in (self._worker, self._discovery_worker):
            if worker is not None:
                worker.join(timeout=60.0)
        self._worker = self._discovery_worker = None
        for camera in self.cameras.values():
            camera.slot.clear()
        if self.scheduler is not None:
            self.scheduler.stop()

    def _teardown(self) -> None:
        self._stop_workers()
        for camera in self.cameras.values():
            camera.destroy_outputs()
        self._release_models()

    def _release_models(self) -> None:
        self._drop_models()
        # After _drop_models has returned: no local of it still holds the pipelines, the
        # scheduler or their features while the memory is given back.
        give_back_memory(self.device)  # gc, CUDA cache, glibc heap (pam_ros/core/memory.py)

    def _drop_models(self) -> None:
        if self.scheduler is not None:
            self.scheduler.stop()
        with self._models_lock:
            pipelines = self.pipelines
            self.pipelines = None
            for camera in self.cameras.values():
                camera.pipeline = None
            if pipelines is not None:
                with pipelines.lock:  # a prompt being answered finishes first
                    self.tracker.release()
            elif self.tracker is not None:
                self.tracker.release()
            if self.engine is not None:
                self.engine.release()
            self.tracker, self.engine, self.scheduler = None, None, None

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
        self._frames_ready.set()
        for camera in self.cameras.values():
            camera.slot.close()

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
        if "max_objects" in values and (pipelines := self.pipelines) is not None:
            for name in pipelines.names:
                pipeline = pipelines.camera(name)
                pipeline.config = dataclasses.replace(
                    pipeline.config, max_objects=updated.max_objects
                )
        self.heap_trimmer.period_s = updated.memory_trim_period_s
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

    # ---- frames -------------------------------------------------------------------------

    def _tracking_loop(self) -> None:
        """Track the newest frame of every camera that has one, together, until stopped."""
        while not self._stop_worker.is_set():
            if not self._frames_ready.wait(WORKER_POLL_S):
                continue
            self._frames_ready.clear()
            pending = {}
            for name, camera in self.cameras.items():
                frame = camera.slot.take(timeout=0)
                if frame is not None:
                    pending[name] = frame
            if pending and not self._stop_worker.is_set():
                try:
                    self._process(pending)
                except Exception as exc:  # the loop never dies: the next frame is processed
                    self._frame_failed(pending, exc)
                self.heap_trimmer.maybe_trim()

    def _frame_failed(self, pending: dict[str, PendingFrame], exc: Exception) -> None:
        """Last resort for a frame: count it, log it (throttled, with where it came from)."""
        if self._stop_worker.is_set():  # stopping: the models may already be gone
            self.get_logger().debug(f"frame abandoned while stopping: {exc!r}")
            return
        where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        origin = f" at {Path(where.filename).name}:{where.lineno}" if where else ""
        for name in pending:
            self.cameras[name].count_error("frame_failures", f"frame failed: {exc!r}{origin}")
        if self._failure_log.allow(f"{type(exc).__name__}{origin}"):  # per kind and place
            self.get_logger().error(f"a frame failed{origin}, continuing with the next: {exc!r}")

    def _process(self, pending: dict[str, PendingFrame]) -> None:
        """Convert, track (one batched encoder pass), hand to semantics, publish."""
        started = time.perf_counter()
        params = self.params
        frames = {}
        for name, item in pending.items():
            frame = self.cameras[name].convert(item.msg, params.max_image_pixels)
            if frame is not None:  # (H, W, 3) RGB uint8
                frames[name] = (frame, stamp_to_ns(item.msg.header.stamp))
        pipelines = self.pipelines
        if not frames or pipelines is None:
            return
        tracking = time.perf_counter()
        try:
            outputs = pipelines.process(frames)
        except Exception as exc:  # never let one bad frame or model error stop tracking
            if self._stop_worker.is_set():  # stopping: the models may already be gone
                self.get_logger().debug(f"frame abandoned while stopping: {exc!r}")
                return
            for name in frames:
                self.cameras[name].count_error("tracking_errors", f"tracking failed: {exc!r}")
            self.get_logger().error(
                f"tracking failed on a frame, continuing: {exc!r}", throttle_duration_sec=5.0
            )
            return
        tracked = time.perf_counter()
        if self._stop_worker.is_set():  # deactivating or shutting down: nothing goes out
            return
        for name, output in outputs.items():
            item = pending[name]
            self.cameras[name].publish(output, item.msg.header, item.arrival, params)
        finished = time.perf_counter()
        self.timings.append(
            FrameTimings(
                convert_s=tracking - started,
                track_s=tracked - tracking,
                publish_s=finished - tracked,
                frames=len(outputs),
            )
        )

    def _discovery_loop(self) -> None:
        """`pam_discovery` thread: in periodic mode, a pass on every camera whose last one is
        discovery.period_s old. Beside tracking, never in its way: the pass holds the
        pipeline's lock only to read the frame and to add what it found."""
        while not self._stop_worker.wait(DISCOVERY_POLL_S):
            if self.params.discovery_mode != "periodic":
                continue
            try:
                self.objects.discover_where_due()
            except Exception as exc:  # a pass that fails never stops tracking or this loop
                if self._stop_worker.is_set():
                    return
                for camera in self.cameras.values():
                    camera.count_error("frame_failures", f"discovery failed: {exc!r}")
                if self._failure_log.allow(f"discovery {type(exc).__name__}"):
                    self.get_logger().error(f"discovery failed, tracking goes on: {exc!r}")

    def _publish_overlay(self) -> None:
        """Overlay timer: draw each camera's newest tracked frame once."""
        for camera in self.cameras.values():
            started = time.perf_counter()
            try:
                drawn = camera.publish_overlay(
                    self.params.overlay_alpha, self.params.overlay_encoding
                )
            except Exception as exc:  # an exception here would stop the executor
                self.get_logger().error(f"overlay failed: {exc!r}", throttle_duration_sec=5.0)
                continue
            if drawn:
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

    # ---- prompts ------------------------------------------------------------------------

    def add_object(
        self, points, labels, box, object_id: str | None, name: str, camera: str = ""
    ) -> str:
        """Prompt a new object (see `ObjectServices.add_object`)."""
        return self.objects.add_object(points, labels, box, object_id, name, camera)

    def _log_semantics_error(self, message: str) -> None:
        self.get_logger().error(message, throttle_duration_sec=5.0)

    # ---- diagnostics --------------------------------------------------------------------

    def health(self, camera_healths: dict[str, CameraHealth] | None = None) -> NodeHealth:
        """The node's state, every camera summed (`camera_healths`: as `camera_healths()`)."""
        now = time.monotonic()
        if camera_healths is None:
            camera_healths = self.camera_healths(now)
        lone = camera_healths.get("")  # named cameras have /diagnostics entries of their own
        silent_camera = silence_message(lone) if lone is not None else ""
        cameras = list(self.cameras.values())
        totals: dict[str, int] = {}
        last_errors = []
        for camera in cameras:
            with camera.counters_lock:
                for key, value in vars(camera.counters).items():
                    if isinstance(value, int):
                        totals[key] = totals.get(key, 0) + value
                if camera.counters.last_error:
                    last_errors.append(camera.counters.last_error)
        window_start, window_frames = self._rate_window
        elapsed = now - window_start
        tracked = totals["frames_tracked"]
        rate = (tracked - window_frames) / elapsed if elapsed > 0 else 0.0
        self._rate_window = (now, tracked)
        scheduler = self.scheduler
        stats = scheduler.stats if scheduler is not None else None
        gpu_mb = 0.0
        if self.device.startswith("cuda"):
            import torch

            gpu_mb = torch.cuda.memory_allocated() / 2**20
        semantic_errors = stats.engine_errors if stats else 0
        last_error = (
            self.last_error or next(iter(last_errors), "") or (stats.last_error if stats else "")
        )
        self._error_window.window_s = ERROR_WINDOW_PERIODS * self.params.diagnostics_period_s
        self._failure_window.window_s = self._error_window.window_s
        failures = self._failure_window.update(
            now, totals["tracking_errors"] + totals["frame_failures"], ""
        )
        recent = self._error_window.update(
            now,
            totals["frames_rejected"]
            + totals["tracking_errors"]
            + totals["frame_failures"]
            + semantic_errors,
            last_error,
        )
        return NodeHealth(
            state=self.lifecycle_state,
            frame_rate_hz=rate,
            tracking_latency_s=max(camera.latency_s for camera in cameras),
            frames_received=totals["frames_received"],
            frames_dropped=sum(camera.slot.counters.dropped for camera in cameras),
            frames_rejected=totals["frames_rejected"],
            tracking_errors=totals["tracking_errors"],
            objects=len(self.object_ids),
            semantic_queue_depth=scheduler.queue_depth() if scheduler is not None else 0,
            semantic_calls=stats.engine_calls if stats else 0,
            semantic_errors=semantic_errors,
            gpu_memory_mb=gpu_mb,
            last_error=recent.last_error,
            recent_errors=recent.count,
            frame_failures=totals["frame_failures"],
            recent_failures=failures.count,
            last_error_age_s=recent.last_error_age_s,
            image_encoder=self.image_encoder if self.tracker is not None else "",
            silent_camera=silent_camera,
            **self._delivery_health(),
        )

    def _delivery_health(self) -> dict:
        delivery = self.delivery.snapshot()
        # QoS events warn while recent, like errors (the counters only grow)
        self._qos_window.window_s = self._error_window.window_s
        recent = self._qos_window.update(
            time.monotonic(), delivery.messages_lost + delivery.incompatible_qos, ""
        )
        intakes = [camera.image_intake for camera in self.cameras.values()]
        return {
            "messages_lost": delivery.messages_lost,
            "incompatible_qos": delivery.incompatible_qos,
            "recent_qos_events": recent.count,
            "image_qos": ",".join(i.reliability for i in intakes if i is not None),
        }

    def camera_healths(self, now: float) -> dict[str, CameraHealth]:
        """Each camera's health by name ("" the lone unnamed one)."""
        timeout = self.params.camera_timeout_s
        return {name: camera.health(now, timeout) for name, camera in self.cameras.items()}

    def _publish_diagnostics(self) -> None:
        name = self.get_fully_qualified_name()
        try:
            now, active = time.monotonic(), self.lifecycle_state == "active"
            healths = self.camera_healths(now)
            msg = message_builders.diagnostics_msg(
                self.get_clock().now().to_msg(), name, self.health(healths)
            )
            for camera in self.cameras.values():
                health = healths[camera.name]
                camera.log_silence(health, self.get_logger(), now)
                if camera.name:  # named cameras: one entry each (silent ones warn)
                    msg.status.append(camera_status(name, health, active))
                if camera.outputs_3d is not None:
                    msg.status.append(camera.outputs_3d.diagnostic_status(name))
        except Exception as exc:  # never let a report stop the executor
            self.get_logger().error(f"diagnostics failed: {exc!r}", throttle_duration_sec=5.0)
            return
        self._diagnostics_pub.publish(msg)


def main(args: list[str] | None = None) -> int:
    """`pam_node`: run the node until SIGINT/SIGTERM (see `pam_ros.ros.runner`)."""
    return run_node(PamNode, args)


if __name__ == "__main__":
    sys.exit(main())
