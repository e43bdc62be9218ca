"""Frames per second of `pam_bag annotate` vs the live node on the same frames and models.

    python bench/bench_bag.py                       # tiny random models on CPU, DAVIS frames
    python bench/bench_bag.py --tracker-size large --image-size 1024 --device cuda \\
        --tracker-checkpoint ~/.cache/pam_ros/checkpoints/sam2.1_hiera_large.pt

Both track the same frames with the same tracker and one object prompted by a point on the
first frame, semantics off (the bag tool runs them inline on bag time, the node on its own
wall-clock thread, so their work differs by design):
- node: frames published over DDS one at a time, each after the previous TrackedObjectArray
  arrived (bench_node's harness) — frames/s over the stream;
- annotate: the same frames in an MCAP bag (raw rgb8) → `annotate()` in this process — frames/s
  after the first frame, as for the node (bag reading, decoding, tracking, building and writing
  every output including a JPEG overlay on every frame).
Runs alternate (`--repeats`) so a loaded machine slows both alike. Prints numbers; asserts
nothing. Target: annotate >= 1.0x the node.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from bench_node import Bench, load_frames  # noqa: E402

from pam_ros.tools.bag.annotate import AnnotateOptions, ModelOptions, annotate  # noqa: E402
from pam_ros.tools.bag.record import write_frames_bag  # noqa: E402


def node_fps(parameters: dict, frames, point, index: int) -> float:
    bench = Bench({**parameters, "semantics.enabled": False}, f"/bench_bag_{index}")
    try:
        bench.add_objects(frames[0], 0)
        from geometry_msgs.msg import Point

        from pam_ros.srv import AddObject

        request = AddObject.Request(points=[Point(x=float(point[0]), y=float(point[1]))])
        request.labels = [1]
        if not bench.call(bench.add, request).success:
            raise SystemExit("add_object failed")
        started = time.perf_counter()
        for frame in frames[1:]:
            bench.send(frame)
        return (len(frames) - 1) / (time.perf_counter() - started)
    finally:
        bench.close()


def annotate_fps(workdir: Path, models: ModelOptions, source: Path, point, index: int) -> float:
    prompts = workdir / "prompts.json"
    prompts.write_text(json.dumps([{"frame": 0, "points": [list(point)]}]))
    options = AnnotateOptions(
        input=source,
        output=workdir / f"annotated_{index}",
        prompts_file=prompts,
        models=models,
        progress=False,
    )
    report = annotate(options)
    if report.partial_input or report.prompts_rejected:
        raise SystemExit(f"annotate failed: {report.partial_input or report.prompts_rejected}")
    return report.steady_frames_per_second  # after the first frame, as the node's figure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracker-size", default="tiny")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--tracker-checkpoint", default="")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: default)")
    args = parser.parse_args()
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    workdir = Path(tempfile.mkdtemp(prefix="pam_bench_bag_"))
    sam = os.path.expanduser(args.tracker_checkpoint)
    if not sam:
        from pam_ros.testing.random_sam2 import write_random_checkpoint
        from pam_ros.tracking import TrackerConfig

        config = TrackerConfig(model_size=args.tracker_size, image_size=args.image_size)
        sam = str(write_random_checkpoint(config, workdir / "sam_random.pt"))
    frames = load_frames(args.frames + 1)
    height, width = frames[0].shape[:2]
    point = (width * 0.5, height * 0.55)
    source = workdir / "source"
    write_frames_bag(frames, source, rate_hz=15.0)
    note = "" if args.tracker_checkpoint else " (RANDOM weights)"
    print(
        f"pam_bag benchmark: SAM 2.1-{args.tracker_size} @ {args.image_size} px{note}, "
        f"{len(frames)} frames {width}x{height}, device {args.device}, "
        f"torch threads {torch.get_num_threads()}, semantics off"
    )
    parameters = {
        "tracker.model_size": args.tracker_size,
        "tracker.image_size": args.image_size,
        "tracker.checkpoint": sam,
        "tracker.allow_download": False,
        "device": args.device,
        "mask_layout": "cropped",
        "overlay_rate_hz": 5.0,
        "qos.reliability": "reliable",
    }
    models = ModelOptions(
        tracker_model_size=args.tracker_size,
        tracker_image_size=args.image_size,
        tracker_checkpoint=sam,
        semantics_model="",
        device=args.device,
        dtype="auto",
    )
    node, bag = [], []
    rclpy.init()
    try:
        for index in range(args.repeats):
            node.append(node_fps(parameters, frames, point, index))
            bag.append(annotate_fps(workdir, models, source, point, index))
            print(
                f"run {index}: node {node[-1]:.2f} frames/s, annotate {bag[-1]:.2f} frames/s "
                f"({bag[-1] / node[-1]:.2f}x)"
            )
    finally:
        rclpy.try_shutdown()
    node_median, bag_median = float(np.median(node)), float(np.median(bag))
    print(
        f"median: node {node_median:.2f} frames/s, annotate {bag_median:.2f} frames/s, "
        f"annotate / node = {bag_median / node_median:.2f}x; median of the per-run ratios "
        f"{float(np.median(np.array(bag) / np.array(node))):.2f}x (target >= 1.0x)"
    )


if __name__ == "__main__":
    main()
