"""Delivered / published rgb8 frames between two processes, per QoS pairing, with and without
the package's Fast DDS profile (config/fastdds_large_frames.xml).

    python bench/bench_delivery.py                      # 640x480 and 1280x720, 20 frames each
    python bench/bench_delivery.py --frames 50 --sizes 640x480

A publisher process (the camera: best-effort depth 5 = sensor-data QoS, or reliable depth 10)
and a subscriber process (best-effort depth 1, reliable depth 1, or `auto`: the node's
`QosMatchedSubscription`, which follows the publisher). Frames go one at a time: the next is
published when the previous one arrived or after --wait-s, as a camera feeding a node that
keeps up. "no match" = the pairing never connects (reliable reader, best-effort writer).

The same pairings hold for what pam_ros publishes (its `overlay` and `tracked_objects` are
reliable writers): "camera reliable" × "subscriber best_effort" is rviz subscribing best-effort.
"""

from __future__ import annotations

import argparse
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

PROFILE = Path(__file__).resolve().parents[1] / "config" / "fastdds_large_frames.xml"
TOPIC = "/bench_delivery/image"
CAMERA_QOS = ("best_effort", "reliable")
SUBSCRIBER_QOS = ("best_effort", "reliable", "auto")


# ---- the two processes ------------------------------------------------------------------------


def _qos(reliability: str, depth: int):
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    policy = (
        ReliabilityPolicy.RELIABLE if reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
    )
    return QoSProfile(depth=depth, reliability=policy, history=HistoryPolicy.KEEP_LAST)


def run_publisher(reliability: str, width: int, height: int) -> None:
    """stdin: 'pub <i>' publishes frame i, 'matched' reports the matched subscriber count."""
    import numpy as np
    import rclpy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("bench_camera")
    depth = 10 if reliability == "reliable" else 5
    publisher = node.create_publisher(Image, TOPIC, _qos(reliability, depth))
    pixels = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    msg = Image(height=height, width=width, encoding="rgb8", step=width * 3)
    msg.data = pixels.tobytes()
    print("ready", flush=True)
    for line in sys.stdin:
        command = line.split()
        if not command:
            continue
        if command[0] == "pub":
            msg.header.frame_id = command[1]
            msg.header.stamp = node.get_clock().now().to_msg()
            publisher.publish(msg)
        elif command[0] == "matched":
            print(f"matched {publisher.get_subscription_count()}", flush=True)
        elif command[0] == "quit":
            break
    node.destroy_node()
    rclpy.try_shutdown()


def run_subscriber(reliability: str) -> None:
    """stdout: 'got <i>' per frame; 'settled <reliability> <publishers>' for auto."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image

    from pam_ros.ros.image_intake import DeliveryCounters, IntakeConfig, QosMatchedSubscription

    rclpy.init()
    node = rclpy.create_node("bench_subscriber")
    counters = DeliveryCounters()

    def on_image(msg: Image) -> None:
        print(f"got {msg.header.frame_id}", flush=True)

    subscription = QosMatchedSubscription(
        node, Image, TOPIC, on_image, IntakeConfig(reliability=reliability, depth=1), counters
    )

    def report() -> None:
        print(f"state {subscription.reliability} {subscription.publisher_count}", flush=True)

    node.create_timer(0.25, report)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    print("ready", flush=True)
    try:
        executor.spin()
    except KeyboardInterrupt:
        pass
    finally:
        snapshot = counters.snapshot()
        print(f"lost {snapshot.messages_lost} {snapshot.incompatible_qos}", flush=True)
        subscription.destroy()
        node.destroy_node()
        rclpy.try_shutdown()


# ---- the driver -------------------------------------------------------------------------------


class Child:
    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line.strip())

    def send(self, line: str) -> None:
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def expect(self, prefix: str, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                return None
            if line.startswith(prefix):
                return line
        return None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(2)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


PROFILE_SIDES = {"off": (), "on": ("pub", "sub"), "pub": ("pub",), "sub": ("sub",)}
PROFILE_NAMES = {
    "off": "Fast DDS defaults",
    "on": "profile on both",
    "pub": "profile on publisher only",
    "sub": "profile on subscriber only",
}


def _env(role: str, profile: str, domain: int) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("FASTRTPS_DEFAULT_PROFILES_FILE", None)
    if role in PROFILE_SIDES[profile]:
        env["FASTRTPS_DEFAULT_PROFILES_FILE"] = str(PROFILE)
    env["ROS_DOMAIN_ID"] = str(domain)
    return env


def measure(camera: str, subscriber: str, size: tuple[int, int], profile: str, args) -> str:
    sub = Child(["--role", "sub", "--reliability", subscriber], _env("sub", profile, args.domain))
    pub = Child(
        ["--role", "pub", "--reliability", camera, "--size", f"{size[0]}x{size[1]}"],
        _env("pub", profile, args.domain),
    )
    try:
        if sub.expect("ready", 60) is None or pub.expect("ready", 60) is None:
            return "failed to start"
        deadline = time.monotonic() + args.match_s
        matched = False
        while time.monotonic() < deadline:
            pub.send("matched")
            line = pub.expect("matched", 5)
            state = sub.lines.queue[-1] if sub.lines.queue else ""
            settled = subscriber != "auto" or (
                state.startswith("state") and state.split()[2] != "0"
            )
            if line and int(line.split()[1]) > 0 and settled:
                matched = True
                break
            time.sleep(0.2)
        if not matched:
            return "no match"
        time.sleep(0.3)  # let the last discovery/QoS change settle
        delivered = 0
        for index in range(args.frames):
            pub.send(f"pub {index}")
            if sub.expect(f"got {index}", args.wait_s) is not None:
                delivered += 1
        return f"{delivered}/{args.frames}"
    finally:
        pub.send("quit")
        pub.stop()
        sub.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--role", choices=("driver", "pub", "sub"), default="driver")
    parser.add_argument("--reliability", default="auto")
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--sizes", default="640x480,1280x720")
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--wait-s", type=float, default=1.0, help="per frame, then it is lost")
    parser.add_argument("--match-s", type=float, default=8.0)
    parser.add_argument("--domain", type=int, default=77)
    parser.add_argument(
        "--profiles",
        default="off,on,pub,sub",
        help="Fast DDS profile: off, on (both processes), pub or sub (one side only)",
    )
    args = parser.parse_args()
    if args.role == "pub":
        width, height = (int(v) for v in args.size.split("x"))
        run_publisher(args.reliability, width, height)
        return
    if args.role == "sub":
        run_subscriber(args.reliability)
        return
    sizes = [tuple(int(v) for v in text.split("x")) for text in args.sizes.split(",")]
    profiles = args.profiles.split(",")
    print(f"delivered/published rgb8 frames, {args.frames} per cell, one at a time")
    header = (
        "| DDS settings | size | camera | " + " | ".join(f"sub {s}" for s in SUBSCRIBER_QOS) + " |"
    )
    print(header)
    print("|" + "---|" * (3 + len(SUBSCRIBER_QOS)))
    for profile in profiles:
        for size in sizes:
            for camera in CAMERA_QOS:
                cells = [measure(camera, sub, size, profile, args) for sub in SUBSCRIBER_QOS]
                name = PROFILE_NAMES[profile]
                print(
                    f"| {name} | {size[0]}x{size[1]} | {camera} | " + " | ".join(cells) + " |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
