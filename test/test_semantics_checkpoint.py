"""Loading checkpoints in the official PAM layout: strict keys, the PE buffer, vocab rows."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from pam_ros.semantics import (
    CheckpointError,
    CheckpointNotFoundError,
    PamConfig,
    SemanticEngine,
    SemanticsError,
)
from pam_ros.semantics.checkpoint import INDEX_FILE, SAM2_PREFIX, load_pam_checkpoint
from pam_ros.semantics.modeling_pam import PamForCausalLM
from pam_ros.testing.random_pam import QWEN_SPECIAL_TOKENS, write_random_checkpoint

PE_KEY = "model.vision_resampler.pe_layer.positional_encoding_gaussian_matrix"


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return write_random_checkpoint(tmp_path_factory.mktemp("pam") / "PAM-tiny", size="tiny", seed=0)


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _index(folder: Path) -> dict:
    return json.loads((folder / INDEX_FILE).read_text())


def _edit_tensors(folder: Path, edit) -> None:
    """Apply `edit(dict) -> dict` to every shard and rewrite the index to match."""
    index = _index(folder)
    weight_map = {}
    for shard in sorted(set(index["weight_map"].values())):
        tensors = edit(load_file(str(folder / shard)))
        save_file(tensors, str(folder / shard), metadata={"format": "pt"})
        weight_map.update({k: shard for k in tensors})
    index["weight_map"] = weight_map
    (folder / INDEX_FILE).write_text(json.dumps(index))


def _file_tensor(folder: Path, key: str) -> torch.Tensor:
    shard = _index(folder)["weight_map"][key]
    with safe_open(folder / shard, framework="pt") as f:
        return f.get_tensor(key)


def test_official_layout_is_written(tiny_checkpoint: Path) -> None:
    index = _index(tiny_checkpoint)
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 1 and all((tiny_checkpoint / s).is_file() for s in shards)
    assert shards[0] == f"model-00001-of-{len(shards):05d}.safetensors"
    config = json.loads((tiny_checkpoint / "config.json").read_text())
    assert config["model_type"] == "llava_qwen"
    assert config["architectures"] == ["LlavaQwenForCausalLM"]
    assert config["pam_ros_random_weights"] is True
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"):
        assert (tiny_checkpoint / name).is_file()
    keys = set(index["weight_map"])
    assert PE_KEY in keys
    assert {"model.image_newline", "model.semT_newline", "model.frame_newline"} <= keys
    assert "model.mm_projector_img.2.weight" in keys and "model.mm_projector_semT.0.bias" in keys
    assert "model.vision_resampler.layers.1.cross_attn_image_to_token.out_proj.weight" in keys
    assert "model.layers.0.self_attn.q_proj.bias" in keys and "lm_head.weight" in keys


def test_tiny_checkpoint_loads_with_every_key_and_nothing_else(tiny_checkpoint: Path) -> None:
    model, _, config, report = load_pam_checkpoint(
        tiny_checkpoint, torch.device("cpu"), torch.float32
    )
    assert report.num_tensors_loaded == len(_index(tiny_checkpoint)["weight_map"])
    assert report.num_sam2_tensors_skipped == 0
    assert config.random_weights and config.hidden_size == 64
    # Every loaded tensor equals the file's (bf16 on disk, fp32 here).
    visual = model.visual.state_dict()
    for key in ("model.mm_projector_img.0.weight", "model.frame_newline", PE_KEY):
        assert torch.equal(visual[key[len("model.") :]], _file_tensor(tiny_checkpoint, key).float())
    layer = model.language_model.state_dict()["model.layers.1.mlp.down_proj.weight"]
    assert torch.equal(
        layer, _file_tensor(tiny_checkpoint, "model.layers.1.mlp.down_proj.weight").float()
    )
    assert not any(t.is_meta for t in model.state_dict().values())


def test_pe_buffer_comes_from_the_checkpoint(tiny_checkpoint: Path) -> None:
    engine = SemanticEngine.from_pretrained(tiny_checkpoint)
    loaded = engine.model.visual.vision_resampler.pe_layer.positional_encoding_gaussian_matrix
    in_file = _file_tensor(tiny_checkpoint, PE_KEY).float()
    assert torch.equal(loaded, in_file)
    # A freshly built perceiver draws another matrix: the loaded one is not a re-randomised init.
    fresh = PamForCausalLM(engine.config).visual.vision_resampler.pe_layer
    assert not torch.equal(fresh.positional_encoding_gaussian_matrix, loaded)


def test_missing_key_fails_and_names_it(tiny_checkpoint: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_checkpoint, tmp_path / "ckpt")
    _edit_tensors(folder, lambda t: {k: v for k, v in t.items() if k != PE_KEY})
    with pytest.raises(CheckpointError, match=r"missing key.*positional_encoding_gaussian_matrix"):
        SemanticEngine.from_pretrained(folder)


def test_misnamed_key_fails_and_names_both(tiny_checkpoint: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_checkpoint, tmp_path / "ckpt")
    old, new = "model.semT_newline", "model.semt_newline"
    _edit_tensors(folder, lambda t: {(new if k == old else k): v for k, v in t.items()})
    with pytest.raises(CheckpointError) as info:
        SemanticEngine.from_pretrained(folder)
    assert "missing key(s): model.semT_newline" in str(info.value)
    assert "unexpected key(s): model.semt_newline" in str(info.value)


def test_wrong_shape_fails_and_names_the_key(tiny_checkpoint: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_checkpoint, tmp_path / "ckpt")
    key = "model.mm_projector_semT.0.weight"
    _edit_tensors(
        folder, lambda t: {k: (v[:, :128].contiguous() if k == key else v) for k, v in t.items()}
    )
    with pytest.raises(CheckpointError, match=r"mm_projector_semT\.0\.weight .*\(64, 128\)"):
        SemanticEngine.from_pretrained(folder)


def test_sam2_keys_are_known_and_skipped(tiny_checkpoint: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_checkpoint, tmp_path / "ckpt")
    extra = {SAM2_PREFIX + "no_mem_embed": torch.zeros(1, 1, 256, dtype=torch.bfloat16)}
    save_file(extra, str(folder / "model-sam2.safetensors"), metadata={"format": "pt"})
    index = _index(folder)
    index["weight_map"].update({k: "model-sam2.safetensors" for k in extra})
    (folder / INDEX_FILE).write_text(json.dumps(index))
    engine = SemanticEngine.from_pretrained(folder)
    assert engine.load_report.num_sam2_tensors_skipped == 1


def test_missing_shard_fails_clearly(tiny_checkpoint: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_checkpoint, tmp_path / "ckpt")
    shard = sorted(set(_index(folder)["weight_map"].values()))[0]
    (folder / shard).unlink()
    with pytest.raises(CheckpointNotFoundError, match=shard):
        SemanticEngine.from_pretrained(folder)


def test_tied_head_absent_from_file_is_the_embedding(tmp_path: Path) -> None:
    folder = write_random_checkpoint(
        tmp_path / "tied", size="tiny", tie_word_embeddings=True, include_lm_head=False
    )
    assert "lm_head.weight" not in _index(folder)["weight_map"]
    engine = SemanticEngine.from_pretrained(folder)
    lm = engine.model.language_model
    assert lm.lm_head.weight.data_ptr() == lm.model.embed_tokens.weight.data_ptr()
    assert engine.load_report.lm_head_from_embeddings


def test_vocab_rows_beyond_the_tokenizer_are_dropped(tiny_checkpoint: Path) -> None:
    engine = SemanticEngine.from_pretrained(tiny_checkpoint)
    report = engine.load_report
    assert report.vocab_rows_in_file > report.vocab_rows_kept == len(engine.tokenizer)
    lm = engine.model.language_model
    assert (
        lm.lm_head.weight.shape[0] == lm.model.embed_tokens.weight.shape[0] == len(engine.tokenizer)
    )


def test_absent_im_patch_key_adds_the_token_like_the_official_loader(tmp_path: Path) -> None:
    folder = write_random_checkpoint(tmp_path / "patch", size="tiny", mm_use_im_patch_token=None)
    assert "mm_use_im_patch_token" not in json.loads((folder / "config.json").read_text())
    engine = SemanticEngine.from_pretrained(folder)
    assert engine.config.mm_use_im_patch_token
    assert engine.tokenizer.convert_tokens_to_ids("<im_patch>") == len(engine.tokenizer) - 1


@pytest.mark.filterwarnings("ignore:.*rope_scaling.*:FutureWarning")  # config.json read by HF
def test_tokenizer_is_real_and_carries_the_chat_tokens(tiny_checkpoint: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_checkpoint))
    for special in QWEN_SPECIAL_TOKENS[:3]:
        ids = tok(special, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1, special
    text = "<|im_start|>user\nClassify this subject and provide its label.<|im_end|>\n对该目标对象"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    assert len(ids) < len(text.encode("utf-8")) / 2  # merges were learned


def test_missing_folder_says_what_to_fetch(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFoundError, match=r"pam_ros\.testing\.random_pam"):
        SemanticEngine.from_pretrained(tmp_path / "nowhere")


def test_hub_id_offline_says_what_to_fetch(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(CheckpointNotFoundError) as info:
        SemanticEngine.from_pretrained("Perceive-Anything/PAM-1.5B")
    message = str(info.value)
    assert "hf download Perceive-Anything/PAM-1.5B --include 'PAM-1.5B/*'" in message
    assert isinstance(info.value, SemanticsError) and isinstance(info.value, FileNotFoundError)


def test_repo_root_with_one_model_subfolder_is_descended(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    root = tmp_path / "repo"
    _copy(tiny_checkpoint, root / "PAM-tiny")
    engine = SemanticEngine.from_pretrained(root)
    assert engine.model_name == "PAM-tiny" and engine.random_weights


def test_config_reads_both_rope_spellings() -> None:
    base = {
        "model_type": "llava_qwen",
        "vocab_size": 100,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
    }
    old = PamConfig.from_dict({**base, "rope_theta": 1e6, "rope_scaling": None})
    new = PamConfig.from_dict(
        {**base, "rope_parameters": {"rope_type": "default", "rope_theta": 5e5}}
    )
    assert old.text_config.rope_parameters["rope_theta"] == 1e6
    assert new.text_config.rope_parameters["rope_theta"] == 5e5
    assert old.mm_use_im_patch_token is True  # absent means True (spec 8.3)
    with pytest.raises(CheckpointError, match="model_type"):
        PamConfig.from_dict({**base, "model_type": "llama"})
    with pytest.raises(CheckpointError, match="hidden_size"):
        PamConfig.from_dict({k: v for k, v in base.items() if k != "hidden_size"})


def test_random_checkpoint_cli_writes_a_loadable_folder(tmp_path: Path, capsys) -> None:
    from pam_ros.testing.random_pam import main

    main(["--size", "tiny", "--out", str(tmp_path / "cli"), "--seed", "3"])
    assert "wrote a random tiny PAM checkpoint" in capsys.readouterr().out
    engine = SemanticEngine.from_pretrained(tmp_path / "cli")
    assert engine.random_weights and engine.load_report.num_sam2_tensors_skipped == 0
