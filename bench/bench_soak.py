"""Soak: RSS and the tracker's held bytes over a long stream (tracker + semantics in-process).

The library pipeline as the node wires it: StreamingTracker.track per frame, observations to a
SemanticsScheduler whose worker thread describes objects (category refreshes and streaming
video captions), objects added and removed along the way. Tiny random models at 256 px on
small generated frames (a moving disc and square on a textured background). The C heap is
trimmed every --trim-period-s seconds as the node does (`memory_trim_period_s`; 0: never, to
see what glibc keeps without it).

    python bench/bench_soak.py                      # 10,000 frames, a line every 1,000
    python bench/bench_soak.py --frames 300 --every 50

Target: RSS growth <= 1 % from the first report to the last; held bytes constant.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pam_ros.core.memory import HeapTrimmer, rss_bytes
from pam_ros.pipeline.semantics_scheduler import (
    ObjectObservation,
    SchedulerConfig,
    SemanticsScheduler,
)
from pam_ros.semantics import SemanticEngine
from pam_ros.testing.random_pam import write_random_checkpoint as write_pam
from pam_ros.testing.random_sam2 import random_sam2_on_device
from pam_ros.tracking import StreamingTracker, TrackerConfig

MB = 2**20


def frame_at(t: int, width: int, height: int, background: np.ndarray) -> np.ndarray:
    frame = background.copy()
    cx = int(width * (0.3 + 0.2 * np.sin(t / 15)))
    cy = int(height * (0.5 + 0.2 * np.cos(t / 20)))
    ys, xs = np.ogrid[:height, :width]
    frame[(xs - cx) ** 2 + (ys - cy) ** 2 < (height // 6) ** 2] = (220, 40, 40)
    sx = int(width * (0.7 + 0.1 * np.cos(t / 10)))
    frame[height // 4 : height // 2, sx - 15 : sx + 15] = (40, 200, 60)
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--every", type=int, default=1_000, help="report period (frames)")
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--height", type=int, default=120)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--image-size", type=int, default=256, help="SAM 2 input pixels")
    parser.add_argument(
        "--semantic-rate-hz", type=float, default=20.0, help="engine calls per second"
    )
    parser.add_argument(
        "--trim-period-s",
        type=float,
        default=30.0,
        help="trim the C heap this often, as the node does (memory_trim_period_s); 0: never",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    folder = Path(tempfile.mkdtemp(prefix="pam_soak_"))
    tracker_config = TrackerConfig(model_size="tiny", image_size=args.image_size)
    tracker = StreamingTracker(random_sam2_on_device(tracker_config), tracker_config)
    engine = SemanticEngine.from_pretrained(write_pam(folder / "pam_tiny", size="tiny", seed=0))
    scheduler = SemanticsScheduler(
        engine,
        SchedulerConfig(
            rate_hz=args.semantic_rate_hz,
            refresh_period_s=1.0,
            video_segment_frames=16,
            kinds=("category",),
            max_new_tokens=8,
        ),
    )
    scheduler.start()
    rng = np.random.default_rng(0)
    background = rng.integers(60, 120, (args.height, args.width, 3), dtype=np.uint8)
    w, h = args.width, args.height
    trimmer = HeapTrimmer(args.trim_period_s)
    started = time.monotonic()
    first = None
    try:
        for t in range(args.frames):
            result = tracker.track(frame_at(t, w, h, background), stamp_ns=t * 33_000_000)
            if t % 200 == 0:  # add the disc; drop the oldest object beyond three
                cx = int(w * (0.3 + 0.2 * np.sin(t / 15)))
                cy = int(h * (0.5 + 0.2 * np.cos(t / 20)))
                tracker.add_object(points=[(cx, cy)], labels=[1])
                if t % 400 == 0:
                    sx = int(w * (0.7 + 0.1 * np.cos(t / 10)))
                    tracker.add_object(box=(sx - 15, h // 4, sx + 15, h // 2))
                while len(tracker.object_ids) > 3:
                    oldest = tracker.object_ids[0]
                    tracker.remove_object(oldest)
                    scheduler.forget(oldest)
                result = tracker.last_result
            scheduler.observe(
                t * 33_000_000,
                [
                    ObjectObservation(oid, tracker.latest_features(oid), obj.mask, obj.present)
                    for oid, obj in result.objects.items()
                ],
            )
            trimmer.maybe_trim()
            if (t + 1) % args.every == 0:
                rss = rss_bytes() / MB
                first = first if first is not None else rss
                stats = scheduler.stats
                print(
                    f"frame {t + 1:6d}  RSS {rss:7.1f} MB ({100 * (rss / first - 1):+.2f} %)  "
                    f"held {tracker.held_bytes():,} B  objects {len(tracker.object_ids)}  "
                    f"descriptions {stats.descriptions}  video captions {stats.video_captions}  "
                    f"{(t + 1) / (time.monotonic() - started):.1f} frames/s",
                    flush=True,
                )
    finally:
        scheduler.stop()
        tracker.release()
        engine.release()


if __name__ == "__main__":
    main()
