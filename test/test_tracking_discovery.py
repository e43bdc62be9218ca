"""Discovery: SAM 2 automatic mask generation on the tracker's features, and mask prompts.

Parity: sam2's own `SAM2AutomaticMaskGenerator` (crop_n_layers=0) and `SAM2VideoPredictor`
(`add_new_mask`) load the same seeded random SAM 2.1-tiny checkpoint as the tracker and see
the same 854 x 480 DAVIS frames.

Random weights give small mask logits (|logit| < 0.3) and image-wide, textured masks whose
boxes are the whole frame, and predicted IoUs near 0.5: sam2's default thresholds keep none.
The parity settings below keep a few dozen: a stability offset of 0.05 logits, thresholds
under those values, and box NMS off (1.0; every box is the frame).
"""

from __future__ import annotations

import dataclasses
import importlib

import numpy as np
import pytest
import torch
from conftest import davis_frames, davis_masks
from PIL import Image

from pam_ros.testing.random_sam2 import write_random_checkpoint
from pam_ros.tracking import (
    DiscoveredObject,
    DiscoveryConfig,
    DiscoveryConfigError,
    InvalidPromptError,
    NoFrameError,
    StreamingTracker,
    TrackerConfig,
    TrackerError,
)
from pam_ros.tracking.discovery import image_predictor_features
from pam_ros.tracking.model_builder import hydra_overrides

IMAGE_SIZE = 256
SEQUENCE = "blackswan"
# Filters off (area limits 0 / 1, overlap 1): what sam2's generator computes.
PARITY = DiscoveryConfig(
    points_per_side=8,
    points_per_batch=32,  # 64 clicks in 2 batches
    # some masks of the random model pass, not all, on DAVIS (64 of 192 on blackswan's first
    # frame) and on the generated scene used without the data (10 of 192)
    pred_iou_thresh=0.52,
    stability_score_thresh=0.4,
    stability_score_offset=0.05,
    box_nms_thresh=1.0,
    min_area_fraction=0.0,
    max_area_fraction=1.0,
    max_overlap_with_tracked=1.0,
)
# Cheaper settings for the tests that only need some masks.
SMALL = dataclasses.replace(PARITY, points_per_side=4, points_per_batch=16)
MASK_FRAMES = 4


def _torchvision_works() -> bool:
    """Discovery's NMS (and sam2's generator) need torchvision; scripts/setup.sh may leave it
    out on a CPU machine."""
    try:
        importlib.import_module("torchvision.ops")
    except (ImportError, RuntimeError, OSError):
        return False
    return True


needs_torchvision = pytest.mark.skipif(
    not _torchvision_works(), reason="torchvision is not installed (scripts/setup.sh)"
)

# Mask logits of a mask-prompted stream vs sam2's video predictor: both resize the same
# frames (bit-equal model inputs) and the same mask; observed difference exactly 0.0. The
# tolerance is test_tracking_parity.py's for fp32 on other BLAS builds.
LOGIT_ATOL = 1e-5


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("discovery")
    # sam2's video predictor knows the video's length and spaces its object pointers'
    # temporal encoding over min(frames, max_obj_ptrs) (a stream: max_obj_ptrs): equal them
    config = TrackerConfig(
        model_size="tiny", image_size=IMAGE_SIZE, device="cpu", max_obj_ptrs=MASK_FRAMES
    )
    checkpoint = write_random_checkpoint(config, tmp / config.checkpoint_filename)
    config = dataclasses.replace(config, checkpoint=checkpoint)
    paths = davis_frames(SEQUENCE)[:MASK_FRAMES]
    tracker = StreamingTracker.from_config(config)
    yield {
        "config": config,
        "paths": paths,
        "frames": [np.array(Image.open(p).convert("RGB")) for p in paths],
        "model": tracker.model,  # shared by the trackers of these tests
        "tmp": tmp,
    }
    tracker.release()


@pytest.fixture
def tracker(setup):
    """A fresh stream over the shared model, on the first frame."""
    stream = StreamingTracker(setup["model"], setup["config"])
    stream.track(setup["frames"][0])
    yield stream
    stream.release()


@pytest.fixture(scope="module")
def stream0(setup):
    """A stream on the first frame, without objects (for tests that change nothing)."""
    stream = StreamingTracker(setup["model"], setup["config"])
    stream.track(setup["frames"][0])
    yield stream
    stream.release()


