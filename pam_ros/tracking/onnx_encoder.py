"""The SAM 2 image encoder exported once to ONNX and served by ONNX Runtime.

What is exported is everything the tracker takes from sam2's `SAM2Base.forward_image`: the
Hiera trunk, the FPN neck and the mask decoder's `conv_s0` / `conv_s1` projections of the two
high-resolution levels (applied in `forward_image` so that every prompt reuses them). Outputs,
for a batch of N frames at S = image_size:

    backbone_fpn_0   (N, 32, S/4, S/4)    conv_s0(level 0)  -> mask decoder (high-res)
    backbone_fpn_1   (N, 64, S/8, S/8)    conv_s1(level 1)  -> mask decoder (high-res)
    vision_features  (N, 256, S/16, S/16) level 2           -> memory attention, decoder, the
                                                               PAM taps (image_embedding)

The position encodings (`vision_pos_enc`) depend only on the shapes: they are computed once in
PyTorch from the model's own `PositionEmbeddingSine`. The batch dimension is dynamic, so
`MultiStreamTracker` keeps one encoder pass for all cameras; the image size is fixed.

The ONNX metadata carries the model size, the image size and a fingerprint of the exported
weights (`encoder_fingerprint`); `OnnxImageEncoder` refuses a file whose metadata differs from
the tracker's config and weights. The rest of SAM 2 (memory attention, decoder, memory
encoder) stays in PyTorch: the encoder outputs enter as tensors on the tracker's device (IO
binding on CUDA, no host round trip).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sam2.modeling.sam2_base import SAM2Base

from pam_ros.tracking.config import TrackerConfig
from pam_ros.tracking.errors import TrackerConfigError

logger = logging.getLogger(__name__)

INPUT_NAME = "image"
OUTPUT_NAMES = ("backbone_fpn_0", "backbone_fpn_1", "vision_features")
META_MODEL_SIZE = "pam_ros.model_size"
META_IMAGE_SIZE = "pam_ros.image_size"
META_FINGERPRINT = "pam_ros.weights_fingerprint"
META_CHECKPOINT = "pam_ros.checkpoint"
META_FORMAT = "pam_ros.encoder_format"
ENCODER_FORMAT = "1"  # bump when the inputs/outputs above change
OPSET = 17
# TensorRT builds one engine for a range of batch sizes (its optimisation profile); larger
# batches are encoded in chunks of this many frames.
TENSORRT_MAX_BATCH = 4


class EncoderModelError(TrackerConfigError):
    """An ONNX encoder file that does not fit the tracker (or cannot be served)."""


class EncoderModelNotFoundError(EncoderModelError, FileNotFoundError):
    """`onnx_path` names no file."""


def encoder_fingerprint(model: SAM2Base) -> str:
    """sha256 (first 16 hex digits) over the weights the ONNX encoder contains: the image
    encoder and the decoder's conv_s0 / conv_s1, in key order, as float32 bytes."""
    digest = hashlib.sha256()
    parts = [("image_encoder", model.image_encoder)]
    if model.use_high_res_features_in_sam:
        parts += [("conv_s0", model.sam_mask_decoder.conv_s0)]
        parts += [("conv_s1", model.sam_mask_decoder.conv_s1)]
    for prefix, module in parts:
        for name, tensor in sorted(module.state_dict().items()):
            digest.update(f"{prefix}.{name}:{tuple(tensor.shape)}".encode())
            array = tensor.detach().to("cpu", torch.float32).contiguous().numpy()
            digest.update(array.tobytes())
    return digest.hexdigest()[:16]


class _ExportedEncoder(torch.nn.Module):
    """`forward_image` without the shape-only position encodings, outputs as a tuple."""

    def __init__(self, model: SAM2Base) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor):
        out = self.model.forward_image(image)
        fpn = out["backbone_fpn"]
        return fpn[0], fpn[1], out["vision_features"]


