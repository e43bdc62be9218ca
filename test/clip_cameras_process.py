"""Several cameras in one process of their own, publishing real clips, for the camera tests.

    python test/clip_cameras_process.py NAMESPACE head=car-shadow@854x480 wrist=dog@427x240

Each camera publishes rgb8 frames of its DAVIS clip (resized to WxH) on
`NAMESPACE/<camera>/image`, reliable, header.frame_id `<camera>_optical`. stdin: `pub <camera>
<i>` publishes frame i (stamp i * 33 ms + 1 s), `quit` exits. Prints `ready` once the
publishers exist.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

sys.path.insert(0, str(Path(__file__).parent))
from conftest import davis_frames


def main() -> None:
    namespace, specs = sys.argv[1], sys.argv[2:]
    rclpy.init()
    node = rclpy.create_node("test_cameras", namespace=namespace)
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    cameras = {}
    for spec in specs:
        name, _, rest = spec.partition("=")
        clip, _, size = rest.partition("@")
        width, height = (int(v) for v in size.split("x"))
        frames = []
        for path in davis_frames(clip)[:40]:
            bgr = cv2.resize(cv2.imread(str(path)), (width, height), interpolation=cv2.INTER_AREA)
            frames.append(np.ascontiguousarray(bgr[:, :, ::-1]))
        cameras[name] = (node.create_publisher(Image, f"{name}/image", qos), frames)

    def publish(name: str, index: int) -> None:
        publisher, frames = cameras[name]
        frame = frames[index % len(frames)]
        msg = Image(height=frame.shape[0], width=frame.shape[1], encoding="rgb8")
        msg.step = frame.shape[1] * 3
        msg.data = frame.tobytes()
        msg.header.frame_id = f"{name}_optical"
        stamp_ns = 1_000_000_000 + index * 33_000_000
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        publisher.publish(msg)

    print("ready", flush=True)
    for line in sys.stdin:
        command = line.split()
        if command and command[0] == "pub":
            publish(command[1], int(command[2]))
        elif command and command[0] == "quit":
            break
    node.destroy_node()
    rclpy.try_shutdown()


if __name__ == "__main__":
    main()
