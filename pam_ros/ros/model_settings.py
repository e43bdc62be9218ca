"""The node's parameters → the settings of the one model factory (`pam_ros.pipeline.models`).

The node (on configure) and the bag tool (from its options) both go through `model_settings`,
so the same parameter values build the same tracker, engine and scheduler.
"""

from __future__ import annotations

from pam_ros.pipeline.models import ModelSettings, resolve_device
from pam_ros.pipeline.semantics_scheduler import SchedulerConfig
from pam_ros.ros.parameters import NodeParameters


def model_settings(params: NodeParameters) -> ModelSettings:
    """The node's parameters → the settings of pam_ros.pipeline.models (as the bag tool's)."""
    from pam_ros.tracking import TrackerConfig

    if params.semantics_enabled and not params.semantics_model_path:
        raise FileNotFoundError(
            "semantics.model_path is empty: give a PAM checkpoint folder (e.g. PAM-1.5B) "
            "or set semantics.enabled:=false"
        )
    return ModelSettings(
        tracker=TrackerConfig(
            model_size=params.tracker_model_size,
            image_size=params.tracker_image_size,
            checkpoint=params.tracker_checkpoint or None,
            device=resolve_device(params.device),
            dtype=params.dtype,
            num_maskmem=params.tracker_num_maskmem,
            max_obj_ptrs=params.tracker_max_obj_ptrs,
            compile=params.compile,
            random_weights=params.tracker_random_weights,
            allow_download=params.tracker_allow_download,
            resize=params.tracker_resize,
            encoder_backend=params.tracker_encoder_backend,
            onnx_path=params.tracker_onnx_path or None,
            onnx_providers=tuple(params.tracker_onnx_providers),
            onnx_trt_cache_dir=params.tracker_onnx_trt_cache_dir or None,
            onnx_trt_fp16=params.tracker_onnx_trt_fp16,
        ),
        semantics_model=params.semantics_model_path if params.semantics_enabled else "",
        scheduler=scheduler_config(params),
    )


def scheduler_config(params: NodeParameters) -> SchedulerConfig:
    return SchedulerConfig(
        rate_hz=params.semantic_rate_hz,
        refresh_period_s=params.refresh_period_s,
        appearance_change_threshold=params.appearance_change_threshold,
        video_segment_frames=params.video_caption_segment_frames,
        kinds=tuple(params.semantic_kinds),
        language=params.language,
        max_new_tokens=params.max_new_tokens or None,
        max_batch_size=params.max_batch_size,
    )


def discovery_config(params: NodeParameters):
    """The discovery.* parameters -> pam_ros.tracking.DiscoveryConfig (a pass's settings)."""
    from pam_ros.tracking import DiscoveryConfig

    return DiscoveryConfig(
        points_per_side=params.discovery_points_per_side,
        pred_iou_thresh=params.discovery_pred_iou_thresh,
        stability_score_thresh=params.discovery_stability_score_thresh,
        stability_score_offset=params.discovery_stability_score_offset,
        box_nms_thresh=params.discovery_box_nms_thresh,
        min_area_fraction=params.discovery_min_area_fraction,
        max_area_fraction=params.discovery_max_area_fraction,
        max_overlap_with_tracked=params.discovery_max_overlap_with_tracked,
    )