@contextlib.contextmanager
def _fixed_position_embedding(trunk: torch.nn.Module, image_size: int):
    """Hiera's position embedding, computed by PyTorch once for the file's fixed image size,
    enters the file as a constant. Traced, it would be a bicubic Resize of the learned embedding
    to a size read from the input's shape (the batch is dynamic, so ONNX Runtime cannot fold
    it): a quarter of the CPU encoder's time (tiny at 512 px), for the same tensor every frame."""
    stride = trunk.patch_embed.proj.stride[0]
    with torch.no_grad():
        embedding = trunk._get_pos_embed((image_size // stride, image_size // stride))
    trunk._get_pos_embed = lambda hw: embedding  # an instance attribute shadows the method
    try:
        yield
    finally:
        del trunk._get_pos_embed


@dataclass(frozen=True)
class ExportReport:
    path: Path
    max_abs_diff: dict[str, float]  # output name -> max |onnxruntime - torch| on the frame
    fingerprint: str
    export_s: float


def export_encoder(
    model: SAM2Base,
    config: TrackerConfig,
    out_path: str | Path,
    frame: torch.Tensor,
    checkpoint_name: str = "",
    tolerance: float = 1e-3,
) -> ExportReport:
    """Export the image encoder of `model` (float32, on the CPU) to `out_path`.

    frame: one preprocessed frame (1, 3, S, S) float32, e.g. `StreamingTracker.preprocess`
    of a real image; the ONNX file is run on it with ONNX Runtime (CPU) and compared with
    PyTorch before anything is written to `out_path`. A deviation above `tolerance` raises.
    """
    import onnx
    import onnxruntime as ort

    out_path = Path(out_path)
    size = config.image_size
    if tuple(frame.shape) != (1, 3, size, size):
        raise ValueError(f"frame must be (1, 3, {size}, {size}), got {tuple(frame.shape)}")
    model = model.to("cpu", torch.float32).eval()
    frame = frame.to("cpu", torch.float32)
    fingerprint = encoder_fingerprint(model)
    wrapper = _ExportedEncoder(model).eval()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".onnx_export_") as tmp:
        tmp_path = Path(tmp) / out_path.name
        with torch.no_grad(), _fixed_position_embedding(model.image_encoder.trunk, size):
            torch.onnx.export(
                wrapper,
                (frame,),
                str(tmp_path),
                input_names=[INPUT_NAME],
                output_names=list(OUTPUT_NAMES),
                dynamic_axes={name: {0: "batch"} for name in (INPUT_NAME, *OUTPUT_NAMES)},
                opset_version=OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
        proto = onnx.load(str(tmp_path))
        metadata = {
            META_MODEL_SIZE: config.model_size,
            META_IMAGE_SIZE: str(size),
            META_FINGERPRINT: fingerprint,
            META_CHECKPOINT: checkpoint_name,
            META_FORMAT: ENCODER_FORMAT,
        }
        del proto.metadata_props[:]
        for key, value in metadata.items():
            proto.metadata_props.add(key=key, value=value)
        onnx.save(proto, str(tmp_path))
        onnx.checker.check_model(str(tmp_path))
        export_s = time.perf_counter() - start

        session = ort.InferenceSession(str(tmp_path), providers=["CPUExecutionProvider"])
        got = session.run(list(OUTPUT_NAMES), {INPUT_NAME: frame.numpy()})
        with torch.no_grad():
            want = wrapper(frame)
        diffs = {
            name: float(np.max(np.abs(g - w.numpy())))
            for name, g, w in zip(OUTPUT_NAMES, got, want, strict=True)
        }
        worst = max(diffs.values())
        if not worst <= tolerance:
            raise EncoderModelError(
                f"the exported encoder deviates from PyTorch by {worst:.3g} (> {tolerance}) on "
                f"the check frame: {diffs}; {out_path} not written"
            )
        os.replace(tmp_path, out_path)
    return ExportReport(out_path, diffs, fingerprint, export_s)


def _read_metadata(ort, path: Path) -> dict[str, str]:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types
        raise EncoderModelError(f"ONNX Runtime cannot load {path}: {err}") from err
    return dict(session.get_modelmeta().custom_metadata_map)


def provider_options(
    providers: tuple[str, ...] | list[str], config: TrackerConfig
) -> list[tuple[str, dict]]:
    """(provider, options) for each requested provider, with the TensorRT and CUDA settings."""
    device = config.torch_device
    device_id = device.index or 0
    size = config.image_size
    result = []
    for name in providers:
        options: dict = {}
        if name == "TensorrtExecutionProvider":
            shape = f"{INPUT_NAME}:{{}}x3x{size}x{size}"
            options = {
                "device_id": device_id,
                "trt_fp16_enable": bool(config.onnx_trt_fp16),
                "trt_profile_min_shapes": shape.format(1),
                "trt_profile_opt_shapes": shape.format(1),
                "trt_profile_max_shapes": shape.format(TENSORRT_MAX_BATCH),
            }
            if config.onnx_trt_cache_dir:
                cache = str(Path(config.onnx_trt_cache_dir).expanduser())
                Path(cache).mkdir(parents=True, exist_ok=True)
                options.update(
                    trt_engine_cache_enable=True,
                    trt_engine_cache_path=cache,
                    trt_timing_cache_enable=True,
                    trt_timing_cache_path=cache,
                )
        elif name == "CUDAExecutionProvider":
            options = {"device_id": device_id}
        result.append((name, options))
    return result


class OnnxImageEncoder:
    """`forward_image` served by an ONNX Runtime session; see the module docstring."""

    def __init__(self, model: SAM2Base, config: TrackerConfig) -> None:
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise EncoderModelError(
                "encoder_backend='onnxruntime' needs the onnxruntime package: pip install -r "
                "requirements/onnx.txt (on a Jetson NVIDIA's onnxruntime-gpu, see the README)"
            ) from err
        if not config.onnx_path:
            raise EncoderModelError(
                "encoder_backend='onnxruntime' needs onnx_path (export one with `python -m "
                "pam_ros.tracking.export_onnx`)"
            )
        path = Path(config.onnx_path).expanduser()
        if not path.is_file():
            raise EncoderModelNotFoundError(
                f"ONNX encoder {path} (onnx_path) does not exist. Export it with `python -m "
                f"pam_ros.tracking.export_onnx --size {config.model_size} --image-size "
                f"{config.image_size} --out {path}`"
            )
        self.path = path
        self.device = config.torch_device
        available = ort.get_available_providers()
        if self.device.type != "cuda":  # a CPU tracker: no GPU providers
            available = [p for p in available if p == "CPUExecutionProvider"]
        wanted = [p for p in config.onnx_providers if p in available]
        skipped = [p for p in config.onnx_providers if p not in available]
        if skipped:
            logger.info(
                "ONNX Runtime here has no %s for a %s tracker (available: %s); trying %s",
                skipped,
                self.device.type,
                available,
                wanted,
            )
        if not wanted:
            raise EncoderModelError(
                f"none of onnx_providers {list(config.onnx_providers)} is available in this "
                f"onnxruntime build for a {self.device.type} tracker (available: {available})"
            )
        # The metadata first, from a plain CPU session: a file that does not fit is refused
        # before TensorRT spends minutes building an engine for it.
        self.metadata = _read_metadata(ort, path)
        self._check_metadata(model, config)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # the same CPU threads as PyTorch's kernels
        options.intra_op_num_threads = torch.get_num_threads()
        # ... which must not spin after the encoder: ONNX Runtime's pool busy-waits for more
        # work by default, taking the cores from PyTorch's memory attention and decoder
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=provider_options(wanted, config)
            )
        except Exception as err:  # onnxruntime raises its own exception types
            raise EncoderModelError(f"ONNX Runtime cannot load {path}: {err}") from err
        self.provider = self.session.get_providers()[0]
        self.max_batch = TENSORRT_MAX_BATCH if self.provider == "TensorrtExecutionProvider" else 0
        # CUDA: input and outputs bound to the tracker's tensors (no host round trip). The
        # same path runs on the CPU when set there (the tests do, with max_batch's chunking).
        self.io_binding = self.device.type == "cuda" and self.provider != "CPUExecutionProvider"
        self._output_shapes = [
            (32, config.image_size // 4),
            (64, config.image_size // 8),
            (256, config.image_size // 16),
        ]
        # vision_pos_enc: shape-only, one per level, computed once with the model's module
        encoding = model.image_encoder.neck.position_encoding
        with torch.no_grad():
            self._pos = [
                encoding(torch.zeros(1, 256, side, side, device=self.device)).float()
                for _, side in self._output_shapes
            ]
        # the tracker runs under autocast when its compute dtype is not float32
        autocast = config.compute_dtype != torch.float32
        self._autocast_dtype = config.compute_dtype if autocast else None
        self.calls = 0

    def _check_metadata(self, model: SAM2Base, config: TrackerConfig) -> None:
        meta = self.metadata
        if meta.get(META_FORMAT) is None:
            raise EncoderModelError(
                f"{self.path} was not written by pam_ros.tracking.export_onnx (no "
                f"{META_FORMAT} metadata); export it again"
            )
        differences = []
        if meta.get(META_FORMAT) != ENCODER_FORMAT:
            differences.append(f"format {meta.get(META_FORMAT)} (expected {ENCODER_FORMAT})")
        if meta.get(META_MODEL_SIZE) != config.model_size:
            differences.append(
                f"model size {meta.get(META_MODEL_SIZE)!r} (tracker: {config.model_size!r})"
            )
        if meta.get(META_IMAGE_SIZE) != str(config.image_size):
            differences.append(
                f"image size {meta.get(META_IMAGE_SIZE)} (tracker: {config.image_size})"
            )
        if not differences:  # a fingerprint only means something for the same model shape
            fingerprint = encoder_fingerprint(model)
            if meta.get(META_FINGERPRINT) != fingerprint:
                differences.append(
                    f"weights fingerprint {meta.get(META_FINGERPRINT)} (tracker's checkpoint: "
                    f"{fingerprint}; exported from {meta.get(META_CHECKPOINT) or 'another'} "
                    "checkpoint)"
                )
        if differences:
            raise EncoderModelError(
                f"ONNX encoder {self.path} does not fit the tracker: "
                + "; ".join(differences)
                + ". Export it again for this model with pam_ros.tracking.export_onnx."
            )

    def forward_image(self, images: torch.Tensor) -> dict:
        """sam2's `forward_image` output for images (N, 3, S, S) on the tracker's device."""
        if self.max_batch and images.shape[0] > self.max_batch:
            chunks = [
                self._run(images[i : i + self.max_batch])
                for i in range(0, images.shape[0], self.max_batch)
            ]
            outputs = [torch.cat(parts) for parts in zip(*chunks, strict=True)]
        else:
            outputs = self._run(images)
        self.calls += 1
        batch = images.shape[0]
        fpn = list(outputs)
        pos = [p.repeat(batch, 1, 1, 1) for p in self._pos]
        if self._autocast_dtype is not None:
            # the dtypes PyTorch's encoder gives under autocast: the two high-res levels
            # (and their position encodings) in the compute dtype; level 2 stays float32 (its
            # FPN top-down sum is float32)
            for level in (0, 1):
                fpn[level] = fpn[level].to(self._autocast_dtype)
                pos[level] = pos[level].to(self._autocast_dtype)
        return {"vision_features": fpn[2], "vision_pos_enc": pos, "backbone_fpn": fpn}

    __call__ = forward_image

    def _run(self, images: torch.Tensor) -> list[torch.Tensor]:
        images = images.to(self.device, torch.float32).contiguous()
        batch = images.shape[0]
        if not self.io_binding:
            got = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: images.cpu().numpy()})
            return [torch.from_numpy(array).to(self.device) for array in got]
        # input and outputs bound to torch tensors on the device, no host copies
        binding = self.session.io_binding()
        kind, index = self.device.type, self.device.index or 0
        binding.bind_input(
            INPUT_NAME, kind, index, np.float32, tuple(images.shape), images.data_ptr()
        )
        outputs = []
        for name, (channels, side) in zip(OUTPUT_NAMES, self._output_shapes, strict=True):
            out = torch.empty(batch, channels, side, side, device=self.device)
            binding.bind_output(name, kind, index, np.float32, tuple(out.shape), out.data_ptr())
            outputs.append(out)
        if kind == "cuda":  # ONNX Runtime runs on its own stream: the input must be ready
            torch.cuda.current_stream(self.device).synchronize()
        self.session.run_with_iobinding(binding)
        return outputs


class _EncoderRemoved(torch.nn.Module):
    """Stands in for the PyTorch image encoder once ONNX Runtime serves it (frees its weights)."""

    def forward(self, *args, **kwargs):
        raise RuntimeError("the image encoder runs in ONNX Runtime (encoder_backend)")


def attach_encoder_backend(model: SAM2Base, config: TrackerConfig) -> SAM2Base:
    """Serve `model.forward_image` from ONNX Runtime when config.encoder_backend says so.

    The ONNX file is checked against the config and the model's weights first; the PyTorch
    trunk and neck are then dropped (their memory freed). No-op for "torch"."""
    if config.encoder_backend != "onnxruntime":
        return model
    encoder = OnnxImageEncoder(model, config)
    model.forward_image = encoder.forward_image
    model.onnx_encoder = encoder  # what was loaded and which provider serves it
    model.image_encoder = _EncoderRemoved()
    logger.info("image encoder: ONNX Runtime %s with %s", encoder.path, encoder.provider)
    return model


def encoder_provider(model: SAM2Base) -> str:
    """ "torch" or the ONNX Runtime provider that serves `model`'s image encoder."""
    encoder = getattr(model, "onnx_encoder", None)
    return encoder.provider if encoder is not None else "torch"


def image_encoder_label(model: SAM2Base | None) -> str:
    """ "torch", or "onnxruntime:<provider>" (what /diagnostics and the node's log show)."""
    provider = encoder_provider(model) if model is not None else "torch"
    return provider if provider == "torch" else f"onnxruntime:{provider}"