@pytest.fixture(scope="module")
def unfiltered(stream0):
    """The parity settings on the first frame of a stream without objects."""
    return stream0.discover(PARITY)


def _key(obj: DiscoveredObject) -> tuple:
    return (obj.point, obj.predicted_iou)


def _mask_ious(first: np.ndarray, second: np.ndarray) -> torch.Tensor:
    """(N, H, W), (M, H, W) bool -> (N, M) mask IoU."""
    a = torch.from_numpy(first).flatten(1).float()
    b = torch.from_numpy(second).flatten(1).float()
    inter = a @ b.T
    return inter / (a.sum(1)[:, None] + b.sum(1)[None] - inter)


# ------------------------------------------------------------------ parity with sam2


@needs_torchvision
def test_matches_sam2_automatic_mask_generator(setup, unfiltered):
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator
    from sam2.build_sam import build_sam2

    config = setup["config"]
    frame = setup["frames"][0]
    height, width = frame.shape[:2]
    stream = StreamingTracker(setup["model"], config)
    stream.track(frame)
    backbone_out = stream._frame.backbone_out  # the tracker's features of this frame
    model = build_sam2(
        config.hydra_config,
        str(config.checkpoint),
        device="cpu",
        hydra_overrides_extra=hydra_overrides(config),
        apply_postprocessing=False,
    )
    generator = SAM2AutomaticMaskGenerator(
        model,
        points_per_side=PARITY.points_per_side,
        points_per_batch=PARITY.points_per_batch,
        pred_iou_thresh=PARITY.pred_iou_thresh,
        stability_score_thresh=PARITY.stability_score_thresh,
        stability_score_offset=PARITY.stability_score_offset,
        mask_threshold=PARITY.mask_threshold,
        box_nms_thresh=PARITY.box_nms_thresh,
        crop_n_layers=0,
        multimask_output=PARITY.multimask_output,
    )

    def set_image(image):
        """The generator's predictor gets the tracker's features (the tracker resizes as
        PIL; sam2's image transforms do not), prepared as sam2's set_image prepares them,
        at the sizes of this 256 px model (sam2 1.1.0 writes 1024 px sizes)."""
        predictor = generator.predictor
        predictor.reset_predictor()
        predictor._orig_hw = [image.shape[:2]]
        with torch.no_grad():
            _, feats, _, sizes = model._prepare_backbone_features(backbone_out)
            feats[-1] = feats[-1] + model.no_mem_embed
            maps = [f.permute(1, 2, 0).view(1, -1, *s) for f, s in zip(feats, sizes, strict=True)]
        predictor._features = {"image_embed": maps[-1], "high_res_feats": maps[:-1]}
        predictor._is_image_set = True

    generator.predictor.set_image = set_image
    expected = generator.generate(frame)
    ours = stream.discover(PARITY)
    stream.release()

    # the same as another stream's run on the same frame
    assert [_key(o) for o in ours] == [_key(o) for o in unfiltered]
    assert len(ours) == len(expected) >= 3
    ious = _mask_ious(
        np.stack([o.mask for o in ours]), np.stack([e["segmentation"] for e in expected])
    )
    unmatched = set(range(len(expected)))
    for i, obj in enumerate(ours):
        # the generator's mask from the same click with the nearest score (masks of other
        # clicks can be near-duplicates: matching by IoU alone may pair the wrong ones)
        j = min(
            unmatched,
            key=lambda j: (
                np.abs(np.subtract(expected[j]["point_coords"][0], obj.point)).max() > 1e-3,
                abs(expected[j]["predicted_iou"] - obj.predicted_iou),
            ),
        )
        unmatched.remove(j)
        reference = expected[j]
        assert ious[i, j] >= 0.99, f"mask {i}: best IoU {ious[i, j]:.4f}"
        assert obj.predicted_iou == pytest.approx(reference["predicted_iou"], abs=1e-4)
        assert obj.stability_score == pytest.approx(reference["stability_score"], abs=1e-4)
        assert obj.point == pytest.approx(tuple(reference["point_coords"][0]), abs=1e-3)
        # the same up to pixels whose logit is within float rounding of the threshold: the
        # bilinear upscaling runs on other batches of masks here (observed: 1 pixel in 327k)
        assert obj.area == int(obj.mask.sum())
        assert abs(obj.area - reference["area"]) <= 10
        x, y, w, h = reference["bbox"]  # XYWH with an inclusive max corner
        box = (int(x), int(y), int(x + w) + 1, int(y + h) + 1)
        assert np.abs(np.subtract(obj.box, box)).max() <= 1, (obj.box, box)
        # informative: neither empty nor the whole frame
        assert 0 < obj.area < height * width
        assert obj.mask.shape == (height, width) and obj.mask.dtype == bool
    scores = [(o.predicted_iou, o.stability_score) for o in ours]
    assert scores == sorted(scores, reverse=True)


