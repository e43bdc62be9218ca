"""The object services and prompt topics of the node: add, remove, reset, describe, clicks, boxes.

    add_object (pam_ros/AddObject)       prompt on a camera's newest frame (points and/or box)
    remove_object (pam_ros/RemoveObject) by id (a named camera's ids name it: "wrist/1")
    reset (std_srvs/Trigger)             every camera's objects
    describe (pam_ros/Describe)          the scheduler's cache or a computation now, plus 3D
    <camera>/click, <camera>/boxes, <camera>/detections_in: prompts from rviz and detectors

Every callback answers or logs and never raises (an exception would stop the executor). The
node (`pam_node.PamNode`) owns the models and the cameras; this module only turns requests into
calls on the camera's `pam_ros.pipeline.FramePipeline` and the scheduler.
"""

from __future__ import annotations

import functools
import time

from geometry_msgs.msg import PointStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from sensor_msgs.msg import RegionOfInterest
from std_srvs.srv import Trigger

from pam_ros.pipeline import (
    BOX_DUPLICATE_IOU,
    ORIGIN_DETECTION,
    ORIGIN_PROMPT,
    DiscoveryOutcome,
    UnknownCameraError,
    box_iou,
)
from pam_ros.pipeline.semantics_scheduler import DescribeFailedError, SchedulerError
from pam_ros.ros import detections, message_builders, outputs_3d
from pam_ros.ros.camera_io import CameraIO
from pam_ros.ros.model_settings import discovery_config
from pam_ros.srv import AddObject, Describe, Discover, RemoveObject


class NodeNotActiveError(RuntimeError):
    """A service or prompt arrived while the node is not active."""


def never_raises(callback):
    """Service/topic callbacks must not raise: an exception would stop the whole executor.

    An unexpected error (a model raising something other than its documented ValueErrors) is
    logged and, for services, answered with success=False and the error.
    """

    @functools.wraps(callback)
    def guarded(self, *args):  # (request, response) of a service, (msg) or (camera, msg)
        try:
            return callback(self, *args)
        except Exception as exc:
            self.node.get_logger().error(f"{callback.__name__} failed: {exc!r}")
            self.node.last_error = f"{callback.__name__}: {exc!r}"
            response = args[-1] if args and hasattr(args[-1], "success") else None
            if response is not None:
                response.success, response.message = False, f"internal error: {exc!r}"
            return response

    return guarded


