"""A streaming SAM 2 tracker: live frames, objects added and removed mid-stream, bounded memory.

sam2's `SAM2VideoPredictor` preloads a whole video and keeps every frame's output. This
tracker drives the same model step (`SAM2Base.track_step`) one frame at a time and keeps,
per object, only what the next step can read:

- the prompt (conditioning) frame's memory and object pointer;
- the memory of the last `num_maskmem - 1` frames;
- the object pointers of the last `max_obj_ptrs - 1` frames;
- the decoder-tap features of the last `feature_history` frames (for the semantic engine).

One image-encoder pass per frame is shared by all objects. Objects prompted on the same
frame have the same memory timeline, so they form a *cohort* whose memory attention, mask
decoding and memory encoding run as one batch through sam2.

Memory features are stored in bfloat16 and the prompt frame's memory is encoded from the
binarised mask, as sam2's video predictor does, so a stream reproduces its masks.
"""

from __future__ import annotations

import contextlib
import itertools
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from sam2.modeling.sam2_base import SAM2Base

from pam_ros.core.accelerator import keep_for_current_stream, role_stream, wait_for_role
from pam_ros.core.features import RegionFeatures
from pam_ros.tracking.config import TrackerConfig
from pam_ros.tracking.discovery import DiscoveredObject, DiscoveryConfig, discover_objects
from pam_ros.tracking.errors import (
    DuplicateObjectError,
    InvalidPromptError,
    NoFrameError,
    TrackerError,
    UnknownObjectError,
)
from pam_ros.tracking.feature_tap import DecoderTap, MaskDecoderFeatureTap
from pam_ros.tracking.model_builder import build_sam2_model
from pam_ros.tracking.preprocess import FramePreprocessor, host_tensor, validate_frame

# sam2 bounds the object-pointer window by min(num_frames, max_obj_ptrs_in_encoder); a
# stream has no end, so the window is always max_obj_ptrs.
STREAM_NUM_FRAMES = 2**62

# Labels of sam2's point prompts: box corners are points with labels 2 and 3.
BOX_TOP_LEFT_LABEL, BOX_BOTTOM_RIGHT_LABEL = 2, 3


@dataclass(frozen=True)
class PointPrompt:
    """Clicks in frame pixels: points (N, 2) as (x, y), labels (N,) 1 = object, 0 = not."""

    points: tuple[tuple[float, float], ...]
    labels: tuple[int, ...]


@dataclass(frozen=True)
class BoxPrompt:
    """A box (x0, y0, x1, y1) in integer frame pixels, inclusive-exclusive (x0 <= x < x1),
    the convention of `ObjectResult.box` and of RegionOfInterest (x_offset, x_offset + width)."""

    box: tuple[int, int, int, int]


@dataclass
class ObjectResult:
    """One object on one frame.

    mask: bool (H, W) at the frame's resolution.
    score: the object-score logit (> 0: present).
    box: (x0, y0, x1, y1) of the mask, inclusive-exclusive pixels; None for an empty mask.
    mask_logits: float32 (S/4, S/4) low-resolution mask logits on the CPU (an extension:
        the raw model output, e.g. for parity checks or soft overlays).
    """

    object_id: str
    mask: np.ndarray
    score: float
    present: bool
    box: tuple[int, int, int, int] | None
    mask_logits: torch.Tensor | None = None


@dataclass
class FrameResult:
    frame_index: int
    objects: dict[str, ObjectResult] = field(default_factory=dict)
    stamp_ns: int = 0


@dataclass(frozen=True)
class DiscoveryInput:
    """A tracked frame as a discovery pass reads it (`StreamingTracker.discovery_input`)."""

    frame_index: int
    backbone_out: dict  # sam2's forward_image output for the frame (batch of 1)
    frame_size: tuple[int, int]  # (H, W)
    tracked_masks: list  # (H, W) bool masks of the objects tracked on that frame


@dataclass
class _Frame:
    """The most recent frame: what `add_object` prompts on."""

    index: int
    stamp_ns: int
    height: int
    width: int
    backbone_out: dict  # sam2's forward_image output for a batch of 1


