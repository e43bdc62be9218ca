"""The accelerator rules every model shares (no ROS): CUDA streams per role, the dtype choice,
and forgetting compiled code. On the CPU every helper here is a no-op or a plain answer.

Streams. The tracking thread and the semantics worker both queue kernels; on CUDA's one
default stream a frame's kernels wait behind the LLM's decode steps, and every `.cpu()` of the
tracker waits for LLM work queued before it. `role_stream("tracking", device)` and
`role_stream("semantics", device)` run each role on its own stream (created once per role and
device). Work that reads another role's tensors first orders itself after that role's queued
work on the GPU (`wait_for_role`, no host sync), and marks the tensors as used on its stream
(`keep_for_current_stream`) so the caching allocator does not hand their memory back to the
producer while they are still read.

Dtype. "auto" is bfloat16 only where the device computes it (`torch.cuda.is_bf16_supported()`:
Ampere and newer, Orin; not Xavier, T4, V100), else float16 for the models known to be stable
in it (`FLOAT16_STABLE`: none yet), else float32; `choose_dtype` says which and why, from
injected capability answers so the rule is tested without a GPU.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch

logger = logging.getLogger(__name__)

ROLES = ("tracking", "semantics", "discovery")  # discovery: passes beside tracking

# Which models "auto" runs in float16 where the device does not compute bfloat16. Neither is
# verified on such a GPU yet, so both stay float32 there (correct, slower); `bench/gpu_check.py`
# measures float16 against float32 for both (parity "float16_vs_float32", agreement "float16")
# and a model is switched here once its figures hold:
# - tracker: SAM 2 under autocast (matmuls and convolutions in the low dtype, softmax and norms
#   in float32); its attention logits can exceed float16's range (65,504) where bfloat16 keeps
#   float32's;
# - semantics: the Qwen2 LLM's weights would be float16 end to end (no autocast): activations
#   can overflow to inf / NaN.
# "float16" asked for explicitly is always honoured.
FLOAT16_STABLE = {"tracker": False, "semantics": False}

_NAMES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class DtypeChoice:
    dtype: torch.dtype
    reason: str

    @property
    def name(self) -> str:
        return str(self.dtype).removeprefix("torch.")


def choose_dtype(
    requested: str,
    device: str | torch.device,
    model: str = "tracker",
    *,
    is_available: Callable[[], bool] | None = None,
    is_bf16_supported: Callable[[], bool] | None = None,
) -> DtypeChoice:
    """The compute dtype of `model` ("tracker" or "semantics") on `device` for `requested`
    ("auto", "float32", "bfloat16", "float16").

    is_available / is_bf16_supported: the CUDA capability answers (default: torch.cuda's); tests
    inject them.
    """
    if requested != "auto":
        if requested not in _NAMES:
            raise ValueError(f"dtype must be 'auto' or one of {sorted(_NAMES)}, got {requested!r}")
        return DtypeChoice(_NAMES[requested], "asked for")
    device = torch.device(device)
    if device.type != "cuda":
        return DtypeChoice(torch.float32, f"auto on {device.type}: float32")
    available = (is_available or torch.cuda.is_available)()
    if not available:
        return DtypeChoice(torch.float32, "auto: CUDA not available, float32")
    supported = (is_bf16_supported or _bf16_supported)()
    if supported:
        return DtypeChoice(torch.bfloat16, "auto: the CUDA device computes bfloat16")
    if FLOAT16_STABLE.get(model, False):
        return DtypeChoice(
            torch.float16, f"auto: no bfloat16 on this CUDA device; the {model} runs in float16"
        )
    return DtypeChoice(
        torch.float32,
        f"auto: no bfloat16 on this CUDA device and the {model} is not verified stable in "
        "float16: float32",
    )


def _bf16_supported() -> bool:
    # including_emulation=False: emulated bf16 (pre-Ampere) is slow and not what "auto" wants
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # older torch without the argument
        return bool(torch.cuda.is_bf16_supported())


def log_dtype_choices(requested: str, device: str, models: Iterable[str]) -> str:
    """One log line saying what "auto" (or the asked dtype) gives each model and why."""
    parts = []
    for model in models:
        choice = choose_dtype(requested, device, model)
        parts.append(f"{model} {choice.name} ({choice.reason})")
    line = f"dtype {requested} on {device}: " + "; ".join(parts)
    logger.info(line)
    return line


# ---------------------------------------------------------------- streams

_streams: dict[tuple[str, str], torch.cuda.Stream] = {}
_streams_lock = threading.Lock()


def _stream_of(role: str, device: torch.device):
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    index = device.index if device.index is not None else torch.cuda.current_device()
    key = (role, f"cuda:{index}")
    with _streams_lock:
        stream = _streams.get(key)
        if stream is None:
            stream = _streams[key] = torch.cuda.Stream(device=index)
        return stream


def uses_streams(device: str | torch.device) -> bool:
    device = torch.device(device)
    return device.type == "cuda" and torch.cuda.is_available()


@contextlib.contextmanager
def role_stream(role: str, device: str | torch.device) -> Iterator[None]:
    """Run the block's kernels on `role`'s own CUDA stream; a no-op on the CPU.

    Re-entering the same role's stream (nested calls) is cheap."""
    device = torch.device(device)
    if not uses_streams(device):
        yield
        return
    stream = _stream_of(role, device)
    with torch.cuda.stream(stream):
        yield


def wait_for_role(role: str, device: str | torch.device) -> None:
    """Order the current stream after `role`'s queued work (on the GPU; no host sync)."""
    device = torch.device(device)
    if not uses_streams(device):
        return
    producer = _stream_of(role, device)
    current = torch.cuda.current_stream(device)
    if producer != current:
        current.wait_stream(producer)


def keep_for_current_stream(tensors: Iterable[torch.Tensor]) -> None:
    """Tell the caching allocator that CUDA `tensors` made on another stream are read on the
    current one, so their memory is not reused before this stream's work is done."""
    for tensor in tensors:
        if tensor.is_cuda:
            tensor.record_stream(torch.cuda.current_stream(tensor.device))


def sync_current_stream(device: str | torch.device) -> None:
    """Wait for the current stream's work only (never the whole device); no-op on the CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.current_stream(device).synchronize()


def all_finite(tensors: list[torch.Tensor]) -> list[bool]:
    """Per tensor: no NaN or inf. One host sync for all of them (not one per tensor)."""
    if not tensors:
        return []
    flags = torch.stack([torch.isfinite(t).all().to(tensors[0].device) for t in tensors])
    return flags.tolist()


# ---------------------------------------------------------------- compile


def forget_compiled_code() -> None:
    """Drop torch.compile's caches (graphs, guards, compiled kernels' references) after the
    compiled models are released; harmless when nothing was compiled."""
    dynamo = getattr(torch, "_dynamo", None)
    if dynamo is not None:
        dynamo.reset()
