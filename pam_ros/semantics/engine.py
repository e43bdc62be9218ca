"""SemanticEngine: the tracker's region features in, PAM's text out.

The describe path starts from features the tracker already computed (SAM 2 mask-decoder taps,
`pam_ros.core.features.RegionFeatures`); it never runs a SAM 2 image encoder. Per request:

  features -> perceiver -> re-pack -> projectors -> visual block (1,042 / 5,168 vectors)
  ChatML prompt split at <image> -> token embeddings | visual block | token embeddings
  -> Qwen2ForCausalLM.generate(inputs_embeds=...) (greedy, KV cache) -> text

Several requests go through one `generate` call: their embeddings are left-padded with an
attention mask (transformers derives the position ids from the mask), so a batched answer is
the one-by-one answer.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import json
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import torch
from torch import Tensor
from transformers import (
    DynamicCache,
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    Qwen2ForCausalLM,
    StoppingCriteria,
    StoppingCriteriaList,
    TextIteratorStreamer,
)

from pam_ros.core.accelerator import (
    all_finite,
    choose_dtype,
    forget_compiled_code,
    keep_for_current_stream,
    role_stream,
    sync_current_stream,
    wait_for_role,
)
from pam_ros.core.features import RegionFeatures
from pam_ros.core.vocabulary import video_frame_positions

from .checkpoint import LoadReport, load_pam_checkpoint, resolve_checkpoint_dir
from .config import PamConfig
from .errors import (
    EngineReleasedError,
    InvalidFeaturesError,
    InvalidRequestError,
    NotEnoughFramesError,
    SemanticsError,
    UnknownKindError,
)
from .modeling_pam import PamForCausalLM
from .parsing import parse_explain, parse_label
from .prompts import IMAGE_KINDS, KINDS, LANGUAGES, VIDEO_KINDS, chat_prompt, split_at_image

VIDEO_FRAMES = 16  # frames a video caption reads (spec 5)
QUERY_ABOUT = {"category": "category", "function": "explain"}  # query subject -> instruction
MAX_QUERY_TOKENS = 64  # longest find_objects query
# transformers >= 5.2x calls the KV cache `cache` (argument and output); before, past_key_values.
_CACHE_ARGUMENT = (
    "cache"
    if "cache" in inspect.signature(Qwen2ForCausalLM.forward).parameters
    else "past_key_values"
)

# Per-kind answer limits. The notebooks use 512 for everything; a category is a few words.
DEFAULT_MAX_NEW_TOKENS: dict[str, int] = {
    "category": 24,
    "explain": 128,
    "caption": 64,
    "detailed_caption": 384,
    "video_caption": 192,
}


@dataclass
class DescribeRequest:
    """One object to describe.

    features: 1 RegionFeatures for image kinds; for "video_caption" the object's recent frames,
        oldest first (16 are used: frame 0 + linspace over the rest, spec 5).
    history: the previous segment's caption for streaming video captions (None: "None").
    allow_short: a video caption with fewer than 16 frames repeats frames (same sampling
        rule, so the block keeps its 5,168-vector layout) instead of raising.
    """

    kind: str
    features: Sequence[RegionFeatures]
    language: str = "en"
    history: str | None = None
    max_new_tokens: int | None = None
    allow_short: bool = False


@dataclass(frozen=True)
class Description:
    """One answer. `label`/`definition`/`function` are parsed loosely; `text` is the raw answer."""

    kind: str
    text: str
    label: str | None
    definition: str | None
    function: str | None
    num_tokens: int
    latency_s: float
    time_to_first_token_s: float
    model_name: str
    random_weights: bool
    token_ids: tuple[int, ...] = ()
    language: str = "en"


@dataclass(frozen=True)
class GenerationSettings:
    """How answers are decoded. Greedy by default: the same features give the same text.

    repetition_penalty: 1.0 is pure argmax. The official path applies the checkpoint's
        generation_config penalty (1.05 in the released files; 1.0 when the file has none) to
        the generated tokens only (spec 6), identically in a batch and one by one;
        `SemanticEngine.from_pretrained(decoding="official")` sets it so.
    ignore_eos: generate exactly the token limit (benchmarks only).
    """

    max_new_tokens: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_MAX_NEW_TOKENS))
    repetition_penalty: float = 1.0
    max_batch_size: int = 8
    ignore_eos: bool = False


@dataclass(frozen=True)
class _Prepared:
    """A validated request: the frames that go to the perceiver and the prompt to use."""

    index: int
    kind: str
    language: str
    history: str | None
    max_new_tokens: int
    frames: tuple[RegionFeatures, ...]
    grid_size: int

    @property
    def group_key(self) -> tuple:
        """Requests that share one generate. Image requests also by kind and language: their
        prompts then have one length (no left padding), so a shared prefix cache fits."""
        if self.kind in VIDEO_KINDS:
            return (True, self.grid_size, self.max_new_tokens)
        return (False, self.grid_size, self.max_new_tokens, self.kind, self.language)


class _FirstLogitsClock(LogitsProcessor):
    """Records when the first logits exist (prefill done); passes scores through unchanged."""

    def __init__(self) -> None:
        self.time: float | None = None

    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:
        if self.time is None:
            if scores.is_cuda:  # the prefill kernels are queued: wait for this stream only
                sync_current_stream(scores.device)
            self.time = time.perf_counter()
        return scores


class GeneratedTokensRepetitionPenalty(LogitsProcessor):
    """The official repetition penalty: over each row's generated tokens only (spec 6).

    With `inputs_embeds` and no `input_ids`, `generate` hands logits processors only the
    generated ids, (B, t). transformers' own processor (>= 5) also skips the first
    `prompt_ignore_length` of them, taken from the attention mask's leading zeros, so a
    left-padded row would go unpenalised for its first tokens; this one penalises every
    generated column of every row, as one-by-one decoding does.
    """

    def __init__(self, penalty: float) -> None:
        if not penalty > 0:
            raise InvalidRequestError(f"repetition_penalty must be > 0, got {penalty}")
        self.penalty = float(penalty)

    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:
        if input_ids.shape[-1] == 0:  # the first step: nothing generated yet
            return scores
        seen = torch.gather(scores, 1, input_ids)  # (B, t)
        seen = torch.where(seen < 0, seen * self.penalty, seen / self.penalty)
        return scores.scatter(1, input_ids, seen)


class _Cancelled(StoppingCriteria):
    """Stops every row once `event` is set (checked after each generated token)."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: Tensor, scores: Tensor, **kwargs) -> Tensor:
        return torch.full(
            (input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device
        )


def strip_stream(pieces: Iterable[str]) -> Iterator[str]:
    """Pieces of a streamed text whose concatenation is the text `.strip()`ped.

    Leading whitespace is dropped; whitespace at the end of a piece is held back until more
    text follows it (so none trails the last piece). Empty pieces are skipped.
    """
    started, held = False, ""
    for piece in pieces:
        if not started:
            piece = piece.lstrip()
            if not piece:
                continue
            started = True
        body = piece.rstrip()
        if not body:
            held += piece
            continue
        yield held + body
        held = piece[len(body) :]


def select_video_frames(num_frames: int, num_selected: int = VIDEO_FRAMES) -> list[int]:
    """Frame 0 plus linspace(1, N-1, 15) truncated to int (spec 5). N < 16 repeats frames."""
    return video_frame_positions(num_frames, num_selected)


def _resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return choose_dtype(dtype, device, "semantics").dtype
    except ValueError as err:
        raise InvalidRequestError(str(err)) from None


class SemanticEngine:
    """PAM's perceiver + Qwen2 LLM over tracker features. Thread-safe; one model per engine."""

    def __init__(
        self,
        model: PamForCausalLM,
        tokenizer,
        config: PamConfig,
        device: torch.device,
        dtype: torch.dtype,
        model_name: str,
        generation: GenerationSettings | None = None,
        load_report: LoadReport | None = None,
    ) -> None:
        self.model: PamForCausalLM | None = model
        self.tokenizer = tokenizer
        self.config = config
        self.device = device
        self.dtype = dtype
        self.model_name = model_name
        self.random_weights = config.random_weights
        self.generation = generation or GenerationSettings()
        self.load_report = load_report
        self._lock = threading.Lock()
        stop = [tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")]
        self.stop_token_ids = [i for i in stop if isinstance(i, int) and i >= 0]
        if not self.stop_token_ids:
            raise SemanticsError("the tokenizer has neither <|im_end|> nor <|endoftext|>")
        self.pad_token_id = self.stop_token_ids[-1]
        self._prompt_ids = lru_cache(maxsize=256)(self._tokenize_prompt)
        # Reuse one KV cache of the prefix (system prompt + visual block) across the kinds of
        # one object in a describe call; False recomputes it per kind (benchmarks, checks).
        self.share_prefix = True
        self.compiled = False  # the perceiver is torch.compiled (from_pretrained(compile=True))

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        device: str | torch.device = "cpu",
        dtype: str | torch.dtype = "auto",
        decoding: str = "greedy",
        generation: GenerationSettings | None = None,
        attn_implementation: str = "sdpa",
        compile: bool = False,
        warmup_grid_size: int = 64,
    ) -> SemanticEngine:
        """Load a PAM checkpoint folder (or hub id). dtype "auto": bf16 on CUDA devices that
        compute it, else fp32 (`pam_ros.core.accelerator.choose_dtype`); fp32 on CPU.

        decoding: "greedy" (pure argmax) or "official" (greedy + the checkpoint's repetition
        penalty over generated tokens, reproducing the official output token for token).
        compile: torch.compile the perceiver with dynamic shapes, warmed up here (at load, not
        under the engine lock) at `warmup_grid_size` (image_size / 16 of the tracker).
        """
        device = torch.device(device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise InvalidRequestError("device 'cuda' requested but CUDA is not available")
        if decoding not in ("greedy", "official"):
            raise InvalidRequestError(f"decoding must be 'greedy' or 'official', got {decoding!r}")
        torch_dtype = _resolve_dtype(dtype, device)
        folder = resolve_checkpoint_dir(name_or_path)
        model, tokenizer, config, report = load_pam_checkpoint(
            folder, device, torch_dtype, attn_implementation=attn_implementation
        )
        generation = generation or GenerationSettings()
        if decoding == "official":
            generation = replace(generation, repetition_penalty=_checkpoint_penalty(folder))
        if compile:
            compile_perceiver(model, warmup_grid_size, torch_dtype)
        engine = cls(model, tokenizer, config, device, torch_dtype, folder.name, generation, report)
        engine.compiled = compile
        return engine

    # ------------------------------------------------------------------ public API
    def describe(self, requests: Sequence[DescribeRequest]) -> list[Description]:
        """Answer every request; requests of the same shape share one `generate` call."""
        self._check_alive()
        prepared = [self._prepare(i, r) for i, r in enumerate(requests)]
        results: list[Description | None] = [None] * len(prepared)
        groups: dict[tuple, list[_Prepared]] = {}
        for p in prepared:
            groups.setdefault(p.group_key, []).append(p)
        step = max(1, self.generation.max_batch_size)
        batches = [
            members[start : start + step]
            for members in groups.values()
            for start in range(0, len(members), step)
        ]
        with self._device_work():
            # Work shared by the kinds of one object on one frame, done once for the call.
            blocks = self._shared_blocks(prepared)
            prefixes = self._shared_prefixes(prepared, blocks) if self.share_prefix else {}
            for batch in batches:
                for p, desc in zip(batch, self._run_batch(batch, blocks, prefixes), strict=True):
                    results[p.index] = desc
        return [r for r in results if r is not None]

    def stream(
        self, request: DescribeRequest, cancel: threading.Event | None = None
    ) -> Iterator[str]:
        """Successive pieces of one answer as they are decoded.

        `"".join(pieces)` equals `describe([request])[0].text` (stripped, as `text` is).

        The request is checked now (errors raise here); generation runs in a worker thread.
        Setting `cancel` stops generation after the current token (the pieces then end early)
        and frees the engine at once.
        """
        self._check_alive()
        prepared = self._prepare(0, request)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=False, skip_special_tokens=True)
        failure: list[BaseException] = []

        def work() -> None:
            try:
                with self._device_work():
                    embeds, mask = self._batch_inputs([prepared])
                    self._generate(
                        embeds, mask, prepared.max_new_tokens, streamer=streamer, cancel=cancel
                    )
            except BaseException as exc:  # surfaced in the consumer's thread
                failure.append(exc)
                streamer.end()

        thread = threading.Thread(target=work, name="pam-stream", daemon=True)
        thread.start()

        def pieces() -> Iterator[str]:
            yield from strip_stream(streamer)
            thread.join()
            if failure:
                raise failure[0]

        return pieces()

    def score_query(
        self,
        features: Sequence[RegionFeatures],
        query: str,
        about: str = "category",
        language: str = "en",
    ) -> list[float]:
        """How well `query` answers the category ("category") or explain ("function")
        instruction for each object: the mean log-probability per query token, teacher forced.

        features: one RegionFeatures per object (same grid). Every object goes through one
        batched forward pass (no generation). The category score also counts the end of the
        answer (<|im_end|>: the query is the whole label); the function score reads the query
        as the start of the explain answer. Scores are <= 0; higher is a better match, and
        only scores of the same query are comparable (see README, find_objects).
        """
        self._check_alive()
        if about not in QUERY_ABOUT:
            raise InvalidRequestError(f"about must be one of {QUERY_ABOUT}, got {about!r}")
        if not isinstance(query, str) or not query.strip():
            raise InvalidRequestError("the query is empty; give a few words (e.g. 'a cup')")
        features = list(features) if isinstance(features, Sequence) else []
        if not features:
            raise InvalidRequestError("no objects to score the query against")
        kind = QUERY_ABOUT[about]
        prepared = [
            self._prepare(i, DescribeRequest(kind, [f], language, max_new_tokens=1))
            for i, f in enumerate(features)
        ]
        if len({p.grid_size for p in prepared}) > 1:
            raise InvalidFeaturesError("objects of one query must share a grid size")
        answer = self.tokenizer(query.strip(), add_special_tokens=False)["input_ids"]
        if len(answer) > MAX_QUERY_TOKENS:
            raise InvalidRequestError(
                f"the query is {len(answer)} tokens long; at most {MAX_QUERY_TOKENS}"
            )
        if about == "category":
            answer = [*answer, self.stop_token_ids[0]]
        with self._device_work():
            step = max(1, self.generation.max_batch_size)
            scores: list[float] = []
            for start in range(0, len(prepared), step):
                scores += self._score_batch(prepared[start : start + step], answer)
        return scores

    def _score_batch(self, batch: list[_Prepared], answer: list[int]) -> list[float]:
        embeds, mask = self._batch_inputs(batch, min_new_tokens=len(answer))  # (B, L, H)
        ids = torch.tensor(answer, device=self.device)  # (Q,)
        tail = self.model.embed_text(ids).unsqueeze(0).expand(len(batch), -1, -1)  # (B, Q, H)
        embeds = torch.cat([embeds, tail], dim=1)
        mask = torch.cat([mask, mask.new_ones(len(batch), len(answer))], dim=1)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)  # left padding: rows start at 0
        out = self.model.language_model(
            inputs_embeds=embeds,
            attention_mask=mask,
            position_ids=positions,
            use_cache=False,
            logits_to_keep=len(answer) + 1,
        )
        logits = out.logits[:, :-1].float()  # (B, Q, V): the logits that predict each token
        logp = torch.log_softmax(logits, dim=-1).gather(
            -1, ids.view(1, -1, 1).expand(len(batch), -1, 1)
        )  # (B, Q, 1)
        return logp.squeeze(-1).mean(-1).tolist()

    def visual_block(self, request: DescribeRequest) -> Tensor:
        """The vectors spliced at <image> for one request: (1,042, H) or (5,168, H) at S = 64."""
        self._check_alive()
        prepared = self._prepare(0, request)
        with self._device_work():
            return self._visual_blocks([prepared])[0]

    def _device_work(self) -> contextlib.ExitStack:
        """The engine lock, inference mode and the semantics CUDA stream (ordered after the
        tracking stream's queued work, whose features it reads; no-op streams on the CPU)."""
        stack = contextlib.ExitStack()
        stack.enter_context(self._lock)
        try:
            stack.enter_context(torch.inference_mode())
            stack.enter_context(role_stream("semantics", self.device))
            wait_for_role("tracking", self.device)
        except BaseException:
            stack.close()  # never leave the lock held
            raise
        return stack

    # ------------------------------------------------------------------ shared work
    @staticmethod
    def _frames_key(p: _Prepared) -> tuple:
        """Identifies one object's frames within a call: the kinds of one object on one frame
        (the same RegionFeatures) share a key, hence one visual block and one prefix."""
        frames = tuple((id(f.image_embedding), id(f.mask_tokens)) for f in p.frames)
        return (p.kind in VIDEO_KINDS, frames)

    def _shared_blocks(self, prepared: list[_Prepared]) -> dict[tuple, Tensor]:
        """Visual block per distinct frames key, (L, H) each; the perceiver runs once per
        object and frame however many kinds ask for it (batched across objects)."""
        unique: dict[tuple, _Prepared] = {}
        for p in prepared:
            unique.setdefault(self._frames_key(p), p)
        by_shape: dict[tuple, list[tuple]] = {}
        for key, p in unique.items():
            by_shape.setdefault((key[0], p.grid_size), []).append(key)
        step = max(1, self.generation.max_batch_size)
        blocks: dict[tuple, Tensor] = {}
        for keys in by_shape.values():
            for start in range(0, len(keys), step):
                chunk = keys[start : start + step]
                for key, block in zip(
                    chunk, self._visual_blocks([unique[k] for k in chunk]), strict=True
                ):
                    blocks[key] = block
        return blocks

    def _shared_prefixes(
        self, prepared: list[_Prepared], blocks: dict[tuple, Tensor]
    ) -> dict[tuple, tuple[DynamicCache, int]]:
        """KV cache of the tokens before the instruction (system prompt, user turn, visual
        block: the same for every image kind and language) for each object asked more than
        one image kind in this call: key -> (cache of its prefill batch, row in it)."""
        counts: dict[tuple, int] = {}
        grids: dict[tuple, int] = {}
        for p in prepared:
            if p.kind in IMAGE_KINDS:
                key = self._frames_key(p)
                counts[key] = counts.get(key, 0) + 1
                grids[key] = p.grid_size
        by_grid: dict[int, list[tuple]] = {}
        for key, count in counts.items():
            if count > 1:
                by_grid.setdefault(grids[key], []).append(key)
        ids_before, _ = self._prompt_ids("category", "en", None)  # the same for every kind
        head = self.model.embed_text(torch.tensor(ids_before, device=self.device))  # (T, H)
        step = max(1, self.generation.max_batch_size)
        lm = self.model.language_model
        prefixes: dict[tuple, tuple[DynamicCache, int]] = {}
        for keys in by_grid.values():
            for start in range(0, len(keys), step):
                chunk = keys[start : start + step]
                embeds = torch.stack([torch.cat([head, blocks[k]]) for k in chunk])  # (B, P, H)
                out = lm(inputs_embeds=embeds, use_cache=True, **{_CACHE_ARGUMENT: DynamicCache()})
                cache = getattr(out, _CACHE_ARGUMENT)
                for row, key in enumerate(chunk):
                    prefixes[key] = (cache, row)
        return prefixes

    def _batch_cache(
        self, batch: list[_Prepared], padded: bool, prefixes: dict
    ) -> DynamicCache | None:
        """A cache holding each row's shared prefix, or None where it cannot be used: a row
        without one, or left padding (`padded`: it would shift the prefix's positions)."""
        if not prefixes or padded:
            return None
        entries = [prefixes.get(self._frames_key(p)) for p in batch]
        if any(entry is None for entry in entries):
            return None
        cache = DynamicCache()
        for layer_index in range(len(entries[0][0].layers)):
            keys = torch.cat([c.layers[layer_index].keys[r : r + 1] for c, r in entries])
            values = torch.cat([c.layers[layer_index].values[r : r + 1] for c, r in entries])
            cache.update(keys, values, layer_index)  # (B, kv heads, P, head dim)
        return cache

    def release(self) -> None:
        """Drop the model and free device memory. Further calls raise EngineReleasedError."""
        with self._lock:
            self.model = None
            self.tokenizer = None
            self._prompt_ids.cache_clear()
        if self.compiled:  # dynamo's caches keep the compiled module's code and guards
            # (process-wide: a compiled tracker still in use compiles again on its next frame)
            forget_compiled_code()
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size

    # ------------------------------------------------------------------ validation
    def _check_alive(self) -> None:
        if self.model is None:
            raise EngineReleasedError("the semantic engine was released; build a new one")

    def _prepare(self, index: int, request: DescribeRequest) -> _Prepared:
        where = f"request {index}"
        if not isinstance(request, DescribeRequest):
            raise InvalidRequestError(f"{where}: expected a DescribeRequest, got {type(request)}")
        kind = request.kind
        if kind not in KINDS:
            raise UnknownKindError(f"{where}: unknown kind {kind!r}; expected one of {KINDS}")
        language = request.language.lower() if isinstance(request.language, str) else None
        if language not in LANGUAGES:  # codes are case-insensitive: "EN" is "en"
            raise InvalidRequestError(
                f"{where}: language must be one of {LANGUAGES}, got {request.language!r}"
            )
        if request.history is not None:
            if kind not in VIDEO_KINDS:
                raise InvalidRequestError(f"{where}: history applies to video_caption only")
            if not isinstance(request.history, str):
                raise InvalidRequestError(f"{where}: history must be a str or None")
        limit = request.max_new_tokens
        if limit is None:
            limit = self.generation.max_new_tokens.get(kind, DEFAULT_MAX_NEW_TOKENS[kind])
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidRequestError(
                f"{where}: max_new_tokens must be a positive int, got {limit!r}"
            )

        features = list(request.features) if isinstance(request.features, Sequence) else None
        if not features:
            raise InvalidFeaturesError(
                f"{where}: features must be a non-empty list of RegionFeatures"
            )
        for i, f in enumerate(features):
            if not isinstance(f, RegionFeatures):
                raise InvalidFeaturesError(
                    f"{where}: features[{i}] is {type(f)}, not RegionFeatures"
                )
        if kind in IMAGE_KINDS:
            if len(features) != 1:
                raise InvalidFeaturesError(
                    f"{where}: {kind} reads one frame of features, got {len(features)}"
                )
            frames = features
        else:
            n = len(features)
            if n < VIDEO_FRAMES and not request.allow_short:
                raise NotEnoughFramesError(
                    f"{where}: video_caption needs {VIDEO_FRAMES} frames of features, got {n} "
                    f"({VIDEO_FRAMES - n} missing); wait for more tracked frames or set "
                    "allow_short=True to repeat frames"
                )
            frames = [features[i] for i in select_video_frames(n)]
        grid = self._check_shapes(where, frames)
        return _Prepared(index, kind, language, request.history, limit, tuple(frames), grid)

    def _check_shapes(self, where: str, frames: list[RegionFeatures]) -> int:
        dim = self.config.perceiver.embedding_dim
        num_tokens = self.config.perceiver.num_mask_tokens
        grid = frames[0].image_embedding.shape[-1]
        for f in frames:
            emb, tok = f.image_embedding, f.mask_tokens
            if emb.dim() != 3 or emb.shape[0] != dim or emb.shape[1] != emb.shape[2]:
                raise InvalidFeaturesError(
                    f"{where}: image_embedding must be ({dim}, S, S), got {tuple(emb.shape)}"
                )
            if emb.shape[-1] != grid:
                raise InvalidFeaturesError(
                    f"{where}: frames have different grids ({grid} and {emb.shape[-1]})"
                )
            if grid < 4 or grid % 4:
                raise InvalidFeaturesError(
                    f"{where}: grid size {grid} must be a multiple of 4 (image_size / 16)"
                )
            if tuple(tok.shape) != (num_tokens, dim):
                raise InvalidFeaturesError(
                    f"{where}: mask_tokens must be ({num_tokens}, {dim}), got {tuple(tok.shape)}"
                )
            for name, t in (("image_embedding", emb), ("mask_tokens", tok)):
                if not t.is_floating_point():
                    raise InvalidFeaturesError(
                        f"{where}: {name} must be floating point, got {t.dtype}"
                    )
        # NaN / inf: one fused check and one host sync for all of the request's tensors (on
        # the semantics stream, after the tracker's queued work), not one per tensor
        named = [
            (i, name, t)
            for i, f in enumerate(frames)
            for name, t in (("image_embedding", f.image_embedding), ("mask_tokens", f.mask_tokens))
        ]
        device = frames[0].image_embedding.device
        with torch.inference_mode(), role_stream("semantics", device):
            wait_for_role("tracking", device)
            finite = all_finite([t for _, _, t in named])
        for (i, name, _), ok in zip(named, finite, strict=True):
            if not ok:
                raise InvalidFeaturesError(f"{where}: {name} of frame {i} has NaN or inf values")
        return int(grid)

    # ------------------------------------------------------------------ model work
    def _tokenize_prompt(self, kind: str, language: str, history: str | None) -> tuple[list, list]:
        before, after = split_at_image(chat_prompt(kind, language, history))
        encode = self.tokenizer
        ids_before = encode(before, add_special_tokens=False)["input_ids"]
        ids_after = encode(after, add_special_tokens=False)["input_ids"]
        return ids_before, ids_after

    def _visual_blocks(self, batch: list[_Prepared]) -> Tensor:
        """(B, L, H) visual blocks of same-shape requests."""
        visual = self.model.visual
        # the tracker's tensors, made on its stream, are read on this one
        keep_for_current_stream(
            t for p in batch for f in p.frames for t in (f.image_embedding, f.mask_tokens)
        )
        emb = torch.stack([torch.stack([f.image_embedding for f in p.frames]) for p in batch]).to(
            self.device, self.dtype
        )  # (B, T, 256, S, S)
        tok = torch.stack([torch.stack([f.mask_tokens for f in p.frames]) for p in batch]).to(
            self.device, self.dtype
        )  # (B, T, 2, 256)
        if batch[0].kind in VIDEO_KINDS:
            return visual.video_block(emb, tok)
        return visual.image_block(emb[:, 0], tok[:, 0])

    def _sequence_length(self, p: _Prepared, blocks: dict[tuple, Tensor]) -> int:
        """Vectors of one request's prompt (text + its visual block), from shapes only."""
        ids_before, ids_after = self._prompt_ids(p.kind, p.language, p.history)
        return len(ids_before) + len(ids_after) + blocks[self._frames_key(p)].shape[0]

    def _batch_inputs(
        self,
        batch: list[_Prepared],
        min_new_tokens: int | None = None,
        shared_blocks: dict[tuple, Tensor] | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Left-padded inputs_embeds (B, L, H) and attention mask (B, L)."""
        if shared_blocks is not None:
            blocks = [shared_blocks[self._frames_key(p)] for p in batch]
        else:
            blocks = self._visual_blocks(batch)
        sequences = []
        for p, block in zip(batch, blocks, strict=True):
            ids_before, ids_after = self._prompt_ids(p.kind, p.language, p.history)
            ids = torch.tensor(ids_before + ids_after, device=self.device)
            text = self.model.embed_text(ids)  # (N, H)
            sequences.append(torch.cat([text[: len(ids_before)], block, text[len(ids_before) :]]))
        longest = max(s.shape[0] for s in sequences)
        limit = self.config.text_config.max_position_embeddings
        new_tokens = min_new_tokens if min_new_tokens is not None else batch[0].max_new_tokens
        if longest + new_tokens > limit:
            raise InvalidRequestError(
                f"prompt of {longest} vectors + {new_tokens} new tokens exceeds the "
                f"model's {limit} positions"
            )
        hidden = sequences[0].shape[-1]
        embeds = sequences[0].new_zeros(len(sequences), longest, hidden)
        mask = torch.zeros(len(sequences), longest, dtype=torch.long, device=self.device)
        for row, seq in enumerate(sequences):
            embeds[row, longest - seq.shape[0] :] = seq
            mask[row, longest - seq.shape[0] :] = 1
        return embeds, mask

    def _generate(
        self,
        embeds: Tensor,
        mask: Tensor,
        max_new_tokens: int,
        streamer=None,
        clock: _FirstLogitsClock | None = None,
        cache: DynamicCache | None = None,
        cancel: threading.Event | None = None,
    ) -> Tensor:
        settings = self.generation
        config = GenerationConfig(
            max_new_tokens=max_new_tokens,
            min_new_tokens=max_new_tokens if settings.ignore_eos else 0,
            do_sample=False,
            num_beams=1,
            repetition_penalty=1.0,  # applied by GeneratedTokensRepetitionPenalty below
            eos_token_id=self.stop_token_ids,
            pad_token_id=self.pad_token_id,
            use_cache=True,
        )
        processors = LogitsProcessorList()
        if settings.repetition_penalty != 1.0:
            processors.append(GeneratedTokensRepetitionPenalty(settings.repetition_penalty))
        if clock is not None:
            processors.append(clock)
        return self.model.language_model.generate(
            inputs_embeds=embeds,
            attention_mask=mask,
            generation_config=config,
            logits_processor=processors,
            streamer=streamer,
            stopping_criteria=StoppingCriteriaList([_Cancelled(cancel)] if cancel else []),
            **({_CACHE_ARGUMENT: cache} if cache is not None else {}),
        )  # (B, new tokens): with inputs_embeds only, generate returns the new ids

    def _run_batch(
        self, batch: list[_Prepared], blocks: dict[tuple, Tensor], prefixes: dict
    ) -> list[Description]:
        """One generate over same-shape requests (call under the lock, in inference mode)."""
        start = time.perf_counter()
        embeds, mask = self._batch_inputs(batch, shared_blocks=blocks)
        # rows of different lengths are left-padded: known from the lengths, no host sync
        lengths = {self._sequence_length(p, blocks) for p in batch}
        cache = self._batch_cache(batch, len(lengths) > 1, prefixes)  # prefill only the rest
        clock = _FirstLogitsClock()
        out = self._generate(embeds, mask, batch[0].max_new_tokens, clock=clock, cache=cache)
        rows = out.tolist()  # waits for this (the semantics) stream only
        latency = time.perf_counter() - start
        ttft = (clock.time - start) if clock.time is not None else latency
        descriptions = []
        for p, row in zip(batch, rows, strict=True):
            ids = []
            for token in row:
                if token in self.stop_token_ids:
                    break
                ids.append(token)
            text = self.tokenizer.decode(ids, skip_special_tokens=True).strip()
            descriptions.append(self._describe_text(p, text, ids, latency, ttft))
        return descriptions

    def _describe_text(
        self, p: _Prepared, text: str, ids: list[int], latency: float, ttft: float
    ) -> Description:
        label = definition = function = None
        if p.kind == "category":
            label = parse_label(text)
        elif p.kind == "explain":
            parsed = parse_explain(text)
            label, definition, function = parsed.label, parsed.definition, parsed.function
        return Description(
            kind=p.kind,
            text=text,
            label=label,
            definition=definition,
            function=function,
            num_tokens=len(ids),
            latency_s=latency,
            time_to_first_token_s=ttft,
            model_name=self.model_name,
            random_weights=self.random_weights,
            token_ids=tuple(ids),
            language=p.language,
        )


def compile_perceiver(
    model: PamForCausalLM, grid_size: int, dtype: torch.dtype, backend: str = "inductor"
) -> None:
    """torch.compile the perceiver (the vision resampler) with dynamic shapes, and run it
    once per shape family now: batch 1 (dynamo specialises sizes 0 and 1) and batch 2 (one
    graph for every larger batch: objects, kinds and video rows vary call to call). Later
    calls then find compiled code and never recompile under the engine lock."""
    resampler = model.visual.vision_resampler
    resampler.forward = torch.compile(resampler.forward, dynamic=True, backend=backend)
    device = next(model.parameters()).device
    dim = model.config.perceiver.embedding_dim
    tokens = model.config.perceiver.num_mask_tokens
    with torch.inference_mode():
        for batch in (1, 2):
            resampler(
                torch.zeros(batch, dim, grid_size, grid_size, device=device, dtype=dtype),
                torch.zeros(batch, tokens, dim, device=device, dtype=dtype),
            )


def _checkpoint_penalty(folder: Path) -> float:
    """The repetition penalty of the checkpoint's generation_config.json.

    A file without one (or no file) falls back to transformers' default, 1.0 (no penalty),
    which is what the official `generate` would then use.
    """
    path = folder / "generation_config.json"
    try:
        return float(json.loads(path.read_text()).get("repetition_penalty", 1.0))
    except (OSError, ValueError, AttributeError):
        return 1.0