def test_features_are_the_image_predictors(setup):
    """The decoder inputs have the shapes sam2's predictor gives a 256 px model."""
    stream = StreamingTracker(setup["model"], setup["config"])
    stream.track(setup["frames"][0])
    with torch.inference_mode():
        embed, high_res = image_predictor_features(setup["model"], stream._frame.backbone_out)
    stream.release()
    assert embed.shape == (1, 256, 16, 16)
    assert [tuple(f.shape) for f in high_res] == [(1, 32, 64, 64), (1, 64, 32, 32)]


# ------------------------------------------------------------------ filters


@needs_torchvision
def test_region_limits_the_grid(stream0, unfiltered):
    region = (100, 60, 500, 300)
    found = stream0.discover(PARITY, region=region)
    assert found
    for obj in found:
        x, y = obj.point
        assert 100 <= x < 500 and 60 <= y < 300
        assert obj.mask.shape == (480, 854)  # masks stay whole-frame masks
    # the grid is laid over the region: not the whole frame's points
    assert {o.point for o in found}.isdisjoint({o.point for o in unfiltered})


@needs_torchvision
def test_area_limits_drop(stream0, unfiltered):
    frame_area = 480 * 854
    areas = sorted(o.area / frame_area for o in unfiltered)
    cut = areas[len(areas) // 2]
    small = stream0.discover(dataclasses.replace(PARITY, max_area_fraction=cut))
    large = stream0.discover(dataclasses.replace(PARITY, min_area_fraction=cut))
    assert 0 < len(small) < len(unfiltered) and 0 < len(large) < len(unfiltered)
    assert {_key(o) for o in small} == {_key(o) for o in unfiltered if o.area <= cut * frame_area}
    assert {_key(o) for o in large} == {_key(o) for o in unfiltered if o.area >= cut * frame_area}


@needs_torchvision
def test_overlap_with_tracked_objects_drops(tracker, unfiltered):
    tracker.add_object(points=[(420, 200)], labels=[1], object_id="swan")
    tracked = tracker.last_result.objects["swan"].mask
    assert tracked.any()
    overlaps = {_key(o): (o.mask & tracked).sum() / o.area for o in unfiltered}
    limit = float(np.median(list(overlaps.values())))
    found = tracker.discover(dataclasses.replace(PARITY, max_overlap_with_tracked=limit))
    assert 0 < len(found) < len(unfiltered)
    assert {_key(o) for o in found} == {k for k, v in overlaps.items() if v <= limit}
    # off: everything
    assert len(tracker.discover(PARITY)) == len(unfiltered)


# ------------------------------------------------------------------ the tracker is untouched


@needs_torchvision
def test_discovery_leaves_objects_and_features_alone(setup):
    """A stream with a discovery pass on frame 1 equals one without, bit for bit."""
    frames = setup["frames"]
    runs = {}
    for discover in (False, True):
        stream = StreamingTracker(setup["model"], setup["config"])
        stream.track(frames[0])
        stream.add_object(points=[(420, 200)], labels=[1], object_id="swan")
        stream.track(frames[1])
        if discover:
            before = stream.feature_history("swan")
            found = stream.discover(SMALL)
            assert found and stream.object_ids == ["swan"]
            after = stream.feature_history("swan")
            assert len(after) == len(before) == 2
            assert all(a is b for a, b in zip(after, before, strict=True))
            # a recording tap is paused during the pass, and goes on afterwards
            stream.feature_tap.start()
            stream.discover(SMALL)
            assert stream.feature_tap.stop() == []
        result = stream.track(frames[2])
        runs[discover] = (result.objects["swan"], stream.feature_history("swan"))
        stream.release()
    (plain, plain_history), (probed, probed_history) = runs[False], runs[True]
    assert torch.equal(plain.mask_logits, probed.mask_logits)
    assert len(plain_history) == len(probed_history) == 3
    for a, b in zip(plain_history, probed_history, strict=True):
        assert torch.equal(a.image_embedding, b.image_embedding)
        assert torch.equal(a.mask_tokens, b.mask_tokens)


def test_discover_needs_a_frame(setup):
    stream = StreamingTracker(setup["model"], setup["config"])
    with pytest.raises(NoFrameError, match="track"):
        stream.discover(SMALL)
    with pytest.raises(NoFrameError):
        stream.add_object(mask=np.ones((480, 854), dtype=bool))
    stream.release()


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"points_per_side": 0}, "points_per_side"),
        ({"points_per_side": 4.0}, "points_per_side"),
        ({"points_per_batch": -1}, "points_per_batch"),
        ({"pred_iou_thresh": 1.5}, "pred_iou_thresh"),
        ({"stability_score_thresh": float("nan")}, "stability_score_thresh"),
        ({"stability_score_offset": -0.1}, "stability_score_offset"),
        ({"mask_threshold": float("inf")}, "mask_threshold"),
        ({"box_nms_thresh": -0.1}, "box_nms_thresh"),
        ({"min_area_fraction": 0.6, "max_area_fraction": 0.5}, "min_area_fraction"),
        ({"max_area_fraction": 2.0}, "max_area_fraction"),
        ({"max_overlap_with_tracked": "0.3"}, "max_overlap_with_tracked"),
        ({"multimask_output": 1}, "multimask_output"),
    ],
)
def test_bad_configs_are_rejected(fields, named):
    with pytest.raises(DiscoveryConfigError, match=named):
        DiscoveryConfig(**fields)


