"""A camera in its own process for the delivery tests: rgb8 frames on a topic, on command.

    python test/camera_process.py TOPIC WIDTHxHEIGHT best_effort|reliable

stdin: `pub <i>` publishes frame i (header.frame_id = i, a fixed random picture whose first
byte is i), `burst <i> <n>` publishes frames i..i+n-1 back to back, `matched` prints the matched
subscriber count, `quit` exits. Prints `ready` once the publisher exists.
"""

from __future__ import annotations

import sys

import numpy as np
import rclpy
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image


def main() -> None:
    topic, size, reliability = sys.argv[1:4]
    width, height = (int(v) for v in size.split("x"))
    rclpy.init()
    node = rclpy.create_node("test_camera")
    reliable = reliability == "reliable"
    qos = QoSProfile(
        depth=10 if reliable else 5,  # as camera drivers: reliable depth 10 or sensor data
        history=HistoryPolicy.KEEP_LAST,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
    )
    publisher = node.create_publisher(Image, topic, qos)
    pixels = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    msg = Image(height=height, width=width, encoding="rgb8", step=width * 3)
    msg.data = pixels.tobytes()

    def publish(index: int) -> None:
        msg.header.frame_id = str(index)
        msg.header.stamp.sec = index + 1  # distinct, increasing source stamps
        publisher.publish(msg)

    print("ready", flush=True)
    for line in sys.stdin:
        command = line.split()
        if not command:
            continue
        if command[0] == "pub":
            publish(int(command[1]))
        elif command[0] == "burst":
            for index in range(int(command[1]), int(command[1]) + int(command[2])):
                publish(index)
        elif command[0] == "matched":
            print(f"matched {publisher.get_subscription_count()}", flush=True)
        elif command[0] == "quit":
            break
    node.destroy_node()
    rclpy.try_shutdown()


if __name__ == "__main__":
    main()
