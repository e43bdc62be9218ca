"""Depth input of the node: depth/image + camera_info paired by message_filters, cached by stamp.

The colour path is untouched (latest-frame slot); tracking never waits for depth. Each
(depth image, camera_info) pair that `ApproximateTimeSynchronizer` forms is decoded into a
`DepthFrame` and kept in a small `DepthCache`; the tracking worker asks for the frame nearest
the tracked colour frame's stamp (within `depth.slop_s`). What cannot pair, or cannot be
decoded, is counted (`DepthCounters`) and reported in /diagnostics; the objects then say why
they have no 3D (`pam_ros.geometry` reasons).

`DepthCache`, `DepthFrame`, `depth_frame_from_msgs` are ROS-message-shaped but need no node;
`DepthIntake` makes the subscriptions (message_filters is imported here, guarded: without it
depth is off with a clear log line).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from pam_ros.geometry import (
    CameraIntrinsics,
    DepthError,
    DepthImage,
    IntrinsicsError,
)
from pam_ros.geometry.depth import depth_from_buffer
from pam_ros.geometry.object_3d import BAD_DEPTH, BAD_INTRINSICS
from pam_ros.ros.health import KindThrottle
from pam_ros.ros.stamps import stamp_to_ns


@dataclass(frozen=True)
class DepthFrame:
    stamp_ns: int
    frame_id: str  # the depth image's optical frame
    depth: DepthImage | None = None  # None when it could not be decoded
    intrinsics: CameraIntrinsics | None = None  # None when camera_info is unusable
    error_code: str = ""  # pam_ros.geometry reason code when something is unusable
    error: str = ""


@dataclass
class DepthCounters:
    pairs: int = 0  # depth + camera_info pairs formed by the synchronizer
    bad_depth: int = 0  # pairs whose depth could not be decoded
    bad_camera_info: int = 0  # pairs whose camera_info was unusable (zero K, wrong size)
    matched: int = 0  # tracked colour frames with a depth pair within the slop
    colour_without_depth: int = 0  # tracked colour frames with none
    depth_without_colour: int = 0  # pairs dropped from the cache without being used
    last_error: str = ""


def stamp_ns_of(header) -> int:
    return stamp_to_ns(header.stamp)


def depth_frame_from_msgs(image_msg, info_msg, metres_per_unit: float = 0.0) -> DepthFrame:
    """sensor_msgs/Image (16UC1 / mono16 mm, 32FC1 m) + CameraInfo -> DepthFrame. Never raises."""
    stamp_ns = stamp_ns_of(image_msg.header)
    frame_id = image_msg.header.frame_id
    try:
        depth = depth_from_buffer(
            image_msg.data,
            int(image_msg.width),
            int(image_msg.height),
            int(image_msg.step),
            image_msg.encoding,
            metres_per_unit,
            big_endian=bool(image_msg.is_bigendian),
        )
    except DepthError as error:
        return DepthFrame(stamp_ns, frame_id, error_code=BAD_DEPTH, error=str(error))
    try:
        # K belongs to camera_info's width x height; estimate_object_3d scales it to the depth
        # image when they differ (an exact scaling, `is_scaling`) and refuses otherwise.
        intrinsics = CameraIntrinsics.from_k(info_msg.k, int(info_msg.width), int(info_msg.height))
        intrinsics.scaled_to(depth.width, depth.height)
    except IntrinsicsError as error:
        return DepthFrame(stamp_ns, frame_id, depth, error_code=BAD_INTRINSICS, error=str(error))
    return DepthFrame(stamp_ns, frame_id, depth, intrinsics)


@dataclass
class DepthCache:
    """The newest `capacity` depth frames by stamp; `match` finds the nearest within the slop."""

    capacity: int = 8
    counters: DepthCounters = field(default_factory=DepthCounters)

    def __post_init__(self) -> None:
        self._frames: OrderedDict[int, tuple[DepthFrame, bool]] = OrderedDict()  # stamp -> used
        self._lock = threading.Lock()

    def put(self, frame: DepthFrame) -> None:
        with self._lock:
            self.counters.pairs += 1
            if frame.error_code == BAD_DEPTH:
                self.counters.bad_depth += 1
                self.counters.last_error = f"bad depth: {frame.error}"
            elif frame.error_code:
                self.counters.bad_camera_info += 1
                self.counters.last_error = f"bad camera_info: {frame.error}"
            self._frames[frame.stamp_ns] = (frame, False)
            while len(self._frames) > self.capacity:
                _, (_, used) = self._frames.popitem(last=False)
                if not used:
                    self.counters.depth_without_colour += 1

    def match(self, stamp_ns: int, slop_ns: int) -> DepthFrame | None:
        with self._lock:
            best = min(self._frames, key=lambda s: abs(s - stamp_ns), default=None)
            if best is None or abs(best - stamp_ns) > slop_ns:
                self.counters.colour_without_depth += 1
                if self._frames:
                    self.counters.last_error = (
                        f"colour frame {stamp_ns} ns has no depth within {slop_ns / 1e9:.3f} s "
                        f"(nearest {abs(best - stamp_ns) / 1e9:.3f} s away)"
                    )
                return None
            frame, _ = self._frames[best]
            self._frames[best] = (frame, True)
            self.counters.matched += 1
            return frame

    def snapshot(self) -> DepthCounters:
        with self._lock:
            return DepthCounters(**vars(self.counters))

    def clear(self) -> None:
        with self._lock:
            self._frames.clear()


class DepthIntake:
    """Subscriptions to `depth/image` and `camera_info`, paired by ApproximateTimeSynchronizer.

    `available` is False (and `reason` says why) when message_filters is not installed."""

    def __init__(
        self,
        node,
        cache: DepthCache,
        slop_s: float,
        metres_per_unit: float,
        qos,
        callback_group=None,
        camera: str = "",
    ) -> None:
        self.cache = cache
        self.available, self.reason = False, ""
        self._metres_per_unit = metres_per_unit
        self._node = node
        self._log_throttle = KindThrottle()  # depth warnings, per kind of fault
        self._subscribers = []
        try:
            import message_filters
        except ImportError as error:
            self.reason = f"message_filters is not installed ({error}); depth is off"
            return
        from sensor_msgs.msg import CameraInfo, Image

        kwargs = {"qos_profile": qos}
        if callback_group is not None:
            kwargs["callback_group"] = callback_group
        from pam_ros.ros.topics import camera_topic

        image_sub = message_filters.Subscriber(
            node, Image, camera_topic(camera, "depth/image"), **kwargs
        )
        info_sub = message_filters.Subscriber(
            node, CameraInfo, camera_topic(camera, "camera_info"), **kwargs
        )
        self._subscribers = [image_sub, info_sub]
        self._sync = message_filters.ApproximateTimeSynchronizer(
            self._subscribers, queue_size=10, slop=slop_s
        )
        self._sync.registerCallback(self._on_pair)
        self.available = True
        self.topics = (image_sub.sub.topic_name, info_sub.sub.topic_name)

    def _on_pair(self, image_msg, info_msg) -> None:
        try:
            frame = depth_frame_from_msgs(image_msg, info_msg, self._metres_per_unit)
        except Exception as error:  # never let a bad message stop the executor
            frame = DepthFrame(
                stamp_ns_of(image_msg.header),
                image_msg.header.frame_id,
                error_code=BAD_DEPTH,
                error=repr(error),
            )
        self.cache.put(frame)
        if frame.error_code and self._log_throttle.allow(frame.error_code):  # per kind
            self._node.get_logger().warning(f"depth unusable: {frame.error}")

    def destroy(self) -> None:
        for subscriber in self._subscribers:
            self._node.destroy_subscription(subscriber.sub)
        self._subscribers = []
