"""One GPU acceptance run: prints one JSON report (and writes it with --out).

    python bench/gpu_check.py                      # CUDA, <= 5 min on an H100
    python bench/gpu_check.py --device cpu --quick # the same sections, small, ~1-2 min on a CPU

Sections (each one's failure is recorded under "errors" and the others still run):

- environment: torch, device name, bf16 support, what dtype "auto" chose per model and why;
- parity: the tracker (SAM 2.1-tiny, random weights) on the device in float32 against the CPU
  result on the same real frames (mask IoU, max |logit| difference), and the device's "auto"
  dtype (bfloat16 on a recent GPU) and, on CUDA, float16 against its float32 result;
- speed: tracking frames/s of SAM 2.1 tiny and large (random weights in the real
  architectures) at 512 and 1024 px with 1, 4 and 8 objects;
- stall: tracking frames/s while the semantic engine is idle and while another thread keeps it
  busy (video captions, as the semantic worker does); stall_ratio = busy / idle (1.0: no stall);
- semantics: category time to first token and decode tokens/s, PAM-1.5B layout (random weights);
- agreement: answers (token ids) of the engine in the auto dtype (and float16 on CUDA) against
  float32 on the same features: the fraction of identical answers and of identical first
  tokens; and the equality promises (batched = one by one, prefix cache = recompute, the same
  input twice) in each dtype;
- memory: device memory allocated / reserved and host RSS before configure, active (models
  built, tracking, describing), and after `Models.release()` + `give_back_memory`;
- onnx_encoder: the image encoder exported to ONNX (SAM 2.1 tiny at 512 px and large at
  1024 px) and served by each ONNX Runtime provider this build has for the device (TensorRT
  in float32 and fp16, for large fp16 only; CUDA; the CPU provider on a CPU run): the
  tracker's masks against the PyTorch encoder's on the same frames, and encoder and
  whole-frame times, PyTorch eager vs ONNX Runtime, side by side (TensorRT's engine build is
  timed apart; `--no-onnx` skips the section). Recorded as not
  available where onnxruntime is not installed (`onnxruntime-gpu` on CUDA).

Random weights: speed and memory do not depend on their values; parity and agreement compare
one model with itself across devices and dtypes. Frames: DAVIS 2016 (`pam_ros.core.paths`),
or generated frames where that data is missing ("frames" says which).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pam_ros.core.accelerator import choose_dtype
from pam_ros.core.memory import give_back_memory, rss_bytes
from pam_ros.core.paths import DAVIS_SUBSET
from pam_ros.semantics import DescribeRequest, GenerationSettings, SemanticEngine
from pam_ros.testing.random_pam import write_random_checkpoint as write_random_pam
from pam_ros.testing.random_sam2 import build_random_sam2, random_sam2_on_device
from pam_ros.tracking import StreamingTracker, TrackerConfig

SEQUENCE = "blackswan"


def load_frames(count: int, size: tuple[int, int] | None = None) -> tuple[list[np.ndarray], str]:
    folder = DAVIS_SUBSET / "JPEGImages/480p" / SEQUENCE
    paths = sorted(folder.glob("*.jpg"))[:count]
    if len(paths) == count:
        frames = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
        source = f"DAVIS {SEQUENCE}"
    else:  # a moving bright square on noise
        rng = np.random.default_rng(0)
        frames = []
        for i in range(count):
            frame = rng.integers(0, 60, (480, 854, 3), dtype=np.uint8)
            frame[150 + 4 * i : 300 + 4 * i, 300:500] = 220
            frames.append(frame)
        source = "generated (DAVIS not found)"
    if size is not None:
        frames = [np.asarray(Image.fromarray(f).resize(size)) for f in frames]
    return frames, source


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def memory_now(device: torch.device) -> dict:
    out = {"rss_mb": round(rss_bytes() / 2**20, 1)}
    if device.type == "cuda":
        out["allocated_mb"] = round(torch.cuda.memory_allocated(device) / 2**20, 1)
        out["reserved_mb"] = round(torch.cuda.memory_reserved(device) / 2**20, 1)
    return out


def tracker(model_size: str, image_size: int, device: str, dtype: str = "auto", seed: int = 0):
    config = TrackerConfig(
        model_size=model_size, image_size=image_size, device=device, dtype=dtype,
        random_weights=True, seed=seed,
    )  # fmt: skip
    return StreamingTracker(random_sam2_on_device(config), config)


def prompt_points(frame: np.ndarray, count: int) -> list[tuple[int, int]]:
    h, w = frame.shape[:2]
    return [(int(w * (i + 1) / (count + 1)), int(h * (0.35 + 0.3 * (i % 2)))) for i in range(count)]


def run_tracker(t: StreamingTracker, frames: list[np.ndarray], objects: int) -> list[dict]:
    """Track `frames`, prompting `objects` clicks on the first; per frame: id -> (mask, logits)."""
    t.track(frames[0])
    for point in prompt_points(frames[0], objects):
        t.add_object(points=[point], labels=[1])
    out = []
    for frame in frames[1:]:
        result = t.track(frame)
        out.append({k: (r.mask, r.mask_logits.float().numpy()) for k, r in result.objects.items()})
    return out


def compare(a: list[dict], b: list[dict]) -> dict:
    ious, diffs = [], []
    for fa, fb in zip(a, b, strict=True):
        for key in fa:
            ma, mb = fa[key][0], fb[key][0]
            union = np.logical_or(ma, mb).sum()
            ious.append(1.0 if union == 0 else float(np.logical_and(ma, mb).sum() / union))
            diffs.append(float(np.abs(fa[key][1] - fb[key][1]).max()))
    return {
        "min_iou": round(min(ious), 6),
        "mean_iou": round(float(np.mean(ious)), 6),
        "max_logit_diff": round(max(diffs), 6),
    }


# ---------------------------------------------------------------- sections


def environment(args, device: torch.device) -> dict:
    env = {
        "torch": torch.__version__,
        "device": str(device),
        "cuda_available": torch.cuda.is_available(),
    }
    if device.type == "cuda":
        env["device_name"] = torch.cuda.get_device_name(device)
        env["bf16_supported"] = bool(torch.cuda.is_bf16_supported())
    env["auto_dtype"] = {
        model: {"dtype": c.name, "reason": c.reason}
        for model in ("tracker", "semantics")
        for c in [choose_dtype("auto", device, model)]
    }
    return env


def parity(args, device: torch.device) -> dict:
    size = 256 if args.quick else 512
    frames, source = load_frames(3 if args.quick else 8, (320, 180) if args.quick else None)
    cpu = run_tracker(tracker("tiny", size, "cpu", "float32"), frames, 2)
    report = {"image_size": size, "frames": len(frames), "source": source}
    here = run_tracker(tracker("tiny", size, str(device), "float32"), frames, 2)
    report["float32_vs_cpu"] = compare(cpu, here)
    low = "bfloat16" if device.type == "cpu" else "auto"
    low_run = run_tracker(tracker("tiny", size, str(device), low), frames, 2)
    report["low_precision"] = choose_dtype(low, device, "tracker").name
    report["low_precision_vs_float32"] = compare(here, low_run)
    if device.type == "cuda":  # the figures that decide FLOAT16_STABLE["tracker"]
        half = run_tracker(tracker("tiny", size, str(device), "float16"), frames, 2)
        report["float16_vs_float32"] = compare(here, half)
    return report


def speed(args, device: torch.device) -> list[dict]:
    if args.quick:
        grid = [("tiny", 256, (1, 2))]
        count = 4
    else:
        grid = [(m, s, (1, 4, 8)) for m in ("tiny", "large") for s in (512, 1024)]
        count = 24
    frames, _ = load_frames(count)
    rows = []
    for model_size, image_size, objects in grid:
        t = tracker(model_size, image_size, str(device))
        for n in objects:
            t.reset()
            t.track(frames[0])
            for point in prompt_points(frames[0], n):
                t.add_object(points=[point], labels=[1])
            t.track(frames[1])  # warm-up
            sync(device)
            start = time.perf_counter()
            for frame in frames[2:]:
                t.track(frame)
            sync(device)
            elapsed = time.perf_counter() - start
            rows.append({
                "model_size": model_size, "image_size": image_size, "objects": n,
                "fps": round((len(frames) - 2) / elapsed, 2),
            })  # fmt: skip
        t.release()
        give_back_memory(str(device))
    return rows


def _pam_checkpoint(args, size: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="pam_gpu_check_")) / f"PAM-{size}-random"
    return write_random_pam(folder, size=size, seed=0)


def stall_and_semantics(args, device: torch.device, pam: Path) -> tuple[dict, dict]:
    image_size = 256 if args.quick else 1024
    frames, _ = load_frames(5 if args.quick else 30)
    t = tracker("tiny" if args.quick else "large", image_size, str(device))
    t.track(frames[0])
    ids = [t.add_object(points=[p], labels=[1]) for p in prompt_points(frames[0], 2)]
    t.track(frames[1])
    features = t.latest_features(ids[0])
    engine = SemanticEngine.from_pretrained(
        pam, device=device, generation=GenerationSettings(ignore_eos=True)
    )

    def fps() -> float:
        sync(device)
        start = time.perf_counter()
        for frame in frames[2:]:
            t.track(frame)
        sync(device)
        return (len(frames) - 2) / (time.perf_counter() - start)

    idle = fps()
    stop = threading.Event()
    busy_calls = [0]
    video = [t.latest_features(ids[1])] * 16

    def keep_busy() -> None:
        while not stop.is_set():
            engine.describe([DescribeRequest("video_caption", video, max_new_tokens=8)])
            busy_calls[0] += 1

    worker = threading.Thread(target=keep_busy, name="pam_semantics", daemon=True)
    worker.start()
    time.sleep(0.5 if args.quick else 2.0)  # the worker is decoding
    busy = fps()
    stop.set()
    worker.join()
    stall = {
        "idle_fps": round(idle, 2),
        "busy_fps": round(busy, 2),
        "stall_ratio": round(busy / idle, 3),
        "describe_calls_during": busy_calls[0],
    }

    new_tokens = 8 if args.quick else 32
    request = DescribeRequest("category", [features], max_new_tokens=new_tokens)
    engine.describe([request])  # warm-up
    runs = [engine.describe([request])[0] for _ in range(2 if args.quick else 5)]
    ttft = float(np.median([d.time_to_first_token_s for d in runs]))
    total = float(np.median([d.latency_s for d in runs]))
    semantics = {
        "checkpoint": pam.name,
        "dtype": str(engine.dtype).removeprefix("torch."),
        "category_ttft_ms": round(ttft * 1000, 2),
        "decode_tokens_per_s": round((new_tokens - 1) / max(total - ttft, 1e-9), 2),
        "new_tokens": new_tokens,
    }
    engine.release()
    t.release()
    give_back_memory(str(device))
    return stall, semantics


def agreement(args, device: torch.device, pam: Path) -> dict:
    low = "bfloat16" if device.type == "cpu" else "auto"
    t = tracker("tiny", 256, str(device), "float32")
    frames, _ = load_frames(3)
    t.track(frames[0])
    ids = [t.add_object(points=[p], labels=[1]) for p in prompt_points(frames[0], 4)]
    t.track(frames[1])
    requests = [
        DescribeRequest(kind, [t.latest_features(i)], max_new_tokens=8)
        for i in ids
        for kind in ("category", "caption")
    ]
    answers, promises = {}, {}
    dtypes = ["float32", low] + (["float16"] if device.type == "cuda" else [])
    for dtype in dtypes:
        engine = SemanticEngine.from_pretrained(pam, device=device, dtype=dtype)
        batched = [d.token_ids for d in engine.describe(requests)]
        answers[dtype] = batched
        # the equality promises, in this dtype on this device
        single = [engine.describe([r])[0].token_ids for r in requests]
        engine.share_prefix = False  # every kind prefills its whole prompt again
        recomputed = [d.token_ids for d in engine.describe(requests)]
        engine.share_prefix = True
        again = [d.token_ids for d in engine.describe(requests)]
        name = str(engine.dtype).removeprefix("torch.")
        promises[name] = {
            "batched_equals_one_by_one": _same(batched, single),
            "prefix_cache_equals_recompute": _same(batched, recomputed),
            "same_input_same_output": _same(batched, again),
        }
        engine.release()
    a, b = answers["float32"], answers[low]
    t.release()
    report = {
        "low_precision": choose_dtype(low, device, "semantics").name,
        "answers": len(a),
        "identical_fraction": _same(a, b),
        "same_first_token_fraction": _same([x[:1] for x in a], [y[:1] for y in b]),
        "promises": promises,
    }
    if "float16" in answers:  # the figures that decide FLOAT16_STABLE["semantics"]
        report["float16_identical_fraction"] = _same(a, answers["float16"])
    return report


def _same(a: list, b: list) -> float:
    """The fraction of identical answers."""
    return round(sum(x == y for x, y in zip(a, b, strict=True)) / len(a), 3)


def memory(args, device: torch.device, pam: Path) -> dict:
    from pam_ros.pipeline.models import ModelSettings, build_models
    from pam_ros.semantics import DescribeRequest as Request

    give_back_memory(str(device))
    report = {"before_configure": memory_now(device)}
    settings = ModelSettings(
        TrackerConfig(
            model_size="tiny" if args.quick else "large", image_size=256 if args.quick else 1024,
            device=str(device), random_weights=True,
        ),
        semantics_model=str(pam),
    )  # fmt: skip
    models = build_models(settings)
    stream = models.tracker.add_stream("cam")
    frames, _ = load_frames(4)
    models.tracker.track({"cam": frames[0]})
    object_id = stream.add_object(points=prompt_points(frames[0], 1), labels=[1])
    for frame in frames[1:]:
        models.tracker.track({"cam": frame})
    models.engine.describe(
        [Request("category", [stream.latest_features(object_id)], max_new_tokens=4)]
    )
    sync(device)
    report["active"] = memory_now(device)
    del stream
    models.release()
    del models
    give_back_memory(str(device))
    report["after_cleanup"] = memory_now(device)
    if device.type == "cuda":
        before = report["before_configure"]["allocated_mb"]
        report["released_all_device_memory"] = report["after_cleanup"]["allocated_mb"] <= before
    return report


def _median_ms(fn, inputs, device: torch.device) -> float:
    times = []
    for item in inputs:
        sync(device)
        start = time.perf_counter()
        fn(item)
        sync(device)
        times.append(time.perf_counter() - start)
    return round(float(np.median(times)) * 1000, 2)


def _timings(t: StreamingTracker, frames: list[np.ndarray], device: torch.device) -> dict:
    """Median encoder (`forward_image` of a preprocessed frame) and whole-frame (`track`) ms;
    `t` is already tracking objects."""
    with torch.inference_mode():
        images = [t.preprocess(f) for f in frames]
        t.model.forward_image(images[0])  # warm-up
        encoder = _median_ms(t.model.forward_image, images[1:], device)
    t.track(frames[0])  # warm-up
    return {"encoder_ms": encoder, "frame_ms": _median_ms(t.track, frames[1:], device)}


def onnx_encoder(args, device: torch.device) -> dict:
    try:
        import onnxruntime as ort
    except ImportError as err:
        return {"available": False, "reason": f"onnxruntime is not installed ({err})"}
    from dataclasses import replace

    from pam_ros.tracking.onnx_encoder import attach_encoder_backend, export_encoder

    available = ort.get_available_providers()
    if device.type == "cpu":
        wanted = [("CPUExecutionProvider", False)]
    else:
        wanted = [
            (name, fp16)
            for name, fp16 in (
                ("TensorrtExecutionProvider", False),
                ("TensorrtExecutionProvider", True),
                ("CUDAExecutionProvider", False),
            )
            if name in available
        ]
    report: dict = {"onnxruntime": ort.__version__, "available_providers": available, "rows": []}
    grid = [("tiny", 256)] if args.quick else [("tiny", 512), ("large", 1024)]
    frames, report["frames"] = load_frames(4 if args.quick else 12)
    folder = Path(tempfile.mkdtemp(prefix="pam_gpu_check_onnx_"))
    for model_size, size in grid:
        config = TrackerConfig(
            model_size=model_size, image_size=size, device="cpu", dtype="float32",
            random_weights=True, seed=0,
        )  # fmt: skip
        path = folder / f"sam2.1_{model_size}_{size}.onnx"
        exporter = StreamingTracker(build_random_sam2(config), config)
        export = export_encoder(exporter.model, config, path, exporter.preprocess(frames[0]))
        exporter.release()
        torch_side = tracker(model_size, size, str(device), "float32")
        reference = run_tracker(torch_side, frames, 2)
        torch_times = _timings(torch_side, frames, device)
        torch_side.release()
        give_back_memory(str(device))
        for provider, fp16 in wanted:
            if model_size == "large" and provider == "TensorrtExecutionProvider" and not fp16:
                continue  # minutes of engine building for the large float32 engine: fp16 only
            onnx_config = replace(
                config, device=str(device), encoder_backend="onnxruntime", onnx_path=path,
                onnx_providers=(provider,), onnx_trt_cache_dir=folder / "trt_cache",
                onnx_trt_fp16=fp16,
            )  # fmt: skip
            start = time.perf_counter()
            model = attach_encoder_backend(build_random_sam2(onnx_config), onnx_config)
            onnx_side = StreamingTracker(model.to(onnx_config.torch_device).eval(), onnx_config)
            onnx_side.track(frames[0])  # TensorRT builds its engine on the first run
            load_s = time.perf_counter() - start
            onnx_side.reset()
            served = onnx_side.model.onnx_encoder.provider
            times = {}
            if served == provider:  # the same steps as the PyTorch side's
                times["vs_torch"] = compare(reference, run_tracker(onnx_side, frames, 2))
                times.update(_timings(onnx_side, frames, device))
            report["rows"].append({
                "model_size": model_size, "image_size": size, "provider": provider,
                "served_by": served, "trt_fp16": fp16, "export_max_diff": max(
                    export.max_abs_diff.values()),
                "load_and_first_frame_s": round(load_s, 2),
                "torch": torch_times, "onnxruntime": times,
                "encoder_ratio": round(torch_times["encoder_ms"] / times["encoder_ms"], 3)
                if times else None,
                "frame_ratio": round(torch_times["frame_ms"] / times["frame_ms"], 3)
                if times else None,
            })  # fmt: skip
            onnx_side.release()
            give_back_memory(str(device))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="small sizes (CPU, ~1-2 min)")
    parser.add_argument("--pam-size", default=None, help="random PAM layout (default 1.5B; tiny)")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: 1 on a CPU run)"
    )
    parser.add_argument(
        "--no-onnx", action="store_true", help="skip the onnx_encoder section (engine builds)"
    )
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    threads = args.threads or (1 if device.type == "cpu" else None)
    if threads:  # several intra-op threads spin badly on a shared CPU
        torch.set_num_threads(threads)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(json.dumps({"error": "CUDA is not available; use --device cpu --quick"}))
        return 2
    started = time.perf_counter()
    torch.manual_seed(0)
    report: dict = {"device": str(device), "quick": args.quick, "errors": {}}
    pam_size = args.pam_size or ("tiny" if args.quick else "1.5B")
    timings = {}

    def section(name: str, fn, *fn_args):
        t0 = time.perf_counter()
        try:
            return fn(args, device, *fn_args)
        except Exception as exc:  # keep the other sections' figures
            report["errors"][name] = f"{exc!r}\n{traceback.format_exc(limit=4)}"
            return None
        finally:
            timings[name] = round(time.perf_counter() - t0, 2)

    report["environment"] = section("environment", environment)
    pam_small = section("checkpoint_tiny", lambda a, d: _pam_checkpoint(a, "tiny"))
    pam = pam_small if pam_size == "tiny" else section(
        "checkpoint", lambda a, d: _pam_checkpoint(a, pam_size)
    )  # fmt: skip
    # first: "before configure" is the process before any model was on the device
    report["memory"] = section("memory", memory, pam) if pam else None
    report["parity"] = section("parity", parity)
    report["speed"] = section("speed", speed)
    stall_sem = section("stall", stall_and_semantics, pam) if pam else None
    report["stall"], report["semantics"] = stall_sem if stall_sem else (None, None)
    report["agreement"] = section("agreement", agreement, pam_small) if pam_small else None
    report["onnx_encoder"] = None if args.no_onnx else section("onnx_encoder", onnx_encoder)
    report["seconds"] = timings
    report["elapsed_s"] = round(time.perf_counter() - started, 1)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text)
    return 0 if not report["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
