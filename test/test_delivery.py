"""Frames from a camera in ANOTHER process reach the node's image callback.

The camera (test/camera_process.py) runs as its own process and publishes 640×480 rgb8 frames,
each only after the node's callback counted the previous one (as the issue's table was
measured); the node's image subscription is `qos.reliability: auto`, so it follows the
camera's QoS. Also: a node that cannot keep up with a burst still ends on the newest frame,
and a subscription that cannot connect (incompatible QoS) is counted and reported.
A best-effort camera needs the Fast DDS profile on both processes: bench/bench_delivery.py
measures that pairing (a test process cannot change its own DDS profile after start).
"""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import wait_for
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter

from pam_ros.ros.executor import NodeExecutor
from pam_ros.ros.pam_node import PamNode

CAMERA = Path(__file__).with_name("camera_process.py")
WAIT_S = 60.0
FRAMES = 100  # ≥ 99 % delivery = every frame at this count


@pytest.fixture(scope="module")
def sam_checkpoint(tmp_path_factory):
    from pam_ros.testing.random_sam2 import write_random_checkpoint
    from pam_ros.tracking import TrackerConfig

    folder = tmp_path_factory.mktemp("delivery_models")
    config = TrackerConfig(model_size="tiny", image_size=256)
    return str(write_random_checkpoint(config, folder / "sam_tiny.pt"))


class Camera:
    """test/camera_process.py as a child process, driven line by line."""

    def __init__(self, topic: str, reliability: str, size: str = "640x480") -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(CAMERA), topic, size, reliability],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        assert self._expect("ready") is not None, "the camera process did not start"

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line.strip())

    def _expect(self, prefix: str, timeout: float = WAIT_S) -> str | None:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                return None
            if line.startswith(prefix):
                return line
        return None

    def send(self, line: str) -> None:
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def matched(self) -> int:
        self.send("matched")
        line = self._expect("matched", 10)
        return int(line.split()[1]) if line else 0

    def close(self) -> None:
        if self.process.poll() is None:
            self.send("quit")
        self.process.wait(timeout=20)


@pytest.fixture
def make_node(ros_context, sam_checkpoint):
    made = []

    def make(namespace: str, **extra) -> PamNode:
        parameters = {
            "tracker.model_size": "tiny",
            "tracker.image_size": 256,
            "tracker.checkpoint": sam_checkpoint,
            "tracker.allow_download": False,
            "semantics.enabled": False,
            "device": "cpu",
            "overlay_rate_hz": 0.0,
            "mask_layout": "none",
            **extra,
        }
        node = PamNode(
            namespace=namespace,
            context=ros_context,
            parameter_overrides=[Parameter(k, value=v) for k, v in parameters.items()],
        )
        executor = NodeExecutor(num_threads=4, context=ros_context)
        executor.add_node(node)
        thread = threading.Thread(target=executor.spin, daemon=True)
        thread.start()
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        made.append((node, executor, thread))
        return node

    yield make
    for node, executor, thread in made:
        executor.shutdown(timeout_sec=10)
        thread.join(10)
        node.destroy_node()


def _received(node: PamNode) -> int:
    with node.camera().counters_lock:
        return node.camera().counters.frames_received


def test_reliable_camera_in_another_process_delivers_every_640x480_frame(make_node):
    node = make_node("/pam_delivery_0")
    camera = Camera("/pam_delivery_0/image", "reliable")
    try:
        wait_for(lambda: camera.matched() > 0, what="the camera to match the node")
        wait_for(
            lambda: node.camera().image_intake.reliability == "reliable", what="auto → reliable"
        )
        delivered = 0
        for index in range(FRAMES):
            before = _received(node)
            camera.send(f"pub {index}")
            try:
                wait_for(
                    lambda before=before: _received(node) > before,
                    timeout=5.0,
                    what=f"frame {index}",
                )
                delivered += 1
            except AssertionError:
                pass
        assert delivered >= 0.99 * FRAMES, f"{delivered}/{FRAMES} frames reached the callback"
        health = node.health()
        assert health.image_qos == "reliable"
        assert health.messages_lost == 0 and health.incompatible_qos == 0
    finally:
        camera.close()


def test_a_node_that_cannot_keep_up_tracks_the_newest_frame(make_node):
    node = make_node("/pam_delivery_1")
    camera = Camera("/pam_delivery_1/image", "reliable")
    try:
        wait_for(lambda: camera.matched() > 0, what="the camera to match the node")
        wait_for(
            lambda: node.camera().image_intake.reliability == "reliable", what="auto → reliable"
        )
        camera.send("pub 0")
        wait_for(lambda: node.camera().counters.frames_tracked >= 1, what="the first frame tracked")
        tracked_before = node.camera().counters.frames_tracked
        burst = 30
        camera.send(f"burst 1 {burst}")  # back to back, far faster than tracking
        newest_stamp_ns = (burst + 1) * 1_000_000_000  # frame i has stamp sec i + 1
        wait_for(
            lambda: node.camera().pipeline.last_stamp_ns == newest_stamp_ns,
            what="the newest frame tracked",
        )
        tracked = node.camera().counters.frames_tracked - tracked_before
        assert tracked < burst, f"tracked all {tracked} frames of the burst: no backlog skipped"
    finally:
        camera.close()


def test_incompatible_qos_is_counted_and_reported(make_node):
    from diagnostic_msgs.msg import DiagnosticStatus

    from pam_ros.ros.message_builders import diagnostics_msg

    node = make_node("/pam_delivery_2", **{"qos.reliability": "reliable"})  # forced
    camera = Camera("/pam_delivery_2/image", "best_effort")  # cannot serve a reliable reader
    try:
        wait_for(lambda: node.health().incompatible_qos > 0, what="the incompatible-QoS event")
        status = diagnostics_msg(node.get_clock().now().to_msg(), "n", node.health()).status[0]
        values = {kv.key: kv.value for kv in status.values}
        assert int(values["incompatible_qos"]) > 0
        assert status.level == DiagnosticStatus.WARN and "incompatible" in status.message
    finally:
        camera.close()


def test_matched_reliability_follows_the_publishers():
    from rclpy.qos import ReliabilityPolicy

    from pam_ros.ros.image_intake import matched_reliability

    reliable, best_effort = ReliabilityPolicy.RELIABLE, ReliabilityPolicy.BEST_EFFORT
    assert matched_reliability([reliable, reliable]) == reliable
    assert matched_reliability([reliable, best_effort]) == best_effort  # connects to both
    assert matched_reliability([]) == best_effort  # connects to whatever appears


def test_launch_and_demo_profile_environment(tmp_path):
    from pam_ros.ros.dds_profile import (
        PROFILE_ENV,
        apply_profile,
        default_profile_path,
        profile_environment,
    )
    from pam_ros.ros.launch_description import node_specs

    assert default_profile_path().is_file()
    assert profile_environment("", {}) == {PROFILE_ENV: str(default_profile_path())}
    assert profile_environment("", {PROFILE_ENV: "/mine.xml"}) == {}  # the user's wins
    assert profile_environment("none", {}) == {}
    with pytest.raises(FileNotFoundError, match="no such file"):
        profile_environment(str(tmp_path / "missing.xml"), {})
    environ: dict[str, str] = {}
    assert apply_profile(environ) == str(default_profile_path()) == environ[PROFILE_ENV]
    own = tmp_path / "own.xml"
    own.write_text("<profiles/>")
    specs = node_specs({"video_source": "generated", "dds_profile": str(own)}, "p.yaml")
    assert [spec.env for spec in specs] == [{PROFILE_ENV: str(own)}] * 2  # node and source
