"""Write a randomly initialised PAM checkpoint in exactly the official layout (spec 8).

    python -m pam_ros.testing.random_pam --size tiny|1.5B|3B --out DIR [--seed 0]

The folder gets `config.json` (`model_type: llava_qwen`, plus `"pam_ros_random_weights": true`
so engines can say their text is meaningless), `generation_config.json`, sharded safetensors
with `model.safetensors.index.json`, and a real byte-level BPE tokenizer trained here with
`tokenizers` on a small built-in English + Chinese corpus, carrying the Qwen2.5 special tokens
(`<|endoftext|>`, `<|im_start|>`, `<|im_end|>`, ...), loadable with `AutoTokenizer`.

Sizes: `tiny` (hidden 64, 2 layers: for tests), and the real PAM-1.5B / PAM-3B shapes (for
GPU benchmarks; the tokenizer is then padded with synthetic merges to Qwen's 151,665 tokens so
the LM head costs what the real one costs).

Random weights are made informative, so tests can tell a working pipeline from a dead one:
the tiny LLM has an untied head and a larger init scale, so generated ids vary with context
instead of repeating one token, and its end-of-turn tokens are down-weighted in the head so
answers are not empty.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import Qwen2Config

from pam_ros.semantics.checkpoint import INDEX_FILE
from pam_ros.semantics.config import PamConfig
from pam_ros.semantics.modeling_pam import PamForCausalLM

# Qwen2.5's added tokens, in its order (ids follow the regular vocabulary).
QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
)
QWEN_REGULAR_VOCAB = 151643  # len(Qwen2.5 tokenizer) = 151,643 + 22 = 151,665
# Qwen's pre-tokenisation split (letters, single digits, punctuation runs, whitespace).
QWEN_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# A small bilingual corpus: the prompt vocabulary plus object descriptions a robot might give.
CORPUS = (
    "You are a helpful assistant.",
    "Classify this subject and provide its label.",
    "Classify this subject and provide the label and its definition.",
    "Provide a concise caption for this subject.",
    "Provide a comprehensive and detailed description for this subject.",
    "Provide a caption for this subject in this video. Previous caption: None",
    "A red coffee mug sits on the wooden table next to a laptop.",
    "Cup: a small open container used for drinking hot or cold liquids.",
    "Chair: a seat for one person, with a back and four legs, used for sitting.",
    "Person: a human being walking across the room while carrying a bag.",
    "Dog: a domesticated animal that barks, kept as a pet or for guarding.",
    "The black cat jumps from the sofa onto the floor and walks toward the door.",
    "A white robot arm picks up a blue box and places it on the shelf.",
    "Bottle: a narrow-necked container for storing water, juice or other drinks.",
    "Bicycle: a vehicle with two wheels, pedals and handlebars, used for transport.",
    "The man in a green jacket opens the car door and sits in the driver's seat.",
    "A small brown dog runs along the beach, chasing a yellow ball near the waves.",
    "Laptop: a portable computer with a screen and keyboard, used for work and study.",
    "The woman picks up the phone from the desk, looks at it and puts it in her pocket.",
    "Plant: a green potted plant with broad leaves standing in the corner of the room.",
    "Door: a hinged panel that opens and closes the entrance to a room or building.",
    "The subject moves slowly to the left, then stops and turns around.",
    "In this video, the person continues walking and then sits down on the bench.",
    "Numbers 0 1 2 3 4 5 6 7 8 9 10 100 2025, colours red green blue yellow black white.",
    "你是一个乐于助人的助手。",
    "对该目标对象进行分类并提供标签",
    "对该目标对象进行分类并提供标签和名词功能解释",
    "对该目标对象提供一个概括的描述",
    "对该目标对象提供一个全面且详细的描述",
    "对该视频中的目标对象提供一个描述。历史描述：无",
    "杯子：一种用于盛放饮料的小型容器。",
    "椅子：供一个人坐的家具，有靠背和四条腿。",
    "一只棕色的小狗在海滩上奔跑，追逐着一个黄色的球。",
    "一个穿着绿色夹克的男人打开车门，坐进驾驶座。",
    "白色的机械臂拿起一个蓝色的盒子，把它放在架子上。",
    "该对象先向左缓慢移动，然后停下来并转身。",
    "桌子上放着一个红色的咖啡杯和一台笔记本电脑。",
    "猫从沙发上跳到地板上，然后走向门口。",
    "瓶子：一种细颈容器，用于储存水、果汁或其他饮料。",
    "自行车：一种有两个轮子的交通工具，用于出行。",
)


@dataclass(frozen=True)
class RandomCheckpointSpec:
    """LLM shape and init of one random checkpoint size."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    vocab_size: int | None  # None: the tokenizer size rounded up, plus masked spare rows
    tie_word_embeddings: bool
    init_std: float  # LLM weight init
    bpe_vocab: int  # trained BPE size; padded to Qwen's size when vocab_size is Qwen's
    shard_bytes: int


