"""Shared test fixtures: paths to the real video data and deterministic seeding."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import numpy as np
import pytest

from pam_ros.core.paths import DAVIS_SUBSET

# Keep each test session's DDS traffic apart from any other session running on this host
# (set before any test imports rclpy).
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

REPO = Path(__file__).resolve().parents[1]
WAIT_S = 60.0  # generous upper bound for anything a node must do in a test
DAVIS = DAVIS_SUBSET


# CI has the data and the ROS 2 extras: there a skip means something is missing or broken.
# With PAM_ROS_FAIL_ON_SKIP=1 (.ci/run) every skip fails, except those whose reason matches
# EXPECTED_SKIPS (hardware this machine does not have).
FAIL_ON_SKIP = os.environ.get("PAM_ROS_FAIL_ON_SKIP") == "1"
EXPECTED_SKIPS = ("CUDA", "GPU")


def _unexpected_skip(report) -> str | None:
    if not (FAIL_ON_SKIP and report.skipped) or getattr(report, "wasxfail", None) is not None:
        return None
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    return None if any(word in reason for word in EXPECTED_SKIPS) else reason


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    reason = _unexpected_skip(report)
    if reason is not None:
        report.outcome = "failed"
        report.longrepr = f"unexpected skip with PAM_ROS_FAIL_ON_SKIP=1: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    report = (yield).get_result()
    reason = _unexpected_skip(report)  # a module-level importorskip
    if reason is not None:
        report.outcome = "failed"
        report.longrepr = f"unexpected skip with PAM_ROS_FAIL_ON_SKIP=1: {reason}"


GENERATED_FRAMES = 50  # as many as the longest DAVIS clip the tests read
GENERATED_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / (
    "pam_ros/generated_test_frames"
)


def davis_frames(sequence: str, real: bool = False) -> list[Path]:
    """The JPEG frames of a DAVIS 2016 clip (854 x 480) from ../shared/data.

    Without the data, tests that need frames but not real video (tracking mechanics, the node,
    the bag tool, memory) get a generated scene of the same size written as JPEGs instead:
    two moving shapes on a textured background (`pam_ros.tools.demo.frame_sources`), one
    scene per sequence name. `real=True`: the test is about real video; it skips without it.
    """
    frames = sorted((DAVIS / "JPEGImages" / "480p" / sequence).glob("*.jpg"))
    if frames:
        return frames
    if real:
        pytest.skip(f"needs real video: DAVIS data not found under {DAVIS} (set PAM_ROS_DATA)")
    return generated_frames(sequence)


def generated_frames(name: str) -> list[Path]:
    """A generated 854 x 480 scene of GENERATED_FRAMES JPEGs, written once per name."""
    import zlib

    import cv2

    from pam_ros.tools.demo.frame_sources import GeneratedScene

    folder = GENERATED_DIR / name
    paths = [folder / f"{i:05d}.jpg" for i in range(GENERATED_FRAMES)]
    if not all(p.is_file() for p in paths):
        folder.mkdir(parents=True, exist_ok=True)
        scene = GeneratedScene(854, 480, GENERATED_FRAMES, seed=zlib.crc32(name.encode()))
        for path, rgb in zip(paths, scene, strict=True):
            partial = path.with_suffix(".part.jpg")  # other test processes may read meanwhile
            cv2.imwrite(str(partial), rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
            partial.replace(path)
    return paths


def davis_masks(sequence: str) -> list[Path]:
    masks = sorted((DAVIS / "Annotations" / "480p" / sequence).glob("*.png"))
    if not masks:
        pytest.skip(f"needs DAVIS ground-truth masks: not found under {DAVIS} (set PAM_ROS_DATA)")
    return masks


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """One intra-op thread per model thread for the whole suite: the tiny test models gain
    little from two, the node runs tracking and semantics on two threads of its own, and two
    intra-op threads spin badly when other work shares these 2 cores (a 256 px frame went
    from 0.14 s to 4 s)."""
    try:
        import torch
    except ImportError:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    try:
        import torch

        torch.manual_seed(0)
    except ImportError:
        pass
    yield


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory) -> tuple[str, str]:
    """(SAM 2.1-tiny .pt at 256 px, tiny PAM folder): random weights in the real layouts,
    written once per test session."""
    from pam_ros.testing.random_pam import write_random_checkpoint as write_pam
    from pam_ros.testing.random_sam2 import write_random_checkpoint as write_sam
    from pam_ros.tracking import TrackerConfig

    folder = tmp_path_factory.mktemp("tiny_models")
    sam = write_sam(TrackerConfig(model_size="tiny", image_size=256), folder / "sam_tiny.pt")
    pam = write_pam(folder / "pam_tiny", size="tiny", seed=0)
    return str(sam), str(pam)


def wait_for(condition, timeout: float = WAIT_S, what: str = "condition", poll_s: float = 0.01):
    """Poll `condition` until it returns something truthy (returned) or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture(scope="module")
def ros_context():
    """One rclpy context per test module (DDS participants stay apart between modules)."""
    import rclpy

    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    rclpy.shutdown(context=context)


def add_request(points=(), name="", object_id="", box=None, camera=""):
    """A pam_ros AddObject request: positive points (x, y) and/or a box (x, y, width, height)."""
    from geometry_msgs.msg import Point
    from sensor_msgs.msg import RegionOfInterest

    from pam_ros.srv import AddObject

    request = AddObject.Request(camera=camera, id=object_id, name=name)
    request.points = [Point(x=float(x), y=float(y)) for x, y in points]
    request.labels = [1] * len(points)
    if box is not None:
        request.use_box = True
        request.box = RegionOfInterest(
            x_offset=box[0], y_offset=box[1], width=box[2], height=box[3]
        )
    return request


def tracked_mask(obj) -> np.ndarray:
    """A TrackedObject's mono8 mask as an (H, W) uint8 array."""
    return np.frombuffer(bytes(obj.mask.data), np.uint8).reshape(obj.mask.height, obj.mask.width)
