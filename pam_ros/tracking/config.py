"""Configuration of the streaming tracker."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from pam_ros.core.vocabulary import DTYPES, ENCODER_BACKENDS, MODEL_SIZES, ONNX_PROVIDERS
from pam_ros.tracking.errors import TrackerConfigError

# model size -> (sam2's packaged SAM 2.1 hydra config, official checkpoint file name)
SAM2_1_CONFIGS = {
    "tiny": ("configs/sam2.1/sam2.1_hiera_t.yaml", "sam2.1_hiera_tiny.pt"),
    "small": ("configs/sam2.1/sam2.1_hiera_s.yaml", "sam2.1_hiera_small.pt"),
    "base_plus": ("configs/sam2.1/sam2.1_hiera_b+.yaml", "sam2.1_hiera_base_plus.pt"),
    "large": ("configs/sam2.1/sam2.1_hiera_l.yaml", "sam2.1_hiera_large.pt"),
}

CHECKPOINT_BASE_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/092824/"

# The number of memory frames the official SAM 2.1 checkpoints were trained with; the
# temporal position table `maskmem_tpos_enc` has this many rows.
OFFICIAL_NUM_MASKMEM = 7


def default_checkpoint_dir() -> Path:
    import os

    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return Path(os.environ.get("PAM_ROS_CHECKPOINT_DIR", cache / "pam_ros" / "checkpoints"))


@dataclass
class TrackerConfig:
    """Everything that decides how the tracker is built and how much it remembers.

    model_size: SAM 2.1 variant: "tiny", "small", "base_plus" or "large".
    image_size: side of the square model input in pixels (multiple of 32; 1024 is what the
        official checkpoints were trained at, 512 suits a Jetson, 256 suits CPU tests).
    checkpoint: path to an official `sam2.1_hiera_*.pt` (weights under "model"); a path
        that does not exist is an error (never downloaded into). None looks in
        `checkpoint_dir` and downloads there where a network exists and allow_download.
    device: "cpu", "cuda" or "cuda:N".
    dtype: "auto" (autocast in bfloat16 on CUDA devices that compute it, else float32:
        `pam_ros.core.accelerator.choose_dtype`), "float32", "bfloat16" or "float16".
    num_maskmem: memory frames attended to per object (the prompt frame + num_maskmem - 1
        most recent frames). Official checkpoints need 7.
    max_obj_ptrs: object pointers attended to per object (prompt frame's + most recent).
    feature_history: decoder-tap frames kept per object for the semantic engine.
    compile: torch.compile the image encoder and memory attention.
    random_weights: build a seeded, randomly initialised model instead of loading weights
        (tests, benchmarks); see `pam_ros.testing.random_sam2`.
    seed: seed of the random weights.
    checkpoint_dir: where checkpoints are looked for / downloaded to when `checkpoint` is None.
    allow_download: fetch a missing official checkpoint from CHECKPOINT_BASE_URL.
    resize: how frames that are not image_size x image_size are resized on the device:
        "pil" (default) equals sam2's offline loader (PIL uint8 bicubic) bit for bit;
        "float" is torch's antialiased float bicubic (no uint8 rounding between passes).
    encoder_backend: who runs the image encoder: "torch" (default) or "onnxruntime" (the
        file `onnx_path` written by `python -m pam_ros.tracking.export_onnx`; the rest of
        SAM 2 stays in PyTorch). See `pam_ros.tracking.onnx_encoder`.
    onnx_path: the exported encoder (its metadata must match model_size, image_size and the
        checkpoint's weights).
    onnx_providers: ONNX Runtime execution providers tried in order; those this onnxruntime
        build lacks are skipped, and GPU providers are skipped when device is "cpu".
    onnx_trt_cache_dir: TensorRT engine + timing cache folder (None: no cache, TensorRT
        rebuilds its engine on every start, minutes on a Jetson).
    onnx_trt_fp16: let TensorRT build fp16 kernels.
    """

    model_size: str = "large"
    image_size: int = 1024
    checkpoint: str | Path | None = None
    device: str = "cpu"
    dtype: str = "auto"
    num_maskmem: int = 7
    max_obj_ptrs: int = 16
    feature_history: int = 16
    compile: bool = False
    random_weights: bool = False
    seed: int = 0
    checkpoint_dir: str | Path = field(default_factory=default_checkpoint_dir)
    allow_download: bool = True
    resize: str = "pil"
    encoder_backend: str = "torch"
    onnx_path: str | Path | None = None
    onnx_providers: tuple[str, ...] = ONNX_PROVIDERS
    onnx_trt_cache_dir: str | Path | None = None
    onnx_trt_fp16: bool = False

    def __post_init__(self) -> None:
        if self.model_size not in MODEL_SIZES:
            raise TrackerConfigError(
                f"model_size must be one of {MODEL_SIZES}, got {self.model_size!r}"
            )
        if not isinstance(self.image_size, int) or self.image_size < 64 or self.image_size % 32:
            raise TrackerConfigError(
                f"image_size must be a multiple of 32 and at least 64, got {self.image_size!r}"
            )
        if self.dtype not in DTYPES:
            raise TrackerConfigError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if not 1 <= self.num_maskmem <= OFFICIAL_NUM_MASKMEM:
            raise TrackerConfigError(
                f"num_maskmem must be in 1..{OFFICIAL_NUM_MASKMEM}, got {self.num_maskmem}"
            )
        if self.max_obj_ptrs < 1:
            raise TrackerConfigError(f"max_obj_ptrs must be >= 1, got {self.max_obj_ptrs}")
        if self.feature_history < 1:
            raise TrackerConfigError(f"feature_history must be >= 1, got {self.feature_history}")
        if self.resize not in ("pil", "float"):
            raise TrackerConfigError(f"resize must be 'pil' or 'float', got {self.resize!r}")
        if self.encoder_backend not in ENCODER_BACKENDS:
            raise TrackerConfigError(
                f"encoder_backend must be one of {ENCODER_BACKENDS}, got {self.encoder_backend!r}"
            )
        self.onnx_providers = tuple(str(p) for p in self.onnx_providers)
        try:
            torch.device(self.device)
        except RuntimeError as err:
            raise TrackerConfigError(f"device {self.device!r} is not a torch device") from err

    @property
    def hydra_config(self) -> str:
        return SAM2_1_CONFIGS[self.model_size][0]

    @property
    def checkpoint_filename(self) -> str:
        return SAM2_1_CONFIGS[self.model_size][1]

    @property
    def checkpoint_url(self) -> str:
        return CHECKPOINT_BASE_URL + self.checkpoint_filename

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device)

    @property
    def compute_dtype(self) -> torch.dtype:
        """The autocast dtype (`pam_ros.core.accelerator.choose_dtype`): under "auto" bfloat16
        on CUDA devices that compute it, else float32."""
        from pam_ros.core.accelerator import choose_dtype

        return choose_dtype(self.dtype, self.torch_device, "tracker").dtype
