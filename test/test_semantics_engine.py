"""SemanticEngine end to end on a tiny random checkpoint: features -> visual block -> text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pam_ros.core.features import RegionFeatures
from pam_ros.semantics import (
    KINDS,
    DescribeRequest,
    EngineReleasedError,
    InvalidFeaturesError,
    InvalidRequestError,
    NotEnoughFramesError,
    SemanticEngine,
    SemanticsError,
    UnknownKindError,
    select_video_frames,
)
from pam_ros.semantics.modeling_pam import video_block_length
from pam_ros.semantics.parsing import parse_explain, parse_label
from pam_ros.semantics.prompts import chat_prompt
from pam_ros.testing.random_pam import write_random_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return write_random_checkpoint(tmp_path_factory.mktemp("pam") / "PAM-tiny", size="tiny", seed=0)


@pytest.fixture(scope="module")
def engine(checkpoint: Path) -> SemanticEngine:
    return SemanticEngine.from_pretrained(checkpoint, device="cpu", dtype="auto")


def _features(count: int, grid: int = 16, seed: int = 0) -> list[RegionFeatures]:
    gen = torch.Generator().manual_seed(seed)
    return [
        RegionFeatures(
            torch.randn(256, grid, grid, generator=gen), torch.randn(2, 256, generator=gen), i
        )
        for i in range(count)
    ]


def _request(kind: str, seed: int = 0, grid: int = 16, **kwargs) -> DescribeRequest:
    count = 16 if kind == "video_caption" else 1
    kwargs.setdefault("max_new_tokens", 12)
    return DescribeRequest(kind=kind, features=_features(count, grid, seed), **kwargs)


def _assert_informative(ids: tuple[int, ...]) -> None:
    assert len(ids) >= 4, ids
    assert len(set(ids)) > 1, f"generated ids are one token repeated: {ids}"


def test_spec_block_lengths_and_text_at_full_grid(engine: SemanticEngine) -> None:
    image = _request("category", grid=64)
    video = _request("video_caption", grid=64)
    assert engine.visual_block(image).shape == (1042, engine.hidden_size)
    assert engine.visual_block(video).shape == (5168, engine.hidden_size)
    descs = engine.describe([image, video])
    for desc in descs:
        assert desc.text and desc.num_tokens == len(desc.token_ids)
        _assert_informative(desc.token_ids)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("language", ["en", "zh"])
def test_every_kind_generates_text(engine: SemanticEngine, kind: str, language: str) -> None:
    [desc] = engine.describe([_request(kind, language=language)])
    assert desc.kind == kind and desc.language == language
    assert desc.text == desc.text.strip() and desc.text
    assert 1 <= desc.num_tokens <= 12
    _assert_informative(desc.token_ids)
    assert (
        engine.tokenizer.decode(list(desc.token_ids), skip_special_tokens=True).strip() == desc.text
    )
    assert desc.model_name == "PAM-tiny" and desc.random_weights is True
    assert 0 < desc.time_to_first_token_s <= desc.latency_s
    if kind == "category":
        assert desc.label  # the whole answer is the label
    if kind in ("category", "explain") or desc.label is not None:
        assert desc.label is None or desc.label in desc.text


def test_different_objects_get_different_answers(engine: SemanticEngine) -> None:
    first, second = engine.describe([_request("caption", seed=1), _request("caption", seed=2)])
    assert first.token_ids != second.token_ids


def test_batched_requests_equal_one_by_one(engine: SemanticEngine) -> None:
    requests = [
        _request("category", seed=1),
        _request("caption", seed=2, language="zh"),
        _request("category", seed=3),
        _request("explain", seed=4, max_new_tokens=12),
        _request("video_caption", seed=5, history="A dog runs to the left."),
        _request("video_caption", seed=6),
        _request("detailed_caption", seed=7, max_new_tokens=9),
    ]
    batched = engine.describe(requests)
    single = [engine.describe([r])[0] for r in requests]
    assert [d.kind for d in batched] == [r.kind for r in requests]
    for b, s in zip(batched, single, strict=True):
        assert b.token_ids == s.token_ids
        assert b.text == s.text


def test_batches_larger_than_the_limit_are_split(checkpoint: Path) -> None:
    from pam_ros.semantics import GenerationSettings

    small = SemanticEngine.from_pretrained(
        checkpoint, generation=GenerationSettings(max_batch_size=2)
    )
    requests = [_request("category", seed=s) for s in range(5)]
    assert [d.token_ids for d in small.describe(requests)] == [
        small.describe([r])[0].token_ids for r in requests
    ]


def test_stream_yields_the_same_text_in_pieces(engine: SemanticEngine) -> None:
    request = _request("caption", seed=3, max_new_tokens=10)
    pieces = list(engine.stream(request))
    [desc] = engine.describe([request])
    assert len(pieces) > 1
    assert "".join(pieces) == desc.text
    for seed in range(4):  # other answers, zh too; each joins to exactly its text
        for language in ("en", "zh"):
            request = _request("category", seed=20 + seed, language=language)
            [desc] = engine.describe([request])
            assert "".join(engine.stream(request)) == desc.text


def test_strip_stream_joins_to_the_stripped_text() -> None:
    from pam_ros.semantics.engine import strip_stream

    raw = ["", " ", " A", " red", " ", "cup ", "\n", " ", "!", " \n "]
    pieces = list(strip_stream(raw))
    assert "".join(pieces) == "".join(raw).strip() == "A red cup \n !"
    assert all(pieces) and pieces[0] == "A"
    assert list(strip_stream(["  ", ""])) == []


def test_greedy_kv_cache_and_official_penalty_match_a_plain_loop(checkpoint: Path) -> None:
    # Reference: recompute the whole sequence each step, apply the penalty to generated
    # tokens only (spec 6), take the argmax.
    engine = SemanticEngine.from_pretrained(checkpoint, decoding="official")
    assert engine.generation.repetition_penalty == pytest.approx(1.05)
    request = _request("detailed_caption", seed=8, max_new_tokens=16)
    [desc] = engine.describe([request])
    prepared = engine._prepare(0, request)
    lm = engine.model.language_model
    with torch.no_grad():
        embeds, _ = engine._batch_inputs([prepared])
        generated: list[int] = []
        for _ in range(16):
            tail = engine.model.embed_text(torch.tensor(generated, dtype=torch.long)).unsqueeze(0)
            logits = lm(inputs_embeds=torch.cat([embeds, tail], dim=1)).logits[0, -1]
            if generated:
                seen = torch.tensor(sorted(set(generated)))
                scores = logits[seen]
                logits[seen] = torch.where(scores < 0, scores * 1.05, scores / 1.05)
            token = int(logits.argmax())
            if token in engine.stop_token_ids:
                break
            generated.append(token)
    assert desc.token_ids == tuple(generated)


def test_prompts_are_the_spec_strings() -> None:
    assert chat_prompt("category", "en") == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<image>\n"
        "Classify this subject and provide its label.<|im_end|>\n<|im_start|>assistant\n"
    )
    assert "<image>\n对该目标对象进行分类并提供标签和名词功能解释<|im_end|>" in chat_prompt(
        "explain", "zh"
    )
    video = chat_prompt("video_caption", "en")
    assert (
        "Provide a caption for this subject in this video.\nPrevious caption: None<|im_end|>"
        in video
    )
    assert "历史描述：无<|im_end|>" in chat_prompt("video_caption", "zh", history="  ")
    streamed = chat_prompt("video_caption", "en", history="A man opens a door.")
    assert "Previous caption: A man opens a door.<|im_end|>" in streamed


def test_history_reaches_the_model(engine: SemanticEngine) -> None:
    plain = _request("video_caption", seed=9)
    with_history = _request("video_caption", seed=9, history="A red car turns left.")
    a = engine._batch_inputs([engine._prepare(0, plain)])[0]
    b = engine._batch_inputs([engine._prepare(0, with_history)])[0]
    assert b.shape[1] > a.shape[1]


def test_video_frame_selection_follows_the_spec() -> None:
    assert select_video_frames(16) == list(range(16))
    assert select_video_frames(32) == [0, *np.linspace(1, 31, 15).astype(int).tolist()]
    assert select_video_frames(5) == [0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3, 3, 4]
    assert select_video_frames(1) == [0] * 16


def test_more_than_16_frames_are_sampled(engine: SemanticEngine) -> None:
    frames = _features(40, seed=10)
    request = DescribeRequest("video_caption", frames, max_new_tokens=4)
    prepared = engine._prepare(0, request)
    assert [f.frame_index for f in prepared.frames] == select_video_frames(40)


def test_short_clip_needs_permission(engine: SemanticEngine) -> None:
    frames = _features(10, seed=11)
    with pytest.raises(NotEnoughFramesError, match=r"got 10 \(6 missing\).*allow_short=True"):
        engine.describe([DescribeRequest("video_caption", frames)])
    [desc] = engine.describe(
        [DescribeRequest("video_caption", frames, max_new_tokens=6, allow_short=True)]
    )
    assert desc.text and desc.num_tokens >= 1


def test_bad_requests_raise_clear_errors_and_the_engine_keeps_working(
    engine: SemanticEngine,
) -> None:
    good = _request("category", seed=12)
    [before] = engine.describe([good])
    feats = _features(1)
    bad = [
        (DescribeRequest("colour", feats), UnknownKindError, "unknown kind 'colour'"),
        (DescribeRequest("caption", feats, language="fr"), InvalidRequestError, "language"),
        (
            DescribeRequest("caption", feats, max_new_tokens=0),
            InvalidRequestError,
            "max_new_tokens",
        ),
        (DescribeRequest("caption", feats, history="x"), InvalidRequestError, "history"),
        (DescribeRequest("caption", []), InvalidFeaturesError, "non-empty"),
        (DescribeRequest("caption", _features(2)), InvalidFeaturesError, "one frame"),
        (
            DescribeRequest("caption", [torch.zeros(256, 16, 16)]),
            InvalidFeaturesError,
            "RegionFeatures",
        ),
        (
            DescribeRequest(
                "caption", [RegionFeatures(torch.zeros(128, 16, 16), torch.zeros(2, 128), 0)]
            ),
            InvalidFeaturesError,
            r"\(256, S, S\), got \(128, 16, 16\)",
        ),
        (
            DescribeRequest(
                "caption", [RegionFeatures(torch.zeros(256, 18, 18), torch.zeros(2, 256), 0)]
            ),
            InvalidFeaturesError,
            "multiple of 4",
        ),
        (
            DescribeRequest(
                "caption",
                [RegionFeatures(torch.full((256, 16, 16), float("nan")), torch.zeros(2, 256), 0)],
            ),
            InvalidFeaturesError,
            "NaN",
        ),
        (
            DescribeRequest("video_caption", _features(15) + _features(1, grid=32)),
            InvalidFeaturesError,
            "different grids",
        ),
        (DescribeRequest("video_caption", _features(3)), NotEnoughFramesError, "13 missing"),
    ]
    for request, error, message in bad:
        with pytest.raises(error, match=message):
            engine.describe([good, request])  # a bad request anywhere stops the batch up front
        assert issubclass(error, SemanticsError)
    with pytest.raises(UnknownKindError):
        engine.stream(DescribeRequest("colour", feats))
    [after] = engine.describe([good])
    assert after.token_ids == before.token_ids


def test_explain_answers_are_parsed_loosely() -> None:
    parsed = parse_explain("Cup: a small open container. It is used for drinking hot liquids.")
    assert parsed.label == "Cup"
    assert parsed.definition == "a small open container."
    assert parsed.function == "It is used for drinking hot liquids."
    fields = parse_explain("Label: chair. Definition: a seat for one person. Function: sitting.")
    assert (fields.label, fields.definition, fields.function) == (
        "chair.",
        "a seat for one person.",
        "sitting.",
    )
    zh = parse_explain("杯子：一种小型容器。用于盛放饮料。")
    assert (
        zh.label == "杯子" and zh.definition == "一种小型容器。" and zh.function == "用于盛放饮料。"
    )
    loose = parse_explain("something without structure")
    assert loose.label is None and loose.definition == "something without structure"
    assert parse_label("Label: red mug.") == "red mug"
    assert parse_label("traffic cone") == "traffic cone"


def test_release_frees_the_model(checkpoint: Path) -> None:
    engine = SemanticEngine.from_pretrained(checkpoint)
    engine.release()
    assert engine.model is None
    with pytest.raises(EngineReleasedError, match="released"):
        engine.describe([_request("category")])


def test_bfloat16_path_runs_end_to_end(checkpoint: Path) -> None:
    # The CUDA default dtype, exercised on CPU: features, perceiver and LLM all in bf16.
    engine = SemanticEngine.from_pretrained(checkpoint, dtype="bfloat16")
    request = _request("video_caption", seed=13)
    block = engine.visual_block(request)
    assert block.dtype == torch.bfloat16 and block.shape == (video_block_length(16), 64)
    assert torch.isfinite(block.float()).all()
    [desc] = engine.describe([request])
    _assert_informative(desc.token_ids)
    pe = engine.model.visual.vision_resampler.pe_layer.positional_encoding_gaussian_matrix
    assert pe.dtype == torch.bfloat16


def test_batched_official_decoding_equals_one_by_one(checkpoint: Path) -> None:
    # Rows of different prompt lengths are left-padded; the penalty must see each row's
    # generated tokens from its first one on, as one-by-one decoding does.
    # The checkpoint's 1.05 and a strong 1.5 (which makes a skipped penalty show at once).
    from pam_ros.semantics import GenerationSettings

    official = SemanticEngine.from_pretrained(checkpoint, decoding="official")
    strong = SemanticEngine.from_pretrained(
        checkpoint, generation=GenerationSettings(repetition_penalty=1.5)
    )
    requests = [
        _request("category", seed=s, max_new_tokens=20)
        if s % 2
        else _request("caption", seed=s, language="zh", max_new_tokens=20)
        for s in range(6)
    ]
    requests.append(_request("explain", seed=7, max_new_tokens=20))
    for engine in (official, strong):
        batched = engine.describe(requests)
        single = [engine.describe([r])[0] for r in requests]
        for b, s in zip(batched, single, strict=True):
            _assert_informative(s.token_ids)
            assert b.token_ids == s.token_ids


def test_checkpoint_without_a_penalty_uses_transformers_default(tmp_path: Path) -> None:
    folder = write_random_checkpoint(tmp_path / "PAM-tiny", size="tiny", seed=0)
    (folder / "generation_config.json").unlink(missing_ok=True)
    engine = SemanticEngine.from_pretrained(folder, decoding="official")
    assert engine.generation.repetition_penalty == 1.0
    import json

    (folder / "generation_config.json").write_text(json.dumps({"top_k": 20}))
    engine = SemanticEngine.from_pretrained(folder, decoding="official")
    assert engine.generation.repetition_penalty == 1.0


def test_kinds_of_one_object_share_the_visual_block_and_prefix(engine: SemanticEngine) -> None:
    # Four image kinds of three objects (same RegionFeatures per object): one perceiver pass per
    # object and one prefix prefill per object, reused by every kind; ids equal recomputing.
    objects = [_features(1, seed=30 + i) for i in range(3)]
    kinds = ("category", "explain", "caption", "detailed_caption")
    requests = [
        DescribeRequest(kind, feats, max_new_tokens=10) for feats in objects for kind in kinds
    ]
    requests.append(DescribeRequest("category", objects[0], language="zh", max_new_tokens=10))
    calls = {"perceiver": 0, "prefill_rows": 0}
    resampler = engine.model.visual.vision_resampler
    hooks = [
        resampler.register_forward_hook(
            lambda m, a, o: calls.__setitem__("perceiver", calls["perceiver"] + a[0].shape[0])
        )
    ]
    used = []
    build = engine._batch_cache
    engine._batch_cache = lambda *a: used.append(build(*a)) or used[-1]
    try:
        shared = engine.describe(requests)
    finally:
        del engine._batch_cache
        for hook in hooks:
            hook.remove()
    assert calls["perceiver"] == 3  # one row per object, not per kind
    assert len(used) == 5 and all(c is not None for c in used)  # every generate reused it
    engine.share_prefix = False
    try:
        recomputed = [engine.describe([r])[0] for r in requests]
    finally:
        engine.share_prefix = True
    prepared = [engine._prepare(i, r) for i, r in enumerate(requests)]
    blocks = engine._shared_blocks(prepared)
    assert len(blocks) == 3
    prefixes = engine._shared_prefixes(prepared, blocks)
    assert len(prefixes) == 3 and len({id(c) for c, _ in prefixes.values()}) == 1  # one prefill
    for s, r in zip(shared, recomputed, strict=True):
        _assert_informative(r.token_ids)
        assert s.token_ids == r.token_ids and s.text == r.text


def test_stream_cancel_stops_generation_and_frees_the_engine(engine: SemanticEngine) -> None:
    import threading

    cancel = threading.Event()
    request = _request("detailed_caption", seed=40, max_new_tokens=2000)
    pieces = []
    for piece in engine.stream(request, cancel=cancel):
        pieces.append(piece)
        if len(pieces) == 3:
            cancel.set()
    assert 3 <= len(pieces) < 50  # stopped within a few tokens of the cancel, not at 2000
    [desc] = engine.describe([_request("category", seed=41)])  # the engine is free
    _assert_informative(desc.token_ids)
