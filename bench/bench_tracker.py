"""Benchmark the streaming tracker against sam2's offline SAM2VideoPredictor.

For each image size and object count it runs both on the same real frames with the same
weights and prints frames/s, p50/p95 per-frame latency, peak memory and the ratio
(official time / streaming time per frame; > 1 means the stream is faster).

    # CPU, short:
    python bench/bench_tracker.py --model-size tiny --sizes 256 512 --frames 5
    # GPU (lent H100): the large model in bf16 at 1024, long soak for memory growth
    python bench/bench_tracker.py --model-size large --device cuda --sizes 1024 \
        --objects 1 2 4 8 --frames 200 --checkpoint sam2.1_hiera_large.pt

Without --checkpoint both sides load the same seeded random checkpoint (written to a
temporary file in the official layout); speed does not depend on the weights' values.
The official predictor's time excludes its up-front JPEG loading (init_state); it is
given the same JPEG frames as the stream, which decodes them per frame with PIL first.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pam_ros.core.paths import DAVIS_SUBSET
from pam_ros.testing.random_sam2 import write_random_checkpoint
from pam_ros.tracking import StreamingTracker, TrackerConfig
from pam_ros.tracking.model_builder import hydra_overrides

DEFAULT_FRAMES = DAVIS_SUBSET / "JPEGImages/480p/blackswan"


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakMemory:
    """Peak host RSS growth (sampled per frame) and peak CUDA allocation during a run."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.start = rss_bytes()
        self.peak = self.start
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)

    def sample(self) -> None:
        self.peak = max(self.peak, rss_bytes())

    def report(self) -> str:
        text = f"rss +{(self.peak - self.start) / 2**20:7.1f} MiB"
        if self.device.type == "cuda":
            text += f"  cuda peak {torch.cuda.max_memory_allocated(self.device) / 2**20:8.1f} MiB"
        return text


def prompt_points(count: int, width: int, height: int) -> list[tuple[float, float]]:
    """`count` click points spread over the frame's central area."""
    side = int(np.ceil(np.sqrt(count)))
    points = []
    for i in range(count):
        row, col = divmod(i, side)
        points.append((width * (col + 1) / (side + 1), height * (row + 1) / (side + 1)))
    return points


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_stream(config, frame_paths, num_objects, warmup) -> tuple[list[float], str]:
    tracker = StreamingTracker.from_config(config)
    device = config.torch_device
    first = np.array(Image.open(frame_paths[0]).convert("RGB"))
    tracker.track(first)
    for x, y in prompt_points(num_objects, first.shape[1], first.shape[0]):
        tracker.add_object(points=[(x, y)], labels=[1])
    latencies = []
    memory = PeakMemory(device)
    for i, path in enumerate(frame_paths[1:]):
        synchronize(device)
        start = time.perf_counter()
        frame = np.array(Image.open(path).convert("RGB"))
        tracker.track(frame)
        synchronize(device)
        if i >= warmup:
            latencies.append(time.perf_counter() - start)
        memory.sample()
    report = memory.report()
    tracker.release()
    return latencies, report


