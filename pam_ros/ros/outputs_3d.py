"""3D outputs of the node: per-object 3D state from the paired depth, and where it is published.

Per tracked frame `Objects3DOutputs.publish` estimates every object's `Object3D`
(`pam_ros.geometry`) from the depth frame matching the colour stamp, fills the TrackedObject 3D
fields, and publishes `detections_3d` (vision_msgs/Detection3DArray on the source header, the
object's category as class_id), `markers_3d` (a CUBE and a TEXT_VIEW_FACING label per object
with a position) and, with `tf.enabled`, one TF frame `<tf.prefix><id>` per object. With
`tf.target_frame` set, detections_3d and markers_3d are expressed in that frame when TF knows the
transform from the depth frame; otherwise they stay in the depth frame and /diagnostics says so.
vision_msgs and tf2_ros are imported guarded: without them that output is off with a log line.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point, PointStamped, TransformStamped, Vector3
from visualization_msgs.msg import Marker, MarkerArray

from pam_ros.geometry import Estimator3DConfig, Object3D, estimate_object_3d, no_position
from pam_ros.geometry.object_3d import NO_DEPTH
from pam_ros.pipeline.overlay import color_for
from pam_ros.ros.depth_intake import DepthCache
from pam_ros.ros.stamps import stamp_to_ns
from pam_ros.ros.topics import camera_topic


@dataclass(frozen=True)
class Latest3D:
    state: Object3D
    frame_id: str
    stamp: object  # builtin_interfaces/Time of the source frame


def quaternion_matrix(x: float, y: float, z: float, w: float) -> np.ndarray:
    """(3, 3) rotation of a unit quaternion."""
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def fill_tracked_object(msg, state: Object3D, frame_id: str) -> None:
    """Copy an Object3D into a pam_ros/TrackedObject's 3D fields."""
    msg.has_position = bool(state.has_position)
    msg.position_frame_id = frame_id
    msg.position = Point(x=state.position[0], y=state.position[1], z=state.position[2])
    msg.extent_center = Point(x=state.center[0], y=state.center[1], z=state.center[2])
    msg.extent = Vector3(x=state.extent[0], y=state.extent[1], z=state.extent[2])
    msg.volume_center = Point(
        x=state.volume_center[0], y=state.volume_center[1], z=state.volume_center[2]
    )
    msg.valid_depth_points = int(state.valid_points)
    msg.valid_depth_fraction = float(state.valid_fraction)
    msg.no_position_reason = state.reason


