"""Streaming SAM 2 tracking (no ROS): live frames, objects added and removed mid-stream,
bounded memory, and PAM's decoder features per object and frame.

    from pam_ros.tracking import TrackerConfig, StreamingTracker
    tracker = StreamingTracker.from_config(TrackerConfig(model_size="tiny", image_size=512))
    tracker.track(frame)                      # RGB uint8 (H, W, 3)
    obj = tracker.add_object(points=[(320, 240)], labels=[1])
    result = tracker.track(next_frame)        # result.objects[obj].mask
    for found in tracker.discover(DiscoveryConfig()):  # untracked objects, best first
        tracker.add_object(mask=found.mask)
"""

from pam_ros.tracking.config import TrackerConfig
from pam_ros.tracking.discovery import DiscoveredObject, DiscoveryConfig
from pam_ros.tracking.errors import (
    CheckpointNotFoundError,
    DiscoveryConfigError,
    DuplicateObjectError,
    InvalidFrameError,
    InvalidPromptError,
    NoFrameError,
    TrackerConfigError,
    TrackerError,
    UnknownObjectError,
)
from pam_ros.tracking.multi_stream import (
    DuplicateStreamError,
    MultiStreamTracker,
    UnknownStreamError,
)
from pam_ros.tracking.streaming_tracker import (
    BoxPrompt,
    DiscoveryInput,
    FrameResult,
    ObjectResult,
    PointPrompt,
    StreamingTracker,
)

__all__ = [
    "BoxPrompt",
    "CheckpointNotFoundError",
    "DiscoveredObject",
    "DiscoveryConfig",
    "DiscoveryConfigError",
    "DiscoveryInput",
    "DuplicateObjectError",
    "DuplicateStreamError",
    "FrameResult",
    "InvalidFrameError",
    "InvalidPromptError",
    "MultiStreamTracker",
    "NoFrameError",
    "ObjectResult",
    "PointPrompt",
    "StreamingTracker",
    "TrackerConfig",
    "TrackerConfigError",
    "TrackerError",
    "UnknownObjectError",
    "UnknownStreamError",
]
