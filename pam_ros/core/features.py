"""What the tracker hands to the semantic engine: SAM 2 mask-decoder features of one object.

PAM's perceiver reads two tensors captured inside SAM 2's mask decoder (spec section 3):
the image embedding after the decoder's two-way transformer, and two mask-token outputs.
This module knows nothing of ROS or of sam2; both model halves import it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class RegionFeatures:
    """Decoder features of one object on one frame.

    image_embedding: (256, S, S) the decoder transformer's image keys, reshaped to the
        feature grid (S = image_size / 16: 64 at 1024 px, 16 at 256 px). Memory-conditioned
        on tracked frames, prompt-conditioned on the prompt frame.
    mask_tokens: (2, 256) [stability-selected mask token, mask token 0].
    frame_index: index of the frame in the tracker's stream.
    stamp_ns: source time of the frame in nanoseconds (0 when unknown).
    """

    image_embedding: torch.Tensor
    mask_tokens: torch.Tensor
    frame_index: int
    stamp_ns: int = 0

    def __post_init__(self) -> None:
        emb, tok = self.image_embedding, self.mask_tokens
        if emb.dim() != 3 or emb.shape[1] != emb.shape[2]:
            raise ValueError(f"image_embedding must be (C, S, S), got {tuple(emb.shape)}")
        if tok.dim() != 2 or tok.shape[0] != 2 or tok.shape[1] != emb.shape[0]:
            raise ValueError(f"mask_tokens must be (2, {emb.shape[0]}), got {tuple(tok.shape)}")

    @property
    def grid_size(self) -> int:
        return int(self.image_embedding.shape[-1])

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> RegionFeatures:
        return RegionFeatures(
            self.image_embedding.to(device=device, dtype=dtype),
            self.mask_tokens.to(device=device, dtype=dtype),
            self.frame_index,
            self.stamp_ns,
        )
