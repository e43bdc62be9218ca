"""Cost and accuracy of the 3D step (depth -> position, extent, volume centre of objects).

Cost (default mode) of the 3D step vs the tracking step.

On one RGB-D frame pair at --width x --height (default 1280x720, the depth aligned to the
colour, 16UC1 mm) with 1, 4 and 16 box objects in front of a wall, it times per frame:
  track: StreamingTracker.track() with that many objects (tiny model, 256 px, seeded random
         weights: speed does not depend on the weights' values)
  3d:    decoding the depth and estimating every object's 3D state (pam_ros.geometry), on the
         tracker's masks and boxes of that frame
and prints the median of each and the ratio 3d / track (target <= 2 %).

    python bench/bench_depth.py                      # CPU, 1 thread, 10 frames
    python bench/bench_depth.py --objects 1 4 16 --frames 20 --threads 2

Accuracy (--accuracy): analytic tabletop scenes (pam_ros.testing.scene.tabletop_scene), one
cylinder, box, sphere or knife (a thin flat box) standing on a table, camera pitched down
25-50 degrees, 0.4-2.5 m away, 1280x720 16UC1 depth with sensor noise (2 mm x z^2, 2 %
dropouts). The masks are the true ones, or with a fault: `holes` (5-20 % of the mask removed
in blobs), `eroded` (2 px less all round), `overshoot` (3 px more, onto the table), or the
depth at 640x360 for the 1280x720 mask (`depth640`). Printed per fault, distance band and
shape: median / p95 of
  pos_cm    |position - true visible-surface point| (the z^2-weighted median of the true
            mask's noise-free points: what `position` estimates), and the mean signed z error
  ext_z_cm  |extent z - true extent z| (1st..99th percentile span of those points)
  surf_cm   |position - true volume centroid| (how far the visible-surface point is from it)
  vol_cm    |volume_center - true volume centroid|

    python bench/bench_depth.py --accuracy --scenes 20   # 20 scenes per shape, ~1 min
"""

from __future__ import annotations

import argparse
import statistics
import time

import cv2
import numpy as np

from pam_ros.geometry import CameraIntrinsics, decode_depth, estimate_object_3d
from pam_ros.geometry.object_3d import _mask_box
from pam_ros.testing.scene import (
    Box,
    Plane,
    centroid,
    render_depth,
    sensor_noise,
    tabletop_scene,
    to_millimetres,
    visible_surface_truth,
)


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
    from pam_ros.testing.random_sam2 import random_sam2_on_device
    from pam_ros.tracking import StreamingTracker

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


FAULTS = ("clean", "holes", "eroded", "overshoot", "depth640")
SHAPES = ("cylinder", "box", "sphere", "knife")
BANDS = ((0.4, 1.5), (1.5, 2.5))


def random_object(shape: str, rng: np.random.Generator):
    """(render shape name, size, yaw) of a random object of a kind."""
    if shape == "cylinder":  # mugs, cans, bottles
        return "cylinder", (rng.uniform(0.03, 0.05), 0.0, rng.uniform(0.06, 0.2)), 0.0
    if shape == "sphere":  # fruit, balls
        return "sphere", (rng.uniform(0.03, 0.06), 0.0, 0.0), 0.0
    if shape == "box":  # packs, boxes
        size = (rng.uniform(0.05, 0.15), rng.uniform(0.05, 0.15), rng.uniform(0.04, 0.15))
        return "box", size, rng.uniform(0.0, np.pi)
    # a knife lying on the table: 2.5 cm wide, 20 cm long, 1.5 cm high
    return "box", (0.025, 0.2, 0.015), rng.uniform(0.0, np.pi)


