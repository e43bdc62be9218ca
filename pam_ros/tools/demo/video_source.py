"""A camera stand-in: publishes frames of a video file, an image folder or a generated scene.

    ros2 run pam_ros video_source --ros-args -p source:=/path/clip.mp4 -p rate_hz:=15.0
    ros2 run pam_ros video_source --help    # this text and every parameter, then exit

Publishes sensor_msgs/Image on `image` (rgb8 or bgr8), stamped with the time of publication
and `frame_id`. With `rate_hz` 0 it publishes only when `publish_next()` is called (the demo
uses that to step frame by frame).

With `depth` true (generated scene only) it also publishes the scene's aligned depth on
`depth/image` (`depth_encoding` 16UC1 millimetres or 32FC1 metres) and its sensor_msgs/CameraInfo
on `camera_info`, with the colour image's header (same stamp and frame_id). `depth_fault`
publishes broken depth for tests of the consumer: zero (all 0), nan (all NaN, 32FC1),
other_aspect (depth of another aspect ratio), bad_encoding (8UC1), zero_k (CameraInfo with a
zero K), unpaired (depth stamped 1 s after the colour).
"""

from __future__ import annotations

import signal
import sys

import numpy as np
import rclpy
from rcl_interfaces.msg import FloatingPointRange, ParameterDescriptor
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CameraInfo, Image

from pam_ros.ros.command_line import help_requested
from pam_ros.ros.image_conversion import rgb_to_image_msg
from pam_ros.ros.reference import yaml_value
from pam_ros.testing.scene import to_millimetres
from pam_ros.tools.demo.frame_sources import GeneratedScene, open_frame_source

DEPTH_FAULTS = ("none", "zero", "nan", "other_aspect", "bad_encoding", "zero_k", "unpaired")
MAX_RATE_HZ = 1000.0
# (name, default, description): what the node declares and `--help` lists
PARAMETERS = (
    ("source", "generated", "'generated', an image folder or a video file"),
    ("rate_hz", 15.0, f"publishing rate, 0 to {MAX_RATE_HZ:g}; 0 publishes only on publish_next()"),
    ("loop", False, "start again at the end"),
    ("frame_id", "camera", "header.frame_id"),
    ("encoding", "rgb8", "rgb8 or bgr8"),
    ("max_frames", 0, "stop after this many (0: all)"),
    ("depth", False, "also publish depth/image and camera_info (generated scene only)"),
    ("depth_encoding", "16UC1", "16UC1 (mm) or 32FC1 (m)"),
    ("depth_fault", "none", f"broken depth for tests: {', '.join(DEPTH_FAULTS)}"),
)


def usage_text() -> str:
    """This module's docstring and every parameter with its default."""
    rows = [f"  {name}  (default: {yaml_value(d)}): {text}" for name, d, text in PARAMETERS]
    return "\n".join([__doc__.strip(), "", "Parameters (-p NAME:=VALUE):", *rows])


def depth_image_msg(depth_m: np.ndarray, encoding: str) -> Image:
    """(H, W) float metres -> sensor_msgs/Image 16UC1 (mm, 0 = none) or 32FC1 (m)."""
    raw = to_millimetres(depth_m) if encoding == "16UC1" else depth_m.astype(np.float32)
    msg = Image()
    msg.height, msg.width = raw.shape
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = raw.shape[1] * raw.itemsize
    msg.data = raw.tobytes()
    return msg