def test_discovery_without_torchvision_says_so(stream0, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torchvision.ops", None)  # import fails
    with pytest.raises(TrackerError, match="torchvision"):
        stream0.discover(SMALL)


def test_discover_takes_only_a_discovery_config(stream0):
    with pytest.raises(DiscoveryConfigError, match="DiscoveryConfig"):
        stream0.discover({"points_per_side": 4})


@pytest.mark.parametrize(
    "region",
    [
        (0, 0, 855, 480),  # past the right edge
        (-1, 0, 100, 100),  # left of the frame
        (100, 100, 100, 200),  # empty
        (300, 200, 100, 100),  # reversed
        (0.5, 0, 100, 100),  # not whole pixels
        (0, 0, 100),  # not a box
        "everywhere",
    ],
)
def test_bad_regions_are_rejected(stream0, region):
    with pytest.raises(InvalidPromptError, match="region"):
        stream0.discover(SMALL, region=region)


def test_bad_mask_prompts_are_rejected(tracker):
    mask = np.zeros((480, 854), dtype=bool)
    mask[200:260, 400:480] = True
    with pytest.raises(InvalidPromptError, match="not both"):
        tracker.add_object(mask=mask, points=[(420, 220)], labels=[1])
    with pytest.raises(InvalidPromptError, match="not both"):
        tracker.add_object(mask=mask, box=(400, 200, 480, 260))
    with pytest.raises(InvalidPromptError, match="empty"):
        tracker.add_object(mask=np.zeros((480, 854), dtype=bool))
    with pytest.raises(InvalidPromptError, match="shape"):
        tracker.add_object(mask=mask[:, :-1])
    with pytest.raises(InvalidPromptError, match="dtype"):
        tracker.add_object(mask=mask.astype(np.float32))
    speck = np.zeros((480, 854), dtype=bool)
    speck[100, 100] = True  # a pixel vanishes at 256 x 256
    with pytest.raises(InvalidPromptError, match="resizing"):
        tracker.add_object(mask=speck)
    assert tracker.object_ids == []
    assert tracker.add_object(mask=mask.astype(np.uint8)) == "1"  # integer masks are fine


# ------------------------------------------------------------------ mask prompts


def test_mask_prompt_matches_video_predictor(setup):
    """add_object(mask=) then tracking equals sam2's add_new_mask + propagate_in_video on the
    same 854 x 480 frames (both resize the frames and the mask to 256 x 256)."""
    from sam2.build_sam import build_sam2_video_predictor

    config = setup["config"]  # max_obj_ptrs = MASK_FRAMES, see setup
    mask = np.array(Image.open(davis_masks(SEQUENCE)[0])) > 0  # (480, 854)
    frame_dir = setup["tmp"] / "mask_frames"
    frame_dir.mkdir()
    for i, path in enumerate(setup["paths"]):
        (frame_dir / f"{i:05d}.jpg").symlink_to(path)
    predictor = build_sam2_video_predictor(
        config.hydra_config,
        str(config.checkpoint),
        device="cpu",
        hydra_overrides_extra=hydra_overrides(config),
        apply_postprocessing=False,
    )
    state = predictor.init_state(str(frame_dir))
    predictor.add_new_mask(state, frame_idx=0, obj_id=1, mask=mask)
    for _ in predictor.propagate_in_video(state):
        pass
    outputs = state["output_dict_per_obj"][0]
    low_res = {**outputs["non_cond_frame_outputs"], **outputs["cond_frame_outputs"]}
    expected = [low_res[t]["pred_masks"][0, 0].float() for t in range(MASK_FRAMES)]

    stream = StreamingTracker(setup["model"], config)
    ours = []
    for t, frame in enumerate(setup["frames"]):
        stream.track(frame)
        if t == 0:
            stream.add_object(mask=mask, object_id="swan")
        ours.append(stream.last_result.objects["swan"])
    stream.release()
    for t, (result, reference) in enumerate(zip(ours, expected, strict=True)):
        diff = (result.mask_logits - reference).abs().max().item()
        assert diff <= LOGIT_ATOL, f"frame {t}: max |logit diff| {diff:.2e}"
        assert result.present and 0.005 < float(result.mask.mean()) < 0.98, f"frame {t}"
    # the prompt frame's mask is the prompt (through the model's 64 x 64 output)
    first = ours[0].mask
    assert (first & mask).sum() / (first | mask).sum() > 0.9


@needs_torchvision
def test_discovered_object_is_tracked(setup, tracker):
    found = tracker.discover(SMALL)
    assert found
    best = found[0]
    object_id = tracker.add_object(mask=best.mask)
    prompt_mask = tracker.last_result.objects[object_id].mask
    assert (prompt_mask & best.mask).sum() / (prompt_mask | best.mask).sum() > 0.5
    result = tracker.track(setup["frames"][1])
    assert result.objects[object_id].present and result.objects[object_id].mask.any()
    assert len(tracker.feature_history(object_id)) == 2


@needs_torchvision
def test_a_pass_beside_tracking_changes_nothing_tracking_records(setup):
    """The node runs passes in their own thread while tracking goes on (the pipeline lock is
    held only to take the frame): decoder calls from that thread are never recorded as the
    tracked object's features, and tracking equals a run without discovery, bit for bit."""
    import threading

    frames = setup["frames"]
    runs = {}
    for beside in (False, True):
        stream = StreamingTracker(setup["model"], setup["config"])
        stream.track(frames[0])
        stream.add_object(points=[(420, 200)], labels=[1], object_id="swan")
        found: list = []
        done = threading.Event()
        if beside:
            frame = stream.discovery_input()

            def discover_loop(stream=stream, frame=frame, found=found, done=done):
                while not done.is_set():  # passes overlap every tracked frame below
                    found.append(len(stream.discover(SMALL, frame=frame)))

            worker = threading.Thread(target=discover_loop)
            worker.start()
        results = [stream.track(frame) for frame in frames[1:4]]
        done.set()
        if beside:
            worker.join()
            assert found and found[0] > 0  # the passes ran and found masks
        runs[beside] = (results, stream.feature_history("swan"))
        stream.release()
    (plain, plain_history), (beside, beside_history) = runs[False], runs[True]
    for a, b in zip(plain, beside, strict=True):
        assert torch.equal(a.objects["swan"].mask_logits, b.objects["swan"].mask_logits)
    assert len(plain_history) == len(beside_history) == 4
    for a, b in zip(plain_history, beside_history, strict=True):
        assert torch.equal(a.image_embedding, b.image_embedding)
        assert torch.equal(a.mask_tokens, b.mask_tokens)
