"""Configure/cleanup cycles of the real PamNode give the models' memory back (RSS)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

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


def measure_cycles(sam: str, pam: str, frame_paths: list[str]) -> dict:
    """Configure, track, describe, clean up CYCLES times; RSS before, while active, after."""
    frames = [np.ascontiguousarray(cv2.imread(p)[:, :, ::-1]) for p in frame_paths]
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
        active, cleaned = [], []
        for cycle in range(CYCLES + 1):  # cycle 0 loads the libraries (code stays, not models)
            if cycle == 1:
                start = rss_bytes()
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
        active, cleaned = active[1:], cleaned[1:]
        return {"start": start, "active": active, "cleaned": cleaned}
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)


def test_configure_cleanup_cycles_give_memory_back(checkpoints):
    """In a fresh process (the suite's own heap would be the noise): the node's process."""
    sam, pam = checkpoints
    paths = [str(p) for p in davis_frames("car-shadow")[:FRAMES_PER_CYCLE]]
    done = subprocess.run(
        [sys.executable, __file__, str(sam), str(pam), *paths],
        cwd=Path(__file__).parent,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    numbers = json.loads(done.stdout.strip().splitlines()[-1])
    start, active, cleaned = numbers["start"], numbers["active"], numbers["cleaned"]
    print(
        f"RSS MB: start {start / MB:.0f}, active {[round(a / MB) for a in active]}, "
        f"after cleanup {[round(c / MB) for c in cleaned]}"
    )
    # Every cleanup gives back at least 75 % of what configure, tracking and describing took
    # (measured from the level after a first warm-up cycle, once the libraries are loaded;
    # glibc's heap keeps 5-20 % of it from cycle to cycle, measured over suite runs) ...
    taken = min(active) - start
    assert taken > 100 * MB, (start, active)
    for value in cleaned:
        assert value - start <= 0.25 * taken, (start, active, cleaned)
    # ... and the process stays flat over the cycles: no growth from cycle to cycle beyond the
    # allocator's noise (measured: +-5 % of the level, no trend); a leak of a tenth of what a
    # cycle takes would add up past this over the cycles
    assert cleaned[-1] - cleaned[0] <= 0.25 * taken, (cleaned, active)


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


if __name__ == "__main__":  # the measuring process of test_configure_cleanup_cycles_...
    print(json.dumps(measure_cycles(sys.argv[1], sys.argv[2], sys.argv[3:])))