@dataclass
class _Cohort:
    """Objects prompted on the same frame, tracked as one batch.

    memory: sam2's per-object `output_dict` layout, each tensor batched over `object_ids`:
      {"cond_frame_outputs": {frame: out}, "non_cond_frame_outputs": {frame: out}}
      out: maskmem_features (B, 64, S, S) bf16, maskmem_pos_enc [(B, 64, S, S)],
           obj_ptr (B, 256)  (frames only in the pointer window keep only obj_ptr)
    """

    object_ids: list[str]
    prompt_frame: int
    memory: dict[str, dict[int, dict]]


class StreamingTracker:
    """Tracks any number of objects over an endless stream of RGB uint8 frames."""

    def __init__(self, model: SAM2Base, config: TrackerConfig) -> None:
        self.config = config
        self.model = model
        self.device = config.torch_device
        self.compute_dtype = config.compute_dtype
        self.image_size = model.image_size
        self.preprocess = FramePreprocessor(self.image_size, self.device, config.resize)
        self.feature_tap = MaskDecoderFeatureTap(model.sam_mask_decoder)
        if config.compile:
            self._compile()
        self._cohorts: list[_Cohort] = []
        self._histories: dict[str, deque[RegionFeatures]] = {}
        self._frame: _Frame | None = None
        self._last_result: FrameResult | None = None
        self._next_frame_index = 0
        self._id_counter = itertools.count(1)
        self._maskmem_pos_enc: list[torch.Tensor] | None = None  # the same for all frames

    @classmethod
    def from_config(cls, config: TrackerConfig) -> StreamingTracker:
        """Build the model (loading or downloading its checkpoint) and the tracker."""
        return cls(build_sam2_model(config), config)

    # ------------------------------------------------------------------ public API

    @property
    def object_ids(self) -> list[str]:
        return [obj_id for cohort in self._cohorts for obj_id in cohort.object_ids]

    @property
    def last_result(self) -> FrameResult | None:
        return self._last_result

    def track(self, frame: np.ndarray | torch.Tensor, stamp_ns: int = 0) -> FrameResult:
        """Encode `frame` once and advance every object by one frame."""
        self._check_alive()
        height, width = validate_frame(frame)
        with self._inference_context():
            image = self.preprocess(frame)  # (1, 3, S, S)
            backbone_out = self.model.forward_image(image)
        return self.track_encoded(backbone_out, height, width, stamp_ns)

    def track_encoded(
        self, backbone_out: dict, height: int, width: int, stamp_ns: int = 0
    ) -> FrameResult:
        """Advance every object by one frame whose image encoding is already done.

        backbone_out: sam2's `forward_image` output for this one frame (batch of 1), e.g. a
        slice of a batched encoder pass shared by several streams (`MultiStreamTracker`);
        (height, width): the frame's size in pixels. `track` is `forward_image` + this.
        """
        self._check_alive()
        frame_index = self._next_frame_index
        with self._inference_context():
            self._frame = _Frame(frame_index, int(stamp_ns), height, width, backbone_out)
            self._next_frame_index += 1
            result = FrameResult(frame_index, {}, int(stamp_ns))
            for cohort in self._cohorts:
                outputs, tap = self._step(cohort, is_prompt_frame=False, point_inputs=None)
                cohort.memory["non_cond_frame_outputs"][frame_index] = outputs
                self._forget_old_frames(cohort, frame_index)
                result.objects.update(self._results(cohort.object_ids, outputs, height, width))
                self._record_features(cohort.object_ids, tap)
        self._last_result = result
        return result

    def add_object(
        self,
        points: Sequence[Sequence[float]] | None = None,
        labels: Sequence[int] | None = None,
        box: Sequence[float] | None = None,
        object_id: str | None = None,
        mask: np.ndarray | torch.Tensor | None = None,
    ) -> str:
        """Prompt a new object on the most recent tracked frame; return its id.

        points: [(x, y), ...] in frame pixels, 0 <= x < W and 0 <= y < H, with labels
        [1 | 0, ...]; box: (x0, y0, x1, y1) integer pixels, inclusive-exclusive (it covers
        x0 <= x < x1, y0 <= y < y1: the convention of `ObjectResult.box`, so a result's box
        fed back as a prompt is the same box; converted to sam2's corner points (x0, y0),
        (x1 - 1, y1 - 1) here); either or both. Or instead mask: (H, W) bool (or integer,
        nonzero = object) at the frame's size, e.g. a `DiscoveredObject.mask`; as sam2's
        `SAM2VideoPredictor.add_new_mask`, the mask is the object's output on this frame
        (resized to the model's input) and nothing is decoded from clicks. The object's
        result on this frame is added to `last_result` at once, and it is tracked from the
        next frame on.
        """
        self._check_alive()
        if self._frame is None:
            raise NoFrameError("add_object needs a frame to prompt on: call track(frame) first")
        point_inputs = mask_inputs = None
        with role_stream("tracking", self.device):  # the prompt's tensors on tracking's stream
            if mask is not None:
                if points is not None or labels is not None or box is not None:
                    raise InvalidPromptError(
                        "add_object takes either a mask or points / a box, not both"
                    )
                mask_inputs = self._mask_prompt(mask)  # (1, 1, S, S) float 0 / 1
            else:
                point_inputs = self._point_prompt(points, labels, box)
        if object_id is None:
            object_id = self._generate_id()
        else:
            object_id = str(object_id)
            if object_id in self.object_ids:
                raise DuplicateObjectError(f"object id {object_id!r} is already tracked")
        frame = self._frame
        cohort = _Cohort(
            [object_id], frame.index, {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}
        )
        with self._inference_context():
            outputs, tap = self._step(
                cohort, is_prompt_frame=True, point_inputs=point_inputs, mask_inputs=mask_inputs
            )
            cohort.memory["cond_frame_outputs"][frame.index] = outputs
            self._join_cohorts(cohort)
            results = self._results([object_id], outputs, frame.height, frame.width)
            self._histories[object_id] = deque(maxlen=self.config.feature_history)
            self._record_features([object_id], tap)
        last = self._last_result
        if last is None or last.frame_index != frame.index:
            last = FrameResult(frame.index, {}, frame.stamp_ns)
        self._last_result = replace(last, objects={**last.objects, **results})
        return object_id

    def discovery_input(self) -> DiscoveryInput:
        """What a discovery pass on the most recent tracked frame needs, taken at once.

        Take it where tracking cannot run meanwhile (e.g. under the lock that guards the
        tracker); `discover(..., frame=it)` can then run without that lock, beside tracking:
        it only reads these tensors and the model's weights, and the feature tap records only
        the tracking thread's decoder calls.
        """
        self._check_alive()
        if self._frame is None:
            raise NoFrameError("discover needs a frame to look at: call track(frame) first")
        frame, last = self._frame, self._last_result
        tracked = (
            [r.mask for r in last.objects.values()]
            if last is not None and last.frame_index == frame.index
            else []
        )
        return DiscoveryInput(frame.index, frame.backbone_out, (frame.height, frame.width), tracked)

    def discover(
        self,
        config: DiscoveryConfig | None = None,
        region: Sequence[int] | None = None,
        frame: DiscoveryInput | None = None,
    ) -> list[DiscoveredObject]:
        """Find untracked objects on the most recent tracked frame (see `discovery`).

        Runs SAM 2's automatic mask generation on the frame's features already computed by
        `track` (no second image-encoder pass). Masks mostly covered by objects tracked on
        that frame are left out (`DiscoveryConfig.max_overlap_with_tracked`). region:
        (x0, y0, x1, y1) inclusive-exclusive pixels to lay the click grid over; frame: a
        `discovery_input()` taken earlier (default: taken now). Adds no object and changes no
        object's features; returns the masks best first.
        """
        self._check_alive()
        config = DiscoveryConfig() if config is None else config
        frame = self.discovery_input() if frame is None else frame
        # Its own CUDA stream (a pass beside tracking must not queue behind or ahead of it),
        # ordered after the tracking work that made the frame's features.
        with self.feature_tap.paused(), role_stream("discovery", self.device):
            wait_for_role("tracking", self.device)
            keep_for_current_stream(_tensors_in(frame.backbone_out))
            return discover_objects(
                self.model,
                frame.backbone_out,
                frame.frame_size,
                config,
                region=region,
                exclude_masks=frame.tracked_masks,
                compute_dtype=self.compute_dtype,
            )

    def remove_object(self, object_id: str) -> None:
        """Stop tracking `object_id` and forget everything held for it."""
        self._check_alive()
        cohort, row = self._find(object_id)
        if len(cohort.object_ids) == 1:
            self._cohorts.remove(cohort)
        else:
            keep = [i for i in range(len(cohort.object_ids)) if i != row]
            cohort.object_ids.pop(row)
            cohort.memory = _select_rows(cohort.memory, keep)
            self._share_pos_enc(cohort)
        del self._histories[object_id]
        if self._last_result is not None and object_id in self._last_result.objects:
            objects = {k: v for k, v in self._last_result.objects.items() if k != object_id}
            self._last_result = replace(self._last_result, objects=objects)

    def reset(self) -> None:
        """Forget every object and frame (the model stays loaded)."""
        self._check_alive()
        self._cohorts = []
        self._histories = {}
        self._frame = None
        self._last_result = None
        self._next_frame_index = 0
        self._id_counter = itertools.count(1)
        self._maskmem_pos_enc = None

    def latest_features(self, object_id: str) -> RegionFeatures:
        self._find(object_id)
        return self._histories[object_id][-1]

    def feature_history(self, object_id: str) -> list[RegionFeatures]:
        """The object's decoder-tap features, oldest first, at most `feature_history`."""
        self._find(object_id)
        return list(self._histories[object_id])

    def release(self) -> None:
        """Drop the model and every tensor held; free cached device memory."""
        if self.model is None:
            return
        self.feature_tap.remove()
        self._cohorts, self._histories, self._frame, self._last_result = [], {}, None, None
        self._maskmem_pos_enc = None
        self.model = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def memory_summary(self, object_id: str) -> dict[str, list[int]]:
        """Which frames the object's memory holds: the prompt frame(s), the frames whose
        memory features are kept and the frames whose object pointers are kept."""
        cohort, _ = self._find(object_id)
        frames = cohort.memory["non_cond_frame_outputs"]
        return {
            "prompt_frames": sorted(cohort.memory["cond_frame_outputs"]),
            "memory_frames": sorted(t for t, out in frames.items() if "maskmem_features" in out),
            "pointer_frames": sorted(t for t, out in frames.items() if "obj_ptr" in out),
        }

    def held_tensors(self) -> list[torch.Tensor]:
        """Every tensor the tracker holds between frames (for memory accounting)."""
        found: list[torch.Tensor] = []
        for cohort in self._cohorts:
            found.extend(_tensors_in(cohort.memory))
        for history in self._histories.values():
            for features in history:
                found.extend([features.image_embedding, features.mask_tokens])
        if self._frame is not None:
            found.extend(_tensors_in(self._frame.backbone_out))
        if self._last_result is not None:
            found.extend(
                r.mask_logits
                for r in self._last_result.objects.values()
                if r.mask_logits is not None
            )
        if self._maskmem_pos_enc is not None:
            found.extend(self._maskmem_pos_enc)
        return found

    def held_bytes(self) -> int:
        """Bytes of the distinct tensor storages the tracker holds between frames."""
        storages = {}
        for tensor in self.held_tensors():
            storage = tensor.untyped_storage()
            storages[(storage.data_ptr(), tensor.device)] = storage.nbytes()
        return sum(storages.values())

    # ------------------------------------------------------------------ model steps

    def _step(
        self,
        cohort: _Cohort,
        is_prompt_frame: bool,
        point_inputs: dict | None,
        mask_inputs: torch.Tensor | None = None,
    ) -> tuple[dict, DecoderTap]:
        """Run sam2's track_step for a cohort on the current frame.

        Returns the compact outputs kept as memory (plus pred_masks and
        object_score_logits for the results) and the decoder tap.
        """
        frame = self._frame
        batch = len(cohort.object_ids)
        vision_feats, vision_pos, feat_sizes = self._expanded_features(frame.backbone_out, batch)
        self.feature_tap.start()
        try:
            out = self.model.track_step(
                frame_idx=frame.index,
                is_init_cond_frame=is_prompt_frame,
                current_vision_feats=vision_feats,
                current_vision_pos_embeds=vision_pos,
                feat_sizes=feat_sizes,
                point_inputs=point_inputs,
                mask_inputs=mask_inputs,
                output_dict=cohort.memory,
                num_frames=STREAM_NUM_FRAMES,
                track_in_reverse=False,
                run_mem_encoder=mask_inputs is None,
            )
        finally:
            taps = self.feature_tap.stop()
        (tap,) = taps  # with a mask prompt: the decoder call that makes its object pointer
        if mask_inputs is not None:
            # sam2's video predictor encodes a mask prompt's memory when propagation starts:
            # from its low-res output upsampled to S x S and binarised like a click's mask
            # (track_step's own encoder would read the +-10 input logits at full size)
            high_res = F.interpolate(
                out["pred_masks"],
                size=(self.image_size, self.image_size),
                mode="bilinear",
                align_corners=False,
            )
            out["maskmem_features"], out["maskmem_pos_enc"] = self.model._encode_new_memory(
                current_vision_feats=vision_feats,
                feat_sizes=feat_sizes,
                pred_masks_high_res=high_res,
                object_score_logits=out["object_score_logits"],
                is_mask_from_pts=True,
            )
        outputs = {
            # stored in bf16 like sam2's video predictor, which this tracker reproduces
            "maskmem_features": out["maskmem_features"].to(torch.bfloat16),
            "maskmem_pos_enc": self._shared_maskmem_pos_enc(out["maskmem_pos_enc"], batch),
            "obj_ptr": out["obj_ptr"],  # (B, 256)
            "pred_masks": out["pred_masks"],  # (B, 1, S/4, S/4) low-res logits
            "object_score_logits": out["object_score_logits"],  # (B, 1)
        }
        return outputs, tap

    def _expanded_features(self, backbone_out: dict, batch: int):
        """The frame's backbone features, expanded (not copied) to `batch` objects."""
        expanded = {
            "backbone_fpn": [x.expand(batch, -1, -1, -1) for x in backbone_out["backbone_fpn"]],
            "vision_pos_enc": [x.expand(batch, -1, -1, -1) for x in backbone_out["vision_pos_enc"]],
        }
        _, vision_feats, vision_pos, feat_sizes = self.model._prepare_backbone_features(expanded)
        return vision_feats, vision_pos, feat_sizes

    def _shared_maskmem_pos_enc(self, pos_enc: list[torch.Tensor], batch: int):
        """The memory position encoding is the same for every frame and object: keep one."""
        if self._maskmem_pos_enc is None:
            self._maskmem_pos_enc = [x[:1].clone() for x in pos_enc]
        return [x.expand(batch, -1, -1, -1) for x in self._maskmem_pos_enc]

    def _share_pos_enc(self, cohort: _Cohort) -> None:
        """Point every stored frame of a re-batched cohort at the one shared encoding."""
        batch = len(cohort.object_ids)
        for frames in cohort.memory.values():
            for out in frames.values():
                if "maskmem_pos_enc" in out:
                    out["maskmem_pos_enc"] = self._shared_maskmem_pos_enc(None, batch)

    def _forget_old_frames(self, cohort: _Cohort, frame_index: int) -> None:
        """Keep what the next frame reads: memory of the last num_maskmem - 1 frames and
        object pointers of the last max_obj_ptrs - 1 frames (plus the prompt frame's)."""
        oldest_memory = frame_index - (self.model.num_maskmem - 1) + 1
        oldest_pointer = frame_index - (self.model.max_obj_ptrs_in_encoder - 1) + 1
        frames = cohort.memory["non_cond_frame_outputs"]
        for t in list(frames):
            if t < oldest_memory and t < oldest_pointer:
                del frames[t]
            elif t < oldest_memory:
                frames[t] = {"obj_ptr": frames[t]["obj_ptr"]}
            elif t < oldest_pointer:
                frames[t] = {k: v for k, v in frames[t].items() if k != "obj_ptr"}
            else:
                frames[t] = {k: v for k, v in frames[t].items() if k not in _RESULT_ONLY}
        # the prompt frame's masks are not read again either
        for t, out in cohort.memory["cond_frame_outputs"].items():
            cohort.memory["cond_frame_outputs"][t] = {
                k: v for k, v in out.items() if k not in _RESULT_ONLY
            }

    def _join_cohorts(self, new: _Cohort) -> None:
        """Batch a newly prompted object with objects prompted on the same frame."""
        for cohort in self._cohorts:
            if (
                cohort.prompt_frame == new.prompt_frame
                and not cohort.memory["non_cond_frame_outputs"]
            ):
                cohort.object_ids.extend(new.object_ids)
                cohort.memory = _concat_rows(cohort.memory, new.memory)
                self._share_pos_enc(cohort)
                return
        self._cohorts.append(new)

    # ------------------------------------------------------------------ results

    def _results(
        self, object_ids: list[str], outputs: dict, height: int, width: int
    ) -> dict[str, ObjectResult]:
        low_res = outputs["pred_masks"].float()  # (B, 1, S/4, S/4)
        frame_logits = F.interpolate(
            low_res, size=(height, width), mode="bilinear", align_corners=False
        )
        masks = (frame_logits[:, 0] > 0).cpu().numpy()  # (B, H, W)
        scores = outputs["object_score_logits"].float()[:, 0].cpu().tolist()
        low_res_cpu = low_res[:, 0].cpu()
        results = {}
        for row, object_id in enumerate(object_ids):
            results[object_id] = ObjectResult(
                object_id=object_id,
                mask=masks[row],
                score=scores[row],
                present=scores[row] > 0,
                box=_mask_box(masks[row]),
                mask_logits=low_res_cpu[row],
            )
        return results

    def _record_features(self, object_ids: list[str], tap: DecoderTap) -> None:
        frame = self._frame
        for row, object_id in enumerate(object_ids):
            self._histories[object_id].append(
                RegionFeatures(
                    # (256, S, S), (2, 256), both in the compute dtype (autocast leaves the
                    # decoder's normalised keys in float32 and its tokens in bfloat16)
                    image_embedding=tap.image_embedding[row].to(self.compute_dtype, copy=True),
                    mask_tokens=tap.mask_tokens[row].to(self.compute_dtype, copy=True),
                    frame_index=frame.index,
                    stamp_ns=frame.stamp_ns,
                )
            )

    # ------------------------------------------------------------------ helpers

    def _point_prompt(self, points, labels, box) -> dict:
        """sam2's point inputs of a click / box prompt on the current frame."""
        prompt_points, prompt_labels = self._validate_prompt(points, labels, box)
        frame = self._frame
        # sam2's prompt geometry: pixels -> [0, 1] -> model input pixels
        coords = torch.tensor(prompt_points, dtype=torch.float32).view(1, -1, 2)
        coords = coords / torch.tensor([frame.width, frame.height]) * self.image_size
        return {
            "point_coords": coords.to(self.device),  # (1, P, 2)
            "point_labels": torch.tensor([prompt_labels], dtype=torch.int32, device=self.device),
        }

    def _mask_prompt(self, mask) -> torch.Tensor:
        """A frame-size mask as sam2's mask input: (1, 1, S, S) float 0 / 1 on the device,
        resized as `SAM2VideoPredictor.add_new_mask` does (antialiased bilinear, >= 0.5)."""
        height, width = self._frame.height, self._frame.width
        if not isinstance(mask, np.ndarray | torch.Tensor):
            raise InvalidPromptError(
                f"mask must be a numpy array or torch tensor, got {type(mask).__name__}"
            )
        if tuple(mask.shape) != (height, width):
            raise InvalidPromptError(
                f"mask must have the frame's shape {(height, width)}, got {tuple(mask.shape)}"
            )
        mask = host_tensor(mask) if isinstance(mask, np.ndarray) else mask
        if mask.is_floating_point() or mask.is_complex():
            raise InvalidPromptError(
                f"mask must be bool (or integer, nonzero = object), got dtype {mask.dtype}"
            )
        mask = mask != 0
        if not bool(mask.any()):
            raise InvalidPromptError("mask is empty: it must cover at least one pixel")
        with torch.inference_mode():
            mask_inputs = mask[None, None].float().to(self.device)  # (1, 1, H, W)
            if (height, width) != (self.image_size, self.image_size):
                mask_inputs = F.interpolate(
                    mask_inputs,
                    size=(self.image_size, self.image_size),
                    align_corners=False,
                    mode="bilinear",
                    antialias=True,
                )
                mask_inputs = (mask_inputs >= 0.5).float()
                if not bool(mask_inputs.any()):
                    raise InvalidPromptError(
                        f"mask covers {int(mask.sum())} pixels, too few to survive resizing "
                        f"to the model's {self.image_size}x{self.image_size} input"
                    )
        return mask_inputs

    def _validate_prompt(self, points, labels, box) -> tuple[list, list]:
        """Check a prompt against the current frame; return sam2 points and labels
        (box corners first, labels 2 and 3, then the clicks)."""
        height, width = self._frame.height, self._frame.width
        if points is None and box is None:
            raise InvalidPromptError("add_object needs points (with labels) or a box")
        if (points is None) != (labels is None):
            raise InvalidPromptError("points and labels must be given together")
        prompt_points, prompt_labels = [], []
        if box is not None:
            x0, y0, x1, y1 = _pixel_box(box)
            if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
                raise InvalidPromptError(
                    f"box {tuple(box)!r} is empty or outside the {width}x{height} frame: an "
                    f"inclusive-exclusive pixel box needs 0 <= x0 < x1 <= {width} and "
                    f"0 <= y0 < y1 <= {height}"
                )
            # sam2's box corners are the first and the last pixel covered
            prompt_points += [(float(x0), float(y0)), (float(x1 - 1), float(y1 - 1))]
            prompt_labels += [BOX_TOP_LEFT_LABEL, BOX_BOTTOM_RIGHT_LABEL]
        if points is not None:
            try:
                clicks = np.asarray(points, dtype=np.float64).reshape(-1, 2)
                click_labels = np.asarray(labels).reshape(-1)
            except (TypeError, ValueError) as err:
                raise InvalidPromptError(
                    f"points must be [(x, y), ...] and labels [int, ...], got {points!r}, "
                    f"{labels!r}"
                ) from err
            if len(clicks) == 0 or len(clicks) != len(click_labels):
                raise InvalidPromptError(
                    f"need one label per point and at least one point: {len(clicks)} points, "
                    f"{len(click_labels)} labels"
                )
            if not np.isin(click_labels, (0, 1)).all():
                raise InvalidPromptError(f"labels must be 1 (object) or 0 (not), got {labels!r}")
            for x, y in clicks:
                _check_inside((x, y), width, height, "point")
            prompt_points += [(float(x), float(y)) for x, y in clicks]
            prompt_labels += [int(v) for v in click_labels]
        return prompt_points, prompt_labels

    def _find(self, object_id: str) -> tuple[_Cohort, int]:
        for cohort in self._cohorts:
            if object_id in cohort.object_ids:
                return cohort, cohort.object_ids.index(object_id)
        raise UnknownObjectError(f"unknown object id {object_id!r}; tracked ids: {self.object_ids}")

    def _generate_id(self) -> str:
        taken = set(self.object_ids)
        for n in self._id_counter:
            if str(n) not in taken:
                return str(n)
        raise AssertionError("unreachable")

    def _check_alive(self) -> None:
        if self.model is None:
            raise TrackerError("the tracker was released; build a new one")

    def _inference_context(self) -> contextlib.ExitStack:
        """Inference mode, autocast in the compute dtype, and the tracking CUDA stream (the
        semantic engine runs on its own: a `.cpu()` here waits for tracking work only)."""
        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        stack.enter_context(role_stream("tracking", self.device))
        if self.compute_dtype != torch.float32:
            stack.enter_context(torch.autocast(self.device.type, dtype=self.compute_dtype))
        return stack

    def _compile(self) -> None:
        compile_sam2(self.model, self.compute_dtype)


