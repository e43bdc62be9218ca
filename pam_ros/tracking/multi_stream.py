"""Several camera streams on one SAM 2 model: per-stream state, shared weights, batched encoder.

A mobile manipulator has a head camera and a wrist camera, often more. One `StreamingTracker`
per camera would each need their own SAM 2 in memory; here the model (its weights, device and
dtype) is built once and every stream is a `StreamingTracker` over that same model, holding
only what is per stream: its frames, objects, memory bank, feature rings and ids.

    tracker = MultiStreamTracker.from_config(TrackerConfig(model_size="large", device="cuda"))
    head, wrist = tracker.add_stream("head"), tracker.add_stream("wrist")
    results = tracker.track({"head": head_rgb, "wrist": wrist_rgb})   # one encoder pass
    mug = head.add_object(points=[(320, 240)], labels=[1])             # per-stream prompts
    results["head"].objects  # FrameResult per stream

When several streams have a frame waiting, their image-encoder passes run as one batch
(frames of any size: each is resized to the model's S x S first); memory attention, mask
decoding and memory encoding stay per stream. A stream's results are exactly those of a
`StreamingTracker` that sees only that stream (same weights, same frames): the encoder treats
each image of a batch independently (checked bit for bit in the tests on the CPU; on a GPU
batched kernels may reorder float sums at the last bit).

Streams are used one at a time (the caller serialises, as the node's tracking thread does):
the feature taps of all streams hook the one shared mask decoder and record only while their
own stream steps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import torch
from sam2.modeling.sam2_base import SAM2Base

from pam_ros.tracking.config import TrackerConfig
from pam_ros.tracking.errors import InvalidFrameError, TrackerError
from pam_ros.tracking.model_builder import build_sam2_model
from pam_ros.tracking.preprocess import validate_frame
from pam_ros.tracking.streaming_tracker import FrameResult, StreamingTracker, compile_sam2


class UnknownStreamError(TrackerError, KeyError):
    """A stream name that was never added (or was removed)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DuplicateStreamError(TrackerError):
    """A stream name that is already in use."""


class MultiStreamTracker:
    """Named streams sharing one SAM 2 model; see the module docstring."""

    def __init__(self, model: SAM2Base, config: TrackerConfig) -> None:
        self.model = model
        self.config = config
        if config.compile:  # once, for every stream
            compile_sam2(model, config.compute_dtype)
        self._stream_config = dataclasses.replace(config, compile=False)
        self._streams: dict[str, StreamingTracker] = {}
        self.encoder_passes = 0  # batched image-encoder calls so far (for tests and stats)
        self.encoded_frames = 0  # frames those calls encoded

    @classmethod
    def from_config(cls, config: TrackerConfig) -> MultiStreamTracker:
        """Build the one model (loading or downloading its checkpoint)."""
        return cls(build_sam2_model(config), config)

    # ------------------------------------------------------------------ streams

    @property
    def stream_names(self) -> list[str]:
        return list(self._streams)

    def add_stream(self, name: str) -> StreamingTracker:
        """A new stream over the shared model; returns its tracker (prompts go to it)."""
        self._check_alive()
        name = str(name)
        if name in self._streams:
            raise DuplicateStreamError(f"stream {name!r} already exists")
        stream = StreamingTracker(self.model, self._stream_config)
        self._streams[name] = stream
        return stream

    def stream(self, name: str) -> StreamingTracker:
        try:
            return self._streams[name]
        except KeyError:
            raise UnknownStreamError(
                f"unknown stream {name!r}; streams: {self.stream_names}"
            ) from None

    def remove_stream(self, name: str) -> None:
        """Forget a stream: its objects, memory and frames (the model stays)."""
        stream = self.stream(name)
        del self._streams[name]
        stream.feature_tap.remove()
        stream.reset()

    # ------------------------------------------------------------------ tracking

    def track(
        self,
        frames: Mapping[str, np.ndarray | torch.Tensor],
        stamps_ns: Mapping[str, int] | None = None,
    ) -> dict[str, FrameResult]:
        """Advance each named stream by its frame: one batched encoder pass for all of them.

        frames: stream name -> RGB uint8 (H, W, 3) (sizes may differ between streams);
        stamps_ns: stream name -> stamp (default 0). Every frame is validated first: a bad
        frame or an unknown name raises before any stream changes.
        """
        self._check_alive()
        stamps_ns = stamps_ns or {}
        sizes = {}
        for name, frame in frames.items():
            self.stream(name)
            try:
                sizes[name] = validate_frame(frame)
            except InvalidFrameError as exc:
                raise InvalidFrameError(f"stream {name!r}: {exc}") from None
        if not frames:
            return {}
        names = list(frames)
        first = self._streams[names[0]]
        with first._inference_context():
            images = torch.cat([first.preprocess(frames[name]) for name in names])  # (N,3,S,S)
            backbone_out = self.model.forward_image(images)
        self.encoder_passes += 1
        self.encoded_frames += len(names)
        results = {}
        for row, name in enumerate(names):
            height, width = sizes[name]
            results[name] = self._streams[name].track_encoded(
                _batch_row(backbone_out, row), height, width, int(stamps_ns.get(name, 0))
            )
        return results

    def held_bytes(self) -> int:
        """Bytes of the distinct tensor storages all streams hold between frames."""
        storages = {}
        for stream in self._streams.values():
            for tensor in stream.held_tensors():
                storage = tensor.untyped_storage()
                storages[(storage.data_ptr(), tensor.device)] = storage.nbytes()
        return sum(storages.values())

    def release(self) -> None:
        """Drop every stream and the model; free cached device memory."""
        for stream in self._streams.values():
            stream.release()
        self._streams = {}
        device = self.config.torch_device
        self.model = None
        if device.type == "cuda":
            torch.cuda.empty_cache()

    def _check_alive(self) -> None:
        if self.model is None:
            raise TrackerError("the tracker was released; build a new one")


def _batch_row(backbone_out: dict, row: int) -> dict:
    """One image's slice (batch of 1, views) of a batched `forward_image` output:
    vision_features (N, C, H, W) and the lists vision_pos_enc / backbone_fpn of such."""

    def take(value):
        if isinstance(value, torch.Tensor):
            return value[row : row + 1]
        return [take(v) for v in value]

    return {key: take(value) for key, value in backbone_out.items()}
