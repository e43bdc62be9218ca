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
IoUs are those of calling the decoder (test_tracking_decoder_split.py checks bit equality
on the CPU; a BLAS that summed one image's tokens in another order than a batch's could
differ in the last bit).

Work that `predict_masks` repeats per prompt is done once where every prompt has the same
input (single clicks, no mask prompt: one image, one dense embedding):
- the image embedding and its positional encoding are not copied per prompt
  (`repeat_interleave`): broadcasting a batch of one gives the same sums;
- the transformer's first block projects the image tokens, identical for every prompt
  there, once (3 of its 10 projections of all image tokens per prompt; the rest of the
  transformer is called as it is). Its forward hooks do not fire then.

The object-score head is not run: neither discovery nor sam2's generator reads it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from sam2.modeling.sam.mask_decoder import MaskDecoder
from sam2.modeling.sam.transformer import Attention, TwoWayAttentionBlock, TwoWayTransformer


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

    if image_pe.size(0) != 1:
        raise ValueError("image_pe must have batch size 1 (from `get_dense_pe()`)")
    # predict_masks repeats the image (and its encoding) per prompt first; a batch of one
    # broadcasts to the same sums. The sum must be laid out as the repeat's (contiguous
    # NCHW): the transformer's linear layers sum in another order on other strides, and a
    # predictor's embedding is a channels-last view.
    image = image_embeddings.contiguous()
    if image.size(0) == 1 and _same_for_every_prompt(dense_prompt_embeddings):
        # no mask prompts: every prompt sees the same image tokens until the first block
        # changes them
        src = image + dense_prompt_embeddings[:1]  # (1, C, h, w)
        hs, image_tokens = _two_way_transformer_one_image(
            decoder.transformer, src, image_pe, tokens
        )
    else:
        src = image + dense_prompt_embeddings  # (B, C, h, w)
        hs, image_tokens = decoder.transformer(src, image_pe, tokens)
    # (B, T, C), (B, h*w, C)
    h, w = src.shape[-2:]
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


# ------------------------------------------------------------------ internals


def _same_for_every_prompt(dense_prompt_embeddings: torch.Tensor) -> bool:
    """Whether the (B, C, h, w) dense embeddings are one tensor for every prompt: the prompt
    encoder's `no_mask_embed`, expanded over the batch, when no prompt has a mask."""
    return dense_prompt_embeddings.size(0) == 1 or dense_prompt_embeddings.stride(0) == 0


def _two_way_transformer_one_image(
    transformer: TwoWayTransformer,
    image_embedding: torch.Tensor,
    image_pe: torch.Tensor,
    point_embedding: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`TwoWayTransformer.forward` for B prompts on one image (the same image tokens for
    every prompt at the start).

    The first block's projections of the image tokens (keys and values of the tokens'
    attention to the image, queries of the image's attention to the tokens) are then the
    same for every prompt: computed once, they are 3 of the transformer's 10 projections of
    all h*w image tokens per prompt. The rest is the transformer's own modules, in its order.

    image_embedding, image_pe: (1, C, h, w); point_embedding: (B, T, C).
    Returns (queries (B, T, C), keys (B, h*w, C)) as the transformer.
    """
    image_tokens = image_embedding.flatten(2).permute(0, 2, 1)  # (1, h*w, C)
    image_pe = image_pe.flatten(2).permute(0, 2, 1)  # (1, h*w, C)
    first, *rest = transformer.layers
    queries, keys = _first_block_one_image(
        first, point_embedding, image_tokens, point_embedding, image_pe
    )  # (B, T, C), (B, h*w, C)
    for layer in rest:
        queries, keys = layer(queries=queries, keys=keys, query_pe=point_embedding, key_pe=image_pe)
    q = queries + point_embedding
    k = keys + image_pe
    attn_out = transformer.final_attn_token_to_image(q=q, k=k, v=keys)
    queries = queries + attn_out
    queries = transformer.norm_final_attn(queries)
    return queries, keys


def _first_block_one_image(
    block: TwoWayAttentionBlock,
    queries: torch.Tensor,
    keys: torch.Tensor,
    query_pe: torch.Tensor,
    key_pe: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`TwoWayAttentionBlock.forward` with keys (1, h*w, C) shared by the B prompts'
    queries (B, T, C). Returns (queries (B, T, C), keys (B, h*w, C))."""
    batch = queries.shape[0]
    # Self attention block
    if block.skip_first_layer_pe:
        queries = block.self_attn(q=queries, k=queries, v=queries)
    else:
        q = queries + query_pe
        attn_out = block.self_attn(q=q, k=q, v=queries)
        queries = queries + attn_out
    queries = block.norm1(queries)

    # Cross attention block, tokens attending to image embedding: keys and values once
    q = queries + query_pe
    k = keys + key_pe  # (1, h*w, C)
    attn = block.cross_attn_token_to_image
    attn_out = _attention(attn, attn.q_proj(q), attn.k_proj(k), attn.v_proj(keys), batch)
    queries = queries + attn_out
    queries = block.norm2(queries)

    # MLP block
    mlp_out = block.mlp(queries)
    queries = queries + mlp_out
    queries = block.norm3(queries)

    # Cross attention block, image embedding attending to tokens: the image's queries once
    # (keys + key_pe is the sum above: the keys have not changed)
    q = queries + query_pe
    attn = block.cross_attn_image_to_token
    attn_out = _attention(attn, attn.q_proj(k), attn.k_proj(q), attn.v_proj(queries), batch)
    keys = keys + attn_out  # (B, h*w, C)
    keys = block.norm4(keys)
    return queries, keys


def _attention(
    attn: Attention, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, batch: int
) -> torch.Tensor:
    """`Attention.forward` after its input projections; q, k, v (1 or B, N, C') are
    broadcast to the batch of B. Returns (B, Nq, C)."""
    q, k, v = (
        attn._separate_heads(x, attn.num_heads).expand(batch, -1, -1, -1) for x in (q, k, v)
    )  # (B, heads, N, C' / heads)
    dropout_p = attn.dropout_p if attn.training else 0.0
    out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
    out = attn._recombine_heads(out)
    return attn.out_proj(out)
