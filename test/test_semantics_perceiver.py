"""The perceiver and the visual block follow the spec (2.2, 2.4) to the vector."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from transformers import Qwen2Config

from pam_ros.semantics import PamConfig
from pam_ros.semantics.modeling_pam import (
    PamVisualAdapter,
    image_block_length,
    video_block_length,
)
from pam_ros.semantics.repack import space_to_depth


def _attention(module, q, k, v):
    """Attention written out from the spec: per-head softmax(q k^T / sqrt(d)) v."""
    heads = module.num_heads
    q, k, v = module.q_proj(q), module.k_proj(k), module.v_proj(v)
    b, nq, c = q.shape
    d = c // heads
    q = q.view(b, nq, heads, d).permute(0, 2, 1, 3)
    k = k.view(b, -1, heads, d).permute(0, 2, 1, 3)
    v = v.view(b, -1, heads, d).permute(0, 2, 1, 3)
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)
    return module.out_proj((weights @ v).permute(0, 2, 1, 3).reshape(b, nq, c))


def _norm(module, x):
    return F.layer_norm(x, (x.shape[-1],), module.weight, module.bias, module.eps)


def _reference_perceiver(p, embedding, mask_tokens):
    """Spec 2.2 step by step, independent of the module's own forward."""
    b, c, s, _ = embedding.shape
    keys = embedding.permute(0, 2, 3, 1).reshape(b, s * s, c)  # token = row*S + col
    rows, cols = torch.meshgrid(torch.arange(s), torch.arange(s), indexing="ij")
    xy = torch.stack([(cols + 0.5) / s, (rows + 0.5) / s], dim=-1).reshape(-1, 2) * 2 - 1
    angles = 2 * math.pi * (xy @ p.pe_layer.positional_encoding_gaussian_matrix)
    key_pe = torch.cat([angles.sin(), angles.cos()], dim=-1)
    query_pe = torch.cat([mask_tokens, p.sem_tokens.weight.expand(b, -1, -1)], dim=1)
    q = query_pe
    for i, layer in enumerate(p.layers):
        if i == 0:
            q = _attention(layer.self_attn, q, q, q)
        else:
            q = q + _attention(layer.self_attn, q + query_pe, q + query_pe, q)
        q = _norm(layer.norm1, q)
        q = _norm(
            layer.norm2,
            q + _attention(layer.cross_attn_token_to_image, q + query_pe, keys + key_pe, keys),
        )
        mlp = layer.mlp.layers
        q = _norm(layer.norm3, q + mlp[1](torch.relu(mlp[0](q))))
        keys = _norm(
            layer.norm4,
            keys + _attention(layer.cross_attn_image_to_token, keys + key_pe, q + query_pe, q),
        )
    q = _norm(
        p.norm_final_attn,
        q + _attention(p.final_attn_token_to_image, q + query_pe, keys + key_pe, keys),
    )
    return q[:, 2:], keys


@pytest.fixture(scope="module")
def adapter() -> PamVisualAdapter:
    torch.manual_seed(0)
    text = Qwen2Config(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        vocab_size=64,
    )
    module = PamVisualAdapter(PamConfig(text_config=text)).eval()
    with torch.no_grad():  # separators init at zero; make them distinguishable
        for sep in (module.image_newline, module.semT_newline, module.frame_newline):
            sep.normal_()
    return module


@pytest.mark.parametrize("grid", [16, 64])
def test_perceiver_matches_the_spec_reference(adapter: PamVisualAdapter, grid: int) -> None:
    embedding, tokens = torch.randn(2, 256, grid, grid), torch.randn(2, 2, 256)
    with torch.no_grad():
        sem, keys = adapter.vision_resampler(embedding, tokens)
        ref_sem, ref_keys = _reference_perceiver(adapter.vision_resampler, embedding, tokens)
    assert sem.shape == (2, 16, 256) and keys.shape == (2, grid * grid, 256)
    torch.testing.assert_close(sem, ref_sem, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(keys, ref_keys, atol=1e-4, rtol=1e-4)
    # The output depends on the mask tokens (the object prompt), not only on the image.
    with torch.no_grad():
        other, _ = adapter.vision_resampler(embedding, torch.randn(2, 2, 256))
    assert (other - sem).abs().max() > 1e-3


def test_image_block_layout_at_spec_size(adapter: PamVisualAdapter) -> None:
    embedding, tokens = torch.randn(1, 256, 64, 64), torch.randn(1, 2, 256)
    with torch.no_grad():
        block = adapter.image_block(embedding, tokens)[0]
        sem, keys = adapter.vision_resampler(embedding, tokens)
        image_tokens = adapter.mm_projector_img(space_to_depth(keys, 64, 2))[0]
        sem_tokens = adapter.mm_projector_semT(sem)[0]
    assert block.shape == (1042, 32) == (image_block_length(64), 32)
    torch.testing.assert_close(block[:1024], image_tokens)
    torch.testing.assert_close(block[1024], adapter.image_newline.data)
    torch.testing.assert_close(block[1025:1041], sem_tokens)
    torch.testing.assert_close(block[1041], adapter.semT_newline.data)


def test_video_block_layout_at_spec_size(adapter: PamVisualAdapter) -> None:
    frames, tokens = torch.randn(1, 16, 256, 64, 64), torch.randn(1, 16, 2, 256)
    with torch.no_grad():
        block = adapter.video_block(frames, tokens)[0]
        _, keys5 = adapter.vision_resampler(frames[:, 5], tokens[:, 5])
        frame5 = adapter.mm_projector_img(
            adapter.vision_resampler.proj(space_to_depth(keys5, 64, 4))
        )[0]
    assert block.shape[0] == 5168 == video_block_length(64)
    image_nl, sem_nl, frame_nl = adapter.image_newline, adapter.semT_newline, adapter.frame_newline
    # frame 0: 1,024 tokens, image_newline, 16 sem, semT_newline, frame_newline = 1,043
    torch.testing.assert_close(block[1024], image_nl.data)
    torch.testing.assert_close(block[1041], sem_nl.data)
    torch.testing.assert_close(block[1042], frame_nl.data)
    for i in range(1, 16):  # later frames: 256 tokens + 19 = 275 each
        start = 1043 + (i - 1) * 275
        torch.testing.assert_close(block[start + 256], image_nl.data)
        torch.testing.assert_close(block[start + 273], sem_nl.data)
        torch.testing.assert_close(block[start + 274], frame_nl.data)
    start5 = 1043 + 4 * 275
    torch.testing.assert_close(block[start5 : start5 + 256], frame5, atol=1e-5, rtol=1e-5)