def run_official(config, frame_paths, num_objects, warmup) -> tuple[list[float], str]:
    from sam2.build_sam import build_sam2_video_predictor

    device = config.torch_device
    predictor = build_sam2_video_predictor(
        config.hydra_config,
        str(config.checkpoint),
        device=str(device),
        hydra_overrides_extra=hydra_overrides(config),
        apply_postprocessing=False,
    )
    autocast = (
        torch.autocast(device.type, dtype=config.compute_dtype)
        if config.compute_dtype != torch.float32
        else contextlib.nullcontext()
    )
    width, height = Image.open(frame_paths[0]).size
    # sam2 draws tqdm progress bars on stderr per frame; keep the table readable
    quiet = contextlib.redirect_stderr(io.StringIO())
    with tempfile.TemporaryDirectory() as video_dir, autocast, quiet:
        for i, path in enumerate(frame_paths):
            os.symlink(path, Path(video_dir) / f"{i:05d}.jpg")
        memory = PeakMemory(device)
        state = predictor.init_state(video_dir)
        for obj_id, (x, y) in enumerate(prompt_points(num_objects, width, height)):
            predictor.add_new_points_or_box(state, 0, obj_id, points=[(x, y)], labels=[1])
        latencies = []
        synchronize(device)
        start = time.perf_counter()
        for frame_idx, _, masks in predictor.propagate_in_video(state):
            masks = (masks > 0).cpu()  # the stream hands out CPU masks too
            synchronize(device)
            now = time.perf_counter()
            if frame_idx > warmup:  # frame 0 is the prompt frame (no tracking work)
                latencies.append(now - start)
            start = now
            memory.sample()
        report = memory.report()
    del predictor, state
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return latencies, report


def summarize(latencies: list[float]) -> tuple[float, float, float, float]:
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    mean = statistics.fmean(latencies)
    return 1.0 / mean, statistics.median(latencies) * 1e3, p95 * 1e3, mean


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-size", default="tiny")
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--objects", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--frames", type=int, default=30, help="timed frames per run")
    parser.add_argument("--warmup", type=int, default=2, help="untimed frames per run")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"])
    parser.add_argument("--checkpoint", default=None, help="official sam2.1_hiera_*.pt")
    parser.add_argument("--frames-dir", type=Path, default=DEFAULT_FRAMES)
    parser.add_argument("--compile", action="store_true", help="torch.compile (stream only)")
    parser.add_argument("--no-official", action="store_true", help="skip sam2's predictor")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    sources = sorted(args.frames_dir.glob("*.jpg"))
    if not sources:
        sys.exit(f"no JPEG frames in {args.frames_dir}")
    needed = 1 + args.warmup + args.frames
    frame_paths = [sources[i % len(sources)] for i in range(needed)]
    threads = torch.get_num_threads()
    print(
        f"# {args.model_size} on {args.device} ({args.dtype}, {threads} threads), "
        f"{args.frames} timed frames after {args.warmup} warm-up, frames {args.frames_dir.name} "
        f"{Image.open(sources[0]).size}, weights: {args.checkpoint or 'seeded random'}"
    )
    header = f"{'size':>5} {'objs':>4} | {'stream fps':>10} {'p50 ms':>8} {'p95 ms':>8}"
    header += f" {'memory':>14} | {'sam2 fps':>8} {'p50 ms':>8} {'p95 ms':>8} {'memory':>14}"
    header += f" | {'speed ratio':>11}"
    print(header)
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            config = TrackerConfig(
                model_size=args.model_size,
                image_size=size,
                device=args.device,
                dtype=args.dtype,
                compile=args.compile,
            )
            checkpoint = args.checkpoint or write_random_checkpoint(
                config, Path(tmp) / f"{size}_{config.checkpoint_filename}"
            )
            config = TrackerConfig(**{**config.__dict__, "checkpoint": checkpoint})
            for num_objects in args.objects:
                lat, mem = run_stream(config, frame_paths, num_objects, args.warmup)
                fps, p50, p95, mean = summarize(lat)
                line = f"{size:>5} {num_objects:>4} | {fps:>10.2f} {p50:>8.1f} {p95:>8.1f}"
                line += f" {mem:>14}"
                if not args.no_official:
                    ref_lat, ref_mem = run_official(config, frame_paths, num_objects, args.warmup)
                    ref_fps, ref_p50, ref_p95, ref_mean = summarize(ref_lat)
                    line += f" | {ref_fps:>8.2f} {ref_p50:>8.1f} {ref_p95:>8.1f} {ref_mem:>14}"
                    line += f" | {ref_mean / mean:>10.2f}x"
                print(line, flush=True)


if __name__ == "__main__":
    main()
