"""Two cameras on one pam_ros node vs two single-camera pam_ros nodes, as processes over DDS.

Both sides see the same frames (two DAVIS clips played by `video_source` processes, one per
camera, faster than the node can track) and the same objects (one per camera, added through
`add_object`), and run the real `pam_node` executable with the same parameters:

- "one node": one `pam_node` with `cameras: [head, wrist]` (one SAM 2, one PAM);
- "two nodes": two `pam_node` processes, one camera each (two of each model).

After a warm-up it counts the `tracked_objects` messages of both cameras for `--seconds` and
reads the nodes' resident memory (VmRSS, summed over a side's node processes). It prints both
sides and the ratios one node / two nodes (targets: memory <= 0.6x, frames/s >= 1.0x); on a GPU
run (`--device cuda`) device memory is printed from /diagnostics (`gpu_memory_mb`).

    python bench/bench_cameras.py                                # CPU, tiny models @ 256 px
    python bench/bench_cameras.py --tracker-size large --image-size 1024 --device cuda \
        --tracker-checkpoint sam2.1_hiera_large.pt --pam PAM-1.5B --seconds 60
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Point
from rclpy.qos import QoSProfile, ReliabilityPolicy

from pam_ros.core.paths import DAVIS_SUBSET
from pam_ros.msg import TrackedObjectArray
from pam_ros.ros.dds_profile import profile_environment
from pam_ros.srv import AddObject

DATA = DAVIS_SUBSET / "JPEGImages/480p"
CLIPS = {"head": "car-shadow", "wrist": "dog"}
POINTS = {"head": (420.0, 260.0), "wrist": (420.0, 240.0)}
MB = 2**20


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _threads_env(env: dict, threads: int) -> dict:
    return dict(env, OMP_NUM_THREADS=str(threads)) if threads else env


def run_side(args, label: str, nodes: list[tuple[str, list[str]]], env) -> dict:
    """`nodes`: (namespace, cameras) per pam_node process. Returns the side's figures."""
    processes, node_pids = [], []
    parameters = [
        "-p", "tracker.model_size:=" + args.tracker_size,
        "-p", f"tracker.image_size:={args.image_size}",
        "-p", "tracker.allow_download:=false",
        "-p", f"tracker.random_weights:={'true' if not args.tracker_checkpoint else 'false'}",
        "-p", f"semantics.model_path:={args.pam}",
        "-p", f"device:={args.device}",
        "-p", "semantic_rate_hz:=1.0",
        "-p", "max_new_tokens:=8",
        "-p", "video_caption_segment_frames:=0",
        "-p", "overlay_rate_hz:=0.0",
        "-p", "diagnostics_period_s:=1.0",
        "-p", "qos.reliability:=best_effort",
    ]  # fmt: skip
    if args.tracker_checkpoint:
        parameters += ["-p", f"tracker.checkpoint:={args.tracker_checkpoint}"]
    client = rclpy.create_node(f"bench_cameras_{label.replace(' ', '_')}")
    counts: dict[str, int] = {}
    gpu_mb: dict[str, float] = {}
    try:
        for namespace, cameras in nodes:
            camera_args = ["-p", f"cameras:=[{', '.join(cameras)}]"] if cameras[0] else []
            process = subprocess.Popen(
                [sys.executable, "-m", "pam_ros.ros.pam_node", "--ros-args",
                 "-r", f"__ns:={namespace}", *parameters, *camera_args, "--log-level", "warn"],
                env=_threads_env(env, args.threads * len(cameras)),
            )  # fmt: skip
            processes.append(process)
            node_pids.append(process.pid)
            for camera in cameras:
                topic = f"{camera}/image" if camera else "image"
                name = camera or namespace.rsplit("_", 1)[-1]
                processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "pam_ros.tools.demo.video_source", "--ros-args",
                         "-r", f"__ns:={namespace}", "-r", f"__node:=source_{name}",
                         "-r", f"image:={topic}", "-p", f"source:={DATA / CLIPS[name]}",
                         "-p", f"rate_hz:={args.rate_hz}", "-p", "loop:=true",
                         "--log-level", "warn"],
                        env=env,
                    )
                )  # fmt: skip
                key = f"{namespace}/{topic}"
                counts[key] = 0
                client.create_subscription(
                    TrackedObjectArray,
                    f"{namespace}/{camera + '/' if camera else ''}tracked_objects",
                    lambda msg, k=key: counts.__setitem__(k, counts[k] + 1),
                    QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE),
                )
        client.create_subscription(
            DiagnosticArray,
            "/diagnostics",
            lambda msg: gpu_mb.update(
                {
                    s.hardware_id: float(v.value)
                    for s in msg.status
                    for v in s.values
                    if v.key == "gpu_memory_mb"
                }
            ),
            10,
        )
        # wait for every camera's first result, then prompt one object per camera
        deadline = time.monotonic() + args.startup_s
        while min(counts.values()) == 0:
            if time.monotonic() > deadline:
                raise SystemExit(f"{label}: no tracked_objects from every camera in time")
            rclpy.spin_once(client, timeout_sec=0.1)
        for namespace, cameras in nodes:
            service = client.create_client(AddObject, f"{namespace}/add_object")
            assert service.wait_for_service(timeout_sec=30)
            for camera in cameras:
                name = camera or namespace.rsplit("_", 1)[-1]
                request = AddObject.Request(camera=camera, points=[Point(x=POINTS[name][0],
                                            y=POINTS[name][1])], labels=[1])  # fmt: skip
                future = service.call_async(request)
                rclpy.spin_until_future_complete(client, future, timeout_sec=60)
                if not future.done() or not future.result().success:
                    raise SystemExit(f"{label}: add_object failed on {namespace} {camera}")
        warm_until = time.monotonic() + args.warmup_s
        while time.monotonic() < warm_until:
            rclpy.spin_once(client, timeout_sec=0.1)
        start_counts, started = dict(counts), time.monotonic()
        while time.monotonic() - started < args.seconds:
            rclpy.spin_once(client, timeout_sec=0.1)
        elapsed = time.monotonic() - started
        frames = sum(counts[k] - start_counts[k] for k in counts)
        return {
            "rss_mb": sum(rss_mb(pid) for pid in node_pids),
            "fps": frames / elapsed,
            "per_camera": {k: (counts[k] - start_counts[k]) / elapsed for k in counts},
            "gpu_mb": sum(gpu_mb.values()),
        }
    finally:
        client.destroy_node()
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tracker-size", default="tiny")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--tracker-checkpoint", default="", help="empty: random weights")
    parser.add_argument("--pam", default="", help="PAM folder (empty: a tiny random one)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rate-hz", type=float, default=30.0, help="each camera's frame rate")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window per side")
    parser.add_argument("--warmup-s", type=float, default=5.0)
    parser.add_argument("--startup-s", type=float, default=180.0)
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch intra-op threads per camera (OMP_NUM_THREADS of a node: this times its "
        "cameras, so both sides get the same threads in total; 0: torch's default)",
    )
    args = parser.parse_args()
    if not args.pam:
        from pam_ros.testing.random_pam import write_random_checkpoint

        args.pam = str(write_random_checkpoint(Path(tempfile.mkdtemp()) / "pam_tiny", "tiny"))
    env = dict(os.environ, **profile_environment(""))  # 854x480 frames between processes
    rclpy.init()
    try:
        one = run_side(args, "one node", [("/bench_one", ["head", "wrist"])], env)
        two = run_side(
            args, "two nodes", [("/bench_two_head", [""]), ("/bench_two_wrist", [""])], env
        )
    finally:
        rclpy.try_shutdown()
    threads = f", {args.threads} torch thread(s) per camera" if args.threads else ""
    print(f"{args.tracker_size} @ {args.image_size} px on {args.device}, cameras at "
          f"{args.rate_hz:g} Hz, {args.seconds:g} s measured per side{threads}")  # fmt: skip
    for label, side in (("one node, two cameras", one), ("two nodes, one camera each", two)):
        cameras = ", ".join(f"{fps:.2f}" for fps in side["per_camera"].values())
        gpu = f", GPU {side['gpu_mb']:.0f} MB" if args.device.startswith("cuda") else ""
        print(f"  {label:28s} RSS {side['rss_mb']:7.1f} MB{gpu}, "
              f"{side['fps']:.2f} tracked frames/s (per camera {cameras})")  # fmt: skip
    print(f"  ratio one / two: memory {one['rss_mb'] / two['rss_mb']:.2f}x (target <= 0.6), "
          f"frames/s {one['fps'] / two['fps']:.2f}x (target >= 1.0)")  # fmt: skip
    if args.device.startswith("cuda") and two["gpu_mb"]:
        print(f"  GPU memory ratio {one['gpu_mb'] / two['gpu_mb']:.2f}x")


if __name__ == "__main__":
    main()
