"""Configure/cleanup cycles of the real PamNode give the models' memory back (RSS)."""

from __future__ import annotations

import time

import cv2
import numpy as np
import rclpy
from conftest import davis_frames
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter

from pam_ros.core.memory import rss_bytes
from pam_ros.ros.image_conversion import rgb_to_image_msg
from pam_ros.ros.message_builders import stamp_from_ns
from pam_ros.ros.pam_node import PamNode

CYCLES = 4
FRAMES_PER_CYCLE = 3
MB = 2**20


def _wait(condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_configure_cleanup_cycles_give_memory_back(checkpoints):
    sam, pam = checkpoints
    frames = [
        np.ascontiguousarray(cv2.imread(str(p))[:, :, ::-1])
        for p in davis_frames("car-shadow")[:FRAMES_PER_CYCLE]
    ]
    context = rclpy.Context()
    rclpy.init(context=context)
    params = {
        "tracker.model_size": "tiny",
        "tracker.image_size": 256,
        "tracker.checkpoint": sam,
        "semantics.model_path": pam,
    }
    node = PamNode(
        namespace="/pam_memory_test",
        context=context,
        parameter_overrides=[Parameter(k, value=v) for k, v in params.items()],
    )
    try:
        start = rss_bytes()
        active, cleaned = [], []
        for _ in range(CYCLES):
            assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
            assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
            for k, frame in enumerate(frames):
                msg = rgb_to_image_msg(frame)
                msg.header.stamp = stamp_from_ns(10**9 + k)
                tracked = node.camera().counters.frames_tracked
                node.camera().receive(msg, track_every_n=1)
                _wait(lambda t=tracked: node.camera().counters.frames_tracked > t)
                if k == 0:
                    node.add_object([(400.0, 300.0)], [1], None, None, "")
            assert node.scheduler.describe_now("1", "category", 0.0).text
            active.append(rss_bytes())
            node.trigger_deactivate()
            node.trigger_cleanup()
            cleaned.append(rss_bytes())
        print(
            f"RSS MB: start {start / MB:.0f}, active {[round(a / MB) for a in active]}, "
            f"after cleanup {[round(c / MB) for c in cleaned]}"
        )
        # cleanup gives back what configure and tracking took: within 3 % of the level before
        # the first configure (the heap was once trimmed while a local still held the
        # pipelines, leaving ~30 MB, 6 %, per cleanup) ...
        assert max(cleaned) <= 1.03 * start, (start, active, cleaned)
        assert cleaned[0] < active[0] - 0.5 * (active[0] - start), (start, active, cleaned)
        # ... and the process stays flat from the second cycle on (within 5 % of it, as the
        # issue asks; the first cycle's level depends on what the suite ran before)
        for value in cleaned[2:]:
            assert value <= 1.05 * cleaned[1], (cleaned, active)
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)


def test_heap_trimmer_trims_once_per_period():
    from pam_ros.core.memory import HeapTrimmer

    now = [100.0]
    trimmer = HeapTrimmer(30.0, clock=lambda: now[0])
    assert not trimmer.maybe_trim()  # the period starts at construction
    now[0] += 29.9
    assert not trimmer.maybe_trim()
    now[0] += 0.2
    assert trimmer.maybe_trim() and not trimmer.maybe_trim() and trimmer.trims == 1
    trimmer.period_s = 0.0  # never
    now[0] += 1000
    assert not trimmer.maybe_trim() and trimmer.trims == 1
