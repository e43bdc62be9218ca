"""SAM 2 image encoder in PyTorch eager vs the same encoder exported to ONNX, run by ONNX Runtime.

Same weights (one checkpoint: the one given, or a seeded random one written to a temporary
folder), same DAVIS frames (car-shadow, one object prompted by a box on the first frame),
same CPU threads on both sides (`--threads`: torch's intra-op threads and ONNX Runtime's).
Both sides are measured frame by frame in turn (A, B, A, B ...) so load on a shared machine
hits both alike. Printed, side by side:

- encoder: `forward_image` of one preprocessed frame (PyTorch) vs the ONNX Runtime session
  (+ the copy of its outputs into torch tensors), median over the frames;
- frame: `StreamingTracker.track` on the whole frame (preprocess, encoder, memory attention,
  decoder, memory encoder, masks at the frame's size), median over the frames;
- the ratios PyTorch / ONNX Runtime (> 1: ONNX Runtime is faster). Target: >= 1.3x whole frame.

Each figure is given as median / best (fastest frame): on a shared machine the best is the
steadier estimate of the uncontended time.

    python bench/bench_onnx_encoder.py                               # tiny @ 512 px, CPU
    python bench/bench_onnx_encoder.py --opt-levels disable basic extended all   # ORT graph levels
    python bench/bench_onnx_encoder.py --model-size large --image-size 1024 --device cuda \\
        --checkpoint sam2.1_hiera_large.pt --providers CUDAExecutionProvider     # (GPU: open)
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

from pam_ros.core.paths import DAVIS_SUBSET

CLIP = DAVIS_SUBSET / "JPEGImages/480p/car-shadow"
BOX = (120, 80, 507, 333)  # the car in car-shadow (854 x 480)


def _frames(count: int):
    import numpy as np
    from PIL import Image

    paths = sorted(CLIP.glob("*.jpg"))[:count]
    if not paths:
        sys.exit(f"no frames under {CLIP}")
    return [np.array(Image.open(p).convert("RGB")) for p in paths]


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-size", default="tiny")
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--checkpoint", default=None, help="default: random weights (seed 0)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--frames", type=int, default=8, help="timed frames per side")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads, both sides")
    parser.add_argument(
        "--opt-levels",
        nargs="+",
        default=["all"],
        choices=["disable", "basic", "extended", "all"],
        help="ONNX Runtime graph optimisation levels to compare (encoder only for all but the "
        "first)",
    )
    parser.add_argument("--providers", nargs="+", default=None, help="ONNX Runtime providers")
    args = parser.parse_args(argv)

    import onnxruntime as ort
    import torch

    from pam_ros.testing.random_sam2 import write_random_checkpoint
    from pam_ros.tracking import StreamingTracker, TrackerConfig
    from pam_ros.tracking.onnx_encoder import OnnxImageEncoder, export_encoder

    torch.set_num_threads(args.threads)
    frames = _frames(args.warmup + args.frames)
    with tempfile.TemporaryDirectory(prefix="bench_onnx_") as tmp:
        config = TrackerConfig(
            model_size=args.model_size, image_size=args.image_size, device=args.device
        )
        checkpoint = args.checkpoint or write_random_checkpoint(
            config, Path(tmp) / config.checkpoint_filename
        )
        config = dataclasses.replace(config, checkpoint=checkpoint)
        onnx_path = Path(tmp) / "encoder.onnx"
        torch_side = StreamingTracker.from_config(config)
        image = torch_side.preprocess(frames[0])
        exporter = StreamingTracker.from_config(dataclasses.replace(config, device="cpu"))
        report = export_encoder(exporter.model, config, onnx_path, image.cpu())
        exporter.release()
        onnx_config = dataclasses.replace(
            config, encoder_backend="onnxruntime", onnx_path=onnx_path
        )
        if args.providers:
            onnx_config = dataclasses.replace(onnx_config, onnx_providers=tuple(args.providers))
        onnx_side = StreamingTracker.from_config(onnx_config)
        encoder = onnx_side.model.onnx_encoder
        device = config.torch_device
        print(
            f"SAM 2.1-{args.model_size} @ {args.image_size} px on {args.device}, "
            f"{args.threads} thread(s), {args.frames} frames (+{args.warmup} warm-up) of "
            f"{CLIP.name}; torch {torch.__version__}, onnxruntime {ort.__version__} "
            f"({encoder.provider}); export deviation {max(report.max_abs_diff.values()):.1e}"
        )

        levels = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }
        images = [torch_side.preprocess(f) for f in frames]

        def encoder_times(onnx_encoder) -> tuple[list[float], list[float]]:
            pt, ox = [], []
            for index, img in enumerate(images):
                with torch.inference_mode():
                    a = _timed(lambda img=img: torch_side.model.forward_image(img), device)
                    b = _timed(lambda img=img: onnx_encoder.forward_image(img), device)
                if index >= args.warmup:
                    pt.append(a)
                    ox.append(b)
            return pt, ox

        rows = []
        for level in args.opt_levels:
            if level != "all":
                options = ort.SessionOptions()
                options.graph_optimization_level = levels[level]
                options.intra_op_num_threads = args.threads
                session = ort.InferenceSession(
                    str(onnx_path), options, providers=encoder.session.get_providers()
                )
                variant = OnnxImageEncoder.__new__(OnnxImageEncoder)
                variant.__dict__.update(encoder.__dict__, session=session)
            else:
                variant = encoder
            pt, ox = encoder_times(variant)
            rows.append((level, pt, ox))

        # whole frames, both trackers prompted on the same box on frame 0
        whole = {"torch": [], "onnxruntime": []}
        for side in (torch_side, onnx_side):
            side.track(frames[0])
            side.add_object(box=BOX)
        for index, frame in enumerate(frames[1:], start=1):
            for name, side in (("torch", torch_side), ("onnxruntime", onnx_side)):
                seconds = _timed(lambda side=side, frame=frame: side.track(frame), device)
                if index > args.warmup:
                    whole[name].append(seconds)
        rows.append(("whole frame (track), level all", whole["torch"], whole["onnxruntime"]))

        def cell(times: list[float]) -> str:
            return f"{statistics.median(times) * 1e3:7.0f} / {min(times) * 1e3:5.0f} ms"

        print(f"{'median / best':34s} {'PyTorch eager':>18s} {'ONNX Runtime':>18s}  ratio")
        for label, pt, ox in rows:
            if not label.startswith("whole"):
                label = f"encoder, ORT graph level {label}"
            ratios = (
                f"{statistics.median(pt) / statistics.median(ox):.2f}x / {min(pt) / min(ox):.2f}x"
            )
            print(f"{label:34s} {cell(pt)} {cell(ox)}  {ratios}")
        pt_encoder = min(min(pt) for _, pt, _ in rows[:-1])
        frame_ratio = min(whole["torch"]) / min(whole["onnxruntime"])
        print(
            f"the PyTorch encoder is {pt_encoder / min(whole['torch']):.0%} of a PyTorch frame "
            f"(best); target >= 1.3x whole frame: {'met' if frame_ratio >= 1.3 else 'NOT met'}"
        )
        torch_side.release()
        onnx_side.release()


if __name__ == "__main__":
    main()