SIZES: dict[str, RandomCheckpointSpec] = {
    "tiny": RandomCheckpointSpec(64, 128, 2, 4, 2, None, False, 0.25, 1200, 2_000_000),
    "1.5B": RandomCheckpointSpec(1536, 8960, 28, 12, 2, 151936, True, 0.02, 1200, 2_000_000_000),
    "3B": RandomCheckpointSpec(2048, 11008, 36, 16, 2, 151936, True, 0.02, 1200, 2_000_000_000),
}


def train_tokenizer(bpe_vocab: int, pad_regular_to: int | None = None) -> Tokenizer:
    """Byte-level BPE in Qwen's style, trained on CORPUS; special tokens appended at the end.

    Training is deterministic, so the result is trained once per process and copied.
    """
    return Tokenizer.from_str(_trained_tokenizer_json(bpe_vocab, pad_regular_to))


@functools.lru_cache(maxsize=4)
def _trained_tokenizer_json(bpe_vocab: int, pad_regular_to: int | None) -> str:
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_SPLIT_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=bpe_vocab,
        min_frequency=1,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(CORPUS) * 4, trainer=trainer)
    if pad_regular_to is not None and tok.get_vocab_size() < pad_regular_to:
        tok = _pad_with_synthetic_merges(tok, pad_regular_to)
    tok.add_special_tokens(list(QWEN_SPECIAL_TOKENS))
    return tok.to_str()


def _pad_with_synthetic_merges(tok: Tokenizer, target: int) -> Tokenizer:
    """Extend a BPE with merges of existing token pairs until it has `target` tokens.

    The new merges rank below the trained ones, so they rarely fire on real text; they only
    give the model Qwen's vocabulary size (the LM head and embedding cost of the real model).
    """
    state = json.loads(tok.to_str())
    vocab: dict[str, int] = state["model"]["vocab"]
    merges: list = state["model"]["merges"]
    base = sorted(vocab, key=vocab.get)
    n = len(vocab)
    for left in base:
        for right in base:
            if n >= target:
                break
            merged = left + right
            if merged not in vocab:
                vocab[merged] = n
                merges.append([left, right])
                n += 1
        if n >= target:
            break
    return Tokenizer.from_str(json.dumps(state))


