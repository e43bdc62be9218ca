"""Load a PAM checkpoint in the official layout (spec section 8).

The folder holds `config.json` (`model_type: llava_qwen`), sharded safetensors with
`model.safetensors.index.json` (or a single `model.safetensors`) and the Qwen tokenizer files.
Keys are split by prefix (spec 8.4):

  model.embed_tokens / model.layers.* / model.norm / lm_head  -> stock Qwen2ForCausalLM
  model.vision_resampler.* / model.mm_projector_* / model.*_newline -> PamVisualAdapter
  model.vision_tower.sam2_model_predictor.*                   -> known, skipped (SAM 2 lives
                                                                 in the tracker)

Loading is strict: every expected tensor must be present with its shape, and any other key is
an error that names it. The perceiver's PE matrix is a persistent buffer and loads like a
weight. If `lm_head.weight` is absent and the embeddings are tied, the head is the embedding.
Embedding rows >= len(tokenizer) are dropped, as the official `resize_token_embeddings` does
(spec 8.5), so they can never be generated.
"""

from __future__ import annotations

import json
import logging
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn
from transformers import AutoTokenizer, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from .config import PamConfig
from .errors import CheckpointError, CheckpointNotFoundError
from .modeling_pam import PamForCausalLM

logger = logging.getLogger(__name__)

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
SAM2_PREFIX = "model.vision_tower.sam2_model_predictor."
VISUAL_PREFIX = "model."
LM_HEAD_KEY = "lm_head.weight"
IM_PATCH_TOKEN = "<im_patch>"
# The released repos keep their files in a sub-folder named like the repo (spec 8.1).
OFFICIAL_REPOS = ("Perceive-Anything/PAM-1.5B", "Perceive-Anything/PAM-3B")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class LoadReport:
    """What the loader did, for logs and tests."""

    folder: Path
    num_tensors_loaded: int
    num_sam2_tensors_skipped: int
    lm_head_from_embeddings: bool
    vocab_rows_in_file: int
    vocab_rows_kept: int


def _descend_to_model_folder(folder: Path) -> Path:
    if (folder / "config.json").is_file():
        return folder
    candidates = [d for d in sorted(folder.iterdir()) if (d / "config.json").is_file()]
    if len(candidates) == 1:  # a repo snapshot whose files sit in one sub-folder
        return candidates[0]
    raise CheckpointNotFoundError(
        f"{folder} holds no config.json"
        + (f" (and {len(candidates)} sub-folders do; pass one)" if candidates else "")
        + ": pass the PAM model folder (e.g. .../PAM-1.5B) that holds config.json, "
        "the safetensors shards and the tokenizer"
    )


def _fetch_instructions(repo_id: str) -> str:
    sub = repo_id.split("/")[-1]
    return (
        f"fetch it where a network exists, e.g. `hf download {repo_id} --include '{sub}/*' "
        f"--local-dir DIR`, copy DIR here and pass DIR/{sub}"
    )


