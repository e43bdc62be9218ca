"""Frames (a video file, an image folder, the generated scene) → a camera rosbag2, no ROS graph.

    python -m pam_ros.tools.bag from-frames clip.mp4 camera_bag --rate 15 [--compressed]

For trying the annotate tool without a recorded bag, and for turning a clip into a bag that
`ros2 bag play` can publish. Images are rgb8 `sensor_msgs/Image` (or JPEG CompressedImage on
`<topic>/compressed`), stamped from `--start` at `--rate`, written as MCAP with definitions.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from pam_ros.tools.bag.bag_types import build_typestore, connection_definition

DEFAULT_START_NS = 1_700_000_000_000_000_000


def write_frames_bag(
    frames: Iterable[np.ndarray],
    output: Path,
    topic: str = "/camera/image_raw",
    rate_hz: float = 15.0,
    compressed: bool = False,
    frame_id: str = "camera",
    start_ns: int = DEFAULT_START_NS,
    storage: str = "mcap",
) -> int:
    """Write (H, W, 3) RGB uint8 frames as a camera bag; returns the number of frames."""
    from rclpy.serialization import serialize_message
    from rosbags.rosbag2 import StoragePlugin, Writer
    from std_msgs.msg import Header

    from pam_ros.ros.image_conversion import rgb_to_image_msg
    from pam_ros.ros.stamps import stamp_from_ns
    from pam_ros.tools.bag.recorder import jpeg_msg

    if rate_hz <= 0:
        raise ValueError(f"rate must be > 0, got {rate_hz}")
    typestore, _ = build_typestore()
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    msgtype = "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image"
    count = 0
    with Writer(output, version=Writer.VERSION_LATEST, storage_plugin=plugin) as writer:
        msgdef, digest = connection_definition(typestore, msgtype)
        name = topic.rstrip("/") + "/compressed" if compressed else topic
        connection = writer.add_connection(name, msgtype, msgdef=msgdef, rihs01=digest)
        for index, frame in enumerate(frames):
            stamp_ns = start_ns + round(index * 1e9 / rate_hz)
            header = Header(
                stamp=stamp_from_ns(stamp_ns),
                frame_id=frame_id,
            )
            if compressed:
                msg = jpeg_msg(frame, header)
            else:
                msg = rgb_to_image_msg(frame, header, "rgb8")
            writer.write(connection, stamp_ns, serialize_message(msg))
            count += 1
    return count