class Objects3DOutputs:
    def __init__(self, node, cache: DepthCache, params, camera: str = "") -> None:
        self._node = node
        self.camera = camera
        self.cache = cache
        self._slop_ns = int(params.depth_slop_s * 1e9)
        self._estimator = Estimator3DConfig(
            erosion_px=params.depth_erosion_px, max_depth_m=params.depth_max_m
        )
        self._tf_prefix = params.tf_prefix
        self._target_frame = params.tf_target_frame
        self._latest: dict[str, Latest3D] = {}
        self._lock = threading.Lock()
        self.target_frame_failures = 0
        self.target_frame_error = ""
        log = node.get_logger()
        self.markers_pub = node.create_publisher(
            MarkerArray, camera_topic(camera, "markers_3d"), 10
        )
        self.detections_pub = None
        try:
            from vision_msgs.msg import Detection3DArray

            self.detections_pub = node.create_publisher(
                Detection3DArray, camera_topic(camera, "detections_3d"), 10
            )
        except ImportError as error:
            log.warning(f"vision_msgs not installed ({error}): detections_3d is off")
        self._broadcaster = self._tf_buffer = self._tf_listener = None
        if params.tf_enabled or self._target_frame:
            try:
                import tf2_ros

                if params.tf_enabled:
                    self._broadcaster = tf2_ros.TransformBroadcaster(node)
                if self._target_frame:
                    self._tf_buffer = tf2_ros.Buffer()
                    self._tf_listener = tf2_ros.TransformListener(self._tf_buffer, node)
            except ImportError as error:
                log.warning(f"tf2_ros not installed ({error}): TF frames / target_frame are off")

    # ---- per frame ----------------------------------------------------------------------

    def estimate(self, stamp_ns: int, frame_result) -> tuple[dict[str, Object3D], str]:
        """Object3D per object id of `frame_result`, and the depth frame_id."""
        depth_frame = self.cache.match(stamp_ns, self._slop_ns)
        if depth_frame is None:
            state = no_position(NO_DEPTH, "no depth image within depth.slop_s of this frame")
            return {oid: state for oid in frame_result.objects}, ""
        if depth_frame.error_code:
            state = no_position(depth_frame.error_code, depth_frame.error)
            return {oid: state for oid in frame_result.objects}, depth_frame.frame_id
        states = {}
        for oid, obj in frame_result.objects.items():
            if not obj.present:
                states[oid] = no_position("absent", "the tracker scores the object absent")
                continue
            states[oid] = estimate_object_3d(
                obj.mask, depth_frame.depth, depth_frame.intrinsics, obj.box, self._estimator
            )
        return states, depth_frame.frame_id

    def publish(self, header, frame_result, tracked_array, semantics) -> None:
        """Estimate, fill `tracked_array`'s objects (before it is published), publish 3D."""
        states, frame_id = self.estimate(stamp_to_ns(header.stamp), frame_result)
        frame_id = frame_id or header.frame_id
        for msg in tracked_array.objects:
            if msg.id in states:
                fill_tracked_object(msg, states[msg.id], frame_id)
        with self._lock:
            for oid, state in states.items():
                self._latest[oid] = Latest3D(state, frame_id, header.stamp)
            for oid in list(self._latest):
                if oid not in states:
                    del self._latest[oid]
        located = {oid: s for oid, s in states.items() if s.has_position}
        rotation, translation, out_frame = self._to_target(frame_id)
        labels = {
            oid: (semantics[oid].category if oid in semantics and semantics[oid].category else "")
            for oid in located
        }
        if self.detections_pub is not None:
            self.detections_pub.publish(
                self._detections(header, out_frame, located, labels, rotation, translation)
            )
        self.markers_pub.publish(
            self._markers(header, out_frame, located, labels, rotation, translation)
        )
        if self._broadcaster is not None and located:
            transforms = []
            for oid, state in located.items():
                transform = TransformStamped()
                transform.header.stamp = header.stamp
                transform.header.frame_id = frame_id
                transform.child_frame_id = f"{self._tf_prefix}{oid.replace('/', '_')}"
                px, py, pz = state.position
                transform.transform.translation = Vector3(x=px, y=py, z=pz)
                transform.transform.rotation.w = 1.0
                transforms.append(transform)
            self._broadcaster.sendTransform(transforms)

    def latest(self, object_id: str) -> Latest3D | None:
        with self._lock:
            return self._latest.get(object_id)

    # ---- helpers ------------------------------------------------------------------------

    def _to_target(self, frame_id: str):
        """(R (3, 3), t (3,), frame) mapping depth-frame points into tf.target_frame, or the
        identity in the depth frame when there is no target or TF does not know it."""
        identity = (np.eye(3), np.zeros(3), frame_id)
        if self._tf_buffer is None or not frame_id:
            return identity
        try:
            from rclpy.time import Time

            stamped = self._tf_buffer.lookup_transform(self._target_frame, frame_id, Time())
        except Exception as error:  # tf2 LookupException / ConnectivityException / ...
            self.target_frame_failures += 1
            self.target_frame_error = (
                f"no transform {frame_id} -> {self._target_frame}: {error}; "
                f"3D outputs stay in {frame_id}"
            )
            self._node.get_logger().warning(self.target_frame_error, throttle_duration_sec=5.0)
            return identity
        q = stamped.transform.rotation
        t = stamped.transform.translation
        return quaternion_matrix(q.x, q.y, q.z, q.w), np.array([t.x, t.y, t.z]), self._target_frame

    @staticmethod
    def _orientation(rotation: np.ndarray):
        from geometry_msgs.msg import Quaternion

        m = rotation
        w = np.sqrt(max(0.0, 1.0 + m[0, 0] + m[1, 1] + m[2, 2])) / 2
        if w < 1e-6:  # 180 degree turn: use the largest diagonal
            i = int(np.argmax(np.diag(m)))
            j, k = (i + 1) % 3, (i + 2) % 3
            s = np.sqrt(max(0.0, 1.0 + m[i, i] - m[j, j] - m[k, k])) * 2
            q = [0.0, 0.0, 0.0]
            q[i] = s / 4
            q[j] = (m[j, i] + m[i, j]) / s
            q[k] = (m[k, i] + m[i, k]) / s
            return Quaternion(x=q[0], y=q[1], z=q[2], w=(m[k, j] - m[j, k]) / s)
        return Quaternion(
            x=(m[2, 1] - m[1, 2]) / (4 * w),
            y=(m[0, 2] - m[2, 0]) / (4 * w),
            z=(m[1, 0] - m[0, 1]) / (4 * w),
            w=w,
        )

    def _detections(self, header, out_frame, located, labels, rotation, translation):
        from vision_msgs.msg import Detection3D, Detection3DArray, ObjectHypothesisWithPose

        array = Detection3DArray()
        array.header.stamp = header.stamp
        array.header.frame_id = out_frame
        orientation = self._orientation(rotation)
        for oid, state in located.items():
            detection = Detection3D()
            detection.header = array.header
            detection.id = oid
            center = rotation @ np.asarray(state.center) + translation
            position = rotation @ np.asarray(state.position) + translation
            detection.bbox.center.position = Point(x=center[0], y=center[1], z=center[2])
            detection.bbox.center.orientation = orientation
            detection.bbox.size = Vector3(x=state.extent[0], y=state.extent[1], z=state.extent[2])
            hypothesis = ObjectHypothesisWithPose()
            hypothesis.hypothesis.class_id = labels[oid] or "unknown"
            hypothesis.hypothesis.score = float(state.valid_fraction)
            hypothesis.pose.pose.position = Point(x=position[0], y=position[1], z=position[2])
            hypothesis.pose.pose.orientation = orientation
            detection.results = [hypothesis]
            array.detections.append(detection)
        return array

    def _markers(self, header, out_frame, located, labels, rotation, translation):
        markers = MarkerArray()
        clear = Marker()
        clear.header.stamp, clear.header.frame_id = header.stamp, out_frame
        clear.action = Marker.DELETEALL
        markers.markers.append(clear)
        orientation = self._orientation(rotation)
        for index, (oid, state) in enumerate(located.items()):
            red, green, blue = (c / 255.0 for c in color_for(oid))
            center = rotation @ np.asarray(state.center) + translation
            box = Marker()
            box.header = clear.header
            box.ns, box.id, box.type, box.action = "pam_boxes_3d", index, Marker.CUBE, Marker.ADD
            box.pose.position = Point(x=center[0], y=center[1], z=center[2])
            box.pose.orientation = orientation
            box.scale = Vector3(
                x=max(state.extent[0], 0.01),
                y=max(state.extent[1], 0.01),
                z=max(state.extent[2], 0.01),
            )
            box.color.r, box.color.g, box.color.b, box.color.a = red, green, blue, 0.5
            box.lifetime.sec = 1
            label = Marker()
            label.header = clear.header
            label.ns, label.id = "pam_labels_3d", index
            label.type, label.action = Marker.TEXT_VIEW_FACING, Marker.ADD
            # above the box in the camera frame (y points down)
            top = rotation @ (np.asarray(state.center) - [0, state.extent[1] / 2 + 0.05, 0])
            top = top + translation
            label.pose.position = Point(x=top[0], y=top[1], z=top[2])
            label.pose.orientation.w = 1.0
            label.scale.z = 0.05
            label.color.r, label.color.g, label.color.b, label.color.a = red, green, blue, 1.0
            label.text = f"{oid}: {labels[oid]}" if labels[oid] else oid
            label.lifetime.sec = 1
            markers.markers += [box, label]
        return markers

    def diagnostic_status(self, node_name: str) -> DiagnosticStatus:
        counters = self.cache.snapshot()
        status = DiagnosticStatus()
        status.name = f"{node_name}: depth" + (f" {self.camera}" if self.camera else "")
        status.hardware_id = node_name
        problems = (
            counters.bad_depth
            or counters.bad_camera_info
            or counters.colour_without_depth
            or self.target_frame_failures
        )
        if counters.pairs == 0:
            status.level = DiagnosticStatus.WARN
            status.message = "no depth/image + camera_info pair received yet"
        elif problems:
            status.level = DiagnosticStatus.WARN
            status.message = self.target_frame_error or counters.last_error or "depth problems"
        else:
            status.level, status.message = DiagnosticStatus.OK, "depth paired"
        values = dict(vars(counters))
        values.pop("last_error")
        values["target_frame_failures"] = self.target_frame_failures
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        return status

    def destroy(self) -> None:
        node = self._node
        node.destroy_publisher(self.markers_pub)
        if self.detections_pub is not None:
            node.destroy_publisher(self.detections_pub)
        self._tf_listener = None  # its subscriptions go with the node


