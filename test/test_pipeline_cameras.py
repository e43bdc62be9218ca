"""`pam_ros.pipeline.CameraPipelines`: several cameras on one SAM 2 model, without ROS.

Real DAVIS clips, a seeded random SAM 2.1-tiny at 256 px. Each camera's masks equal those of a
single-camera `FramePipeline` on the same frames; ids name their camera; one camera's reset or
removal leaves the others (and their state in the shared scheduler) alone; bad camera names are
refused before anything changes.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import davis_frames
from PIL import Image

from pam_ros.pipeline import CameraPipelines, FramePipeline, UnknownCameraError
from pam_ros.pipeline.semantics_scheduler import SemanticsScheduler
from pam_ros.testing.random_sam2 import random_sam2_on_device
from pam_ros.tracking import MultiStreamTracker, StreamingTracker, TrackerConfig
from pam_ros.tracking.errors import UnknownObjectError

CONFIG = TrackerConfig(model_size="tiny", image_size=256, random_weights=True, seed=0)
FRAMES = 5


@pytest.fixture(scope="module")
def clips():
    head = [np.array(Image.open(p).convert("RGB")) for p in davis_frames("car-shadow")[:FRAMES]]
    wrist = [
        cv2.resize(np.array(Image.open(p).convert("RGB")), (427, 240))
        for p in davis_frames("dog")[:FRAMES]
    ]
    return {"head": head, "wrist": wrist}


def test_each_camera_equals_a_single_camera_pipeline(clips):
    model = random_sam2_on_device(CONFIG)
    scheduler = SemanticsScheduler(engine=None)  # observe/forget only: no engine call here
    cameras = CameraPipelines(MultiStreamTracker(model, CONFIG), ["head", "wrist"], scheduler)
    solo = FramePipeline(StreamingTracker(model, CONFIG))  # the same weights, one camera
    stamp = 10**9
    outputs = cameras.process({n: (clips[n][0], stamp) for n in ("head", "wrist")})
    assert outputs["head"].image_size == (854, 480) and outputs["wrist"].image_size == (427, 240)
    solo.process(clips["head"][0], stamp)
    assert cameras.camera("head").add_object(points=[(420, 260)], labels=[1]) == "head/1"
    assert solo.add_object(points=[(420, 260)], labels=[1]) == "1"
    assert cameras.camera("wrist").add_object(box=(120, 40, 330, 230), object_id="dog") == (
        "wrist/dog"
    )
    assert cameras.camera("wrist").add_object(points=[(30, 200)], labels=[1]) == "wrist/1"
    assert cameras.object_ids == ["head/1", "wrist/dog", "wrist/1"]
    assert cameras.camera_of("wrist/1").camera == "wrist"
    for k in range(1, FRAMES):
        stamp += 33_000_000
        outputs = cameras.process({n: (clips[n][k], stamp) for n in ("head", "wrist")})
        alone = solo.process(clips["head"][k], stamp)
        head = outputs["head"].result.objects["head/1"]
        assert np.array_equal(head.mask, alone.result.objects["1"].mask)  # bit for bit
        assert list(outputs["wrist"].result.objects) == ["wrist/dog", "wrist/1"]
        for obj in (head, *outputs["wrist"].result.objects.values()):
            assert obj.present and 0 < obj.mask.sum() < 0.9 * obj.mask.size  # informative
    assert cameras.tracker.encoder_passes == FRAMES  # one batched pass per pair of frames
    assert cameras.tracker.encoded_frames == 2 * FRAMES
    # The shared scheduler knows every camera's objects; a camera's reset forgets only its own.
    assert set(scheduler.all_semantics()) == {"head/1", "wrist/dog", "wrist/1"}
    assert cameras.camera("wrist").reset() == 2
    assert set(scheduler.all_semantics()) == {"head/1"} and cameras.object_ids == ["head/1"]
    cameras.camera("head").remove_object("head/1")
    assert scheduler.all_semantics() == {} and cameras.object_ids == []


def test_bad_camera_names_change_nothing(clips):
    cameras = CameraPipelines(
        MultiStreamTracker(random_sam2_on_device(CONFIG), CONFIG), ["head", "wrist"]
    )
    with pytest.raises(UnknownCameraError, match="unknown camera 'belly'; cameras: 'head'"):
        cameras.process({"head": (clips["head"][0], 1), "belly": (clips["wrist"][0], 1)})
    assert cameras.tracker.encoder_passes == 0  # refused before tracking
    with pytest.raises(UnknownCameraError):
        cameras.camera("belly")
    with pytest.raises(UnknownObjectError, match="nope"):
        cameras.camera_of("nope")
    with pytest.raises(ValueError, match="only be the only one"):
        CameraPipelines(cameras.tracker, ["", "head"])