def compile_sam2(
    model: SAM2Base, compute_dtype: torch.dtype | None = None, backend: str = "inductor"
) -> None:
    """torch.compile the two heaviest parts, with shapes that may vary:

    - the image encoder: the batch is the number of cameras in one pass (the side is fixed);
      automatic dynamic shapes (dynamic=None) compile batch 1 and, on the first other size,
      one graph with a symbolic batch for every larger one (up to 15 cameras); both are
      compiled here (warm-up at build, not on the first frames);
    - memory attention: objects per cohort and memory tokens vary (dynamic=True); compiled
      on the first frames with objects.

    compute_dtype: the autocast dtype the warm-up runs in (the tracker's); None skips it.
    `pam_ros.core.accelerator.forget_compiled_code()` drops the compiled code on release."""
    model.image_encoder.forward = torch.compile(
        model.image_encoder.forward, dynamic=None, backend=backend
    )
    model.memory_attention.forward = torch.compile(
        model.memory_attention.forward, dynamic=True, backend=backend
    )
    if compute_dtype is None:
        return
    device = next(model.parameters()).device
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.inference_mode())
        stack.enter_context(role_stream("tracking", device))
        if compute_dtype != torch.float32:
            stack.enter_context(torch.autocast(device.type, dtype=compute_dtype))
        # twice: the first pass fills sam2's position-encoding cache, which dynamo's guards
        # read, so batch 1 compiles again with the cache filled (then never again)
        for batch in (1, 2, 1, 2):
            model.forward_image(
                torch.zeros(batch, 3, model.image_size, model.image_size, device=device)
            )


