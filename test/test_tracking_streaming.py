"""The streaming tracker on a real DAVIS clip with a seeded random SAM 2.1-tiny at 256 px:
objects added and removed mid-stream, one encoder pass per frame, stable ids, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import davis_frames
from PIL import Image

from pam_ros.core.features import RegionFeatures
from pam_ros.testing.random_sam2 import random_sam2_on_device
from pam_ros.tracking import (
    DuplicateObjectError,
    InvalidFrameError,
    InvalidPromptError,
    NoFrameError,
    StreamingTracker,
    TrackerConfig,
    TrackerConfigError,
    TrackerError,
    UnknownObjectError,
)

CONFIG = TrackerConfig(model_size="tiny", image_size=256, random_weights=True, seed=0)
SEQUENCE = "blackswan"  # 854 x 480 frames; the swan is around (300-500, 150-350)
# Joint and solo runs agree exactly here (observed 0.0); batched decoding of objects
# prompted on the same frame may reorder float sums on other BLAS builds.
BATCH_ATOL = 1e-5

# Prompts in frame pixels
POINT_A = [(420.0, 250.0)]
POINTS_C = [(150.0, 100.0), (420.0, 250.0)]
LABELS_C = [1, 0]
BOX_B = (127, 73, 511, 386)  # inclusive-exclusive pixels


@pytest.fixture(scope="module")
def model():
    return random_sam2_on_device(CONFIG)


@pytest.fixture(scope="module")
def frames():
    return [np.array(Image.open(p).convert("RGB")) for p in davis_frames(SEQUENCE)[:23]]


def _solo_run(model, frames, start, stop, **prompt) -> list:
    """One object prompted on frames[start], tracked to frames[stop - 1], alone."""
    tracker = StreamingTracker(model, CONFIG)
    tracker.track(frames[start])
    object_id = tracker.add_object(**prompt)
    results = [tracker.last_result.objects[object_id]]
    for t in range(start + 1, stop):
        results.append(tracker.track(frames[t]).objects[object_id])
    tracker.release()
    return results


@pytest.fixture(scope="module")
def joint_run(model, frames):
    """Objects "1" (point) and "c" (clicks) from frame 0, "2" (box) from frame 10;
    "1" removed after frame 20; 23 frames. Counts image-encoder calls."""
    encoder_calls = []
    hook = model.image_encoder.register_forward_hook(lambda *_: encoder_calls.append(1))
    tracker = StreamingTracker(model, CONFIG)
    history = {}
    ids = {}
    try:
        for t, frame in enumerate(frames):
            tracker.track(frame)
            if t == 0:
                ids["a"] = tracker.add_object(points=POINT_A, labels=[1])
                ids["c"] = tracker.add_object(points=POINTS_C, labels=LABELS_C, object_id="c")
            if t == 10:
                ids["b"] = tracker.add_object(box=BOX_B)
                ids_after_add = list(tracker.object_ids)
            for object_id, result in tracker.last_result.objects.items():
                history.setdefault(object_id, []).append(result)
            if t == 20:
                features_a = tracker.feature_history(ids["a"])
                tracker.remove_object(ids["a"])
                ids_after_remove = list(tracker.object_ids)
                ids["d"] = tracker.add_object(points=POINT_A, labels=[1])
                tracker.remove_object(ids["d"])
                assert list(tracker.last_result.objects) == ["c", "2"]
        calls = len(encoder_calls)
        features_c = tracker.feature_history("c")
        latest_c = tracker.latest_features("c")
    finally:
        hook.remove()
    tracker.release()
    return {
        "history": history,
        "ids": ids,
        "ids_after_add": ids_after_add,
        "ids_after_remove": ids_after_remove,
        "encoder_calls": calls,
        "features": {"a": features_a, "c": features_c, "latest_c": latest_c},
    }


def test_ids_are_generated_and_stable(joint_run):
    ids = joint_run["ids"]
    assert (ids["a"], ids["c"], ids["b"]) == ("1", "c", "2")
    assert joint_run["ids_after_add"] == ["1", "c", "2"]
    assert joint_run["ids_after_remove"] == ["c", "2"]
    assert ids["d"] == "3"  # a removed object's id is not handed out again
    history = joint_run["history"]
    assert len(history["1"]) == 21 and len(history["c"]) == 23 and len(history["2"]) == 13
    assert all(r.object_id == oid for oid, rs in history.items() for r in rs)


def test_image_encoder_runs_once_per_frame(joint_run, frames):
    # 23 frames, 4 objects added, up to 3 tracked at once: still one pass per frame
    assert joint_run["encoder_calls"] == len(frames)


def test_results_are_informative(joint_run, frames):
    height, width = frames[0].shape[:2]
    for results in joint_run["history"].values():
        for r in results:
            assert r.mask.shape == (height, width) and r.mask.dtype == bool
            assert r.present and r.score > 0
            assert 0.02 < r.mask.mean() < 0.98
            x0, y0, x1, y1 = r.box
            assert r.mask[y0:y1, x0:x1].sum() == r.mask.sum()
            assert r.mask[y0, :].any() and r.mask[y1 - 1, :].any()
    # Different prompts give different outputs on every frame, by well over the tolerance
    # of the comparison with solo runs, so that comparison would catch mixed-up objects.
    # (Random weights forget the prompt fast: ~0.1 apart on the prompt frame, ~1e-3 later.)
    history = joint_run["history"]
    for a, c in zip(history["1"], history["c"], strict=False):
        assert (a.mask_logits - c.mask_logits).abs().max() > 5 * BATCH_ATOL


def test_objects_are_tracked_independently(joint_run, model, frames):
    """Each object in the joint stream equals the same object tracked alone."""
    history = joint_run["history"]
    solo = {
        "1": _solo_run(model, frames, 0, 21, points=POINT_A, labels=[1]),
        "c": _solo_run(model, frames, 0, 23, points=POINTS_C, labels=LABELS_C),
        "2": _solo_run(model, frames, 10, 23, box=BOX_B),
    }
    for object_id, expected in solo.items():
        assert len(history[object_id]) == len(expected)
        for t, (ours, alone) in enumerate(zip(history[object_id], expected, strict=True)):
            diff = (ours.mask_logits - alone.mask_logits).abs().max().item()
            assert diff <= BATCH_ATOL, f"object {object_id}, frame {t}: {diff:.2e}"
            assert ours.score == pytest.approx(alone.score, abs=BATCH_ATOL)


def test_feature_history_is_bounded_and_shaped(joint_run):
    features = joint_run["features"]
    assert len(features["a"]) == CONFIG.feature_history  # 21 frames seen, 16 kept
    assert [f.frame_index for f in features["c"]] == list(range(7, 23))
    latest = features["latest_c"]
    assert isinstance(latest, RegionFeatures) and latest.frame_index == 22
    assert latest.image_embedding.shape == (256, 16, 16)
    assert latest.mask_tokens.shape == (2, 256)
    assert torch.isfinite(latest.image_embedding).all()
    # features move with the object: consecutive frames differ
    assert not torch.equal(features["c"][-1].image_embedding, features["c"][-2].image_embedding)


def test_bfloat16_autocast_path(model, frames):
    """The CUDA precision path (bf16 autocast), run on the CPU: same masks as fp32 up to
    bf16 rounding, features handed out in bf16."""
    runs = {}
    for dtype in ("float32", "bfloat16"):
        tracker = StreamingTracker(model, TrackerConfig(**{**CONFIG.__dict__, "dtype": dtype}))
        tracker.track(frames[0])
        tracker.add_object(points=POINT_A, labels=[1])
        runs[dtype] = [tracker.last_result.objects["1"]]
        runs[dtype] += [tracker.track(f).objects["1"] for f in frames[1:4]]
        features = tracker.latest_features("1")
        tracker.release()
    assert features.image_embedding.dtype == features.mask_tokens.dtype == torch.bfloat16
    for full, half in zip(runs["float32"], runs["bfloat16"], strict=True):
        assert half.present and (full.mask_logits - half.mask_logits).abs().max() < 0.05
        assert (full.mask == half.mask).mean() > 0.99


# ----------------------------------------------------------------------------- bad input


@pytest.fixture
def tracker(model):
    tracker = StreamingTracker(model, CONFIG)
    yield tracker
    tracker.release()


def _state(tracker):
    return (list(tracker.object_ids), tracker.held_bytes(), tracker.last_result)


def test_add_object_before_any_frame(tracker, frames):
    with pytest.raises(NoFrameError, match="call track"):
        tracker.add_object(points=POINT_A, labels=[1])
    tracker.track(frames[0])
    assert tracker.add_object(points=POINT_A, labels=[1]) == "1"


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (np.zeros((0, 640, 3), np.uint8), "empty"),
        (np.zeros((480, 640, 3), np.float32), "uint8"),
        (np.zeros((480, 640, 4), np.uint8), "RGB"),
        (np.zeros((480, 640), np.uint8), "RGB"),
        ([[1, 2, 3]], "numpy"),
    ],
)
def test_bad_frames_are_rejected(tracker, frames, frame, message):
    tracker.track(frames[0])
    tracker.add_object(points=POINT_A, labels=[1])
    before = _state(tracker)
    with pytest.raises(InvalidFrameError, match=message):
        tracker.track(frame)
    assert _state(tracker) == before
    assert tracker.track(frames[1]).frame_index == 1


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ({"points": [(900.0, 100.0)], "labels": [1]}, "outside the 854x480 frame"),
        ({"points": [(-1.0, 100.0)], "labels": [1]}, "outside"),
        ({"box": (10.0, 10.0, 10.0, 50.0)}, "empty"),
        ({"box": (10.0, 10.0, 900.0, 50.0)}, "outside"),
        # one past the last pixel is outside: pixels span [0, W) x [0, H)
        ({"points": [(854.0, 480.0)], "labels": [1]}, "outside the 854x480 frame"),
        ({"points": [(854.0, 100.0)], "labels": [1]}, "outside"),
        ({"points": [(100.0, 480.0)], "labels": [1]}, "outside"),
        # inclusive-exclusive boxes: x1 <= W, y1 <= H
        ({"box": (10, 10, 855, 50)}, "outside"),
        ({"box": (10, 10, 50, 481)}, "outside"),
        ({"box": (-1, 10, 50, 50)}, "outside"),
        ({"box": (10.5, 10, 50, 50)}, "integer"),
        ({"points": [(10.0, 10.0)], "labels": [1, 0]}, "one label per point"),
        ({"points": [(10.0, 10.0)], "labels": [5]}, "labels must be"),
        ({"points": [(10.0, 10.0)]}, "together"),
        ({}, "points"),
    ],
)
def test_bad_prompts_are_rejected(tracker, frames, prompt, message):
    tracker.track(frames[0])
    before = _state(tracker)
    with pytest.raises(InvalidPromptError, match=message):
        tracker.add_object(**prompt)
    assert _state(tracker) == before
    assert tracker.add_object(points=POINT_A, labels=[1]) == "1"


def test_frame_edges_are_inside(tracker, frames):
    """The last pixel (W - 1, H - 1) is a valid point; the whole frame is a valid box."""
    tracker.track(frames[0])
    assert tracker.add_object(points=[(853.0, 479.0)], labels=[1]) == "1"
    assert tracker.add_object(points=[(853.9, 0.0)], labels=[1]) == "2"
    assert tracker.add_object(box=(0, 0, 854, 480)) == "3"


def test_result_box_fed_back_is_the_same_box(joint_run, model, frames):
    """ObjectResult.box and add_object(box=) share one convention: the corners handed to
    sam2 for a result's box are sam2's own (inclusive) box of that mask."""
    from sam2.utils.amg import batched_mask_to_box

    result = joint_run["history"]["1"][5]
    assert result.box is not None
    sam2_box = batched_mask_to_box(torch.from_numpy(result.mask)).tolist()
    tracker = StreamingTracker(model, CONFIG)
    tracker.track(frames[5])
    points, labels = tracker._validate_prompt(None, None, result.box)
    assert labels == [2, 3]
    assert [*points[0], *points[1]] == [float(v) for v in sam2_box]
    # and a box prompt decodes an object whose box lies within the prompt
    new_id = tracker.add_object(box=result.box)
    assert tracker.last_result.objects[new_id].present
    tracker.release()


def test_unknown_and_duplicate_ids(tracker, frames):
    tracker.track(frames[0])
    tracker.add_object(points=POINT_A, labels=[1], object_id="swan")
    before = _state(tracker)
    for call in (tracker.remove_object, tracker.latest_features, tracker.feature_history):
        with pytest.raises(UnknownObjectError, match="'duck'") as caught:
            call("duck")
        assert isinstance(caught.value, KeyError) and isinstance(caught.value, TrackerError)
    with pytest.raises(DuplicateObjectError, match="'swan'"):
        tracker.add_object(points=POINT_A, labels=[1], object_id="swan")
    assert _state(tracker) == before
    assert list(tracker.track(frames[1]).objects) == ["swan"]


def test_reset_and_release(tracker, frames):
    tracker.track(frames[0])
    tracker.add_object(points=POINT_A, labels=[1])
    tracker.reset()
    assert tracker.object_ids == [] and tracker.last_result is None
    assert tracker.held_bytes() == 0
    with pytest.raises(NoFrameError):
        tracker.add_object(points=POINT_A, labels=[1])
    assert tracker.track(frames[0]).frame_index == 0
    tracker.release()
    with pytest.raises(TrackerError, match="released"):
        tracker.track(frames[0])


def test_config_errors():
    with pytest.raises(TrackerConfigError, match="model_size"):
        TrackerConfig(model_size="huge")
    with pytest.raises(TrackerConfigError, match="multiple of 32"):
        TrackerConfig(image_size=300)
    with pytest.raises(TrackerConfigError, match="num_maskmem"):
        TrackerConfig(num_maskmem=9)
    with pytest.raises(TrackerConfigError, match="dtype"):
        TrackerConfig(dtype="float64")