class ObjectServices:
    """See the module docstring. Services live for the node's whole life (answering "not
    active" when it is not), each in its own callback group so a slow describe never holds up
    add/remove/reset."""

    def __init__(self, node) -> None:
        self.node = node
        for srv_type, name, callback in (
            (AddObject, "add_object", self.on_add_object),
            (RemoveObject, "remove_object", self.on_remove_object),
            (Trigger, "reset", self.on_reset),
            (Describe, "describe", self.on_describe),
            (Discover, "discover", self.on_discover),
        ):
            node.create_service(
                srv_type, name, callback, callback_group=MutuallyExclusiveCallbackGroup()
            )

    def _prompted_camera(self, camera: str, object_id: str | None) -> CameraIO:
        """The camera a prompt is for: named, else the one its id names, else the only one."""
        if camera:
            return self.node.camera(camera)
        if object_id and "/" in object_id and object_id.split("/", 1)[0] in self.node.cameras:
            return self.node.cameras[object_id.split("/", 1)[0]]
        if len(self.node.cameras) == 1:
            return self.node.camera()
        raise UnknownCameraError(
            f"several cameras ({', '.join(self.node.cameras)}): say which in `camera` "
            "(or give an id that begins with it, e.g. 'wrist/mug')"
        )

    def add_object(
        self,
        points,
        labels,
        box,
        object_id: str | None,
        name: str,
        camera: str = "",
        origin: str = ORIGIN_PROMPT,
    ) -> str:
        """Prompt a new object on the camera's newest tracked frame. Raises ValueError-derived
        errors (no frame yet, point outside the image, too many objects), KeyError-derived
        ones (unknown camera) or NodeNotActiveError."""
        self.node.require_active()
        pipeline = self._prompted_camera(camera, object_id).pipeline
        if pipeline is None:
            raise NodeNotActiveError("pam_ros has no tracker (not configured)")
        return pipeline.add_object(points, labels, box, object_id, name, origin)

    @never_raises
    def on_add_object(self, request: AddObject.Request, response: AddObject.Response):
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
            response.id = self.add_object(
                points, labels, box, request.id or None, request.name, request.camera
            )
        except (ValueError, KeyError, NodeNotActiveError) as exc:
            response.success, response.message = False, str(exc)
            self.node.get_logger().warning(f"add_object refused: {exc}")
            return response
        response.success, response.message = True, f"tracking object {response.id!r}"
        return response

    @never_raises
    def on_click(self, camera: CameraIO, msg: PointStamped) -> None:
        point = (msg.point.x, msg.point.y)
        try:
            new_id = self.add_object([point], [1], None, None, "", camera.name)
        except (ValueError, NodeNotActiveError) as exc:
            self.node.get_logger().warning(f"click at ({point[0]}, {point[1]}) ignored: {exc}")
            return
        self.node.get_logger().info(f"click at ({point[0]:.0f}, {point[1]:.0f}) → {new_id!r}")

    @never_raises
    def on_box(self, camera: CameraIO, msg: RegionOfInterest) -> None:
        box = (msg.x_offset, msg.y_offset, msg.x_offset + msg.width, msg.y_offset + msg.height)
        self._prompt_box(camera, box, "")

    @never_raises
    def on_detection_prompts(
        self, camera: CameraIO, prompts: list[detections.DetectionPrompt]
    ) -> None:
        taken: list[tuple[int, int, int, int]] = []  # boxes of this message already prompted
        for prompt in prompts:  # `detections_in`: one object per new box, named by its class
            if any(box_iou(prompt.box, other) > BOX_DUPLICATE_IOU for other in taken):
                continue
            taken.append(prompt.box)
            self._prompt_box(camera, prompt.box, prompt.name)

    def _prompt_box(self, camera: CameraIO, box: tuple[int, int, int, int], name: str) -> None:
        pipeline = camera.pipeline
        if pipeline is not None and pipeline.overlaps_tracked(box):
            return
        try:
            new_id = self.add_object(None, None, box, None, name, camera.name, ORIGIN_DETECTION)
        except (ValueError, NodeNotActiveError) as exc:
            self.node.get_logger().warning(f"box {box} ignored: {exc}", throttle_duration_sec=5.0)
            return
        self.node.get_logger().info(f"box {box} {name!r} → {new_id!r}".replace(" '' ", " "))

    @never_raises
    def on_remove_object(self, request: RemoveObject.Request, response: RemoveObject.Response):
        try:
            pipelines = self.node.require_active()
            pipelines.camera_of(request.id).remove_object(request.id)
        except (KeyError, ValueError, NodeNotActiveError) as exc:
            response.success, response.message = False, str(exc)
            return response
        response.success, response.message = True, f"removed {request.id!r}"
        return response

    @never_raises
    def on_reset(self, request: Trigger.Request, response: Trigger.Response):
        try:
            pipelines = self.node.require_active()
        except NodeNotActiveError as exc:
            response.success, response.message = False, str(exc)
            return response
        count = pipelines.reset()
        response.success, response.message = True, f"reset: forgot {count} object(s)"
        return response

    @never_raises
    def on_describe(self, request: Describe.Request, response: Describe.Response):
        kind = request.kind or Describe.Request.KIND_CATEGORY
        outputs_3d.fill_describe_response(response, self._outputs_3d_of(request.id), request.id)
        try:
            self.node.require_active()
            if self.node.scheduler is None:
                raise NodeNotActiveError("semantics are disabled (semantics.enabled:=false)")
            answer = self.node.scheduler.describe_now(
                request.id, kind, float(request.max_age), request.language or None
            )
        except (SchedulerError, NodeNotActiveError) as exc:
            response.success, response.message = False, str(exc)
            if isinstance(exc, DescribeFailedError):
                self.node.get_logger().error(str(exc))
            return response
        response.success = True
        response.message = "from cache" if answer.from_cache else "computed"
        response.semantics = message_builders.semantics_msg(answer.semantics)
        response.text = answer.text
        response.from_cache = answer.from_cache
        response.latency = float(answer.latency)
        return response

    # ---- discovery ----------------------------------------------------------------------

    def discover(
        self,
        camera: CameraIO,
        region: tuple[int, int, int, int] | None = None,
        max_new: int | None = None,
    ) -> DiscoveryOutcome:
        """One discovery pass on `camera`'s newest frame (see FramePipeline.discover). Raises
        NodeNotActiveError (not active, discovery.mode off) or the tracker's ValueErrors (no
        frame yet, a region outside the image)."""
        self.node.require_active()
        params = self.node.params
        if params.discovery_mode == "off":
            raise NodeNotActiveError(
                "discovery is off (discovery.mode: off): set it to on_request or periodic"
            )
        pipeline = camera.pipeline
        if pipeline is None:
            raise NodeNotActiveError("pam_ros has no tracker (not configured)")
        outcome = pipeline.discover(
            discovery_config(params),
            region,
            params.discovery_max_new_per_pass if max_new is None else max_new,
        )
        camera.last_discovery_at = time.monotonic()
        if outcome.added or outcome.skipped_max_objects:
            where = f" on {camera.label}" if camera.name else ""
            self.node.get_logger().info(f"discovery{where}: {outcome_text(outcome)}")
        return outcome

    def discover_where_due(self) -> list[str]:
        """A pass on every camera with a frame whose last pass is discovery.period_s old or
        older (periodic mode, find_objects with discover); returns the ids added."""
        from pam_ros.tracking import NoFrameError  # torch loads with the models, not before

        period = self.node.params.discovery_period_s
        added = []
        for camera in self.node.cameras.values():
            last = camera.last_discovery_at
            if camera.pipeline is None or camera.pipeline.last_stamp_ns == 0:
                continue
            if last is not None and time.monotonic() - last < period:
                continue
            try:
                added += [a.object_id for a in self.discover(camera).added]
            except NoFrameError:  # reset since its last frame: nothing to look at yet
                continue
        return added

    @never_raises
    def on_discover(self, request: Discover.Request, response: Discover.Response):
        started = time.monotonic()
        region = None
        if request.use_region:
            roi = request.region
            region = (
                roi.x_offset,
                roi.y_offset,
                roi.x_offset + roi.width,
                roi.y_offset + roi.height,
            )
        try:
            camera = self._prompted_camera(request.camera, None)
            outcome = self.discover(camera, region, int(request.max_new_objects) or None)
        except (ValueError, KeyError, NodeNotActiveError) as exc:
            response.success, response.message = False, str(exc)
            self.node.get_logger().warning(f"discover refused: {exc}")
            return response
        response.ids = [a.object_id for a in outcome.added]
        response.boxes = [message_builders.roi_msg(a.box) for a in outcome.added]
        response.scores = [float(a.predicted_iou) for a in outcome.added]
        response.found = outcome.found
        response.skipped = outcome.skipped_max_objects
        response.latency = float(time.monotonic() - started)
        response.message = outcome_text(outcome)
        # max_objects reached before anything found could be added: say so as a failure
        response.success = not (outcome.skipped_max_objects and not outcome.added)
        return response

    def locate(self, object_id: str) -> tuple:
        """(has_position, position, volume_center, extent, no_position_reason) of an object."""
        return outputs_3d.located(self._outputs_3d_of(object_id), object_id)

    def _outputs_3d_of(self, object_id: str):
        """The 3D outputs of the camera tracking `object_id` (None: none or depth off)."""
        pipelines = self.node.pipelines
        if pipelines is None:
            return None
        try:
            return self.node.cameras[pipelines.camera_of(object_id).camera].outputs_3d
        except KeyError:
            return None


def outcome_text(outcome: DiscoveryOutcome) -> str:
    """One line for a client or the log: found, added, skipped (and why), time."""
    text = f"found {outcome.found} new object(s), added {len(outcome.added)}"
    if outcome.added:
        text += f" ({', '.join(a.object_id for a in outcome.added)})"
    if outcome.skipped_max_objects:
        text += f"; max_objects reached: {outcome.skipped_max_objects} skipped"
    return text + f" in {outcome.seconds:.2f} s"
