"""Cost of the 3D step (depth -> position and extent of every object) vs the tracking step.

On one RGB-D frame pair at --width x --height (default 1280x720, the depth aligned to the
colour, 16UC1 mm) with 1, 4 and 16 box objects in front of a wall, it times per frame:
  track: StreamingTracker.track() with that many objects (tiny model, 256 px, seeded random
         weights: speed does not depend on the weights' values)
  3d:    decoding the depth and estimating every object's 3D state (pam_ros.geometry), on the
         tracker's masks and boxes of that frame
and prints the median of each and the ratio 3d / track (target <= 2 %).

    python bench/bench_depth.py                      # CPU, 1 thread, 10 frames
    python bench/bench_depth.py --objects 1 4 16 --frames 20 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from pam_ros.geometry import CameraIntrinsics, decode_depth, estimate_object_3d
from pam_ros.geometry.object_3d import _mask_box
from pam_ros.testing.random_sam2 import random_sam2_on_device
from pam_ros.testing.scene import Box, Plane, render_depth, to_millimetres
from pam_ros.tracking import StreamingTracker, TrackerConfig


def rgbd_scene(width: int, height: int, count: int):
    """Colour (H, W, 3) uint8, depth (H, W) uint16 mm, intrinsics, true masks of `count` boxes."""
    intrinsics = CameraIntrinsics(
        0.71 * width, 0.71 * width, width / 2 - 0.5, height / 2 - 0.5, width, height
    )
    columns = int(np.ceil(np.sqrt(count)))
    boxes = [
        Box(
            (
                (i % columns - (columns - 1) / 2) * 0.22,
                (i // columns - (columns - 1) / 2) * 0.16,
                1.0 + 0.02 * i,
            ),
            (0.14, 0.10, 0.08),
        )
        for i in range(count)
    ]
    depth_m, index = render_depth(intrinsics, [Plane((0.0, 0.0, 1.0), 2.5), *boxes])
    rng = np.random.default_rng(0)
    colour = rng.integers(40, 90, size=(height, width, 3), dtype=np.uint8)
    for i in range(count):
        colour[index == i + 1] = rng.integers(120, 255, size=3, dtype=np.uint8)
    masks = [index == i + 1 for i in range(count)]
    return colour, to_millimetres(depth_m), intrinsics, masks


def run(tracker_config, width, height, count, frames):
    colour, depth_mm, intrinsics, masks = rgbd_scene(width, height, count)
    tracker = StreamingTracker(random_sam2_on_device(tracker_config), tracker_config)
    tracker.track(colour, stamp_ns=0)
    for mask in masks:
        tracker.add_object(box=_mask_box(mask))
    track_s, step_3d_s, with_position = [], [], 0
    for i in range(frames):
        start = time.perf_counter()
        result = tracker.track(colour, stamp_ns=i + 1)
        track_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        depth = decode_depth(depth_mm, "16UC1")
        states = [
            estimate_object_3d(obj.mask, depth, intrinsics, box=obj.box)
            for obj in result.objects.values()
        ]
        step_3d_s.append(time.perf_counter() - start)
        with_position += sum(s.has_position for s in states)
    # The random model's masks are arbitrary; time the true masks too (realistic sizes).
    depth = decode_depth(depth_mm, "16UC1")
    boxes = [_mask_box(mask) for mask in masks]
    true_s = []
    for _ in range(frames):
        start = time.perf_counter()
        for mask, box in zip(masks, boxes, strict=True):
            estimate_object_3d(mask, depth, intrinsics, box=box)
        true_s.append(time.perf_counter() - start)
    tracker.release()
    area = int(np.mean([m.sum() for m in masks]))
    return (
        statistics.median(track_s),
        statistics.median(step_3d_s),
        statistics.median(true_s),
        with_position / frames,
        area,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--objects", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = TrackerConfig(
        model_size="tiny",
        image_size=args.image_size,
        device="cpu",
        dtype="float32",
        seed=0,
    )
    print(
        f"# {args.width}x{args.height} 16UC1 depth, tiny tracker at {args.image_size} px, "
        f"{args.threads} torch thread(s), median of {args.frames} frames"
    )
    print(
        "objects  track_ms  3d_ms(tracker masks)  3d_ms(true masks)  ratio_3d/track"
        "  true_mask_px  objects_with_3d"
    )
    for count in args.objects:
        track, step, true, positioned, area = run(
            config, args.width, args.height, count, args.frames
        )
        print(
            f"{count:7d}  {track * 1e3:8.1f}  {step * 1e3:20.2f}  {true * 1e3:17.2f}  "
            f"{max(step, true) / track:13.2%}  {area:12d}  {positioned:15.1f}"
        )


if __name__ == "__main__":
    main()
