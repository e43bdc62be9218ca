"""The Semantic Perceiver (spec section 2.2): SAM-style two-way attention over decoder features.

Inputs are the SAM 2 mask decoder's refined image embedding (B, 256, S, S) and its two mask
tokens (B, 2, 256). Queries are [2 mask tokens, 16 learned semantic tokens]; they cross-attend
to the S*S image keys, and the keys cross-attend back. Outputs: 16 semantic tokens (B, 16, 256)
and the updated keys (B, S*S, 256), which go on to the space-to-depth re-pack.

Parameter and buffer names match the official checkpoint under `model.vision_resampler.`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import PerceiverConfig


class RandomFourierPositionEncoding(nn.Module):
    """Random-Fourier positional encoding of a square grid (SAM's PositionEmbeddingRandom).

    The Gaussian matrix is a persistent buffer: it is random at init and must be loaded from
    the checkpoint, otherwise the keys get a different positional code than in training.
    """

    def __init__(self, num_pos_feats: int) -> None:
        super().__init__()
        self.register_buffer(
            "positional_encoding_gaussian_matrix", torch.randn(2, num_pos_feats), persistent=True
        )

    def forward(self, grid_size: int) -> Tensor:
        """Returns (S*S, 2*num_pos_feats) in row-major token order, computed in fp32."""
        device = self.positional_encoding_gaussian_matrix.device
        centres = (torch.arange(grid_size, device=device, dtype=torch.float32) + 0.5) / grid_size
        y, x = torch.meshgrid(centres, centres, indexing="ij")  # (S, S) each, y = row
        coords = torch.stack([x, y], dim=-1).reshape(-1, 2)  # (S*S, 2), (x, y) order
        coords = 2.0 * coords - 1.0
        coords = coords @ self.positional_encoding_gaussian_matrix.float()  # (S*S, F)
        coords = 2.0 * math.pi * coords
        return torch.cat([torch.sin(coords), torch.cos(coords)], dim=-1)  # (S*S, 2F)


class Attention(nn.Module):
    """Multi-head attention with an optional down-projection of q/k/v (SAM's Attention)."""

    def __init__(self, embedding_dim: int, num_heads: int, downsample_rate: int = 1) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.internal_dim = embedding_dim // downsample_rate
        if self.internal_dim % num_heads:
            raise ValueError(f"{num_heads} heads do not divide internal dim {self.internal_dim}")
        self.q_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.k_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.v_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, embedding_dim)

    def _split_heads(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        # q: (B, Nq, D), k/v: (B, Nk, D) -> (B, Nq, D)
        q = self._split_heads(self.q_proj(q))  # (B, h, Nq, d)
        k = self._split_heads(self.k_proj(k))  # (B, h, Nk, d)
        v = self._split_heads(self.v_proj(v))
        out = F.scaled_dot_product_attention(q, k, v)  # scale 1/sqrt(d), no mask, no dropout
        b, h, n, d = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, h * d))


class MLP(nn.Module):
    """Linear -> ReLU -> Linear; parameters under `layers.0` / `layers.1` as in the checkpoint."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(dim, hidden_dim), nn.Linear(hidden_dim, dim)])

    def forward(self, x: Tensor) -> Tensor:
        return self.layers[1](F.relu(self.layers[0](x)))


class TwoWayAttentionBlock(nn.Module):
    """Self-attention on queries, queries -> keys, MLP, keys -> queries (SAM's two-way block)."""

    def __init__(self, config: PerceiverConfig, skip_first_layer_pe: bool) -> None:
        super().__init__()
        dim, heads, eps = config.embedding_dim, config.num_heads, config.layer_norm_eps
        rate = config.attention_downsample_rate
        self.self_attn = Attention(dim, heads)
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.cross_attn_token_to_image = Attention(dim, heads, downsample_rate=rate)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = MLP(dim, config.mlp_dim)
        self.norm3 = nn.LayerNorm(dim, eps=eps)
        self.norm4 = nn.LayerNorm(dim, eps=eps)
        self.cross_attn_image_to_token = Attention(dim, heads, downsample_rate=rate)
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(
        self, queries: Tensor, keys: Tensor, query_pe: Tensor, key_pe: Tensor
    ) -> tuple[Tensor, Tensor]:
        # queries: (B, Nq, D), keys: (B, S*S, D)
        if self.skip_first_layer_pe:  # first block: no PE and no residual
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)

        q, k = queries + query_pe, keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(q, k, keys))

        queries = self.norm3(queries + self.mlp(queries))

        q, k = queries + query_pe, keys + key_pe
        keys = self.norm4(keys + self.cross_attn_image_to_token(k, q, queries))
        return queries, keys


class SemanticPerceiver(nn.Module):
    """PAM's `vision_resampler`: 16 semantic tokens read out of the decoder features."""

    def __init__(self, config: PerceiverConfig) -> None:
        super().__init__()
        self.config = config
        dim = config.embedding_dim
        self.sem_tokens = nn.Embedding(config.num_sem_tokens, dim)
        self.pe_layer = RandomFourierPositionEncoding(dim // 2)
        # 4x4 re-packed video tokens (4096 ch) -> the image-token width (1024 ch).
        self.proj = nn.Linear(config.video_token_dim, config.image_token_dim)
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(config, skip_first_layer_pe=(i == 0)) for i in range(config.depth)
        )
        self.final_attn_token_to_image = Attention(
            dim, config.num_heads, downsample_rate=config.attention_downsample_rate
        )
        self.norm_final_attn = nn.LayerNorm(dim, eps=config.layer_norm_eps)

    def forward(self, image_embedding: Tensor, mask_tokens: Tensor) -> tuple[Tensor, Tensor]:
        """image_embedding (B, 256, S, S), mask_tokens (B, 2, 256)
        -> semantic tokens (B, 16, 256), keys (B, S*S, 256) in row-major order."""
        b, _, s, _ = image_embedding.shape  # (B, 256, S, S)
        keys = image_embedding.flatten(2).transpose(1, 2)  # (B, S*S, 256), t = row*S + col
        key_pe = self.pe_layer(s).to(keys.dtype).unsqueeze(0)  # (1, S*S, 256)
        sem = self.sem_tokens.weight.unsqueeze(0).expand(b, -1, -1)  # (B, 16, 256)
        queries = torch.cat([mask_tokens.to(sem.dtype), sem], dim=1)  # (B, 18, 256)
        query_pe = queries

        for layer in self.layers:
            queries, keys = layer(queries, keys, query_pe, key_pe)

        q, k = queries + query_pe, keys + key_pe
        queries = self.norm_final_attn(queries + self.final_attn_token_to_image(q, k, keys))
        return queries[:, self.config.num_mask_tokens :], keys
