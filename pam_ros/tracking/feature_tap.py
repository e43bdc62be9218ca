"""PAM's feature tap on sam2's mask decoder, by forward hooks (sam2 stays unedited).

PAM's perceiver reads two tensors from inside SAM 2's mask decoder (spec section 3):

- the image embedding after the decoder's two-way transformer (its "keys"), reshaped from
  (B, S*S, 256) to (B, 256, S, S);
- two mask-token outputs, (B, 2, 256): the stability-selected token and token 0. The
  stability-selected token is token 0 when the stability score of its low-res mask logits
  (area(logits > Δ) / area(logits > -Δ), Δ = 0.05) is at least 0.98, otherwise the token
  among 1..3 with the highest predicted IoU.

Three hooks fire in order during one `MaskDecoder.forward`:
  transformer           -> (hs (B, T, 256), keys (B, S*S, 256))
  iou_prediction_head   -> iou predictions of all 4 mask tokens (B, 4)
  mask decoder forward  -> returned masks; with multimask output and dynamic stability off
                           (PAM's settings) these are token 0's low-res logits (B, 1, h, w)
The last one assembles a `DecoderTap`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from sam2.modeling.sam.mask_decoder import MaskDecoder

STABILITY_DELTA = 0.05
STABILITY_THRESHOLD = 0.98


def stability_scores(mask_logits: torch.Tensor, delta: float = STABILITY_DELTA) -> torch.Tensor:
    """IoU between the mask thresholded at +delta and at -delta. (B, h, w) -> (B,)"""
    flat = mask_logits.flatten(1)
    area_inner = (flat > delta).sum(dim=-1).float()
    area_outer = (flat > -delta).sum(dim=-1).float()
    return torch.where(area_outer > 0, area_inner / area_outer.clamp(min=1), 1.0)


def select_mask_tokens(
    mask_tokens: torch.Tensor,
    token0_logits: torch.Tensor,
    iou_predictions: torch.Tensor,
    delta: float = STABILITY_DELTA,
    threshold: float = STABILITY_THRESHOLD,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PAM's two mask tokens.

    mask_tokens: (B, 4, C) decoder outputs of the 4 mask tokens.
    token0_logits: (B, h, w) low-res mask logits of token 0.
    iou_predictions: (B, 4) predicted IoU of each token's mask.
    Returns ((B, 2, C) [selected token, token 0], (B,) index of the selected token).
    """
    best_multimask = 1 + iou_predictions[:, 1:].argmax(dim=-1)  # (B,) in 1..3
    is_stable = stability_scores(token0_logits, delta) >= threshold  # (B,)
    selected = torch.where(is_stable, torch.zeros_like(best_multimask), best_multimask)
    batch = torch.arange(mask_tokens.shape[0], device=mask_tokens.device)
    tokens = torch.stack([mask_tokens[batch, selected], mask_tokens[:, 0]], dim=1)
    return tokens, selected


@dataclass
class DecoderTap:
    """What one mask-decoder call exposed, batched over the objects decoded together."""

    image_embedding: torch.Tensor  # (B, 256, S, S)
    mask_tokens: torch.Tensor  # (B, 2, 256) [stability-selected, token 0]
    selected_token: torch.Tensor  # (B,) index (0..3) of the stability-selected token


class MaskDecoderFeatureTap:
    """Forward hooks on a `MaskDecoder` that record a `DecoderTap` per decoder call.

    Use: `tap.start()`, run the model, then `tap.stop()` returns the taps of the decoder
    calls in between, oldest first. Only calls made on the thread that called `start()` are
    recorded: calls outside start/stop (e.g. another tracker sharing the model), calls inside
    `paused()` and calls from other threads (a discovery pass running beside tracking) are
    not. Hooks stay until `remove()`.
    """

    def __init__(
        self,
        decoder: MaskDecoder,
        delta: float = STABILITY_DELTA,
        threshold: float = STABILITY_THRESHOLD,
    ) -> None:
        if decoder.dynamic_multimask_via_stability:
            raise ValueError(
                "the feature tap needs the mask decoder's dynamic_multimask_via_stability off "
                "(PAM returns token 0's mask; the tap selects the token itself)"
            )
        self.decoder = decoder
        self.delta = delta
        self.threshold = threshold
        self._first_mask_token = 2 if decoder.pred_obj_scores else 1  # after obj-score, iou
        self._pending: dict[str, torch.Tensor] = {}
        self._taps: list[DecoderTap] = []
        self._recording = False
        self._owner: int | None = None  # the thread whose decoder calls are recorded
        self._handles = [
            decoder.transformer.register_forward_hook(self._on_transformer),
            decoder.iou_prediction_head.register_forward_hook(self._on_iou_head),
            decoder.register_forward_hook(self._on_decoder, with_kwargs=True),
        ]

    def _on_transformer(self, module, args, output) -> None:
        if not self._recording or threading.get_ident() != self._owner:
            return
        hs, keys = output  # (B, T, C), (B, S*S, C)
        image_embeddings = args[0]  # (B, C, S, S)
        b, c, h, w = image_embeddings.shape
        first = self._first_mask_token
        self._pending = {
            "image_embedding": keys.transpose(1, 2).reshape(b, c, h, w),
            "mask_tokens": hs[:, first : first + self.decoder.num_mask_tokens],
        }

    def _on_iou_head(self, module, args, output) -> None:
        if not self._recording or threading.get_ident() != self._owner:
            return
        self._pending["iou_predictions"] = output  # (B, 4)

    def _on_decoder(self, module, args, kwargs, output) -> None:
        if not self._recording or threading.get_ident() != self._owner:
            return
        multimask = kwargs.get("multimask_output", args[4] if len(args) > 4 else False)
        if multimask:
            raise RuntimeError("the feature tap expects single-mask decoding (PAM's setting)")
        masks = output[0]  # (B, 1, h, w) token 0's low-res logits
        tokens, selected = select_mask_tokens(
            self._pending["mask_tokens"],
            masks[:, 0],
            self._pending["iou_predictions"],
            self.delta,
            self.threshold,
        )
        self._taps.append(DecoderTap(self._pending["image_embedding"], tokens, selected))
        self._pending = {}

    def start(self) -> None:
        self._pending, self._taps, self._recording = {}, [], True
        self._owner = threading.get_ident()

    def stop(self) -> list[DecoderTap]:
        taps, self._pending, self._taps, self._recording = self._taps, {}, [], False
        return taps

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Decoder calls inside this block are not recorded; a recording in progress goes on
        afterwards with what it had. From another thread than the recording one this changes
        nothing (that thread's calls are not recorded anyway, and the recording must go on)."""
        if threading.get_ident() != self._owner:
            yield
            return
        recording, pending = self._recording, self._pending
        self._recording, self._pending = False, {}
        try:
            yield
        finally:
            self._recording, self._pending = recording, pending

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self.stop()
