"""Benchmark discovery: the pass on the tracker's features, and its cost to tracking.

(a) Side by side on the same frame and weights: `StreamingTracker.discover` (prompt encoder
    and mask decoder on the features `track` already computed) vs sam2's
    `SAM2AutomaticMaskGenerator.generate` (crop_n_layers=0, the same grid and thresholds),
    which encodes the image again. Median of --repeats runs (the model is warm: the frame
    was tracked first). The tracker's own encoding of the frame is printed for scale: both
    sides run the decoder's transformer for every click, but the pass projects the image
    tokens of its first block once for all clicks and upscales masks only for clicks with a
    predicted IoU above the threshold (pam_ros/tracking/decoder_split.py), so the ratio
    depends on how many clicks keep a mask: random weights at the default thresholds keep
    none (the pass's best case), --keep-row keeps some.
(b) Tracking throughput of a stream following 2 objects over --frames frames, with discovery
    running as the node runs it in `periodic` mode (a `pam_discovery` thread beside the tracking
    thread: the frame taken under the lock tracking holds, the pass without it, one pass every
    --period-s seconds) vs no discovery, on the same frames; --rounds alternating runs of
    each and their median ratio (on the 2 shared cores here one run's ratio moves by +-10 %:
    how the two threads share the GIL and the cores differs from run to run).

    python bench/bench_discovery.py                      # tiny, 512 px, CPU (~10 min here)
    python bench/bench_discovery.py --device cuda --threads 0 --size large \
        --image-size 1024 --repeats 5 --checkpoint sam2.1_hiera_large.pt

--threads defaults to 1: the development machine's 2 cores are shared, and two intra-op
threads spin badly then (as the test suite's conftest notes); 0 keeps torch's default.

Without --checkpoint both sides load the same seeded random checkpoint (tiny by default).
Random weights keep no mask at sam2's default thresholds (their logits and predicted IoUs
are small); --keep-row adds a row with thresholds under which random masks survive (it pays
for upsampling, stability and NMS too; sam2 also RLE-encodes every survivor before NMS).
sam2 1.1.0's image predictor views its features with sizes written for 1024 px; for other
image sizes the generator is given the right ones.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pam_ros.core.paths import DAVIS_SUBSET
from pam_ros.testing.random_sam2 import write_random_checkpoint
from pam_ros.tracking import DiscoveryConfig, StreamingTracker, TrackerConfig

DEFAULT_FRAMES = DAVIS_SUBSET / "JPEGImages/480p/blackswan"
# Thresholds under which a random-weight model keeps masks (see test_tracking_discovery.py).
KEEP_RANDOM = {
    "pred_iou_thresh": 0.54,
    "stability_score_thresh": 0.6,
    "stability_score_offset": 0.05,
}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, repeats: int) -> tuple[float, object]:
    """Median seconds of `repeats` calls, and the last result."""
    result, times = None, []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        result = fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def sam2_generator(model, config: DiscoveryConfig):
    """sam2's generator with the discovery pass's settings, one crop layer."""
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

    generator = SAM2AutomaticMaskGenerator(
        model,
        points_per_side=config.points_per_side,
        points_per_batch=config.points_per_batch,
        pred_iou_thresh=config.pred_iou_thresh,
        stability_score_thresh=config.stability_score_thresh,
        stability_score_offset=config.stability_score_offset,
        mask_threshold=config.mask_threshold,
        box_nms_thresh=config.box_nms_thresh,
        crop_n_layers=0,
        multimask_output=config.multimask_output,
    )
    size = model.image_size
    generator.predictor._bb_feat_sizes = [(size // 4,) * 2, (size // 8,) * 2, (size // 16,) * 2]
    return generator


def bench_pass(tracker, frame, config: DiscoveryConfig, label: str, args) -> None:
    """Print one row of (a)."""
    device = tracker.device
    generator = sam2_generator(tracker.model, config)
    # the same masks as the generator's: no area limits (the stream has no objects)
    ours_config = dataclasses.replace(
        config, min_area_fraction=0.0, max_area_fraction=1.0, max_overlap_with_tracked=1.0
    )
    ours_s, ours = timed(lambda: tracker.discover(ours_config), device, args.repeats)
    with tracker._inference_context():
        sam2_s, theirs = timed(lambda: generator.generate(frame), device, args.repeats)
    print(
        f"  {label:<28} discover {ours_s * 1e3:8.1f} ms ({len(ours):3d} masks)   "
        f"sam2 generate {sam2_s * 1e3:8.1f} ms ({len(theirs):3d} masks)   "
        f"ratio {sam2_s / ours_s:5.2f}x"
    )


def prompt_points(width: int, height: int) -> list[tuple[float, float]]:
    return [(width * 0.5, height * 0.42), (width * 0.25, height * 0.7)]


def run_stream(
    model, tracker_config, frames, period_s: float | None, config
) -> tuple[float, list[float]]:
    """(seconds to track frames[1:], seconds of each discovery pass run meanwhile). With
    `period_s`, a thread runs a pass every period_s seconds beside tracking, as the node."""
    tracker = StreamingTracker(model, tracker_config)
    lock = threading.Lock()  # the pipeline's lock: tracking holds it for each frame
    tracker.track(frames[0])
    height, width = frames[0].shape[:2]
    for i, point in enumerate(prompt_points(width, height)):
        tracker.add_object(points=[point], labels=[1], object_id=f"object{i}")
    stop, passes = threading.Event(), []

    def discover_beside() -> None:
        while not stop.is_set():
            start = time.perf_counter()
            with lock:
                frame = tracker.discovery_input()
            tracker.discover(config, frame=frame)
            synchronize(tracker.device)
            passes.append(time.perf_counter() - start)
            stop.wait(max(0.0, period_s - passes[-1]))

    worker = threading.Thread(target=discover_beside) if period_s is not None else None
    if worker is not None:
        worker.start()
    synchronize(tracker.device)
    start = time.perf_counter()
    for frame in frames[1:]:
        with lock:
            tracker.track(frame)
    synchronize(tracker.device)
    seconds = time.perf_counter() - start
    stop.set()
    if worker is not None:
        worker.join()
    tracker.release()
    return seconds, passes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="tiny", help="SAM 2.1 model size")
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--points-per-side", type=int, default=DiscoveryConfig.points_per_side)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--frames", type=int, default=30, help="frames of the stream in (b)")
    parser.add_argument("--period-s", type=float, default=5.0, help="discovery period in (b)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="(b) runs, each with and without discovery"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (0: torch's)")
    parser.add_argument("--checkpoint", default=None, help="official checkpoint (else random)")
    parser.add_argument("--frames-dir", type=Path, default=DEFAULT_FRAMES)
    parser.add_argument(
        "--keep-row", action="store_true", help="(a) again with thresholds keeping random masks"
    )
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    paths = sorted(args.frames_dir.glob("*.jpg"))[: args.frames]
    frames = [np.array(Image.open(p).convert("RGB")) for p in paths]
    with tempfile.TemporaryDirectory() as tmp:
        config = TrackerConfig(model_size=args.size, image_size=args.image_size, device=args.device)
        checkpoint = args.checkpoint or write_random_checkpoint(
            config, Path(tmp) / config.checkpoint_filename
        )
        config = dataclasses.replace(config, checkpoint=checkpoint)
        tracker = StreamingTracker.from_config(config)
    discovery = DiscoveryConfig(points_per_side=args.points_per_side)
    height, width = frames[0].shape[:2]
    weights = "official" if args.checkpoint else "random"
    print(
        f"SAM 2.1-{args.size} ({weights} weights), {args.image_size} px, {args.device}, "
        f"{torch.get_num_threads()} threads; frames {width}x{height} from {args.frames_dir.name}"
    )

    print(f"(a) one pass, {args.points_per_side}x{args.points_per_side} clicks, same frame")
    tracker.track(frames[0])
    encode_s, _ = timed(lambda: tracker.track(frames[0]), tracker.device, args.repeats)
    print(f"  tracker.track, no objects (the image encoder) {encode_s * 1e3:8.1f} ms")
    bench_pass(tracker, frames[0], discovery, "default settings", args)
    if args.keep_row and not args.checkpoint:
        keep = dataclasses.replace(discovery, **KEEP_RANDOM)
        bench_pass(tracker, frames[0], keep, "thresholds keeping masks", args)
    model = tracker.model

    print(
        f"(b) tracking 2 objects, {len(frames) - 1} frames, discovery in its own thread; "
        f"{args.rounds} rounds, alternating"
    )
    tracked = len(frames) - 1
    ratios = []
    for round_index in range(args.rounds):
        plain_s, _ = run_stream(model, config, frames, None, discovery)
        beside_s, passes = run_stream(model, config, frames, args.period_s, discovery)
        plain_fps, beside_fps = tracked / plain_s, tracked / beside_s
        ratios.append(beside_fps / plain_fps)
        print(
            f"  round {round_index + 1}: no discovery {plain_fps:6.2f} frames/s; every "
            f"{args.period_s:.1f} s beside tracking ({len(passes)} passes of "
            f"{np.median(passes) * 1e3:.0f} ms median) {beside_fps:6.2f} frames/s, "
            f"ratio {ratios[-1]:.3f}"
        )
    print(f"  median ratio {np.median(ratios):.3f} (target >= 0.9)")
    tracker.release()


if __name__ == "__main__":
    main()
