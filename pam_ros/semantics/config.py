"""Configuration of a PAM checkpoint: the Qwen2 LLM, the Semantic Perceiver and the mm_* fields.

The released checkpoints carry a single LLaVA-style `config.json` (`model_type: llava_qwen`,
spec section 8.3): the Qwen2 fields at the top level plus `mm_*` fields. Stock transformers does
not know `llava_qwen`, so the Qwen2 fields are copied into a standard `Qwen2Config` here. The
perceiver is hard-wired in the official builder (spec 2.2): its sizes are constants, not read
from the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import Qwen2Config

from .errors import CheckpointError

MODEL_TYPE = "llava_qwen"
RANDOM_WEIGHTS_KEY = "pam_ros_random_weights"

# Qwen2 fields copied from config.json to Qwen2Config (spec 8.3).
_QWEN2_FIELDS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "hidden_act",
    "max_position_embeddings",
    "initializer_range",
    "rms_norm_eps",
    "tie_word_embeddings",
    "use_sliding_window",
    "sliding_window",
    "max_window_layers",
    "attention_dropout",
    "bos_token_id",
    "eos_token_id",
)
_REQUIRED_QWEN2_FIELDS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
)


@dataclass(frozen=True)
class PerceiverConfig:
    """The Semantic Perceiver (spec 2.2). The official builder ignores config.json for it."""

    embedding_dim: int = 256  # SAM 2 decoder width; also the semantic-token width
    num_heads: int = 8
    mlp_dim: int = 2048
    depth: int = 2  # two-way blocks
    num_sem_tokens: int = 16
    num_mask_tokens: int = 2  # [stability-selected token, token 0]
    attention_downsample_rate: int = 2  # cross-attention works at 128-d
    image_pixel_shuffle: int = 2  # 2x2 space-to-depth: images and a clip's first frame
    video_pixel_shuffle: int = 4  # 4x4 space-to-depth + `proj`: other video frames
    layer_norm_eps: float = 1e-5

    @property
    def image_token_dim(self) -> int:
        """Channels of one re-packed image token: 2*2*256 = 1024, the projector input."""
        return self.embedding_dim * self.image_pixel_shuffle**2

    @property
    def video_token_dim(self) -> int:
        """Channels of one 4x4 re-packed token before `proj`: 4*4*256 = 4096."""
        return self.embedding_dim * self.video_pixel_shuffle**2


@dataclass
class PamConfig:
    """Everything needed to build a PAM model from a checkpoint folder."""

    text_config: Qwen2Config
    perceiver: PerceiverConfig = field(default_factory=PerceiverConfig)
    mm_hidden_size: int = 256
    mm_projector_type: str = "mlp2x_gelu"
    # Absent from config.json means True in the official loader, which then adds an
    # `<im_patch>` token to the tokenizer (spec 8.3).
    mm_use_im_patch_token: bool = True
    tokenizer_model_max_length: int = 12288
    random_weights: bool = False
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def hidden_size(self) -> int:
        return int(self.text_config.hidden_size)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config.json") -> PamConfig:
        model_type = raw.get("model_type")
        if model_type not in (MODEL_TYPE, "qwen2"):
            raise CheckpointError(
                f"{source}: model_type is {model_type!r}; a PAM checkpoint has {MODEL_TYPE!r}"
            )
        missing = [k for k in _REQUIRED_QWEN2_FIELDS if k not in raw]
        if missing:
            raise CheckpointError(f"{source}: missing Qwen2 field(s) {missing}")
        projector = raw.get("mm_projector_type", "mlp2x_gelu")
        if projector != "mlp2x_gelu":
            raise CheckpointError(
                f"{source}: mm_projector_type {projector!r} is not supported (PAM uses mlp2x_gelu)"
            )
        mm_hidden = int(raw.get("mm_hidden_size", 256))
        if mm_hidden != PerceiverConfig.embedding_dim:
            raise CheckpointError(f"{source}: mm_hidden_size {mm_hidden} != 256 (SAM 2 width)")

        qwen_kwargs = {k: raw[k] for k in _QWEN2_FIELDS if k in raw}
        qwen_kwargs.setdefault("num_key_value_heads", raw["num_attention_heads"])
        # Old (4.4x) files carry `rope_theta`; current transformers files `rope_parameters`.
        # LlavaQwenConfig forces rope_scaling=None, so the rope type is always "default".
        rope_theta = raw.get("rope_theta")
        if rope_theta is None and isinstance(raw.get("rope_parameters"), dict):
            rope_theta = raw["rope_parameters"].get("rope_theta")
        qwen_kwargs["rope_parameters"] = {
            "rope_type": "default",
            "rope_theta": float(rope_theta if rope_theta is not None else 1e6),
        }
        text_config = Qwen2Config(**qwen_kwargs)
        return cls(
            text_config=text_config,
            mm_hidden_size=mm_hidden,
            mm_projector_type=projector,
            mm_use_im_patch_token=bool(raw.get("mm_use_im_patch_token", True)),
            tokenizer_model_max_length=int(raw.get("tokenizer_model_max_length", 12288)),
            random_weights=bool(raw.get(RANDOM_WEIGHTS_KEY, False)),
            raw=dict(raw),
        )

    @classmethod
    def from_json_file(cls, path: str | Path) -> PamConfig:
        path = Path(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CheckpointError(f"no config.json at {path}") from None
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{path} is not valid JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise CheckpointError(f"{path} does not hold a JSON object")
        return cls.from_dict(raw, source=str(path))

    def to_official_dict(self) -> dict[str, Any]:
        """config.json as the official training code saves it (transformers 4.4x era)."""
        tc = self.text_config
        rope_theta = float((tc.rope_parameters or {}).get("rope_theta", 1e6))
        out: dict[str, Any] = {
            "architectures": ["LlavaQwenForCausalLM"],
            "model_type": MODEL_TYPE,
            "attention_dropout": float(tc.attention_dropout),
            "bos_token_id": tc.bos_token_id,
            "eos_token_id": tc.eos_token_id,
            "hidden_act": tc.hidden_act,
            "hidden_size": int(tc.hidden_size),
            "initializer_range": float(tc.initializer_range),
            "intermediate_size": int(tc.intermediate_size),
            "max_position_embeddings": int(tc.max_position_embeddings),
            "max_window_layers": int(tc.max_window_layers),
            "num_attention_heads": int(tc.num_attention_heads),
            "num_hidden_layers": int(tc.num_hidden_layers),
            "num_key_value_heads": int(tc.num_key_value_heads),
            "rms_norm_eps": float(tc.rms_norm_eps),
            "rope_scaling": None,
            "rope_theta": rope_theta,
            "sliding_window": tc.sliding_window,
            "tie_word_embeddings": bool(tc.tie_word_embeddings),
            "torch_dtype": "bfloat16",
            "transformers_version": "4.40.0.dev0",
            "use_cache": True,
            "use_sliding_window": bool(tc.use_sliding_window),
            "vocab_size": int(tc.vocab_size),
            "mm_vision_tower": "meta/sam2.1_hiera_large",
            "mm_projector_type": self.mm_projector_type,
            "mm_hidden_size": self.mm_hidden_size,
            "use_mm_proj": True,
            "mm_use_im_start_end": False,
            "mm_use_im_patch_token": self.mm_use_im_patch_token,
            "mm_tunable_parts": "mm_vision_resampler,mm_mlp_adapter,mm_language_model",
            "tokenizer_model_max_length": self.tokenizer_model_max_length,
            "tokenizer_padding_side": "right",
        }
        if self.random_weights:
            out[RANDOM_WEIGHTS_KEY] = True
        return out
