"""Record rclpy messages into an MCAP rosbag2 without a ROS graph (the demo's recording).

    with BagRecorder(output / "recording") as bag:
        bag.write("/tracked_objects", tracked_msg, "pam_ros/msg/TrackedObjectArray", stamp_ns)

Messages are serialised with rclpy's `serialize_message`, their alignment padding zeroed by
one pass through the typestore, and every connection carries its full definition (see
`bag_types`), so Foxglove opens the file and `ros2 bag play` replays it.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from pam_ros.tools.bag.bag_types import build_typestore, connection_definition


def jpeg_msg(frame: np.ndarray, header, quality: int = 90):
    """(H, W, 3) RGB uint8 → sensor_msgs/CompressedImage (JPEG) on `header`."""
    from sensor_msgs.msg import CompressedImage

    from pam_ros.ros.image_conversion import uint8_field

    ok, jpeg = cv2.imencode(".jpg", frame[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    msg = CompressedImage(header=header, format="rgb8; jpeg compressed bgr8")
    msg.data = uint8_field(jpeg)
    return msg


class BagRecorder:
    def __init__(self, path: str | Path) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        self.typestore, _ = build_typestore()
        self.writer = Writer(
            Path(path), version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.MCAP
        )
        self.writer.open()
        self.connections: dict[str, object] = {}

    def write(self, topic: str, msg, msgtype: str, time_ns: int) -> None:
        from rclpy.serialization import serialize_message

        connection = self.connections.get(topic)
        if connection is None:
            msgdef, digest = connection_definition(self.typestore, msgtype)
            connection = self.writer.add_connection(topic, msgtype, msgdef=msgdef, rihs01=digest)
            self.connections[topic] = connection
        raw = serialize_message(msg)
        data = self.typestore.serialize_cdr(self.typestore.deserialize_cdr(raw, msgtype), msgtype)
        self.writer.write(connection, time_ns, data)

    def close(self) -> None:
        self.writer.close()

    def __enter__(self) -> BagRecorder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