# outputs used for the frame's results but never read again as memory
_RESULT_ONLY = ("pred_masks", "object_score_logits")


def _check_inside(point: tuple[float, float], width: int, height: int, what: str) -> None:
    """Frame pixels span [0, W) x [0, H): (W, H) is one past the last pixel."""
    x, y = point
    if not (np.isfinite(x) and np.isfinite(y) and 0 <= x < width and 0 <= y < height):
        raise InvalidPromptError(
            f"{what} ({x:g}, {y:g}) lies outside the {width}x{height} frame "
            f"(need 0 <= x < {width}, 0 <= y < {height})"
        )


def _pixel_box(box) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) as integer pixels (integral floats accepted)."""
    try:
        values = [float(v) for v in box]
    except (TypeError, ValueError) as err:
        raise InvalidPromptError(f"box must be (x0, y0, x1, y1), got {box!r}") from err
    if len(values) != 4 or not all(np.isfinite(v) and v == int(v) for v in values):
        raise InvalidPromptError(
            f"box must be 4 integer pixel coordinates (x0, y0, x1, y1), got {box!r}"
        )
    x0, y0, x1, y1 = (int(v) for v in values)
    return x0, y0, x1, y1


def _mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _tensors_in(tree) -> Iterator[torch.Tensor]:
    if isinstance(tree, torch.Tensor):
        yield tree
    elif isinstance(tree, dict):
        for value in tree.values():
            yield from _tensors_in(value)
    elif isinstance(tree, list | tuple):
        for value in tree:
            yield from _tensors_in(value)


def _map_rows(tree, fn):
    """Apply `fn` to every batched (objects-first) tensor of a memory tree (the shared
    position encoding is left to `_share_pos_enc`)."""
    if isinstance(tree, torch.Tensor):
        return fn(tree)
    if isinstance(tree, dict):
        return {k: v if k == "maskmem_pos_enc" else _map_rows(v, fn) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_map_rows(v, fn) for v in tree]
    return tree


def _select_rows(memory: dict, rows: list[int]) -> dict:
    def select(tensor: torch.Tensor) -> torch.Tensor:
        return tensor[torch.tensor(rows, device=tensor.device)].contiguous()

    return _map_rows(memory, select)


def _concat_rows(first: dict, second: dict) -> dict:
    """Concatenate two cohorts' memories (same frames) along the object dimension."""
    if isinstance(first, torch.Tensor):
        return torch.cat([first, second], dim=0)
    if isinstance(first, dict):
        return {
            k: first[k] if k == "maskmem_pos_enc" else _concat_rows(first[k], second[k])
            for k in first
        }
    if isinstance(first, list):
        return [_concat_rows(a, b) for a, b in zip(first, second, strict=True)]
    return first
