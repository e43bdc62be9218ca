"""PAM's decoder tap: shapes, what it captures, and the stability-selected mask token."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import davis_frames
from PIL import Image

from pam_ros.testing.random_sam2 import random_sam2_on_device
from pam_ros.tracking import TrackerConfig
from pam_ros.tracking.feature_tap import (
    MaskDecoderFeatureTap,
    select_mask_tokens,
    stability_scores,
)
from pam_ros.tracking.preprocess import FramePreprocessor

CONFIG = TrackerConfig(model_size="tiny", image_size=256, random_weights=True, seed=0)


def test_selection_on_constructed_logits():
    """Token 0 when its mask is stable (even with a lower IoU), else the best of 1..3."""
    tokens = torch.randn(4, 4, 8)
    logits = torch.full((4, 10, 10), -10.0)
    logits[0, :5] = 10.0  # stable: nothing near the threshold -> stability 1.0
    logits[1] = torch.linspace(-0.04, 0.04, 100).view(10, 10)  # all within ±Δ -> 0.0
    logits[2].view(-1)[:98] = 1.0  # 98 pixels > Δ, 2 in (-Δ, Δ]: stability 0.98 exactly
    logits[2].view(-1)[98:] = 0.0
    logits[3].view(-1)[:97] = 1.0  # 97 / 100 = 0.97: unstable
    logits[3].view(-1)[97:100] = 0.0
    iou = torch.tensor(
        [
            [0.1, 0.9, 0.5, 0.3],
            [0.95, 0.2, 0.7, 0.6],  # token 0's IoU is highest but it is unstable
            [0.1, 0.2, 0.3, 0.4],
            [0.1, 0.5, 0.3, 0.4],
        ]
    )
    assert stability_scores(logits).tolist() == pytest.approx([1.0, 0.0, 0.98, 0.97])
    chosen, selected = select_mask_tokens(tokens, logits, iou)
    assert selected.tolist() == [0, 2, 0, 1]
    assert chosen.shape == (4, 2, 8)
    for b, index in enumerate(selected.tolist()):
        assert torch.equal(chosen[b, 0], tokens[b, index])
        assert torch.equal(chosen[b, 1], tokens[b, 0])


@pytest.fixture(scope="module")
def model():
    return random_sam2_on_device(CONFIG)


@pytest.fixture(scope="module")
def decoder_inputs(model):
    """A DAVIS frame's features + 12 single-click prompts spread over the frame."""
    frame = np.array(Image.open(davis_frames("dog")[0]).convert("RGB"))
    with torch.inference_mode():
        image = FramePreprocessor(CONFIG.image_size, torch.device("cpu"))(frame)
        backbone = model.forward_image(image)
        _, feats, _, sizes = model._prepare_backbone_features(backbone)
        batch = 12
        grid = torch.linspace(16, 240, batch)
        coords = torch.stack([grid, grid.flip(0)], dim=-1).view(batch, 1, 2)
        labels = torch.ones(batch, 1, dtype=torch.int32)
        sparse, dense = model.sam_prompt_encoder(points=(coords, labels), boxes=None, masks=None)
        top = (feats[-1] + model.no_mem_embed).permute(1, 2, 0).view(1, 256, *sizes[-1])
        high_res = [
            x.permute(1, 2, 0).view(1, x.shape[2], *s)
            for x, s in zip(feats[:-1], sizes[:-1], strict=True)
        ]
    return {
        "image_embeddings": top.expand(batch, -1, -1, -1),
        "image_pe": model.sam_prompt_encoder.get_dense_pe(),
        "sparse_prompt_embeddings": sparse,
        "dense_prompt_embeddings": dense,
        "repeat_image": False,
        "high_res_features": [x.expand(batch, -1, -1, -1) for x in high_res],
    }


@pytest.fixture(params=[1.0, 1000.0], ids=["unstable", "stable"])
def token0_scale(request, model):
    """Scale token 0's hypernetwork output: at 1000x its mask logits are far from 0, so
    token 0 is stable and selected; random weights otherwise give unstable masks."""
    last = model.sam_mask_decoder.output_hypernetworks_mlps[0].layers[-1]
    saved = (last.weight.detach().clone(), last.bias.detach().clone())
    with torch.no_grad():
        last.weight.mul_(request.param)
        last.bias.mul_(request.param)
    yield request.param
    with torch.no_grad():
        last.weight.copy_(saved[0])
        last.bias.copy_(saved[1])


def test_tap_captures_decoder_features(model, decoder_inputs, token0_scale):
    decoder = model.sam_mask_decoder
    upscaler_inputs = []
    probe = decoder.output_upscaling[0].register_forward_hook(
        lambda module, args, out: upscaler_inputs.append(args[0])
    )
    tap = MaskDecoderFeatureTap(decoder)
    try:
        with torch.inference_mode():
            tap.start()
            masks, _, sam_tokens, _ = decoder(multimask_output=False, **decoder_inputs)
            (record,) = tap.stop()
            all_masks, all_iou, all_tokens, _ = decoder.predict_masks(**decoder_inputs)
            assert tap.stop() == []  # calls outside start/stop are not recorded
    finally:
        tap.remove()
        probe.remove()

    batch = all_masks.shape[0]
    assert record.image_embedding.shape == (batch, 256, 16, 16)  # (B, 256, S, S)
    assert record.mask_tokens.shape == (batch, 2, 256)
    # the image embedding is what the decoder upscales into masks
    assert torch.equal(record.image_embedding, upscaler_inputs[0])
    # slot 1 is token 0, the token sam2 returns (and turns into the object pointer)
    assert torch.equal(record.mask_tokens[:, 1], sam_tokens[:, 0])
    assert torch.equal(record.mask_tokens[:, 1], all_tokens[:, 0])
    # slot 0 is the stability-selected token, chosen as sam2's own dynamic-multimask rule
    # (Δ 0.05, threshold 0.98, best IoU among tokens 1..3) would choose its mask
    sam2_choice, _ = decoder._dynamic_multimask_via_stability(all_masks, all_iou)
    for b, index in enumerate(record.selected_token.tolist()):
        assert torch.equal(record.mask_tokens[b, 0], all_tokens[b, index])
        assert torch.equal(sam2_choice[b, 0], all_masks[b, index])
    if token0_scale == 1.0:
        assert 0 not in record.selected_token.tolist()
    else:
        assert set(record.selected_token.tolist()) == {0}
    # the returned mask stays token 0's (PAM: multimask and the stability fall-back are off)
    assert torch.equal(masks[:, 0], all_masks[:, 0])
    assert record.image_embedding.std() > 0 and record.mask_tokens.std() > 0


def test_tap_refuses_dynamic_stability(model):
    decoder = model.sam_mask_decoder
    decoder.dynamic_multimask_via_stability = True
    try:
        with pytest.raises(ValueError, match="dynamic_multimask_via_stability"):
            MaskDecoderFeatureTap(decoder)
    finally:
        decoder.dynamic_multimask_via_stability = False
