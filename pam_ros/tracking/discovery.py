"""Discovery: SAM 2 automatic mask generation on the tracker's own image features.

A robot needs to find the objects it is not yet tracking. sam2's
`SAM2AutomaticMaskGenerator` does that for one image: it prompts SAM 2 with a grid of single
clicks and keeps the good, distinct masks. It encodes the image again to do so. A tracker has
just encoded the frame (`StreamingTracker` keeps the latest frame's `forward_image` output),
so this pass reuses those features: only the prompt encoder and the mask decoder run.

The pass, for one frame of (H, W) pixels, model input S x S:

1. features as `SAM2ImagePredictor.set_image` prepares them: the lowest-resolution level
   plus `no_mem_embed` (image embedding, (1, 256, S/16, S/16)) and the two high-resolution
   levels (already projected by `conv_s0` / `conv_s1` in `forward_image`);
2. a grid of `points_per_side`^2 clicks over the frame, or over a region of interest;
3. per batch of `points_per_batch` clicks, as `SAM2AutomaticMaskGenerator._process_batch`
   with one crop layer (the whole frame): decode (3 masks per click with multimask output;
   the decoder in two steps, decoder_split.py, so that the masks of clicks with no predicted
   IoU above the threshold are never upscaled, and with the image tokens of the transformer's
   first block projected once for all clicks), keep predicted IoU > `pred_iou_thresh`,
   upsample the survivors' logits to (H, W)
   (bilinear, as sam2 1.1.0), keep stability score >= `stability_score_thresh`, binarise at
   `mask_threshold`, take boxes;
4. this pass's own filters, on the same full-resolution masks: empty masks, the area limits,
   and the overlap with the masks of objects already tracked;
5. box NMS over all batches (`box_nms_thresh`), as sam2's `_process_crop`.

Step 4 runs before NMS (sam2 has no such filters): a candidate that is dropped anyway (the
whole table, a copy of a tracked object) must not suppress a good one with a similar box.
With the area limits and the overlap filter off (0 / 1 / 1) the output equals sam2's
generator with `crop_n_layers=0` on the same features (test_tracking_discovery.py).

Only the candidates' low-resolution logits (S/4 x S/4) are kept across batches; the
full-resolution float logits of at most `points_per_batch` masks exist at a time, and the
final masks are upsampled again (the same deterministic op) after NMS.

NMS is torchvision's (as sam2's generator), imported when a pass runs: tracking itself does
not need torchvision (scripts/setup.sh may leave it out on a CPU machine).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sam2.modeling.sam2_base import SAM2Base
from sam2.utils.amg import batched_mask_to_box, build_point_grid, calculate_stability_score

from pam_ros.tracking.decoder_split import decode_masks, decode_tokens, needed_clicks
from pam_ros.tracking.errors import DiscoveryConfigError, InvalidPromptError, TrackerError


@dataclass(frozen=True)
class DiscoveryConfig:
    """How a discovery pass prompts SAM 2 and which masks it keeps.

    points_per_side: clicks per side of the grid (points_per_side^2 clicks in all). 16
        (256 clicks) finds table-top objects of a few percent of the frame at a quarter of
        sam2's default cost (32); use a region of interest to look closer.
    points_per_batch: clicks decoded together, and masks upsampled together. 16, not
        sam2's 64: the decoder holds a copy of the image tokens per click, and 64 copies
        (67 MB at 512 px) overflow a CPU's cache (a pass took 1.5-2x longer on the
        development CPU); on a GPU 16 costs a few more small launches. Raise it on a GPU
        with memory to spare.
    pred_iou_thresh: keep masks whose predicted IoU is above this (sam2's default 0.8).
    stability_score_thresh: keep masks whose stability score (IoU of the mask thresholded
        at mask_threshold +- stability_score_offset) is at least this (sam2's 0.95).
    stability_score_offset: that offset, in logits (sam2's 1.0).
    mask_threshold: logit above which a pixel belongs to the mask (0.0, as sam2).
    box_nms_thresh: box IoU above which the lower-scored of two masks is dropped (0.7 as
        sam2; 1.0 keeps duplicates).
    min_area_fraction, max_area_fraction: keep masks whose area, as a fraction of the frame,
        lies in [min, max]. 0.001 drops specks (300 pixels of a 640 x 480 frame); 0.5 drops
        floor, wall and table-top masks that a robot does not want as objects. 0 and 1
        turn the limits off.
    max_overlap_with_tracked: drop a mask when more than this fraction of its area is
        covered by masks of objects already tracked (parts and copies of known objects);
        1.0 turns the filter off.
    multimask_output: three masks per click (whole, part, subpart) as sam2's generator;
        False decodes one mask per click (faster, fewer small parts).
    """

    points_per_side: int = 16
    points_per_batch: int = 16
    pred_iou_thresh: float = 0.8
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    mask_threshold: float = 0.0
    box_nms_thresh: float = 0.7
    min_area_fraction: float = 0.001
    max_area_fraction: float = 0.5
    max_overlap_with_tracked: float = 0.3
    multimask_output: bool = True

    def __post_init__(self) -> None:
        for name in ("points_per_side", "points_per_batch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise DiscoveryConfigError(f"{name} must be an integer >= 1, got {value!r}")
        for name in (
            "pred_iou_thresh",
            "stability_score_thresh",
            "box_nms_thresh",
            "min_area_fraction",
            "max_area_fraction",
            "max_overlap_with_tracked",
        ):
            value = getattr(self, name)
            if not _is_real(value) or not 0.0 <= value <= 1.0:
                raise DiscoveryConfigError(f"{name} must be a number in [0, 1], got {value!r}")
        if not _is_real(self.stability_score_offset) or self.stability_score_offset < 0:
            raise DiscoveryConfigError(
                f"stability_score_offset must be a number >= 0 (logits), got "
                f"{self.stability_score_offset!r}"
            )
        if not _is_real(self.mask_threshold):
            raise DiscoveryConfigError(
                f"mask_threshold must be a finite number (a logit), got {self.mask_threshold!r}"
            )
        if self.min_area_fraction >= self.max_area_fraction:
            raise DiscoveryConfigError(
                f"min_area_fraction ({self.min_area_fraction}) must be below max_area_fraction "
                f"({self.max_area_fraction})"
            )
        if not isinstance(self.multimask_output, bool):
            raise DiscoveryConfigError(
                f"multimask_output must be True or False, got {self.multimask_output!r}"
            )


@dataclass
class DiscoveredObject:
    """A mask found by discovery on one frame (not tracked: add it with
    `StreamingTracker.add_object(mask=obj.mask)`).

    mask: bool (H, W) at the frame's resolution.
    box: (x0, y0, x1, y1) of the mask, inclusive-exclusive pixels (as `ObjectResult.box`).
    predicted_iou: the mask decoder's estimate of the mask's quality.
    stability_score: IoU of the mask thresholded at mask_threshold +- stability_score_offset.
    point: the grid click (x, y) in frame pixels that produced the mask.
    area: pixels in the mask.
    """

    mask: np.ndarray
    box: tuple[int, int, int, int]
    predicted_iou: float
    stability_score: float
    point: tuple[float, float]
    area: int


def discover_objects(
    model: SAM2Base,
    backbone_out: dict,
    frame_size: tuple[int, int],
    config: DiscoveryConfig,
    region: Sequence[int] | None = None,
    exclude_masks: Sequence[np.ndarray] = (),
    compute_dtype: torch.dtype = torch.float32,
) -> list[DiscoveredObject]:
    """Find objects on a frame already encoded by `model.forward_image`.

    backbone_out: `forward_image`'s output for the frame (batch of 1), e.g. a tracker's.
    frame_size: (H, W) of the frame in pixels.
    region: (x0, y0, x1, y1) inclusive-exclusive pixels; the click grid covers only it
        (points_per_side^2 clicks inside it). Masks are whole-frame masks all the same.
    exclude_masks: (H, W) bool masks of objects already tracked (`max_overlap_with_tracked`).
    compute_dtype: autocast dtype on the features' device (a tracker's `compute_dtype`).

    Returns the kept masks, best first (predicted IoU, then stability score). The mask
    decoder's submodules run, not its forward (decoder_split.py): of a feature tap's hooks
    only the IoU head's fires; callers holding a recording feature tap pause it all the same.
    """
    if not isinstance(config, DiscoveryConfig):
        raise DiscoveryConfigError(f"config must be a DiscoveryConfig, got {type(config).__name__}")
    height, width = (int(v) for v in frame_size)
    x0, y0, x1, y1 = validate_region(region, width, height)
    device = backbone_out["vision_features"].device
    if backbone_out["vision_features"].shape[0] != 1:
        raise TrackerError("discover_objects takes the backbone output of one frame (batch 1)")
    tracked = _union(exclude_masks, height, width, device)  # (H, W) bool or None
    batched_nms = _batched_nms()

    # grid clicks in frame pixels, (P, 2) (x, y): float64 like sam2's grid, then float32
    grid = build_point_grid(config.points_per_side)  # (P, 2) in [0, 1]
    points = torch.as_tensor(
        grid * np.array([[x1 - x0, y1 - y0]]) + np.array([[x0, y0]]),
        dtype=torch.float32,
        device=device,
    )

    with _inference_context(device, compute_dtype):
        image_embed, high_res_feats = image_predictor_features(model, backbone_out)
        batches = [
            _decode_batch(
                model,
                image_embed,
                high_res_feats,
                points[start : start + config.points_per_batch],
                (height, width),
                config,
                tracked,
            )
            for start in range(0, len(points), config.points_per_batch)
        ]
        found = _Candidates.cat(batches)
        # duplicates across the whole grid (sam2's _process_crop); boxes as sam2's
        # (inclusive max corner)
        keep = batched_nms(
            found.boxes.float(),
            found.iou,
            torch.zeros_like(found.iou, dtype=torch.int64),
            iou_threshold=config.box_nms_thresh,
        )
        found = found.select(keep)
        masks = _frame_masks(found.low_res, height, width, config)  # (N, H, W) bool, CPU
    ious = found.iou.tolist()
    stabilities = found.stability.tolist()
    boxes = found.boxes.tolist()
    areas = found.area.tolist()
    clicks = found.points.tolist()
    objects = [
        DiscoveredObject(
            mask=masks[i],
            box=(int(boxes[i][0]), int(boxes[i][1]), int(boxes[i][2]) + 1, int(boxes[i][3]) + 1),
            predicted_iou=float(ious[i]),
            stability_score=float(stabilities[i]),
            point=(float(clicks[i][0]), float(clicks[i][1])),
            area=int(areas[i]),
        )
        for i in range(len(ious))
    ]
    objects.sort(key=lambda o: (o.predicted_iou, o.stability_score), reverse=True)
    return objects


def image_predictor_features(
    model: SAM2Base, backbone_out: dict
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The decoder's image inputs, as `SAM2ImagePredictor.set_image` prepares them.

    Returns (image embedding (1, 256, S/16, S/16), [high-res level 0 (1, 32, S/4, S/4),
    level 1 (1, 64, S/8, S/8)]) for sam2.1 (the channel counts are the decoder's).
    """
    _, vision_feats, _, feat_sizes = model._prepare_backbone_features(backbone_out)
    # (HW, 1, C) per level; the lowest resolution gets no_mem_embed as on a video's first frame
    if model.directly_add_no_mem_embed:
        vision_feats[-1] = vision_feats[-1] + model.no_mem_embed
    # sam2's predictor views with sizes written for 1024 px; the sizes of the features
    # themselves are right at any image size
    feats = [
        feat.permute(1, 2, 0).view(1, -1, *size)
        for feat, size in zip(vision_feats, feat_sizes, strict=True)
    ]
    return feats[-1], feats[:-1]


def validate_region(
    region: Sequence[int] | None, width: int, height: int
) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) integer pixels inside the frame, non-empty; None is the whole frame."""
    if region is None:
        return 0, 0, width, height
    try:
        values = [float(v) for v in region]
    except (TypeError, ValueError) as err:
        raise InvalidPromptError(f"region must be (x0, y0, x1, y1), got {region!r}") from err
    if len(values) != 4 or not all(math.isfinite(v) and v == int(v) for v in values):
        raise InvalidPromptError(
            f"region must be 4 integer pixel coordinates (x0, y0, x1, y1), got {region!r}"
        )
    x0, y0, x1, y1 = (int(v) for v in values)
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise InvalidPromptError(
            f"region {tuple(region)!r} is empty or outside the {width}x{height} frame: an "
            f"inclusive-exclusive pixel box needs 0 <= x0 < x1 <= {width} and "
            f"0 <= y0 < y1 <= {height}"
        )
    return x0, y0, x1, y1


# ---------------------------------------------------------------------- internals


@dataclass
class _Candidates:
    """Masks kept so far, N of them (tensors on the model's device)."""

    low_res: torch.Tensor  # (N, S/4, S/4) mask logits as decoded
    iou: torch.Tensor  # (N,) float32 predicted IoU
    stability: torch.Tensor  # (N,) float32
    boxes: torch.Tensor  # (N, 4) x0, y0, x1, y1 with inclusive max (sam2's batched_mask_to_box)
    area: torch.Tensor  # (N,) pixels
    points: torch.Tensor  # (N, 2) float32 click (x, y) in frame pixels

    def select(self, index: torch.Tensor) -> _Candidates:
        return _Candidates(*(getattr(self, f)[index] for f in _CANDIDATE_FIELDS))

    @staticmethod
    def cat(parts: list[_Candidates]) -> _Candidates:
        return _Candidates(*(torch.cat([getattr(p, f) for p in parts]) for f in _CANDIDATE_FIELDS))


_CANDIDATE_FIELDS = ("low_res", "iou", "stability", "boxes", "area", "points")


def _decode_batch(
    model: SAM2Base,
    image_embed: torch.Tensor,
    high_res_feats: list[torch.Tensor],
    points: torch.Tensor,
    frame_size: tuple[int, int],
    config: DiscoveryConfig,
    tracked: torch.Tensor | None,
) -> _Candidates:
    """Decode B clicks (B, 2) and keep the masks that pass every per-mask filter."""
    height, width = frame_size
    # sam2's transform_coords: frame pixels -> [0, 1] -> model input pixels
    coords = points / torch.tensor([width, height], dtype=torch.float32, device=points.device)
    coords = coords * model.image_size  # (B, 2)
    labels = torch.ones(len(points), 1, dtype=torch.int32, device=points.device)  # (B, 1)
    sparse, dense = model.sam_prompt_encoder(
        points=(coords[:, None, :], labels), boxes=None, masks=None
    )
    # the mask decoder in two steps: masks are upscaled only for the clicks with an output
    # that can pass the IoU filter (the same masks and IoUs as calling the decoder)
    decoder = model.sam_mask_decoder
    decoded = decode_tokens(
        decoder, image_embed, model.sam_prompt_encoder.get_dense_pe(), sparse, dense
    )  # predicted IoUs (B, 4)
    needed = needed_clicks(
        decoder, decoded.iou_pred, config.multimask_output, config.pred_iou_thresh
    )  # (B,)
    index = needed.nonzero()[:, 0]  # (K,)
    low_res, iou = decode_masks(
        decoder, decoded, index, config.multimask_output, high_res_feats
    )  # (K, M, S/4, S/4), (K, M); M = 3 with multimask output, else 1
    points = points[index]  # (K, 2)
    per_click = low_res.shape[1]
    low_res = low_res.flatten(0, 1)  # (K*M, S/4, S/4)
    iou = iou.flatten(0, 1).float()  # (K*M,)
    points = points.repeat_interleave(per_click, dim=0)  # (K*M, 2)
    # the IoU filter needs no pixels: before upsampling (sam2 upsamples first, same result)
    if config.pred_iou_thresh > 0.0:
        keep = iou > config.pred_iou_thresh
        low_res, iou, points = low_res[keep], iou[keep], points[keep]
    stability, boxes, area, keep = _full_resolution_filters(low_res, frame_size, config, tracked)
    return _Candidates(low_res[keep], iou[keep], stability, boxes, area, points[keep])


def _full_resolution_filters(
    low_res: torch.Tensor,
    frame_size: tuple[int, int],
    config: DiscoveryConfig,
    tracked: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stability, box and area of each mask at frame resolution, and which masks to keep.

    low_res: (N, S/4, S/4). Returns stability (K,), boxes (K, 4), area (K,) of the kept
    masks and the (N,) bool keep mask.
    """
    height, width = frame_size
    frame_area = height * width
    stability, boxes, area = [], [], []
    keep = torch.zeros(len(low_res), dtype=torch.bool, device=low_res.device)
    for start in range(0, len(low_res), config.points_per_batch):
        chunk = slice(start, start + config.points_per_batch)
        logits = _upsample(low_res[chunk], height, width)  # (n, H, W) float32
        chunk_stability = calculate_stability_score(
            logits, config.mask_threshold, config.stability_score_offset
        )  # (n,)
        masks = logits > config.mask_threshold  # (n, H, W)
        del logits
        chunk_area = masks.sum(dim=(1, 2))  # (n,)
        ok = chunk_area > 0  # empty masks are never objects (sam2: NaN stability)
        if config.stability_score_thresh > 0.0:
            ok &= chunk_stability >= config.stability_score_thresh
        if config.min_area_fraction > 0.0:
            ok &= chunk_area >= config.min_area_fraction * frame_area
        if config.max_area_fraction < 1.0:
            ok &= chunk_area <= config.max_area_fraction * frame_area
        if tracked is not None and config.max_overlap_with_tracked < 1.0:
            covered = (masks & tracked).sum(dim=(1, 2))
            ok &= covered <= config.max_overlap_with_tracked * chunk_area
        keep[chunk] = ok
        stability.append(chunk_stability[ok].float())
        boxes.append(batched_mask_to_box(masks[ok]))
        area.append(chunk_area[ok])
    if not stability:  # nothing decoded passed the IoU filter
        empty = low_res.new_zeros(0)
        return empty.float(), empty.new_zeros(0, 4, dtype=torch.int64), empty.long(), keep
    return torch.cat(stability), torch.cat(boxes).long(), torch.cat(area), keep


def _frame_masks(
    low_res: torch.Tensor, height: int, width: int, config: DiscoveryConfig
) -> np.ndarray:
    """(N, S/4, S/4) logits -> (N, H, W) bool masks on the CPU, a chunk at a time."""
    masks = np.zeros((len(low_res), height, width), dtype=bool)
    for start in range(0, len(low_res), config.points_per_batch):
        chunk = low_res[start : start + config.points_per_batch]
        masks[start : start + len(chunk)] = (
            (_upsample(chunk, height, width) > config.mask_threshold).cpu().numpy()
        )
    return masks


def _upsample(low_res: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(n, h, w) logits -> (n, H, W) float32: sam2's `postprocess_masks` resize."""
    return F.interpolate(
        low_res.float()[:, None], (height, width), mode="bilinear", align_corners=False
    )[:, 0]


def _union(masks: Sequence[np.ndarray], height: int, width: int, device) -> torch.Tensor | None:
    """The union of (H, W) masks on `device`, or None when there are none."""
    union = None
    for i, mask in enumerate(masks):
        mask = np.asarray(mask)
        if mask.shape != (height, width):
            raise InvalidPromptError(
                f"exclude mask {i} has shape {mask.shape}, the frame is {(height, width)}"
            )
        union = mask.astype(bool) if union is None else union | mask.astype(bool)
    return None if union is None else torch.from_numpy(union).to(device)


def _batched_nms():
    try:
        from torchvision.ops import batched_nms
    except (ImportError, RuntimeError, OSError) as err:  # also builds whose C++ ops fail
        raise TrackerError(
            f"discovery needs torchvision for box NMS ({err}); install it (scripts/setup.sh: "
            "the torch index's build, or ../shared/torchvision_cpu with a CPU torch)"
        ) from err
    return batched_nms


def _inference_context(device: torch.device, compute_dtype: torch.dtype) -> contextlib.ExitStack:
    stack = contextlib.ExitStack()
    stack.enter_context(torch.inference_mode())
    if compute_dtype != torch.float32:
        stack.enter_context(torch.autocast(device.type, dtype=compute_dtype))
    return stack


def _is_real(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
