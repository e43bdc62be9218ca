"""The CUDA path's rules, tested on the CPU: dtype choice from injected capabilities, role
streams (no-ops here), the fused finite check, release leaving nothing of the models
reachable, and torch.compile with dynamic shapes compiling at warm-up only."""

from __future__ import annotations

import gc
import logging
import weakref

import numpy as np
import pytest
import torch

from pam_ros.core import accelerator
from pam_ros.core.accelerator import all_finite, choose_dtype, role_stream, wait_for_role
from pam_ros.core.vocabulary import DTYPES

YES, NO = (lambda: True), (lambda: False)


# ---------------------------------------------------------------- dtype


@pytest.mark.parametrize(
    ("device", "available", "bf16", "model", "expected"),
    [
        ("cpu", NO, NO, "tracker", torch.float32),
        ("cpu", YES, YES, "semantics", torch.float32),
        ("cuda", YES, YES, "tracker", torch.bfloat16),  # Ampere+, Orin
        ("cuda", YES, YES, "semantics", torch.bfloat16),
        ("cuda", YES, NO, "tracker", torch.float32),  # T4, V100, Xavier: fp16 not verified
        ("cuda", YES, NO, "semantics", torch.float32),
        ("cuda:1", NO, NO, "tracker", torch.float32),
    ],
)
def test_auto_dtype_follows_the_device(device, available, bf16, model, expected):
    choice = choose_dtype(device=device, requested="auto", model=model, is_available=available,
                          is_bf16_supported=bf16)  # fmt: skip
    assert choice.dtype == expected
    assert choice.reason


def test_auto_takes_float16_for_a_model_marked_stable(monkeypatch):
    monkeypatch.setitem(accelerator.FLOAT16_STABLE, "tracker", True)
    choice = choose_dtype("auto", "cuda", "tracker", is_available=YES, is_bf16_supported=NO)
    assert choice.dtype == torch.float16 and "float16" in choice.reason
    semantics = choose_dtype("auto", "cuda", "semantics", is_available=YES, is_bf16_supported=NO)
    assert semantics.dtype == torch.float32 and "not verified" in semantics.reason


def test_asked_dtypes_are_kept_and_unknown_ones_refused():
    for name in DTYPES[1:]:
        assert choose_dtype(name, "cuda", is_bf16_supported=NO).name == name
    assert "float16" in DTYPES
    with pytest.raises(ValueError, match="dtype must be"):
        choose_dtype("half", "cpu")