def camera_info_msg(scene: GeneratedScene, width: int, height: int, zero_k: bool) -> CameraInfo:
    k = scene.intrinsics().scaled_to(width, height) if width != scene.width else scene.intrinsics()
    msg = CameraInfo()
    msg.width, msg.height = width, height
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * 5
    msg.k = [0.0] * 9 if zero_k else k.k()
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [k.fx, 0.0, k.cx, 0.0, 0.0, k.fy, k.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    if zero_k:
        msg.p = [0.0] * 12
    return msg


class VideoSourceNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("video_source", **kwargs)
        for name, default, description in PARAMETERS:
            descriptor = ParameterDescriptor(description=description)
            if name == "rate_hz":
                descriptor.floating_point_range = [
                    FloatingPointRange(from_value=0.0, to_value=MAX_RATE_HZ)
                ]
            self.declare_parameter(name, default, descriptor)
        max_frames = self.get_parameter("max_frames").value or None
        self._source = open_frame_source(self.get_parameter("source").value, max_frames)
        self._depth_encoding = self.get_parameter("depth_encoding").value
        self._depth_fault = self.get_parameter("depth_fault").value
        if self._depth_encoding not in ("16UC1", "32FC1") or self._depth_fault not in DEPTH_FAULTS:
            raise ValueError(
                f"depth_encoding must be 16UC1 or 32FC1 and depth_fault one of {DEPTH_FAULTS}"
            )
        self.depth_publisher = self.info_publisher = None
        if self.get_parameter("depth").value:
            if isinstance(self._source, GeneratedScene):
                self.depth_publisher = self.create_publisher(
                    Image, "depth/image", qos_profile_sensor_data
                )
                self.info_publisher = self.create_publisher(
                    CameraInfo, "camera_info", qos_profile_sensor_data
                )
            else:
                self.get_logger().error(
                    "depth: only the generated scene has depth; publishing colour only"
                )
        self._index = 0
        self._frames = iter(self._source)
        self._encoding = self.get_parameter("encoding").value
        self._frame_id = self.get_parameter("frame_id").value
        self._loop = bool(self.get_parameter("loop").value)
        self.publisher = self.create_publisher(Image, "image", qos_profile_sensor_data)
        self.published = 0
        self.finished = False
        rate = float(self.get_parameter("rate_hz").value)
        self._timer = self.create_timer(1.0 / rate, self.publish_next) if rate > 0 else None

    def next_frame(self) -> np.ndarray | None:
        try:
            frame = next(self._frames)
        except StopIteration:
            if not self._loop:
                return None
            self._frames = iter(self._source)
            self._index = 0
            frame = next(self._frames, None)
        self._index += 1
        return frame

    @property
    def frame_index(self) -> int:
        """Index in the source of the frame published last."""
        return self._index - 1

    def _publish_depth(self, header) -> None:
        scene, fault = self._source, self._depth_fault
        depth_m = scene.depth_frame(self.frame_index)
        encoding = self._depth_encoding
        if fault == "zero":
            depth_m = np.zeros_like(depth_m)
        elif fault == "nan":
            depth_m, encoding = np.full_like(depth_m, np.nan), "32FC1"
        elif fault == "other_aspect":
            depth_m = depth_m[: depth_m.shape[0] // 2]  # the top half: 2:1 instead of 4:3
        msg = depth_image_msg(depth_m, encoding)
        if fault == "bad_encoding":
            msg.encoding = "8UC1"
        msg.header.frame_id = header.frame_id
        msg.header.stamp = header.stamp
        if fault == "unpaired":
            msg.header.stamp.sec += 1
        info = camera_info_msg(scene, msg.width, msg.height, zero_k=fault == "zero_k")
        if fault == "other_aspect":
            info = camera_info_msg(scene, scene.width, scene.height, zero_k=False)
        info.header = msg.header
        self.depth_publisher.publish(msg)
        self.info_publisher.publish(info)

    def publish_next(self) -> Image | None:
        """Publish the next frame; returns the message, or None at the end of the source."""
        frame = self.next_frame()
        if frame is None:
            if not self.finished:
                self.get_logger().info(f"end of source after {self.published} frames")
            self.finished = True
            if self._timer is not None:
                self._timer.cancel()
            return None
        msg = rgb_to_image_msg(frame, encoding=self._encoding)
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self._frame_id
        self.publisher.publish(msg)
        if self.depth_publisher is not None:
            self._publish_depth(msg.header)
        self.published += 1
        return msg


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(args: list[str] | None = None) -> int:
    # launch starts its processes with SIGINT ignored and forwards SIGINT: take it as a stop;
    # SIGTERM too (rclpy's own handler would invalidate the context under a publishing timer).
    argv = args if args is not None else sys.argv
    if help_requested(argv):  # before rclpy: nothing is published
        print(usage_text())
        return 0
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    rclpy.init(
        args=argv,
        signal_handler_options=SignalHandlerOptions.NO,
    )
    node = VideoSourceNode()
    try:
        while rclpy.ok() and not node.finished:
            rclpy.spin_once(node, timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
