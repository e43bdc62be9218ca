"""A camera stand-in: publishes frames of a video file, an image folder or a generated scene.

    ros2 run pam_ros video_source --ros-args -p source:=/path/clip.mp4 -p rate_hz:=15.0

Publishes sensor_msgs/Image on `image` (rgb8 or bgr8), stamped with the time of publication
and `frame_id`. With `rate_hz` 0 it publishes only when `publish_next()` is called (the demo
uses that to step frame by frame).
"""

from __future__ import annotations

import sys

import numpy as np
import rclpy
from rcl_interfaces.msg import FloatingPointRange, ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from pam_ros.demo.frame_sources import open_frame_source
from pam_ros.node.image_conversion import rgb_to_image_msg


class VideoSourceNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("video_source", **kwargs)
        self.declare_parameter(
            "source",
            "generated",
            ParameterDescriptor(description="'generated', an image folder or a video file"),
        )
        self.declare_parameter(
            "rate_hz",
            15.0,
            ParameterDescriptor(
                description="publishing rate; 0 publishes only on publish_next()",
                floating_point_range=[FloatingPointRange(from_value=0.0, to_value=1000.0)],
            ),
        )
        self.declare_parameter(
            "loop", False, ParameterDescriptor(description="start again at the end")
        )
        self.declare_parameter(
            "frame_id", "camera", ParameterDescriptor(description="header.frame_id")
        )
        self.declare_parameter("encoding", "rgb8", ParameterDescriptor(description="rgb8 or bgr8"))
        self.declare_parameter(
            "max_frames", 0, ParameterDescriptor(description="stop after this many (0: all)")
        )
        max_frames = self.get_parameter("max_frames").value or None
        self._source = open_frame_source(self.get_parameter("source").value, max_frames)
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
            return next(self._frames)
        except StopIteration:
            if not self._loop:
                return None
            self._frames = iter(self._source)
            return next(self._frames, None)

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
        self.published += 1
        return msg


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args if args is not None else sys.argv)
    node = VideoSourceNode()
    try:
        while rclpy.ok() and not node.finished:
            rclpy.spin_once(node, timeout_sec=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
