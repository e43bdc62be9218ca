"""The one factory of the models: tracker + semantic engine + scheduler from one settings object.

The node (on configure) and the bag tool both build their models here, so the same settings
give the same models in both. No ROS: the node maps its parameters to `ModelSettings`.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pam_ros.core.accelerator import forget_compiled_code, log_dtype_choices
from pam_ros.core.vocabulary import ENGINE_MAX_BATCH_SIZE
from pam_ros.pipeline.semantics_scheduler import SchedulerConfig, SemanticsScheduler

if TYPE_CHECKING:  # torch and sam2 load when models are built, not when settings are made
    from pam_ros.tracking import MultiStreamTracker, TrackerConfig


@dataclass(frozen=True)
class ModelSettings:
    """Everything that decides which models are built and how.

    tracker: the SAM 2 tracker (a torch device: resolve "auto" with `resolve_device` first);
        `random_weights=True` builds a seeded random model (`pam_ros.testing`, tests only).
    semantics_model: a PAM checkpoint folder or hub id; "" builds no engine and no scheduler.
    scheduler: how the semantic worker schedules descriptions.
    """

    tracker: TrackerConfig
    semantics_model: str = ""
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)


@dataclass
class Models:
    """What `build_models` built; `release()` drops and frees all of it."""

    device: str
    tracker: MultiStreamTracker
    engine: object | None = None  # pam_ros.semantics.SemanticEngine
    scheduler: SemanticsScheduler | None = None

    def release(self) -> None:
        """Stop the scheduler, release both models and drop every reference to them (compiled
        code included); `give_back_memory(device)` then returns the freed memory."""
        if self.scheduler is not None:
            self.scheduler.stop()
        if self.tracker is not None:
            self.tracker.release()
        if self.engine is not None:
            self.engine.release()
        self.tracker = self.engine = self.scheduler = None
        forget_compiled_code()


class DeviceUnavailableError(ValueError):
    """A CUDA device was asked for where there is none."""


def resolve_device(device: str) -> str:
    """ "auto" → "cuda" where a CUDA device is available, else "cpu"; others unchanged, after
    checking that a "cuda" / "cuda:N" device exists (DeviceUnavailableError says why not)."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            why = (
                f"this torch ({torch.__version__}) was built without CUDA"
                if torch.version.cuda is None
                else "no CUDA device is visible (see nvidia-smi and CUDA_VISIBLE_DEVICES)"
            )
            raise DeviceUnavailableError(
                f"device {device!r} asked for, but {why}; use cpu, or auto to take a GPU "
                "where there is one"
            )
        index, count = torch.device(device).index, torch.cuda.device_count()
        if index is not None and index >= count:
            raise DeviceUnavailableError(
                f"device {device!r} asked for, but there are {count} CUDA device(s) (cuda:0 .. "
                f"cuda:{count - 1})"
            )
    return device


def build_tracker(config: TrackerConfig) -> MultiStreamTracker:
    """The tracker of `config` (device already resolved): real weights, or random ones."""
    from pam_ros.tracking import MultiStreamTracker

    if config.random_weights:
        from pam_ros.testing.random_sam2 import random_sam2_on_device
        from pam_ros.tracking.onnx_encoder import attach_encoder_backend

        model = attach_encoder_backend(random_sam2_on_device(config), config)
        return MultiStreamTracker(model, config)
    return MultiStreamTracker.from_config(config)


def build_models(
    settings: ModelSettings,
    *,
    log_error: Callable[[str], None] | None = None,
    clock: Callable[[], float] | None = None,
) -> Models:
    """Build tracker, engine and scheduler (scheduler not started).

    `log_error`: where the scheduler reports a failed description; `clock`: the scheduler's
    clock (a `StreamClock` for bag time; default monotonic). On any error, what was already
    built is released before the error propagates.
    """
    device = resolve_device(settings.tracker.device)
    tracker_config = dataclasses.replace(
        settings.tracker,
        device=device,
        checkpoint=os.path.expanduser(settings.tracker.checkpoint or "") or None,
    )
    log_dtype_choices(
        tracker_config.dtype,
        device,
        ("tracker", "semantics") if settings.semantics_model else ("tracker",),
    )
    tracker = build_tracker(tracker_config)
    engine = None
    try:
        if settings.semantics_model:
            from pam_ros.semantics import GenerationSettings, SemanticEngine

            engine = SemanticEngine.from_pretrained(
                os.path.expanduser(settings.semantics_model),
                device=device,
                dtype=tracker_config.dtype,
                compile=tracker_config.compile,
                warmup_grid_size=tracker_config.image_size // 16,
                generation=GenerationSettings(max_batch_size=ENGINE_MAX_BATCH_SIZE),
            )
            scheduler = SemanticsScheduler(
                engine, settings.scheduler, log_error=log_error, clock=clock or time.monotonic
            )
            return Models(device, tracker, engine, scheduler)
        return Models(device, tracker)
    except BaseException:
        tracker.release()
        if engine is not None:
            engine.release()
        raise