def resolve_checkpoint_dir(name_or_path: str | os.PathLike) -> Path:
    """A local folder, or a Hugging Face hub id downloaded with huggingface_hub."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not path.is_dir():
            raise CheckpointNotFoundError(f"{path} is a file; pass the PAM model folder")
        return _descend_to_model_folder(path)
    text = str(name_or_path)
    if not _HUB_ID.match(text) or text.startswith((".", "/", "~")):
        raise CheckpointNotFoundError(
            f"no PAM checkpoint at {path}: the folder does not exist. Download "
            f"{' or '.join(OFFICIAL_REPOS)} (files in its sub-folder) or write a random one "
            "with `python -m pam_ros.testing.random_pam --size tiny --out DIR`"
        )
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    try:
        from huggingface_hub import snapshot_download

        sub = text.split("/")[-1]
        snapshot = Path(
            snapshot_download(
                text,
                allow_patterns=[f"{sub}/*", "*.json", "*.safetensors", "*.txt"],
                local_files_only=offline,
            )
        )
    except Exception as exc:  # offline, unknown repo, no network: all end the same way
        raise CheckpointNotFoundError(
            f"could not get {text} from the Hugging Face hub "
            f"({'HF_HUB_OFFLINE is set' if offline else type(exc).__name__}: {exc}); "
            + _fetch_instructions(text)
        ) from None
    return _descend_to_model_folder(snapshot)


def read_weight_map(folder: Path) -> dict[str, str]:
    """tensor name -> shard file name, from the index (or the single safetensors file)."""
    index = folder / INDEX_FILE
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{index} is not a safetensors index: {exc}") from None
    elif (folder / SINGLE_FILE).is_file():
        with safe_open(folder / SINGLE_FILE, framework="pt") as f:
            weight_map = {k: SINGLE_FILE for k in f.keys()}
    else:
        raise CheckpointNotFoundError(f"{folder} holds neither {INDEX_FILE} nor {SINGLE_FILE}")
    missing_shards = sorted({s for s in weight_map.values() if not (folder / s).is_file()})
    if missing_shards:
        raise CheckpointNotFoundError(
            f"{folder} lacks shard(s) named in the index: {missing_shards}"
        )
    return weight_map


def load_tokenizer(folder: Path, config: PamConfig) -> PreTrainedTokenizerBase:
    # AutoTokenizer also reads config.json and warns that it does not know `llava_qwen`;
    # the tokenizer class comes from tokenizer_config.json, so the warning is noise here.
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            tokenizer = AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"no usable tokenizer in {folder}: {exc}") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    if config.mm_use_im_patch_token:  # the official loader adds it (spec 8.3)
        tokenizer.add_tokens([IM_PATCH_TOKEN], special_tokens=True)
    return tokenizer


def _expected_shapes(model: PamForCausalLM) -> dict[str, torch.Size]:
    shapes = {VISUAL_PREFIX + k: v.shape for k, v in model.visual.state_dict().items()}
    shapes.update({k: v.shape for k, v in model.language_model.state_dict().items()})
    return shapes


def _list(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" ... ({len(keys)} in all)" if len(keys) > limit else "")


def _fix_non_persistent_buffers(model: PamForCausalLM, device: torch.device) -> None:
    """Buffers that are not in the checkpoint (rotary inv_freq) are rebuilt on the device."""
    lm = model.language_model
    rotary = lm.model.rotary_emb
    with torch.device("cpu"):
        fresh = type(rotary)(config=lm.config)
    lm.model.rotary_emb = fresh.to(device)  # inv_freq stays fp32, as transformers keeps it
    still_meta = [n for n, t in model.state_dict(keep_vars=True).items() if t.is_meta]
    still_meta += [n for n, t in model.named_buffers() if t.is_meta]
    if still_meta:
        raise CheckpointError(f"tensors left unloaded: {_list(sorted(set(still_meta)))}")


def _drop_vocab_rows(model: PamForCausalLM, num_rows: int, tied: bool) -> None:
    """Keep the first `num_rows` rows of the embeddings and the head (official resize)."""
    lm = model.language_model
    embed = lm.model.embed_tokens
    embed.weight = nn.Parameter(embed.weight.data[:num_rows].clone(), requires_grad=False)
    embed.num_embeddings = num_rows
    if tied:
        lm.lm_head.weight = embed.weight
    else:
        lm.lm_head.weight = nn.Parameter(
            lm.lm_head.weight.data[:num_rows].clone(), requires_grad=False
        )
    lm.lm_head.out_features = num_rows
    lm.config.vocab_size = num_rows


def load_pam_checkpoint(
    folder: Path,
    device: torch.device,
    dtype: torch.dtype,
    attn_implementation: str = "sdpa",
) -> tuple[PamForCausalLM, PreTrainedTokenizerBase, PamConfig, LoadReport]:
    """Build the model on `device` in `dtype` from a resolved checkpoint folder."""
    config = PamConfig.from_json_file(folder / "config.json")
    config.text_config._attn_implementation = attn_implementation
    tokenizer = load_tokenizer(folder, config)
    weight_map = read_weight_map(folder)

    with torch.device("meta"):
        model = PamForCausalLM(config)
    expected = _expected_shapes(model)
    llm_keys = set(model.language_model.state_dict(keep_vars=True))
    tied = bool(config.text_config.tie_word_embeddings)

    present = set(weight_map)
    sam2_keys = {k for k in present if k.startswith(SAM2_PREFIX)}
    optional = {LM_HEAD_KEY} if tied else set()
    missing = sorted(set(expected) - present - optional)
    unexpected = sorted(present - set(expected) - sam2_keys)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing key(s): {_list(missing)}")
        if unexpected:
            parts.append(f"unexpected key(s): {_list(unexpected)}")
        raise CheckpointError(f"{folder} does not match the PAM layout: " + "; ".join(parts))

    visual_sd: dict[str, torch.Tensor] = {}
    llm_sd: dict[str, torch.Tensor] = {}
    file_lm_head: torch.Tensor | None = None
    by_shard: dict[str, list[str]] = {}
    for key, shard in weight_map.items():
        if key in expected:
            by_shard.setdefault(shard, []).append(key)
    for shard, keys in sorted(by_shard.items()):
        with safe_open(folder / shard, framework="pt", device="cpu") as f:
            for key in keys:
                tensor = f.get_tensor(key)
                if tensor.shape != expected[key]:
                    raise CheckpointError(
                        f"{key} in {shard} has shape {tuple(tensor.shape)}, "
                        f"expected {tuple(expected[key])} from config.json"
                    )
                tensor = tensor.to(device=device, dtype=dtype)
                if key == LM_HEAD_KEY and tied:
                    file_lm_head = tensor
                elif key in llm_keys:
                    llm_sd[key] = tensor
                else:
                    visual_sd[key[len(VISUAL_PREFIX) :]] = tensor

    model.visual.load_state_dict(visual_sd, strict=True, assign=True)
    result = model.language_model.load_state_dict(llm_sd, strict=False, assign=True)
    leftover = [k for k in result.missing_keys if not (tied and k == LM_HEAD_KEY)]
    if leftover or result.unexpected_keys:
        raise CheckpointError(
            f"LLM keys did not load: missing {leftover}, unexpected {result.unexpected_keys}"
        )
    lm = model.language_model
    if tied:
        lm.lm_head.weight = lm.model.embed_tokens.weight
        if file_lm_head is not None and not torch.equal(file_lm_head, lm.lm_head.weight):
            logger.warning(
                "%s: tie_word_embeddings is true, so lm_head.weight in the file is ignored and "
                "the head is the input embedding, as the official loader does",
                folder,
            )

    vocab_rows = int(config.text_config.vocab_size)
    num_tokens = len(tokenizer)
    if num_tokens > vocab_rows:
        raise CheckpointError(
            f"the tokenizer has {num_tokens} tokens but the embeddings only {vocab_rows} rows"
        )
    _drop_vocab_rows(model, num_tokens, tied)
    _fix_non_persistent_buffers(model, device)
    model.eval().requires_grad_(False)

    report = LoadReport(
        folder=folder,
        num_tensors_loaded=len(visual_sd) + len(llm_sd) + (file_lm_head is not None),
        num_sam2_tensors_skipped=len(sam2_keys),
        lm_head_from_embeddings=tied,
        vocab_rows_in_file=vocab_rows,
        vocab_rows_kept=num_tokens,
    )
    return model, tokenizer, config, report
