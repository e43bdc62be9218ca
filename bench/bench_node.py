"""End-to-end benchmark of the pam_ros node over real DDS (prints numbers; asserts nothing).

    python bench/bench_node.py                                  # tiny random models, CPU
    python bench/bench_node.py --tracker-size large --image-size 1024 --device cuda \\
        --tracker-checkpoint ~/.cache/pam_ros/checkpoints/sam2.1_hiera_large.pt \\
        --pam Perceive-Anything/PAM-1.5B

Measures, for each resolution (default 640x480 and 1280x720):
1. latency source stamp → TrackedObjectArray received by a subscriber in another node,
   p50 / p95, publishing one frame at a time (no queueing);
2. the node's own overhead on the tracking thread (image conversion + scheduler hand-over +
   message building + publishing) as a fraction of the tracker's model time (target <= 5 %),
   and the overlay's drawing time (it runs on its own timer, off the tracking thread);
then, at the first resolution:
3. Describe latency (max_age 0: the engine runs now) while frames stream, and the tracking
   rate lost to semantics: frames/s with semantics off vs with the semantic worker and
   Describe calls running (target <= 10 %).

Without checkpoints it writes tiny random ones (SAM 2.1-tiny, PAM-tiny) to a temp folder.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import rclpy  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from pam_ros.core.paths import DAVIS_SUBSET  # noqa: E402
from pam_ros.msg import TrackedObjectArray  # noqa: E402
from pam_ros.ros.image_conversion import rgb_to_image_msg  # noqa: E402
from pam_ros.ros.message_builders import stamp_from_ns, stamp_to_ns  # noqa: E402
from pam_ros.ros.pam_node import PamNode  # noqa: E402
from pam_ros.srv import AddObject, Describe  # noqa: E402

DAVIS = DAVIS_SUBSET / "JPEGImages/480p/car-shadow"


def load_frames(count: int) -> list[np.ndarray]:
    paths = sorted(DAVIS.glob("*.jpg"))[:count]
    if paths:
        return [np.ascontiguousarray(cv2.imread(str(p))[:, :, ::-1]) for p in paths]
    from pam_ros.tools.demo.frame_sources import open_frame_source

    return list(open_frame_source("generated", count))


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


class Bench:
    """A PamNode and a client node on one MultiThreadedExecutor in a background thread."""

    def __init__(self, parameters: dict, namespace: str) -> None:
        overrides = [Parameter(k, value=v) for k, v in parameters.items()]
        self.node = PamNode(namespace=namespace, parameter_overrides=overrides)
        self.client = rclpy.create_node("bench_client", namespace=namespace)
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.received: dict[int, float] = {}  # stamp → time.time_ns() at reception
        self.client.create_subscription(TrackedObjectArray, "tracked_objects", self._on, qos)
        self.pub = self.client.create_publisher(Image, "image", qos)
        self.add = self.client.create_client(AddObject, "add_object")
        self.describe = self.client.create_client(Describe, "describe")
        self.executor = MultiThreadedExecutor(num_threads=4)
        self.executor.add_node(self.node)
        self.executor.add_node(self.client)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        if self.node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            raise SystemExit(f"configure failed: {self.node.last_error}")
        self.node.trigger_activate()
        deadline = time.monotonic() + 10
        while self.pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.01)

    def _on(self, msg: TrackedObjectArray) -> None:
        self.received[stamp_to_ns(msg.header.stamp)] = time.time_ns()

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=10)
        self.thread.join(10)
        self.node.destroy_node()
        self.client.destroy_node()

    def call(self, client, request, timeout=120.0):
        client.wait_for_service(timeout_sec=10)
        future = client.call_async(request)
        deadline = time.monotonic() + timeout
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.001)
        return future.result()

    def send(self, frame: np.ndarray, timeout: float = 120.0) -> float:
        """Publish one frame stamped now; seconds until its TrackedObjectArray arrived."""
        msg = rgb_to_image_msg(frame)
        stamp = time.time_ns()
        msg.header.stamp = stamp_from_ns(stamp)
        msg.header.frame_id = "camera"
        self.pub.publish(msg)
        deadline = time.monotonic() + timeout
        while stamp not in self.received:
            if time.monotonic() > deadline:
                raise TimeoutError("no TrackedObjectArray for a published frame")
            time.sleep(0.0005)
        return (self.received[stamp] - stamp) / 1e9

    def add_objects(self, frame: np.ndarray, count: int) -> None:
        height, width = frame.shape[:2]
        self.send(frame)
        for i in range(count):
            x, y = width * (i + 1) / (count + 1), height * 0.55
            request = AddObject.Request()
            request.points = [_point(x, y)]
            request.labels = [1]
            reply = self.call(self.add, request)
            if not reply.success:
                raise SystemExit(f"add_object failed: {reply.message}")


def _point(x, y):
    from geometry_msgs.msg import Point

    return Point(x=float(x), y=float(y))


def run_resolution(args, parameters, frames, width, height, index) -> None:
    resized = [cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in frames]
    bench = Bench({**parameters, "semantics.enabled": False}, f"/bench_{index}")
    try:
        bench.add_objects(resized[0], args.objects)
        for frame in resized[1 : 1 + args.warmup]:
            bench.send(frame)
        bench.node.timings.clear()
        latencies = [bench.send(f) for f in resized[1 + args.warmup :]]
        timings = list(bench.node.timings)
        overlay = list(bench.node.overlay_render_s)
    finally:
        bench.close()
    track = np.array([t.track_s for t in timings])
    convert = np.array([t.convert_s for t in timings])
    publish = np.array([t.publish_s for t in timings])
    overhead = (convert.sum() + publish.sum()) / track.sum()
    print(
        f"{width}x{height}: end-to-end stamp→TrackedObjectArray p50 "
        f"{percentile(latencies, 50) * 1e3:.1f} ms, p95 {percentile(latencies, 95) * 1e3:.1f} ms "
        f"({len(latencies)} frames, {args.objects} object(s))"
    )
    print(
        f"{width}x{height}: model (tracker) {track.mean() * 1e3:.1f} ms/frame; node overhead "
        f"convert {convert.mean() * 1e3:.2f} ms + build/publish {publish.mean() * 1e3:.2f} ms "
        f"= {overhead * 100:.1f} % of model time (target <= 5 %)"
    )
    print(
        f"{width}x{height}: overlay (own timer thread, {parameters['overlay_rate_hz']} Hz) "
        f"{np.mean(overlay) * 1e3:.1f} ms per image ({len(overlay)} drawn)"
    )


def describe_repeatedly(bench: Bench, stop, latencies: list, rate_hz: float) -> None:
    """Ask for a fresh caption of object "1" at `rate_hz` until `stop` is set."""
    while not stop.is_set():
        reply = bench.call(bench.describe, Describe.Request(id="1", kind="caption"))
        if reply is not None and reply.success:
            latencies.append(reply.latency)
        stop.wait(1.0 / rate_hz)


def run_semantics(args, parameters, frames, width, height) -> None:
    resized = [cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in frames]
    measured = {}
    describe_latencies: list[float] = []
    for label, enabled in (("semantics off", False), ("semantics on", True)):
        bench = Bench({**parameters, "semantics.enabled": enabled}, f"/bench_sem_{int(enabled)}")
        stop = threading.Event()
        try:
            bench.add_objects(resized[0], args.objects)
            for frame in resized[1 : 1 + args.warmup]:
                bench.send(frame)

            asker = threading.Thread(
                target=describe_repeatedly,
                args=(bench, stop, describe_latencies, args.describe_hz),
                daemon=True,
            )
            if enabled:
                asker.start()
            start = time.monotonic()
            sent = 0
            while time.monotonic() - start < args.seconds:
                bench.send(resized[1 + sent % (len(resized) - 1)])
                sent += 1
            measured[label] = sent / (time.monotonic() - start)
            stop.set()
            if enabled:
                asker.join(60)
                stats = bench.node.scheduler.stats
        finally:
            stop.set()
            bench.close()
    lost = 1.0 - measured["semantics on"] / measured["semantics off"]
    print(
        f"{width}x{height}: tracking {measured['semantics off']:.2f} fps without semantics, "
        f"{measured['semantics on']:.2f} fps with the semantic worker at "
        f"{args.semantic_rate_hz} Hz + Describe at {args.describe_hz} Hz: "
        f"{lost * 100:.1f} % lost (target <= 10 %)"
    )
    print(
        f"Describe (caption, computed now) while tracking: p50 "
        f"{percentile(describe_latencies, 50) * 1e3:.1f} ms, p95 "
        f"{percentile(describe_latencies, 95) * 1e3:.1f} ms ({len(describe_latencies)} calls); "
        f"scheduler engine calls {stats.engine_calls}, errors {stats.engine_errors}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracker-size", default="tiny")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--tracker-checkpoint", default="")
    parser.add_argument("--pam", default="", help="PAM folder or hub id (default: tiny random)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--objects", type=int, default=1)
    parser.add_argument("--frames", type=int, default=25, help="measured frames per resolution")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--resolutions", default="640x480,1280x720")
    parser.add_argument("--seconds", type=float, default=15.0, help="per semantics run")
    parser.add_argument("--semantic-rate-hz", type=float, default=1.0)
    parser.add_argument("--describe-hz", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)

    workdir = Path(tempfile.mkdtemp(prefix="pam_bench_"))
    sam = os.path.expanduser(args.tracker_checkpoint)
    if not sam:
        from pam_ros.testing.random_sam2 import write_random_checkpoint
        from pam_ros.tracking import TrackerConfig

        config = TrackerConfig(model_size=args.tracker_size, image_size=args.image_size)
        sam = str(write_random_checkpoint(config, workdir / "sam_random.pt"))
    pam = args.pam
    if not pam:
        from pam_ros.testing.random_pam import write_random_checkpoint

        pam = str(write_random_checkpoint(workdir / "pam_tiny", size="tiny"))
    random_note = " (RANDOM weights)" if not args.tracker_checkpoint else ""
    print(
        f"pam_ros node benchmark: SAM 2.1-{args.tracker_size} @ {args.image_size} px"
        f"{random_note}, PAM {Path(pam).name}, device {args.device}, "
        f"torch threads {__import__('torch').get_num_threads()}"
    )
    parameters = {
        "tracker.model_size": args.tracker_size,
        "tracker.image_size": args.image_size,
        "tracker.checkpoint": sam,
        "tracker.allow_download": False,
        "semantics.model_path": pam,
        "device": args.device,
        "semantic_rate_hz": args.semantic_rate_hz,
        "semantic_kinds": ["category", "explain"],
        "video_caption_segment_frames": 0,
        "mask_layout": "cropped",
        "overlay_rate_hz": 5.0,
        "qos.reliability": "reliable",
    }
    frames = load_frames(args.frames + args.warmup + 1)
    rclpy.init()
    try:
        resolutions = [tuple(int(v) for v in r.split("x")) for r in args.resolutions.split(",")]
        for index, (width, height) in enumerate(resolutions):
            run_resolution(args, parameters, frames, width, height, index)
        run_semantics(args, parameters, frames, *resolutions[0])
    finally:
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
