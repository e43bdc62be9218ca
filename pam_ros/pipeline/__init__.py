"""pam_ros.pipeline: frames in, tracked objects and semantics out (no ROS).

- `frame_pipeline`: FramePipeline (one camera: tracking, names, hand-over to the scheduler) and
  CameraPipelines (several cameras over one MultiStreamTracker).
- `semantics_scheduler`: which object gets described when, the semantic worker, on-demand
  describe and find_objects.
- `models`: the one factory that builds tracker + engine + scheduler from one settings object
  (used by the node and the bag tool).
- `overlay`: drawing masks, ids and labels; `latest_frame`: the newest-frame slot.
"""

from pam_ros.pipeline.frame_pipeline import (
    BOX_DUPLICATE_IOU,
    ORIGIN_DETECTION,
    ORIGIN_DISCOVERY,
    ORIGIN_PROMPT,
    ORIGINS,
    CameraPipelines,
    DiscoveredAddition,
    DiscoveryOutcome,
    FrameOutput,
    FramePipeline,
    PipelineConfig,
    StreamClock,
    TooManyObjectsError,
    UnknownCameraError,
    box_iou,
)

__all__ = [
    "BOX_DUPLICATE_IOU",
    "ORIGINS",
    "ORIGIN_DETECTION",
    "ORIGIN_DISCOVERY",
    "ORIGIN_PROMPT",
    "CameraPipelines",
    "DiscoveredAddition",
    "DiscoveryOutcome",
    "FrameOutput",
    "FramePipeline",
    "PipelineConfig",
    "StreamClock",
    "TooManyObjectsError",
    "UnknownCameraError",
    "box_iou",
]
