"""The names and rules every layer shares, written once (no ROS, no models).

The tracker, the engine, the scheduler, the node's parameters and the tools import these; a
name added here is known everywhere.
"""

from __future__ import annotations

import numpy as np

# SAM 2.1 tracker variants (checkpoints sam2.1_hiera_<size>.pt).
MODEL_SIZES = ("tiny", "small", "base_plus", "large")

# Compute dtypes a user may ask for: "auto" chooses per device (pam_ros.core.accelerator:
# bfloat16 where the CUDA device computes it, else float16 / float32 per model; CPU float32).
DTYPES = ("auto", "float32", "bfloat16", "float16")

# PAM's descriptions (spec 6): the image kinds describe one frame, the video kind 16 frames.
IMAGE_KINDS = ("category", "explain", "caption", "detailed_caption")
VIDEO_KINDS = ("video_caption",)
KINDS = (*IMAGE_KINDS, *VIDEO_KINDS)

# Instruction languages of the official checkpoints.
LANGUAGES = ("en", "zh")

# A video caption reads this many frames (spec 5).
VIDEO_FEATURE_FRAMES = 16

# Rows the semantic engine takes in one generate; the scheduler's max_batch_size is bounded by it.
ENGINE_MAX_BATCH_SIZE = 64


def video_frame_positions(num_frames: int, count: int = VIDEO_FEATURE_FRAMES) -> list[int]:
    """Which of `num_frames` frames a video caption reads: frame 0 plus linspace(1, N-1,
    count-1) truncated to int (spec 5). Fewer than `count` frames repeat some (one frame:
    all zeros)."""
    if num_frames < 1:
        raise ValueError("no frames")
    if num_frames == 1:
        return [0] * count
    rest = np.linspace(1, num_frames - 1, count - 1).astype(int).tolist()
    return [0, *rest]


# Who runs the SAM 2 image encoder (TrackerConfig.encoder_backend, tracker.encoder_backend)
ENCODER_BACKENDS = ("torch", "onnxruntime")
# ONNX Runtime execution providers, best first (those an onnxruntime build lacks are skipped)
ONNX_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
