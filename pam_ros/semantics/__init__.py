"""PAM's semantic half: Semantic Perceiver + projectors + a stock Qwen2 LLM (no ROS).

    from pam_ros.semantics import SemanticEngine, DescribeRequest, KINDS
    engine = SemanticEngine.from_pretrained("path/to/PAM-1.5B", device="cuda")
    [desc] = engine.describe([DescribeRequest("category", [tracker.latest_features(obj)])])

See docs/architecture.md (pam_ros.semantics) for the contract.
"""

from .checkpoint import LoadReport, load_pam_checkpoint, resolve_checkpoint_dir
from .config import PamConfig, PerceiverConfig
from .engine import (
    DEFAULT_MAX_NEW_TOKENS,
    VIDEO_FRAMES,
    DescribeRequest,
    Description,
    GenerationSettings,
    SemanticEngine,
    select_video_frames,
)
from .errors import (
    CheckpointError,
    CheckpointNotFoundError,
    EngineReleasedError,
    InvalidFeaturesError,
    InvalidRequestError,
    NotEnoughFramesError,
    SemanticsError,
    UnknownKindError,
)
from .prompts import INSTRUCTIONS, KINDS, LANGUAGES

__all__ = [
    "DEFAULT_MAX_NEW_TOKENS",
    "INSTRUCTIONS",
    "KINDS",
    "LANGUAGES",
    "VIDEO_FRAMES",
    "CheckpointError",
    "CheckpointNotFoundError",
    "DescribeRequest",
    "Description",
    "EngineReleasedError",
    "GenerationSettings",
    "InvalidFeaturesError",
    "InvalidRequestError",
    "LoadReport",
    "NotEnoughFramesError",
    "PamConfig",
    "PerceiverConfig",
    "SemanticEngine",
    "SemanticsError",
    "UnknownKindError",
    "load_pam_checkpoint",
    "resolve_checkpoint_dir",
    "select_video_frames",
]
