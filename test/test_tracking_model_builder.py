"""Building the model: official-layout checkpoints, random weights, missing files offline."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
import torch

from pam_ros.testing.random_sam2 import build_random_sam2
from pam_ros.tracking import CheckpointNotFoundError, StreamingTracker, TrackerConfig
from pam_ros.tracking.config import CHECKPOINT_BASE_URL, TrackerConfigError
from pam_ros.tracking.model_builder import build_sam2_model

TINY = TrackerConfig(model_size="tiny", image_size=256, seed=3)


def test_missing_checkpoint_names_file_and_url(tmp_path):
    config = TrackerConfig(
        model_size="tiny", image_size=256, checkpoint_dir=tmp_path, allow_download=False
    )
    with pytest.raises(CheckpointNotFoundError) as caught:
        StreamingTracker.from_config(config)
    message = str(caught.value)
    assert "sam2.1_hiera_tiny.pt" in message
    assert CHECKPOINT_BASE_URL + "sam2.1_hiera_tiny.pt" in message
    assert str(tmp_path) in message


def _offline() -> bool:
    try:
        socket.getaddrinfo("dl.fbaipublicfiles.com", 443)
    except OSError:
        return True
    return False


def test_explicit_missing_checkpoint_is_an_error_not_a_download(tmp_path, monkeypatch):
    """A typo in `checkpoint` names the path; only the default location downloads."""
    import pam_ros.tracking.model_builder as model_builder

    def no_download(url, path):
        raise AssertionError(f"downloaded {url} into the explicit path {path}")

    monkeypatch.setattr(model_builder, "_download", no_download)
    missing = tmp_path / "typo" / "sam2.1_hiera_tny.pt"
    config = TrackerConfig(model_size="tiny", image_size=256, checkpoint=missing)
    assert config.allow_download
    with pytest.raises(CheckpointNotFoundError, match="does not exist") as caught:
        StreamingTracker.from_config(config)
    assert str(missing) in str(caught.value)
    assert not (tmp_path / "typo").exists()


@pytest.mark.skipif(not _offline(), reason="a network exists: the download would succeed")
def test_download_fails_clearly_offline(tmp_path):
    config = TrackerConfig(model_size="large", checkpoint_dir=tmp_path)
    with pytest.raises(CheckpointNotFoundError, match="download failed") as caught:
        StreamingTracker.from_config(config)
    assert CHECKPOINT_BASE_URL + "sam2.1_hiera_large.pt" in str(caught.value)
    assert not list(tmp_path.iterdir())  # no partial file left behind


def test_random_checkpoint_cli_round_trip(tmp_path):
    out = tmp_path / "sam2.1_hiera_tiny.pt"
    command = [sys.executable, "-m", "pam_ros.testing.random_sam2", "--size", "tiny"]
    command += ["--image-size", "256", "--seed", "3", "--out", str(out)]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    saved = torch.load(out, map_location="cpu", weights_only=True)
    assert list(saved) == ["model"]  # the official layout

    loaded = build_sam2_model(TrackerConfig(model_size="tiny", image_size=256, checkpoint=out))
    expected = build_random_sam2(TINY).state_dict()
    state = loaded.state_dict()
    assert state.keys() == expected.keys()
    assert all(torch.equal(state[k], expected[k]) for k in expected)
    # seeded: another seed gives other weights
    other = build_random_sam2(TrackerConfig(model_size="tiny", image_size=256, seed=4))
    assert not torch.equal(other.state_dict()["no_mem_embed"], expected["no_mem_embed"])
    # the informative tweaks: no parameter left at exactly zero, objects scored present
    assert all(p.any() for p in loaded.parameters())
    assert loaded.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.item() > 2.0

    with pytest.raises(TrackerConfigError, match="does not"):
        build_sam2_model(TrackerConfig(model_size="small", image_size=256, checkpoint=out))


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "sam2.1_hiera_tiny.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(TrackerConfigError, match="weights under 'model'"):
        build_sam2_model(TrackerConfig(model_size="tiny", image_size=256, checkpoint=path))


def test_dtype_policy(monkeypatch):
    from pam_ros.core import accelerator

    assert TrackerConfig(device="cpu").compute_dtype == torch.float32
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(accelerator, "_bf16_supported", lambda: True)
    assert TrackerConfig(device="cuda").compute_dtype == torch.bfloat16
    monkeypatch.setattr(accelerator, "_bf16_supported", lambda: False)  # T4, V100, Xavier
    assert TrackerConfig(device="cuda").compute_dtype == torch.float32  # fp16 not verified
    assert TrackerConfig(device="cuda", dtype="float16").compute_dtype == torch.float16
    assert TrackerConfig(device="cuda", dtype="float32").compute_dtype == torch.float32
