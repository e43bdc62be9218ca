"""Several camera streams on one SAM 2 model (`MultiStreamTracker`), on real DAVIS clips with a
seeded random SAM 2.1-tiny at 256 px: each stream equals a tracker that sees only that stream,
one batched encoder pass per set of pending frames, bounded memory per stream, bad input."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch
from conftest import davis_frames
from PIL import Image

from pam_ros.testing.random_sam2 import random_sam2_on_device
from pam_ros.tracking import (
    DuplicateStreamError,
    InvalidFrameError,
    MultiStreamTracker,
    StreamingTracker,
    TrackerConfig,
    UnknownStreamError,
)

CONFIG = TrackerConfig(model_size="tiny", image_size=256, random_weights=True, seed=0)
NUM_FRAMES = 12
WRIST_PROMPT_FRAME = 3  # the wrist camera's object is prompted later than the head's
HEAD_POINT = [(420.0, 250.0)]  # on the swan (blackswan, 854 x 480)
WRIST_BOX = (90.0, 60.0, 380.0, 250.0)  # on the car (car-shadow, shown at 640 x 360)


@pytest.fixture(scope="module")
def model():
    return random_sam2_on_device(CONFIG)


@pytest.fixture(scope="module")
def clips():
    head = [np.array(Image.open(p).convert("RGB")) for p in davis_frames("blackswan")[:NUM_FRAMES]]
    wrist = [
        cv2.resize(np.array(Image.open(p).convert("RGB")), (640, 360))
        for p in davis_frames("car-shadow")[:NUM_FRAMES]
    ]
    return {"head": head, "wrist": wrist}


def _solo(model, frames, prompt_frame, **prompt) -> list[torch.Tensor]:
    """Low-res mask logits of one object tracked by a one-stream tracker, from its prompt on."""
    tracker = StreamingTracker(model, CONFIG)
    for frame in frames[:prompt_frame]:
        tracker.track(frame)
    tracker.track(frames[prompt_frame])
    object_id = tracker.add_object(**prompt)
    logits = [tracker.last_result.objects[object_id].mask_logits]
    for frame in frames[prompt_frame + 1 :]:
        logits.append(tracker.track(frame).objects[object_id].mask_logits)
    tracker.release()
    return logits


def test_each_stream_equals_a_tracker_that_sees_only_that_stream(model, clips):
    encoder_calls = []
    hook = model.image_encoder.register_forward_hook(
        lambda module, args, out: encoder_calls.append(args[0].shape[0])
    )
    try:
        tracker = MultiStreamTracker(model, CONFIG)
        head, wrist = tracker.add_stream("head"), tracker.add_stream("wrist")
        logits = {"head": [], "wrist": []}
        masks = {"head": [], "wrist": []}
        ids = {}
        for t in range(NUM_FRAMES):
            results = tracker.track(
                {"head": clips["head"][t], "wrist": clips["wrist"][t]},
                {"head": 1000 + t, "wrist": 2000 + t},
            )
            assert results["head"].stamp_ns == 1000 + t and results["wrist"].stamp_ns == 2000 + t
            if t == 0:
                ids["head"] = head.add_object(points=HEAD_POINT, labels=[1])
                results["head"] = head.last_result
            if t == WRIST_PROMPT_FRAME:
                ids["wrist"] = wrist.add_object(box=WRIST_BOX)
                results["wrist"] = wrist.last_result
            for name, result in results.items():
                if name in ids:
                    obj = result.objects[ids[name]]
                    logits[name].append(obj.mask_logits)
                    masks[name].append(obj)
                    assert set(result.objects) == {ids[name]}  # objects stay in their stream
        # one encoder pass per set of pending frames, both frames in it
        assert encoder_calls == [2] * NUM_FRAMES
        assert tracker.encoder_passes == NUM_FRAMES and tracker.encoded_frames == 2 * NUM_FRAMES
        # only one camera has a frame: a pass of one
        tracker.track({"wrist": clips["wrist"][0]})
        assert encoder_calls[-1] == 1 and head.last_result.frame_index == NUM_FRAMES - 1
    finally:
        hook.remove()

    # informative random model: objects scored present, masks neither empty nor full
    for name in ("head", "wrist"):
        first = masks[name][0]
        assert first.present, name
        assert 0.005 < first.mask.mean() < 0.9, (name, first.mask.mean())

    solo = {
        "head": _solo(model, clips["head"], 0, points=HEAD_POINT, labels=[1]),
        "wrist": _solo(model, clips["wrist"], WRIST_PROMPT_FRAME, box=WRIST_BOX),
    }
    for name in ("head", "wrist"):
        assert len(logits[name]) == len(solo[name])
        for t, (joint, alone) in enumerate(zip(logits[name], solo[name], strict=True)):
            # exact on this CPU (each image of a batch is encoded independently)
            assert torch.equal(joint, alone), (name, t, (joint - alone).abs().max().item())
    tracker.release()


def test_memory_stays_bounded_per_stream(clips):
    small = dataclasses.replace(CONFIG, num_maskmem=3, max_obj_ptrs=4, feature_history=4)
    tracker = MultiStreamTracker(random_sam2_on_device(small), small)
    head, wrist = tracker.add_stream("head"), tracker.add_stream("wrist")
    held = []
    for t in range(NUM_FRAMES):
        tracker.track({"head": clips["head"][t], "wrist": clips["wrist"][t]})
        if t == 0:
            head.add_object(points=HEAD_POINT, labels=[1])
            wrist.add_object(box=WRIST_BOX)
        held.append(tracker.held_bytes())
    for stream in (head, wrist):
        (object_id,) = stream.object_ids
        summary = stream.memory_summary(object_id)
        assert summary["prompt_frames"] == [0]
        assert len(summary["memory_frames"]) == small.num_maskmem - 1
        assert len(summary["pointer_frames"]) == small.max_obj_ptrs - 1
    assert held[-1] == held[6] > 0  # flat once the windows are full
    tracker.release()


def test_bad_input_names_the_stream_and_changes_nothing(model, clips):
    tracker = MultiStreamTracker(model, CONFIG)
    head = tracker.add_stream("head")
    tracker.add_stream("wrist")
    with pytest.raises(DuplicateStreamError, match="head"):
        tracker.add_stream("head")
    with pytest.raises(UnknownStreamError, match=r"'arm'.*head"):
        tracker.track({"head": clips["head"][0], "arm": clips["head"][0]})
    with pytest.raises(InvalidFrameError, match="stream 'wrist'"):
        tracker.track({"head": clips["head"][0], "wrist": clips["head"][0][:, :, :2]})
    assert head.last_result is None and tracker.encoder_passes == 0  # nothing advanced
    tracker.track({"head": clips["head"][0]})
    assert head.last_result.frame_index == 0
    tracker.remove_stream("wrist")
    assert tracker.stream_names == ["head"]
    with pytest.raises(UnknownStreamError):
        tracker.stream("wrist")
    tracker.release()
    assert head.model is None
