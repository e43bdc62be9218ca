"""The tracker's on-device resize against PIL's uint8 bicubic (sam2's offline loader)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import davis_frames
from PIL import Image

from pam_ros.tracking import TrackerConfig, TrackerConfigError
from pam_ros.tracking.preprocess import IMAGENET_MEAN, IMAGENET_STD, FramePreprocessor


@pytest.mark.parametrize("size", [256, 512, 1024])
@pytest.mark.parametrize("sequence", ["blackswan", "car-shadow"])
def test_pil_resize_equals_pil_bicubic_exactly(sequence, size):
    """Bit-exact (max difference 0 levels) on real 854 x 480 DAVIS frames, down and up."""
    preprocess = FramePreprocessor(size, torch.device("cpu"), resize="pil")
    for path in davis_frames(sequence)[:2]:
        image = Image.open(path).convert("RGB")
        expected = np.array(image.resize((size, size), Image.BICUBIC))
        pixels = torch.from_numpy(np.array(image)).permute(2, 0, 1)
        ours = preprocess.resize_like_pil(pixels).permute(1, 2, 0).numpy()
        assert ours.dtype == np.uint8 and ours.shape == expected.shape
        np.testing.assert_array_equal(ours, expected)


def test_pil_resize_on_odd_shapes_and_one_side_already_square():
    """Landscape frames and frames with one side already S. (Some portrait shapes, e.g.
    640 x 63, differ from this Pillow build by up to 3 levels: it then resamples in the
    other pass order; camera frames are landscape.)"""
    rng = np.random.default_rng(0)
    preprocess = FramePreprocessor(64, torch.device("cpu"))
    for height, width in [(64, 200), (37, 64), (3, 5), (64, 640), (100, 100), (96, 128)]:
        frame = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        expected = np.array(Image.fromarray(frame).resize((64, 64), Image.BICUBIC))
        ours = preprocess.resize_like_pil(torch.from_numpy(frame).permute(2, 0, 1))
        np.testing.assert_array_equal(ours.permute(1, 2, 0).numpy(), expected)


def test_model_input_is_pil_resized_and_normalised_and_float_mode_differs():
    (path,) = davis_frames("blackswan")[:1]
    image = Image.open(path).convert("RGB")
    frame = np.array(image)
    expected = np.array(image.resize((256, 256), Image.BICUBIC)) / 255.0
    expected = (expected - IMAGENET_MEAN) / IMAGENET_STD  # (256, 256, 3)
    pil = FramePreprocessor(256, torch.device("cpu"), resize="pil")(frame)
    assert pil.shape == (1, 3, 256, 256) and pil.dtype == torch.float32
    np.testing.assert_allclose(pil[0].permute(1, 2, 0).numpy(), expected, atol=1e-5)
    floating = FramePreprocessor(256, torch.device("cpu"), resize="float")(frame)
    assert (floating - pil).abs().max() > 1e-3  # the float path is a different resampling
    with pytest.raises(TrackerConfigError, match="resize"):
        TrackerConfig(resize="nearest")


def test_read_only_frames_and_masks_are_taken_without_a_warning():
    """np.asarray(PIL image) and message buffers are read-only: torch.from_numpy would warn
    ("writing to this tensor will result in undefined behavior") in the user's log. Run in
    a fresh process, as torch warns once per process."""
    (path,) = davis_frames("blackswan")[:1]
    script = f"""
import numpy as np, torch
from PIL import Image
from pam_ros.tracking.preprocess import FramePreprocessor
image = Image.open({str(path)!r}).convert("RGB")
frame = np.asarray(image)
assert not frame.flags.writeable
preprocess = FramePreprocessor(256, torch.device("cpu"))
assert torch.equal(preprocess(frame), preprocess(np.array(image)))
# a mask prompt from a message's buffer is read-only too
from pam_ros.testing.random_sam2 import random_sam2_on_device
from pam_ros.tracking import StreamingTracker, TrackerConfig
config = TrackerConfig(model_size="tiny", image_size=128, random_weights=True, seed=0)
tracker = StreamingTracker(random_sam2_on_device(config), config)
tracker.track(frame)
mask = np.zeros(frame.shape[:2], np.uint8)
mask[150:350, 300:500] = 1
mask.flags.writeable = False
tracker.add_object(mask=mask)
"""
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "not writable" not in done.stderr