DEPTH_OFF = "no_depth: depth input is off (depth.enabled false)"

# ---- hooks for the node ---------------------------------------------------------------------


def start_3d(node, params, qos, cache: DepthCache, callback_group=None, camera: str = ""):
    """On activate: (DepthIntake, Objects3DOutputs) when depth.enabled and message_filters is
    here, else (None, None) with a log line saying why."""
    from pam_ros.ros.depth_intake import DepthIntake

    if not params.depth_enabled:
        return None, None
    cache.clear()
    intake = DepthIntake(
        node,
        cache,
        params.depth_slop_s,
        params.depth_metres_per_unit,
        qos,
        callback_group,
        camera,
    )
    if not intake.available:
        node.get_logger().error(f"depth.enabled but {intake.reason}")
        return None, None
    outputs = Objects3DOutputs(node, cache, params, camera)
    node.get_logger().info(
        f"depth: pairing {intake.topics[0]} with {intake.topics[1]} "
        f"(slop {params.depth_slop_s} s); 3D on {camera_topic(camera, 'detections_3d')}, "
        f"{camera_topic(camera, 'markers_3d')}"
        + (f", TF {params.tf_prefix}<id>" if params.tf_enabled else "")
    )
    return intake, outputs


def stop_3d(intake, outputs) -> None:
    if intake is not None:
        intake.destroy()
    if outputs is not None:
        outputs.destroy()


