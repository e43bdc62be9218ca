"""sam2's mask decoder in two steps, so that a discovery pass upscales only useful clicks.

`MaskDecoder.predict_masks` runs, for every prompt of a batch, (a) the two-way transformer
and the IoU head, then (b) the mask upscaling (two transposed convolutions with the
high-resolution features) and the hypernetwork product. A discovery pass (as sam2's
automatic mask generator) then drops every mask whose predicted IoU is not above
`pred_iou_thresh`. With grid clicks most clicks lose all their masks there, yet (b), about a
quarter of the decoder's time on a CPU, was spent on them.

`decode_tokens` runs (a) for all clicks; `needed_clicks` says which clicks can output a mask
that passes the IoU threshold under the decoder's own output selection; `decode_masks` runs
(b) for those clicks only and selects the outputs as `MaskDecoder.forward` does. Each step
calls the decoder's own submodules, in sam2 1.1.0's order, so the kept clicks' masks and
IoUs are those of calling the decoder (test_tracking_decoder_split.py checks bit equality).

Two copies that `predict_masks` makes per prompt are left out: the image embedding and its
positional encoding repeated over the batch (`repeat_interleave`). The embedding is added to
the dense prompt embeddings (already one per prompt) and the encoding is added to the
transformer's keys; broadcasting a batch of one gives the same sums.

The object-score head is not run: neither discovery nor sam2's generator reads it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from sam2.modeling.sam.mask_decoder import MaskDecoder


@dataclass
class DecodedTokens:
    """Step (a)'s output for B prompts (T tokens, C channels, h x w image tokens)."""

    iou_pred: torch.Tensor  # (B, 4) predicted IoU of each mask token (0: single mask)
    mask_tokens: torch.Tensor  # (B, 4, C) transformer output of the mask tokens
    image_tokens: torch.Tensor  # (B, h*w, C) transformer output of the image tokens
    size: tuple[int, int]  # (h, w) of the image embedding


def decode_tokens(
    decoder: MaskDecoder,
    image_embeddings: torch.Tensor,
    image_pe: torch.Tensor,
    sparse_prompt_embeddings: torch.Tensor,
    dense_prompt_embeddings: torch.Tensor,
) -> DecodedTokens:
    """The two-way transformer and the IoU head of `MaskDecoder.predict_masks`.

    image_embeddings: (1, C, h, w) or (B, C, h, w); image_pe: (1, C, h, w) (`get_dense_pe`);
    sparse_prompt_embeddings: (B, N, C); dense_prompt_embeddings: (B, C, h, w).
    """
    s = 1 if decoder.pred_obj_scores else 0  # the object-score token comes first
    if decoder.pred_obj_scores:
        output_tokens = torch.cat(
            [decoder.obj_score_token.weight, decoder.iou_token.weight, decoder.mask_tokens.weight],
            dim=0,
        )  # (T0, C)
    else:
        output_tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], dim=0)
    output_tokens = output_tokens.unsqueeze(0).expand(sparse_prompt_embeddings.size(0), -1, -1)
    tokens = torch.cat((output_tokens, sparse_prompt_embeddings), dim=1)  # (B, T, C)

    # predict_masks repeats the image (and its encoding) per prompt first; a batch of one
    # broadcasts to the same sums. The sum must be laid out as the repeat's (contiguous
    # NCHW): the transformer's linear layers sum in another order on other strides, and a
    # predictor's embedding is a channels-last view.
    src = image_embeddings.contiguous() + dense_prompt_embeddings  # (B, C, h, w) contiguous
    if image_pe.size(0) != 1:
        raise ValueError("image_pe must have batch size 1 (from `get_dense_pe()`)")
    _, _, h, w = src.shape
    hs, image_tokens = decoder.transformer(src, image_pe, tokens)  # (B, T, C), (B, h*w, C)
    iou_token_out = hs[:, s, :]
    mask_tokens_out = hs[:, s + 1 : (s + 1 + decoder.num_mask_tokens), :]
    iou_pred = decoder.iou_prediction_head(iou_token_out)  # (B, 4)
    return DecodedTokens(iou_pred, mask_tokens_out, image_tokens, (h, w))


def needed_clicks(
    decoder: MaskDecoder,
    iou_pred: torch.Tensor,
    multimask_output: bool,
    pred_iou_thresh: float,
) -> torch.Tensor:
    """(B,) bool: the prompts of which at least one output mask can have a predicted IoU
    above `pred_iou_thresh` (all prompts when the threshold is 0: no IoU filter).

    The outputs are those `MaskDecoder.forward` selects: tokens 1..3 with multimask output;
    else token 0, or, with the dynamic fall-back, token 0 or the best of 1..3 (which one
    depends on token 0's mask, not decoded yet: either may pass).
    """
    iou_pred = iou_pred.float()
    if pred_iou_thresh <= 0.0:
        return torch.ones(iou_pred.shape[0], dtype=torch.bool, device=iou_pred.device)
    if multimask_output:
        candidates = iou_pred[:, 1:]
    elif decoder.dynamic_multimask_via_stability and not decoder.training:
        candidates = iou_pred
    else:
        candidates = iou_pred[:, 0:1]
    return (candidates > pred_iou_thresh).any(dim=1)


def decode_masks(
    decoder: MaskDecoder,
    decoded: DecodedTokens,
    index: torch.Tensor,
    multimask_output: bool,
    high_res_features: list[torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The mask upscaling and hypernetwork product of `predict_masks` for the prompts
    `index` (K,), then `MaskDecoder.forward`'s output selection.

    high_res_features: [(1, C/8, 4h, 4w), (1, C/4, 2h, 2w)] when the decoder uses them.
    Returns low-res mask logits (K, M, 4h, 4w) and predicted IoUs (K, M); M = 3 with
    multimask output, else 1.
    """
    # every prompt's hypernetwork inputs, then the kept ones: the MLPs see the batch the
    # decoder would give them
    hyper_in = torch.stack(
        [
            decoder.output_hypernetworks_mlps[i](decoded.mask_tokens[:, i, :])
            for i in range(decoder.num_mask_tokens)
        ],
        dim=1,
    )[index]  # (K, 4, C/8)
    image_tokens = decoded.image_tokens[index]  # (K, h*w, C)
    iou_pred = decoded.iou_pred[index]  # (K, 4)
    k, _, c = image_tokens.shape
    h, w = decoded.size
    src = image_tokens.transpose(1, 2).view(k, c, h, w)
    if not decoder.use_high_res_features:
        upscaled_embedding = decoder.output_upscaling(src)
    else:
        dc1, ln1, act1, dc2, act2 = decoder.output_upscaling
        feat_s0, feat_s1 = high_res_features
        upscaled_embedding = act1(ln1(dc1(src) + feat_s1))
        upscaled_embedding = act2(dc2(upscaled_embedding) + feat_s0)  # (K, C/8, 4h, 4w)
    k, c, h, w = upscaled_embedding.shape
    # (K, 4, 4h, 4w); the token count spelled out for K = 0
    masks = (hyper_in @ upscaled_embedding.view(k, c, h * w)).view(k, hyper_in.shape[1], h, w)

    if multimask_output:
        return masks[:, 1:, :, :], iou_pred[:, 1:]
    if decoder.dynamic_multimask_via_stability and not decoder.training:
        return decoder._dynamic_multimask_via_stability(masks, iou_pred)
    return masks[:, 0:1, :, :], iou_pred[:, 0:1]
