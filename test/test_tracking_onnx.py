"""The SAM 2 image encoder exported to ONNX and served by ONNX Runtime (CPU here): the tracker's
mask logits and PAM taps equal the PyTorch encoder's on DAVIS frames, several streams still
share one batched encoder pass, and a missing or mismatched ONNX file is a clear error.
A seeded random SAM 2.1-tiny at 256 px, exported once per module."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest
import torch
from conftest import davis_frames
from PIL import Image

from pam_ros.testing.random_sam2 import write_random_checkpoint
from pam_ros.tracking import MultiStreamTracker, StreamingTracker, TrackerConfig
from pam_ros.tracking.errors import TrackerConfigError
from pam_ros.tracking.export_onnx import main as export_main
from pam_ros.tracking.onnx_encoder import (
    META_IMAGE_SIZE,
    META_MODEL_SIZE,
    EncoderModelError,
    EncoderModelNotFoundError,
    encoder_provider,
)

NUM_FRAMES = 6
TOLERANCE = 1e-4
close = torch.testing.assert_close
CAR_BOX = (120, 80, 507, 333)  # on the car (car-shadow, 854 x 480)
SWAN_POINT = [(420.0, 250.0)]  # on the swan (blackswan, 854 x 480)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx")
    base = TrackerConfig(model_size="tiny", image_size=256, seed=0)
    checkpoint = write_random_checkpoint(base, folder / "sam2.1_hiera_tiny.pt")
    onnx_path = folder / "tiny_256.onnx"
    frame = davis_frames("car-shadow")[0]  # the check frame (generated without the data)
    assert export_main(
        ["--size", "tiny", "--image-size", "256", "--checkpoint", str(checkpoint),
         "--out", str(onnx_path), "--frame", str(frame)]
    ) == 0  # fmt: skip
    return folder, checkpoint, onnx_path


def _configs(files):
    _, checkpoint, onnx_path = files
    torch_cfg = TrackerConfig(model_size="tiny", image_size=256, checkpoint=checkpoint)
    onnx_cfg = dataclasses.replace(torch_cfg, encoder_backend="onnxruntime", onnx_path=onnx_path)
    return torch_cfg, onnx_cfg


def _frames(name: str) -> list[np.ndarray]:
    return [np.array(Image.open(p).convert("RGB")) for p in davis_frames(name)[:NUM_FRAMES]]


def _run(tracker: StreamingTracker, frames) -> tuple[list, list]:
    tracker.track(frames[0])
    object_id = tracker.add_object(box=CAR_BOX)
    logits = [tracker.last_result.objects[object_id].mask_logits]
    taps = [tracker.latest_features(object_id)]
    for frame in frames[1:]:
        logits.append(tracker.track(frame).objects[object_id].mask_logits)
        taps.append(tracker.latest_features(object_id))
    return logits, taps


def test_export_writes_checked_metadata(files):
    _, _, onnx_path = files
    proto = onnx.load(str(onnx_path), load_external_data=False)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta[META_MODEL_SIZE] == "tiny" and meta[META_IMAGE_SIZE] == "256"
    assert meta["pam_ros.checkpoint"] == "sam2.1_hiera_tiny.pt"
    assert len(meta["pam_ros.weights_fingerprint"]) == 16
    onnx.checker.check_model(str(onnx_path))
    # Hiera's position embedding is a constant of the file, not a bicubic Resize per frame
    # (the neck's nearest-neighbour upsampling stays)
    modes = [
        attribute.s.decode()
        for node in proto.graph.node
        if node.op_type == "Resize"
        for attribute in node.attribute
        if attribute.name == "mode"
    ]
    assert modes and "cubic" not in modes, modes


def test_onnx_encoder_equals_torch_on_davis(files):
    torch_cfg, onnx_cfg = _configs(files)
    frames = _frames("car-shadow")
    reference = StreamingTracker.from_config(torch_cfg)
    want_logits, want_taps = _run(reference, frames)
    tracker = StreamingTracker.from_config(onnx_cfg)
    assert encoder_provider(tracker.model) == "CPUExecutionProvider"
    assert encoder_provider(reference.model) == "torch"
    # the PyTorch trunk is gone: its weights are not held twice
    assert not any("trunk" in name for name, _ in tracker.model.named_parameters())
    got_logits, got_taps = _run(tracker, frames)
    assert tracker.model.onnx_encoder.calls == NUM_FRAMES
    for want, got in zip(want_logits, got_logits, strict=True):
        assert want.abs().max() > 0.1  # real logits, not a constant
        close(got, want, atol=TOLERANCE, rtol=0)
    for want, got in zip(want_taps, got_taps, strict=True):
        for field in ("image_embedding", "mask_tokens"):
            close(getattr(got, field), getattr(want, field), atol=TOLERANCE, rtol=0)
        assert got.frame_index == want.frame_index


def test_multi_stream_batches_through_onnx(files):
    torch_cfg, onnx_cfg = _configs(files)
    clips = {"head": _frames("blackswan"), "wrist": _frames("car-shadow")}
    results = {}
    for name, cfg in (("torch", torch_cfg), ("onnx", onnx_cfg)):
        tracker = MultiStreamTracker.from_config(cfg)
        head, wrist = tracker.add_stream("head"), tracker.add_stream("wrist")
        logits = []
        for t in range(NUM_FRAMES):
            out = tracker.track({"head": clips["head"][t], "wrist": clips["wrist"][t]})
            if t == 0:
                ids = {
                    "head": head.add_object(points=SWAN_POINT, labels=[1]),
                    "wrist": wrist.add_object(box=CAR_BOX),
                }
                out = {"head": head.last_result, "wrist": wrist.last_result}
            logits.append([out[n].objects[ids[n]].mask_logits for n in ("head", "wrist")])
        results[name] = logits
        if name == "onnx":  # one ONNX Runtime call per set of frames, batch of 2
            assert tracker.model.onnx_encoder.calls == NUM_FRAMES == tracker.encoder_passes
            assert tracker.encoded_frames == 2 * NUM_FRAMES
    for want, got in zip(results["torch"], results["onnx"], strict=True):
        for w, g in zip(want, got, strict=True):
            close(g, w, atol=TOLERANCE, rtol=0)


def _with_metadata(files, name: str, **changes) -> str:
    folder, _, onnx_path = files
    proto = onnx.load(str(onnx_path))
    for prop in proto.metadata_props:
        if prop.key in changes:
            prop.value = changes[prop.key]
    path = folder / name
    onnx.save(proto, str(path))
    return str(path)


def test_missing_or_mismatched_onnx_is_a_clear_error(files):
    folder, checkpoint, onnx_path = files
    _, onnx_cfg = _configs(files)
    missing = folder / "nowhere.onnx"
    with pytest.raises(EncoderModelNotFoundError, match=r"nowhere\.onnx.*does not exist"):
        StreamingTracker.from_config(dataclasses.replace(onnx_cfg, onnx_path=missing))
    junk = folder / "junk.onnx"
    junk.write_bytes(b"not an onnx file")
    with pytest.raises(EncoderModelError, match=r"cannot load .*junk\.onnx"):
        StreamingTracker.from_config(dataclasses.replace(onnx_cfg, onnx_path=junk))
    with pytest.raises(EncoderModelError, match="needs onnx_path"):
        StreamingTracker.from_config(dataclasses.replace(onnx_cfg, onnx_path=None))
    wrong_size = _with_metadata(files, "size.onnx", **{META_IMAGE_SIZE: "512"})
    with pytest.raises(EncoderModelError, match=r"size\.onnx.*image size 512 \(tracker: 256\)"):
        StreamingTracker.from_config(dataclasses.replace(onnx_cfg, onnx_path=wrong_size))
    wrong_model = _with_metadata(files, "model.onnx", **{META_MODEL_SIZE: "large"})
    with pytest.raises(EncoderModelError, match=r"model\.onnx.*model size 'large'"):
        StreamingTracker.from_config(dataclasses.replace(onnx_cfg, onnx_path=wrong_model))
    # other weights (another seed) than those exported
    other = write_random_checkpoint(
        TrackerConfig(model_size="tiny", image_size=256, seed=1), folder / "other.pt"
    )
    with pytest.raises(EncoderModelError, match=r"tiny_256\.onnx.*weights fingerprint"):
        StreamingTracker.from_config(dataclasses.replace(onnx_cfg, checkpoint=other))
    with pytest.raises(EncoderModelError, match="none of onnx_providers"):
        StreamingTracker.from_config(
            dataclasses.replace(onnx_cfg, onnx_providers=("TensorrtExecutionProvider",))
        )
    with pytest.raises(TrackerConfigError, match="encoder_backend must be one of"):
        TrackerConfig(encoder_backend="tensorrt")
    assert onnx_path.is_file() and checkpoint.is_file()


def test_encoder_outputs_keep_the_autocast_dtypes(files):
    # under a bfloat16 compute dtype the tracker sees the dtypes PyTorch's encoder gives
    torch_cfg, onnx_cfg = (dataclasses.replace(c, dtype="bfloat16") for c in _configs(files))
    image = torch.randn(1, 3, 256, 256)
    outputs = []
    for cfg in (torch_cfg, onnx_cfg):
        tracker = StreamingTracker.from_config(cfg)
        with tracker._inference_context():
            out = tracker.model.forward_image(image)
        outputs.append([t.dtype for t in (*out["backbone_fpn"], *out["vision_pos_enc"])])
        tracker.release()
    assert outputs[0] == outputs[1]
    assert outputs[0][0] == torch.bfloat16 and outputs[0][2] == torch.float32


def test_io_binding_and_batch_chunks_give_the_same_features(files):
    """The CUDA path's I/O binding and TensorRT's batch chunks (max_batch), run on the CPU:
    the features equal a plain session run's, bit for bit (observed here)."""
    _, onnx_cfg = _configs(files)
    tracker = StreamingTracker.from_config(onnx_cfg)
    encoder = tracker.model.onnx_encoder
    assert not encoder.io_binding and not encoder.max_batch  # a CPU session's defaults
    images = torch.cat([tracker.preprocess(f) for f in _frames("car-shadow")[:3]])
    with torch.inference_mode():
        plain = encoder.forward_image(images)
        encoder.io_binding = True
        bound = encoder.forward_image(images)
        encoder.max_batch = 2  # 3 images: a batch of 2, then 1
        chunked = encoder.forward_image(images)
    tracker.release()
    for got in (bound, chunked):
        assert got.keys() == plain.keys()
        pairs = [(got["vision_features"], plain["vision_features"])]
        pairs += zip(got["backbone_fpn"], plain["backbone_fpn"], strict=True)
        pairs += zip(got["vision_pos_enc"], plain["vision_pos_enc"], strict=True)
        for ours, reference in pairs:
            assert ours.shape == reference.shape and ours.shape[0] == 3
            assert torch.equal(ours, reference), (ours - reference).abs().max()
