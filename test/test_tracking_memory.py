"""Bounded memory: what the tracker holds after 300 frames is no more than after 30.

Runs at 128 px (the smallest practical SAM 2.1-tiny input) so 300 frames stay short.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import davis_frames
from PIL import Image

from pam_ros.testing.random_sam2 import random_sam2_on_device
from pam_ros.tracking import StreamingTracker, TrackerConfig

pytestmark = pytest.mark.slow  # ~60 s: 300 frames with two objects

CONFIG = TrackerConfig(model_size="tiny", image_size=128, random_weights=True, seed=0)
HOST_GROWTH_LIMIT = 64 * 2**20  # allocator noise; a leak of one frame's state per frame
# (here ~40 kB x 270 frames for memory alone, plus features) would exceed it


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def test_state_is_flat_over_300_frames():
    frames = [
        np.array(Image.open(p).convert("RGB").resize((214, 120), Image.BILINEAR))
        for p in davis_frames("dog")
    ]
    tracker = StreamingTracker(random_sam2_on_device(CONFIG), CONFIG)
    tracker.track(frames[0])
    point = tracker.add_object(points=[(107.0, 60.0)], labels=[1])
    box = tracker.add_object(box=(40.0, 20.0, 170.0, 100.0))
    snapshots = {}
    for t in range(1, 300):
        result = tracker.track(frames[t % len(frames)])
        if t in (30, 299):
            snapshots[t] = (len(tracker.held_tensors()), tracker.held_bytes(), _rss_bytes())
            for r in result.objects.values():  # still informative at the end of the stream
                assert r.present and 0.02 < r.mask.mean() < 0.98
    count_30, bytes_30, rss_30 = snapshots[30]
    count_299, bytes_299, rss_299 = snapshots[299]
    assert count_299 <= count_30
    assert bytes_299 <= bytes_30
    assert rss_299 - rss_30 < HOST_GROWTH_LIMIT
    # exactly the configured window and nothing else
    for object_id in (point, box):
        summary = tracker.memory_summary(object_id)
        assert summary["prompt_frames"] == [0]
        assert summary["memory_frames"] == list(range(299 - CONFIG.num_maskmem + 2, 300))
        assert summary["pointer_frames"] == list(range(299 - CONFIG.max_obj_ptrs + 2, 300))
        assert len(tracker.feature_history(object_id)) == CONFIG.feature_history
    tracker.release()
