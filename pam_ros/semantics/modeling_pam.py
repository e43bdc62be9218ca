"""PAM's semantic half: perceiver + projectors + separators feeding a stock Qwen2 causal LM.

`PamVisualAdapter` holds every non-LLM module of the checkpoint; its parameter names are the
checkpoint keys with the `model.` prefix removed (spec 8.4). `PamForCausalLM` pairs it with
transformers' own `Qwen2ForCausalLM`, which is driven by `inputs_embeds` (no vendored LLM code).

Visual blocks (spec 2.4), at S = 64:
  image: 1,024 image tokens, image_newline, 16 sem tokens, semT_newline          = 1,042
  video: per frame [tokens (1,024 for frame 0, 256 otherwise), image_newline,
         16 sem tokens, semT_newline, frame_newline], 16 frames                 = 5,168
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from transformers import Qwen2ForCausalLM

from .config import PamConfig
from .perceiver import SemanticPerceiver
from .repack import space_to_depth


def build_projector(in_dim: int, hidden_size: int) -> nn.Sequential:
    """LLaVA's `mlp2x_gelu`: Linear -> GELU -> Linear (checkpoint indices 0 and 2)."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden_size), nn.GELU(), nn.Linear(hidden_size, hidden_size)
    )


def image_block_length(grid_size: int, num_sem_tokens: int = 16) -> int:
    """Vectors in an image block: (S/2)^2 + 1 + 16 + 1 (1,042 at S = 64)."""
    return (grid_size // 2) ** 2 + num_sem_tokens + 2


def video_block_length(grid_size: int, num_frames: int = 16, num_sem_tokens: int = 16) -> int:
    """Vectors in a video block: first frame at 2x2, others at 4x4 (5,168 at S = 64)."""
    first = (grid_size // 2) ** 2 + num_sem_tokens + 3
    other = (grid_size // 4) ** 2 + num_sem_tokens + 3
    return first + (num_frames - 1) * other


class PamVisualAdapter(nn.Module):
    """Decoder features -> LLM input vectors. Names match `model.<name>` checkpoint keys."""

    def __init__(self, config: PamConfig) -> None:
        super().__init__()
        self.config = config
        p, hidden = config.perceiver, config.hidden_size
        self.vision_resampler = SemanticPerceiver(p)
        self.mm_projector_img = build_projector(p.image_token_dim, hidden)
        self.mm_projector_semT = build_projector(p.embedding_dim, hidden)
        self.image_newline = nn.Parameter(torch.zeros(hidden))
        self.semT_newline = nn.Parameter(torch.zeros(hidden))
        self.frame_newline = nn.Parameter(torch.zeros(hidden))

    def encode_frames(
        self, image_embedding: Tensor, mask_tokens: Tensor, first_frame: bool
    ) -> tuple[Tensor, Tensor]:
        """image_embedding (B, 256, S, S), mask_tokens (B, 2, 256)
        -> image tokens (B, N, H) with N = (S/2)^2 if first_frame else (S/4)^2,
           semantic tokens (B, 16, H)."""
        p = self.config.perceiver
        grid = image_embedding.shape[-1]
        sem, keys = self.vision_resampler(image_embedding, mask_tokens)  # (B,16,256), (B,S*S,256)
        if first_frame:
            tokens = space_to_depth(keys, grid, p.image_pixel_shuffle)  # (B, (S/2)^2, 1024)
        else:
            tokens = space_to_depth(keys, grid, p.video_pixel_shuffle)  # (B, (S/4)^2, 4096)
            tokens = self.vision_resampler.proj(tokens)  # (B, (S/4)^2, 1024)
        return self.mm_projector_img(tokens), self.mm_projector_semT(sem)

    def _separator(self, param: Tensor, batch: int) -> Tensor:
        return param.view(1, 1, -1).expand(batch, 1, -1)  # (B, 1, H)

    def image_block(self, image_embedding: Tensor, mask_tokens: Tensor) -> Tensor:
        """(B, 256, S, S), (B, 2, 256) -> (B, (S/2)^2 + 18, H): 1,042 vectors at S = 64."""
        b = image_embedding.shape[0]
        tokens, sem = self.encode_frames(image_embedding, mask_tokens, first_frame=True)
        parts = [
            tokens,
            self._separator(self.image_newline, b),
            sem,
            self._separator(self.semT_newline, b),
        ]
        return torch.cat(parts, dim=1)

    def video_block(self, image_embeddings: Tensor, mask_tokens: Tensor) -> Tensor:
        """image_embeddings (B, T, 256, S, S), mask_tokens (B, T, 2, 256) -> (B, L, H)
        with L = video_block_length(S, T): 5,168 at S = 64, T = 16."""
        b, t = image_embeddings.shape[:2]
        first_tokens, first_sem = self.encode_frames(
            image_embeddings[:, 0], mask_tokens[:, 0], first_frame=True
        )
        if t > 1:  # all later frames of all clips in one perceiver pass
            rest_emb = image_embeddings[:, 1:].flatten(0, 1)  # (B*(T-1), 256, S, S)
            rest_tok = mask_tokens[:, 1:].flatten(0, 1)  # (B*(T-1), 2, 256)
            tokens, sem = self.encode_frames(rest_emb, rest_tok, first_frame=False)
            tokens = tokens.unflatten(0, (b, t - 1))  # (B, T-1, N, H)
            sem = sem.unflatten(0, (b, t - 1))  # (B, T-1, 16, H)
        blocks = []
        for i in range(t):
            frame_tokens, frame_sem = (
                (first_tokens, first_sem) if i == 0 else (tokens[:, i - 1], sem[:, i - 1])
            )
            blocks += [
                frame_tokens,
                self._separator(self.image_newline, b),
                frame_sem,
                self._separator(self.semT_newline, b),
                self._separator(self.frame_newline, b),
            ]
        return torch.cat(blocks, dim=1)


class PamForCausalLM(nn.Module):
    """The PAM semantic model: visual adapter + stock Qwen2 causal LM."""

    def __init__(self, config: PamConfig) -> None:
        super().__init__()
        self.config = config
        self.visual = PamVisualAdapter(config)
        self.language_model = Qwen2ForCausalLM(config.text_config)

    def embed_text(self, input_ids: Tensor) -> Tensor:
        """(N,) or (B, N) token ids -> embeddings (..., H)."""
        return self.language_model.get_input_embeddings()(input_ids)
