"""The mask decoder in two steps (decoder_split.py) vs calling sam2's `MaskDecoder`.

The discovery pass upscales masks only for the clicks whose outputs can pass the IoU filter.
For those clicks the masks and IoUs must be bit-equal to the decoder's own, for every output
selection `MaskDecoder.forward` has (multimask, single mask, single mask with the dynamic
fall-back to a multimask token), and the clicks left out must be exactly those with no
output above the threshold.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import davis_frames
from PIL import Image

from pam_ros.testing.random_sam2 import random_sam2_on_device
from pam_ros.tracking import TrackerConfig
from pam_ros.tracking.decoder_split import decode_masks, decode_tokens, needed_clicks
from pam_ros.tracking.discovery import image_predictor_features
from pam_ros.tracking.preprocess import FramePreprocessor

CONFIG = TrackerConfig(model_size="tiny", image_size=256, random_weights=True, seed=0)
CLICKS = 24


@pytest.fixture(scope="module")
def model():
    return random_sam2_on_device(CONFIG)


@pytest.fixture(scope="module")
def inputs(model):
    """A DAVIS frame's features as the discovery pass prepares them, and CLICKS clicks."""
    frame = np.array(Image.open(davis_frames("dog")[0]).convert("RGB"))
    with torch.inference_mode():
        image = FramePreprocessor(CONFIG.image_size, torch.device("cpu"))(frame)
        image_embed, high_res = image_predictor_features(model, model.forward_image(image))
        coords = torch.rand(CLICKS, 1, 2, generator=torch.Generator().manual_seed(3)) * 256
        labels = torch.ones(CLICKS, 1, dtype=torch.int32)
        sparse, dense = model.sam_prompt_encoder(points=(coords, labels), boxes=None, masks=None)
    return {
        "image_embeddings": image_embed,  # (1, 256, 16, 16), a channels-last view
        "image_pe": model.sam_prompt_encoder.get_dense_pe(),
        "sparse_prompt_embeddings": sparse,
        "dense_prompt_embeddings": dense,
        "high_res_features": high_res,
    }


@pytest.fixture(params=["multimask", "single", "single-dynamic"])
def selection(request, model):
    """multimask_output, with the decoder's dynamic fall-back set for the case."""
    decoder = model.sam_mask_decoder
    before = decoder.dynamic_multimask_via_stability
    decoder.dynamic_multimask_via_stability = request.param == "single-dynamic"
    yield request.param == "multimask"
    decoder.dynamic_multimask_via_stability = before


def _thresholds(iou: torch.Tensor) -> list[float]:
    """No filter, thresholds that split the clicks, and one that drops every click."""
    best = iou.float().max(dim=1).values.sort().values  # (B,)
    return [0.0, float(best[len(best) // 4]), float(best[len(best) // 2]), 2.0]


@pytest.mark.parametrize("one_image", [True, False], ids=["one-image", "per-prompt"])
def test_kept_clicks_equal_the_decoder(model, inputs, selection, one_image):
    """one-image: the prompt encoder's dense embeddings (one, expanded), the first block's
    image projections computed once; per-prompt: a dense embedding per prompt (the same
    values, copied), the decoder's transformer."""
    multimask = selection
    decoder = model.sam_mask_decoder
    dense = inputs["dense_prompt_embeddings"]  # (B, 256, 16, 16), an expanded (1, ...)
    assert dense.stride(0) == 0
    if not one_image:
        dense = dense.contiguous()
    with torch.inference_mode():
        masks, iou, _, _ = decoder(
            **inputs, multimask_output=multimask, repeat_image=True
        )  # (B, M, 64, 64), (B, M)
        decoded = decode_tokens(
            decoder,
            inputs["image_embeddings"],
            inputs["image_pe"],
            inputs["sparse_prompt_embeddings"],
            dense,
        )
        split_counts = set()
        for threshold in _thresholds(decoded.iou_pred):
            needed = needed_clicks(decoder, decoded.iou_pred, multimask, threshold)  # (B,)
            index = needed.nonzero()[:, 0]
            kept_masks, kept_iou = decode_masks(
                decoder, decoded, index, multimask, inputs["high_res_features"]
            )
            # bit-equal to the decoder's outputs for the kept clicks
            assert kept_masks.shape == (len(index), *masks.shape[1:])
            assert torch.equal(kept_masks, masks[index])
            assert torch.equal(kept_iou, iou[index])
            # dropped: exactly the clicks none of whose outputs passes the threshold
            if threshold > 0.0:
                passes = (iou.float() > threshold).any(dim=1)  # (B,)
                if selection or not decoder.dynamic_multimask_via_stability:
                    assert torch.equal(needed, passes)
                else:
                    # which token the fall-back picks depends on the mask: a kept click may
                    # end with no passing output, a dropped one never has one
                    assert not passes[~needed].any()
            else:
                assert needed.all()
            split_counts.add(len(index))
    assert 0 in split_counts and CLICKS in split_counts
    assert split_counts - {0, CLICKS}, "no threshold kept only some clicks"


def test_needed_clicks_selection_semantics(model):
    """Which tokens' IoUs count, per output selection (constructed IoUs)."""
    decoder = model.sam_mask_decoder
    iou = torch.tensor(
        [
            [0.9, 0.1, 0.2, 0.3],  # only token 0 passes
            [0.1, 0.1, 0.9, 0.3],  # only a multimask token passes
            [0.1, 0.1, 0.2, 0.3],  # nothing passes
        ]
    )
    before = decoder.dynamic_multimask_via_stability
    try:
        decoder.dynamic_multimask_via_stability = False
        assert needed_clicks(decoder, iou, True, 0.5).tolist() == [False, True, False]
        assert needed_clicks(decoder, iou, False, 0.5).tolist() == [True, False, False]
        decoder.dynamic_multimask_via_stability = True
        assert needed_clicks(decoder, iou, False, 0.5).tolist() == [True, True, False]
        assert needed_clicks(decoder, iou, True, 0.0).tolist() == [True, True, True]
    finally:
        decoder.dynamic_multimask_via_stability = before