def save_tokenizer(tok: Tokenizer, out: Path, model_max_length: int = 32768) -> None:
    """tokenizer.json + tokenizer_config.json (+ vocab.json/merges.txt) as Qwen ships them."""
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    tok.model.save(str(out))  # vocab.json, merges.txt
    added = {
        str(tok.token_to_id(t)): {
            "content": t,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for t in QWEN_SPECIAL_TOKENS
    }
    config = {
        "tokenizer_class": "Qwen2Tokenizer",
        "add_prefix_space": False,
        "added_tokens_decoder": added,
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "bos_token": None,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": model_max_length,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "unk_token": None,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False))
    special_map = {
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
    }
    (out / "special_tokens_map.json").write_text(json.dumps(special_map, indent=2))


def _init_tensor(
    name: str, shape: torch.Size, spec: RandomCheckpointSpec, gen: torch.Generator
) -> torch.Tensor:
    """Random values by role: norms at one, small random biases, fan-in scaled weights."""
    leaf = name.rsplit(".", 1)[-1]
    is_norm = "norm" in name.rsplit(".", 2)[-2]  # the owning module's name
    if is_norm and leaf == "weight":
        return torch.ones(shape)
    if leaf == "bias":
        return torch.randn(shape, generator=gen) * 0.02
    if name.endswith("positional_encoding_gaussian_matrix") or name.endswith("sem_tokens.weight"):
        return torch.randn(shape, generator=gen)  # their own init: N(0, 1)
    if name.endswith("_newline"):
        return torch.randn(shape, generator=gen) / math.sqrt(shape[-1])
    is_llm = name.startswith(("model.embed_tokens", "model.layers.", "lm_head"))
    if is_llm:
        return torch.randn(shape, generator=gen) * spec.init_std
    return torch.randn(shape, generator=gen) / math.sqrt(shape[-1])  # visual linears: fan-in


def write_random_checkpoint(
    out: str | Path,
    size: str = "tiny",
    seed: int = 0,
    dtype: torch.dtype = torch.bfloat16,
    include_lm_head: bool = True,
    tie_word_embeddings: bool | None = None,
    mm_use_im_patch_token: bool | None = False,
    shard_bytes: int | None = None,
) -> Path:
    """Write the folder and return its path. `mm_use_im_patch_token=None` omits the key."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose one of {sorted(SIZES)}")
    spec = SIZES[size]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    qwen_vocab = spec.vocab_size == 151936
    tok = train_tokenizer(spec.bpe_vocab, QWEN_REGULAR_VOCAB if qwen_vocab else None)
    save_tokenizer(tok, out)
    num_tokens = tok.get_vocab_size(with_added_tokens=True) + 1  # room for <im_patch>
    vocab_rows = spec.vocab_size or (math.ceil(num_tokens / 64) * 64 + 64)  # spare rows masked
    tied = spec.tie_word_embeddings if tie_word_embeddings is None else tie_word_embeddings

    endoftext, im_end = tok.token_to_id("<|endoftext|>"), tok.token_to_id("<|im_end|>")
    text_config = Qwen2Config(
        vocab_size=vocab_rows,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        max_position_embeddings=32768,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 1e6},
        tie_word_embeddings=tied,
        use_sliding_window=False,
        sliding_window=None if spec.hidden_size < 1024 else 32768,
        max_window_layers=spec.num_hidden_layers,
        bos_token_id=endoftext,
        eos_token_id=im_end,
        initializer_range=spec.init_std,
    )
    config = PamConfig(
        text_config=text_config,
        mm_use_im_patch_token=bool(mm_use_im_patch_token),
        random_weights=True,
    )
    raw = config.to_official_dict()
    if mm_use_im_patch_token is None:
        del raw["mm_use_im_patch_token"]
    (out / "config.json").write_text(json.dumps(raw, indent=2))
    generation = {
        "bos_token_id": endoftext,
        "do_sample": True,
        "eos_token_id": [im_end, endoftext],
        "pad_token_id": endoftext,
        "repetition_penalty": 1.05,
        "temperature": 0.7,
        "top_k": 20,
        "top_p": 0.8,
        "transformers_version": "4.40.0.dev0",
    }
    (out / "generation_config.json").write_text(json.dumps(generation, indent=2))

    with torch.device("meta"):
        model = PamForCausalLM(config)
    shapes = {"model." + k: v.shape for k, v in model.visual.state_dict().items()}
    shapes.update({k: v.shape for k, v in model.language_model.state_dict().items()})
    if not include_lm_head:
        shapes.pop("lm_head.weight")
    gen = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {}
    for name in sorted(shapes):
        if tied and name == "lm_head.weight":
            continue  # written below as a copy of the embedding
        # cast one by one: peak memory stays near one copy of the weights
        tensors[name] = _init_tensor(name, shapes[name], spec, gen).to(dtype).contiguous()
    if "lm_head.weight" in shapes:
        if tied:  # ZeRO-2 saves clone the tied head (spec 8.4): same values, own storage
            tensors["lm_head.weight"] = tensors["model.embed_tokens.weight"].clone()
        else:
            special = [tok.token_to_id(t) for t in ("<|im_end|>", "<|endoftext|>")]
            tensors["lm_head.weight"][special] *= 0.25  # answers that are not empty
    _write_shards(out, tensors, shard_bytes or spec.shard_bytes)
    return out


def _write_shards(out: Path, tensors: dict[str, torch.Tensor], shard_bytes: int) -> None:
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, tensor in tensors.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = tensor
        size += nbytes
    weight_map = {}
    for i, shard in enumerate(shards, start=1):
        fname = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(out / fname), metadata={"format": "pt"})
        weight_map.update({name: fname for name in shard})
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (out / INDEX_FILE).write_text(json.dumps(index, indent=2))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--out", required=True, help="folder to write (created if missing)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", choices=("bfloat16", "float32"), default="bfloat16")
    args = parser.parse_args(argv)
    path = write_random_checkpoint(
        args.out, size=args.size, seed=args.seed, dtype=getattr(torch, args.dtype)
    )
    index = json.loads((path / INDEX_FILE).read_text())
    shards = sorted(set(index["weight_map"].values()))
    print(
        f"wrote a random {args.size} PAM checkpoint to {path}: {len(index['weight_map'])} "
        f"tensors in {len(shards)} shard(s), {index['metadata']['total_size'] / 1e6:.1f} MB"
    )


if __name__ == "__main__":
    main()