def holes(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The mask with 5-20 % of its pixels removed in round blobs inside it."""
    target = rng.uniform(0.05, 0.2) * mask.sum()
    out = mask.copy()
    ys, xs = np.nonzero(mask)
    scale = np.sqrt(mask.sum())
    while mask.sum() - out.sum() < target:
        i = rng.integers(ys.size)
        radius = max(1, int(rng.uniform(0.03, 0.08) * scale))
        cv2.circle(out.view(np.uint8), (int(xs[i]), int(ys[i])), radius, 0, -1)
    return out


def faulty_mask(mask: np.ndarray, fault: str, rng: np.random.Generator) -> np.ndarray:
    if fault == "holes":
        return holes(mask, rng)
    if fault in ("eroded", "overshoot"):
        size = 5 if fault == "eroded" else 7  # 2 px less / 3 px more all round
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
        op = cv2.erode if fault == "eroded" else cv2.dilate
        return op(mask.astype(np.uint8), kernel).astype(bool)
    return mask


def accuracy_rows(scenes: int, seed: int):
    """One row per (scene, fault): shape, distance, errors in metres."""
    rng = np.random.default_rng(seed)
    width, height = 1280, 720
    k = CameraIntrinsics(0.71 * width, 0.71 * width, width / 2 - 0.5, height / 2 - 0.5, 1280, 720)
    k_half = k.scaled_to(640, 360)
    rows = []
    for shape in SHAPES:
        for _ in range(scenes):
            kind, size, yaw = random_object(shape, rng)
            distance = rng.uniform(0.4, 2.5)
            pitch = np.radians(rng.uniform(25.0, 50.0))
            lateral = rng.uniform(-0.1, 0.1) * distance
            table, obj = tabletop_scene(kind, distance, pitch, size, yaw, lateral)
            depth_m, index = render_depth(k, [table, obj])
            mask = index == 1
            if mask.sum() < 30:
                continue
            true_point, true_extent = visible_surface_truth(depth_m, mask, k)
            true_centre = centroid(obj)
            noisy = to_millimetres(sensor_noise(depth_m, rng))
            half = to_millimetres(sensor_noise(render_depth(k_half, [table, obj])[0], rng))
            for fault in FAULTS:
                depth = decode_depth(half if fault == "depth640" else noisy, "16UC1")
                result = estimate_object_3d(faulty_mask(mask, fault, rng), depth, k)
                if not result.has_position:
                    rows.append((fault, shape, distance, None))
                    continue
                position = np.array(result.position)
                volume = np.array(getattr(result, "volume_center", result.position))
                rows.append(
                    (
                        fault,
                        shape,
                        distance,
                        (
                            np.linalg.norm(position - true_point),
                            position[2] - true_point[2],
                            abs(result.extent[2] - true_extent[2]),
                            np.linalg.norm(position - true_centre),
                            np.linalg.norm(volume - true_centre),
                        ),
                    )
                )
    return rows


def print_accuracy(rows) -> None:
    def cm(values, q):
        return f"{np.percentile(values, q) * 100:5.2f}"

    print(
        "fault      band     shape     n  pos_cm(med/p95) z_mean_cm  ext_z_cm(med/p95)"
        "  surf_cm(med/p95)  vol_cm(med/p95)  no_position"
    )
    for fault in FAULTS:
        for lo, hi in BANDS:
            for shape in (*SHAPES, "all"):
                selected = [
                    r for r in rows if r[0] == fault and lo <= r[2] < hi and shape in (r[1], "all")
                ]
                errors = np.array([r[3] for r in selected if r[3] is not None])
                if errors.size == 0:
                    continue
                pos, z, ext, surf, vol = errors.T
                print(
                    f"{fault:10s} {lo:.1f}-{hi:.1f}  {shape:8s} {len(errors):3d}  "
                    f"{cm(pos, 50)} / {cm(pos, 95)}  {np.mean(z) * 100:9.2f}  "
                    f"{cm(ext, 50)} / {cm(ext, 95)}     {cm(surf, 50)} / {cm(surf, 95)}  "
                    f"{cm(vol, 50)} / {cm(vol, 95)}  {len(selected) - len(errors):11d}"
                )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--objects", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--accuracy", action="store_true", help="accuracy on analytic scenes")
    parser.add_argument("--scenes", type=int, default=20, help="accuracy: scenes per shape")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.accuracy:
        print(
            f"# accuracy: {args.scenes} tabletop scenes per shape (seed {args.seed}), "
            "1280x720 16UC1 with sensor noise; cm"
        )
        print_accuracy(accuracy_rows(args.scenes, args.seed))
        return
    import torch

    from pam_ros.tracking import TrackerConfig

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