def test_engine_and_tracker_config_use_the_choice(monkeypatch):
    from pam_ros.semantics.engine import _resolve_dtype
    from pam_ros.tracking import TrackerConfig

    monkeypatch.setattr(accelerator, "_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    cuda = torch.device("cuda")
    assert _resolve_dtype("auto", cuda) == torch.float32
    assert TrackerConfig(model_size="tiny", device="cuda").compute_dtype == torch.float32
    monkeypatch.setattr(accelerator, "_bf16_supported", lambda: True)
    assert _resolve_dtype("auto", cuda) == torch.bfloat16
    assert TrackerConfig(model_size="tiny", device="cuda").compute_dtype == torch.bfloat16
    assert TrackerConfig(model_size="tiny", dtype="float16").compute_dtype == torch.float16


def test_one_log_line_says_what_and_why():
    records = []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append
    logger = logging.getLogger(accelerator.__name__)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        line = accelerator.log_dtype_choices("auto", "cpu", ("tracker", "semantics"))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert [r.getMessage() for r in records] == [line]
    assert "tracker float32" in line and "semantics float32" in line and "auto on cpu" in line


# ---------------------------------------------------------------- streams, checks


def test_role_streams_are_no_ops_on_the_cpu():
    with role_stream("tracking", "cpu"), role_stream("semantics", torch.device("cpu")):
        wait_for_role("tracking", "cpu")
        accelerator.keep_for_current_stream([torch.zeros(2)])
        accelerator.sync_current_stream("cpu")
    assert accelerator._streams == {}
    with pytest.raises(ValueError, match="role"):
        accelerator._stream_of("decoding", torch.device("cuda"))


def test_all_finite_is_one_check_per_tensor():
    good = torch.ones(3, 4, dtype=torch.bfloat16)
    assert all_finite([]) == []
    assert all_finite([good, good.float(), torch.tensor([1.0, float("nan")]),
                       torch.tensor([float("-inf")])]) == [True, True, False, False]  # fmt: skip


def test_tracker_and_engine_run_under_their_own_roles(checkpoints, monkeypatch):
    """The wiring the CUDA streams rely on, recorded on the CPU: every tracker step runs
    under the "tracking" role, every engine call under "semantics", ordered after
    "tracking" before it reads the tracker's features, which it marks as in use."""
    import contextlib

    from pam_ros.semantics import DescribeRequest, SemanticEngine
    from pam_ros.semantics import engine as engine_module
    from pam_ros.tracking import StreamingTracker, TrackerConfig
    from pam_ros.tracking import streaming_tracker as tracker_module

    entered, waited, kept = [], [], []

    @contextlib.contextmanager
    def recording_stream(role, device):
        entered.append(role)
        yield

    for module in (engine_module, tracker_module):
        monkeypatch.setattr(module, "role_stream", recording_stream)
    monkeypatch.setattr(engine_module, "wait_for_role", lambda role, device: waited.append(role))
    monkeypatch.setattr(engine_module, "keep_for_current_stream", lambda ts: kept.extend(ts))
    sam, pam = checkpoints
    tracker = StreamingTracker.from_config(
        TrackerConfig(model_size="tiny", image_size=256, checkpoint=sam)
    )
    frame = np.zeros((64, 64, 3), np.uint8)
    tracker.track(frame)
    object_id = tracker.add_object(points=[(30, 30)], labels=[1])
    tracker.track(frame)
    assert entered and set(entered) == {"tracking"}
    features = tracker.latest_features(object_id)
    entered.clear()
    engine = SemanticEngine.from_pretrained(pam)
    engine.describe([DescribeRequest("category", [features], max_new_tokens=1)])
    assert set(entered) == {"semantics"} and set(waited) == {"tracking"}
    assert any(t is features.image_embedding for t in kept)
    assert any(t is features.mask_tokens for t in kept)
    tracker.release()
    engine.release()


# ---------------------------------------------------------------- release


@pytest.mark.slow  # ~20 s: builds the tiny tracker + engine, tracks and describes
def test_models_release_leaves_nothing_reachable(checkpoints):
    """After `Models.release()` + gc no model module, feature tensor, tracker, engine or
    scheduler is alive (and, on CUDA, no tensor memory is allocated)."""
    from pam_ros.core.memory import give_back_memory
    from pam_ros.pipeline.models import ModelSettings, build_models
    from pam_ros.tracking import TrackerConfig

    sam, pam = checkpoints
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    before = torch.cuda.memory_allocated() if cuda else 0
    settings = ModelSettings(
        TrackerConfig(model_size="tiny", image_size=256, checkpoint=sam, device=device),
        semantics_model=pam,
    )
    models = build_models(settings)
    stream = models.tracker.add_stream("cam")
    frame = np.zeros((96, 128, 3), np.uint8)
    frame[30:60, 40:80] = 200
    models.tracker.track({"cam": frame})
    object_id = stream.add_object(points=[(60, 45)], labels=[1])
    models.tracker.track({"cam": frame})
    features = stream.latest_features(object_id)
    from pam_ros.semantics import DescribeRequest

    models.engine.describe([DescribeRequest("category", [features], max_new_tokens=2)])
    refs = {
        "sam2": weakref.ref(models.tracker.model),
        "llm": weakref.ref(models.engine.model),
        "tracker": weakref.ref(models.tracker),
        "stream": weakref.ref(stream),
        "engine": weakref.ref(models.engine),
        "scheduler": weakref.ref(models.scheduler),
        "image_embedding": weakref.ref(features.image_embedding),
        "mask_tokens": weakref.ref(features.mask_tokens),
    }
    del stream, features
    models.release()
    give_back_memory(device)
    gc.collect()
    alive = [name for name, ref in refs.items() if ref() is not None]
    assert alive == []
    if cuda:
        assert torch.cuda.memory_allocated() <= before  # cuBLAS workspaces cleared too


def test_failed_build_leaves_nothing_reachable(checkpoints, tmp_path, monkeypatch):
    """A configure whose engine fails to load releases the tracker already built: after the
    error is gone nothing of it is alive."""
    from pam_ros.core.memory import give_back_memory
    from pam_ros.pipeline import models as models_module
    from pam_ros.tracking import TrackerConfig

    built = []

    def build_tracker(config):
        tracker = models_module.__dict__["_build_tracker"](config)
        built.append((weakref.ref(tracker), weakref.ref(tracker.model)))
        return tracker

    monkeypatch.setitem(models_module.__dict__, "_build_tracker", models_module.build_tracker)
    monkeypatch.setattr(models_module, "build_tracker", build_tracker)
    settings = models_module.ModelSettings(
        TrackerConfig(model_size="tiny", image_size=256, checkpoint=checkpoints[0]),
        semantics_model=str(tmp_path / "no_such_pam"),
    )
    with pytest.raises(Exception, match="no_such_pam"):
        models_module.build_models(settings)
    give_back_memory("cpu")
    assert built and all(ref() is None for pair in built for ref in pair)


# ---------------------------------------------------------------- compile


def _graphs() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def test_compiled_perceiver_compiles_at_load_only(checkpoints):
    """The perceiver compiled with dynamic shapes and warmed up at load: describe calls with
    1, 2, 3 and 5 objects (other batch sizes) compile nothing more. (Dynamo's guards and
    graphs are what is tested; the 'eager' backend skips code generation.)"""
    from pam_ros.semantics import DescribeRequest, SemanticEngine
    from pam_ros.semantics.engine import compile_perceiver

    torch._dynamo.reset()
    _, pam = checkpoints
    engine = SemanticEngine.from_pretrained(pam, device="cpu")
    compile_perceiver(engine.model, 16, engine.dtype, backend="eager")
    engine.compiled = True
    after_warmup = _graphs()
    assert after_warmup >= 1
    gen = torch.Generator().manual_seed(0)
    from pam_ros.core.features import RegionFeatures

    def request(seed: int) -> DescribeRequest:
        emb = torch.randn(256, 16, 16, generator=gen)
        return DescribeRequest("category", [RegionFeatures(emb, torch.randn(2, 256), seed, 0)],
                               max_new_tokens=1)  # fmt: skip

    for count in (1, 2, 3, 5):
        engine.describe([request(i) for i in range(count)])
    assert _graphs() == after_warmup
    resampler = weakref.ref(engine.model.visual.vision_resampler)
    engine.release()
    gc.collect()
    assert resampler() is None  # dynamo's caches reset: the compiled module is gone


@pytest.mark.slow  # ~40 s alone on 2 cores: dynamo traces Hiera three times
def test_compiled_sam2_encoder_takes_any_camera_count_after_warmup():
    from pam_ros.testing.random_sam2 import build_random_sam2
    from pam_ros.tracking import TrackerConfig
    from pam_ros.tracking.streaming_tracker import compile_sam2

    torch._dynamo.reset()
    model = build_random_sam2(TrackerConfig(model_size="tiny", image_size=128)).eval()
    compile_sam2(model, torch.float32, backend="eager")
    after_warmup = _graphs()
    with torch.inference_mode():
        for batch in (1, 3, 4):
            model.forward_image(torch.zeros(batch, 3, 128, 128))
    assert _graphs() == after_warmup
    torch._dynamo.reset()
