"""Two cameras on one SAM 2 model vs two single-camera trackers (each with its own model).

Same frames (two real DAVIS clips, one per camera) and the same objects (one per camera) on
both sides, measured side by side in one run:

- "shared": one process, one `MultiStreamTracker`, two streams (one batched encoder pass per
  pair of frames) — what one pam_ros node with two cameras holds;
- "separate": two processes, each one `StreamingTracker` with its own model, run at the same
  time — what two single-camera nodes hold.

It prints resident memory (RSS after the run, summed over the processes of a side), device
memory on CUDA (peak allocated), total tracked frames per second, and the ratios
(targets: memory <= 0.6x, frames/s >= 1.0x). Each side gets the same number of CPU threads
in total (`--threads` per camera).

    python bench/bench_multi_stream.py --frames 20                        # CPU, tiny @ 256
    python bench/bench_multi_stream.py --model-size large --image-size 1024 --device cuda \
        --frames 200 --checkpoint sam2.1_hiera_large.pt
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pam_ros.core.paths import DAVIS_SUBSET

DATA = DAVIS_SUBSET / "JPEGImages/480p"
CLIPS = {"head": "blackswan", "wrist": "car-shadow"}
PROMPTS = {
    "head": {"points": [(420.0, 250.0)], "labels": [1]},
    "wrist": {"box": (120, 80, 500, 330)},
}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _frames(name: str, count: int, data: Path):
    import numpy as np
    from PIL import Image

    paths = sorted((data / CLIPS[name]).glob("*.jpg"))[:count]
    if not paths:
        sys.exit(f"no frames under {data / CLIPS[name]} (give --data)")
    return [np.array(Image.open(p).convert("RGB")) for p in paths]


def worker(args) -> None:
    """One side's process: track the given cameras, print a JSON line of figures."""
    import torch

    from pam_ros.tracking import MultiStreamTracker, StreamingTracker, TrackerConfig

    torch.set_num_threads(args.threads * len(args.cameras))
    config = TrackerConfig(
        model_size=args.model_size,
        image_size=args.image_size,
        checkpoint=args.checkpoint,
        device=args.device,
        dtype=args.dtype,
    )
    frames = {name: _frames(name, args.frames, args.data) for name in args.cameras}
    device = config.torch_device
    if args.mode == "shared":
        tracker = MultiStreamTracker.from_config(config)
        streams = {name: tracker.add_stream(name) for name in args.cameras}
    else:
        (name,) = args.cameras
        streams = {name: StreamingTracker.from_config(config)}

    def step(t: int) -> None:
        if args.mode == "shared":
            tracker.track({name: frames[name][t] for name in streams})
        else:
            streams[name].track(frames[name][t])
        if t == 0:
            for stream_name, stream in streams.items():
                stream.add_object(**PROMPTS[stream_name])

    step(0)  # warm-up + prompts
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    for t in range(1, args.frames):
        step(t)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - started
    figures = {
        "frames": (args.frames - 1) * len(streams),
        "seconds": elapsed,
        "rss_bytes": _rss_bytes(),
        "cuda_peak_bytes": torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0,
    }
    print(json.dumps(figures), flush=True)


def _spawn(args, mode: str, cameras: list[str], checkpoint: str) -> subprocess.Popen:
    command = [sys.executable, __file__, "--worker", mode, "--cameras", *cameras]
    command += ["--model-size", args.model_size, "--image-size", str(args.image_size)]
    command += ["--frames", str(args.frames), "--device", args.device, "--dtype", args.dtype]
    command += [
        "--threads",
        str(args.threads),
        "--checkpoint",
        checkpoint,
        "--data",
        str(args.data),
    ]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)


def _collect(processes: list[subprocess.Popen]) -> list[dict]:
    out = []
    for process in processes:
        stdout, _ = process.communicate()
        if process.returncode != 0:
            sys.exit(f"a worker failed with exit code {process.returncode}")
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-size", default="tiny")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--frames", type=int, default=20, help="frames per camera")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per camera")
    parser.add_argument("--checkpoint", default="", help="SAM 2.1 .pt (default: seeded random)")
    parser.add_argument("--data", type=Path, default=DATA, help="DAVIS JPEGImages/480p folder")
    parser.add_argument("--worker", choices=("shared", "separate"), help=argparse.SUPPRESS)
    parser.add_argument("--cameras", nargs="+", default=list(CLIPS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.mode = args.worker
        args.checkpoint = args.checkpoint or None
        worker(args)
        return

    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint
        if not checkpoint:
            from pam_ros.testing.random_sam2 import write_random_checkpoint
            from pam_ros.tracking import TrackerConfig

            config = TrackerConfig(model_size=args.model_size, image_size=args.image_size)
            checkpoint = str(write_random_checkpoint(config, Path(tmp) / "sam.pt"))
        shared = _collect([_spawn(args, "shared", list(CLIPS), checkpoint)])
        separate = _collect([_spawn(args, "separate", [name], checkpoint) for name in CLIPS])

    def side(figures: list[dict]) -> dict:
        frames = sum(f["frames"] for f in figures)
        return {
            "rss_mb": sum(f["rss_bytes"] for f in figures) / 2**20,
            "cuda_mb": sum(f["cuda_peak_bytes"] for f in figures) / 2**20,
            "fps": frames / max(f["seconds"] for f in figures),
        }

    one, two = side(shared), side(separate)
    print(
        f"SAM 2.1-{args.model_size} @ {args.image_size} px on {args.device}, "
        f"2 cameras x {args.frames} frames, 1 object each, {args.threads} thread(s) per camera"
    )
    print(f"{'':38s}{'RSS MB':>10s}{'CUDA MB':>10s}{'frames/s':>10s}")
    print(
        f"{'one node, two streams (shared model)':38s}{one['rss_mb']:10.0f}"
        f"{one['cuda_mb']:10.0f}{one['fps']:10.2f}"
    )
    print(
        f"{'two single-camera trackers':38s}{two['rss_mb']:10.0f}"
        f"{two['cuda_mb']:10.0f}{two['fps']:10.2f}"
    )
    print(
        f"ratio shared / separate: memory {one['rss_mb'] / two['rss_mb']:.2f}x (target <= 0.6), "
        f"frames/s {one['fps'] / two['fps']:.2f}x (target >= 1.0)"
        + (f", CUDA memory {one['cuda_mb'] / two['cuda_mb']:.2f}x" if two["cuda_mb"] else "")
    )


if __name__ == "__main__":
    main()