def publish_3d(node, outputs, header, frame_result, tracked_array, semantics) -> None:
    """Fill and publish the 3D state; a failure here never stops tracking (logged, counted).
    Without depth every object says why it has no position."""
    if outputs is None:
        for msg in tracked_array.objects:
            msg.no_position_reason = DEPTH_OFF
        return
    try:
        outputs.publish(header, frame_result, tracked_array, semantics)
    except Exception as error:
        outputs.cache.counters.last_error = f"3D step failed: {error!r}"
        node.get_logger().error(f"3D step failed: {error!r}", throttle_duration_sec=5.0)


def located(outputs, object_id: str) -> tuple[bool, PointStamped, PointStamped, Vector3, str]:
    """(has_position, position, volume centre, extent, no_position_reason) of an object's
    latest 3D state, for the services that answer where an object is."""
    position, volume_center = PointStamped(), PointStamped()
    if outputs is None:
        return False, position, volume_center, Vector3(), DEPTH_OFF
    latest = outputs.latest(object_id)
    if latest is None:
        return (
            False,
            position,
            volume_center,
            Vector3(),
            "no_depth: no 3D state for this object yet",
        )
    state = latest.state
    for stamped, point in ((position, state.position), (volume_center, state.volume_center)):
        stamped.header.frame_id = latest.frame_id
        stamped.header.stamp = latest.stamp
        stamped.point = Point(x=point[0], y=point[1], z=point[2])
    extent = Vector3(x=state.extent[0], y=state.extent[1], z=state.extent[2])
    return bool(state.has_position), position, volume_center, extent, state.reason


def fill_describe_response(response, outputs, object_id: str) -> None:
    """Describe answers carry where the object is (its latest 3D state)."""
    (
        response.has_position,
        response.position,
        response.volume_center,
        response.extent,
        response.no_position_reason,
    ) = located(outputs, object_id)
