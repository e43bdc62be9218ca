"""Semantics at robot scale: batching across objects, shared per-object work, find_objects.

    python bench/bench_semantics_batch.py                       # tiny random PAM, CPU
    python bench/bench_semantics_batch.py --size 1.5B --device cuda
    python bench/bench_semantics_batch.py --checkpoint path/to/PAM-1.5B --device cuda

Three comparisons, each printed beside its baseline measured in the same run (median of
`--repeats` after `--warmup`):

1. 8 objects x (category, explain) through the real SemanticsScheduler: one tick with
   max_batch_size 16 vs one object per call (max_batch_size 2, 8 ticks) - and vs one object
   per call without the shared prefix (the path before batching). Descriptions per second.
2. 4 image kinds of one object: one describe call (one perceiver pass, one prefix prefill
   reused by each kind) vs 4 separate calls.
3. find_objects over 8 objects (one batched teacher-forced pass) vs 8 category describes
   (one batched describe call, and 8 separate calls).

Answers decode exactly `--new-tokens` tokens (EOS ignored), so every row does the same work;
category describes use `--category-tokens`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pam_ros.core.features import RegionFeatures
from pam_ros.pipeline.semantics_scheduler import (
    ObjectObservation,
    SchedulerConfig,
    SemanticsScheduler,
)
from pam_ros.semantics import DescribeRequest, GenerationSettings, SemanticEngine
from pam_ros.testing.random_pam import write_random_checkpoint

IMAGE_KINDS = ("category", "explain", "caption", "detailed_caption")


def objects(count: int, grid: int, dtype: torch.dtype) -> list[RegionFeatures]:
    gen = torch.Generator().manual_seed(count)
    return [
        RegionFeatures(
            torch.randn(256, grid, grid, generator=gen).to(dtype),
            torch.randn(2, 256, generator=gen).to(dtype),
            i,
        )
        for i in range(count)
    ]


def timed(fn, device: torch.device, repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def scheduler_tick(engine, feats, batch_size: int, new_tokens: int) -> int:
    """Describe every object once through a fresh scheduler; returns the descriptions made."""
    scheduler = SemanticsScheduler(
        engine,
        SchedulerConfig(
            video_segment_frames=0,
            kinds=("category", "explain"),
            max_new_tokens=new_tokens,
            max_batch_size=batch_size,
        ),
    )
    mask = np.zeros((32, 32), dtype=bool)
    mask[8:24, 8:24] = True
    scheduler.observe(0, [ObjectObservation(f"o{i}", f, mask, True) for i, f in enumerate(feats)])
    while scheduler.run_once():
        pass
    return scheduler.stats.descriptions


def row(name: str, seconds: float, baseline: float, work: int, unit: str) -> None:
    print(
        f"  {name:<52} {seconds * 1000:9.1f} ms  {work / seconds:9.2f} {unit}/s  "
        f"x{baseline / seconds:5.2f}"
    )


def run(args: argparse.Namespace) -> None:
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.checkpoint or write_random_checkpoint(
            Path(tmp) / f"PAM-{args.size}", size=args.size, seed=0
        )
        engine = SemanticEngine.from_pretrained(
            folder,
            device=device,
            dtype=args.dtype,
            generation=GenerationSettings(max_batch_size=64, ignore_eos=True),
        )
    grid = args.image_size // 16
    dtype = engine.dtype
    n, reps, warm, tokens = args.objects, args.repeats, args.warmup, args.new_tokens
    print(
        f"model {engine.model_name} ({'random' if engine.random_weights else 'real'} weights), "
        f"{device}, {dtype}, grid {grid}, {torch.get_num_threads()} thread(s), "
        f"{tokens} new tokens"
    )

    # 1. batching across objects through the scheduler
    feats = objects(n, grid, dtype)
    made = 2 * n
    engine.share_prefix = False
    old = timed(lambda: scheduler_tick(engine, feats, 2, tokens), device, reps, warm)
    engine.share_prefix = True
    single = timed(lambda: scheduler_tick(engine, feats, 2, tokens), device, reps, warm)
    batched = timed(lambda: scheduler_tick(engine, feats, 2 * n, tokens), device, reps, warm)
    print(f"\n1. {n} objects x (category, explain), scheduler, descriptions")
    row("one object per call, no shared prefix (before)", old, old, made, "desc")
    row("one object per call (shared prefix)", single, old, made, "desc")
    row(f"one call per tick, max_batch_size {2 * n}", batched, old, made, "desc")
    print(f"   batched vs one object per call: x{single / batched:.2f} (target >= 3)")

    # 2. four kinds of one object
    [one] = objects(1, grid, dtype)
    requests = [DescribeRequest(kind, [one], max_new_tokens=tokens) for kind in IMAGE_KINDS]

    def separate() -> None:
        for request in requests:
            engine.describe([request])

    apart = timed(separate, device, reps, warm)
    together = timed(lambda: engine.describe(requests), device, reps, warm)
    print("\n2. 4 kinds of one object")
    row("4 separate calls (4 perceiver passes, 4 prefixes)", apart, apart, 4, "desc")
    row("1 call: shared visual block + prefix KV cache", together, apart, 4, "desc")
    print(f"   shared vs separate: x{apart / together:.2f} (target >= 2)")

    # 3. find_objects vs category describes
    category = [
        DescribeRequest("category", [f], max_new_tokens=args.category_tokens) for f in feats
    ]

    def eight_apart() -> None:
        for request in category:
            engine.describe([request])

    apart = timed(eight_apart, device, reps, warm)
    batch = timed(lambda: engine.describe(category), device, reps, warm)
    find = timed(lambda: engine.score_query(feats, "a coffee mug"), device, reps, warm)

    def perceive() -> None:
        prepared = [engine._prepare(i, r) for i, r in enumerate(category)]
        with torch.inference_mode():
            engine._shared_blocks(prepared)

    perceiver = timed(perceive, device, reps, warm)
    print(f"\n3. which of {n} objects is 'a coffee mug'? ({args.category_tokens}-token categories)")
    row(f"{n} category describes, separate calls", apart, apart, n, "obj")
    row(f"{n} category describes, one batched call", batch, apart, n, "obj")
    row("find_objects: one teacher-forced pass", find, apart, n, "obj")
    row(f"  of which perceiver + projectors ({n} visual blocks)", perceiver, apart, n, "obj")
    print(
        f"   find_objects vs {n} describes: x{batch / find:.2f} batched, "
        f"x{apart / find:.2f} separate (target >= 4)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=("tiny", "1.5B", "3B"), default="tiny")
    parser.add_argument("--checkpoint", help="a PAM folder (default: write a random one)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16"))
    parser.add_argument("--image-size", type=int, default=1024, help="SAM 2 input (grid = /16)")
    parser.add_argument("--objects", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--category-tokens", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
