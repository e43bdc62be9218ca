"""Several cameras on one node, over real DDS, the cameras in a process of their own.

A head camera (DAVIS car-shadow, 854x480) and a wrist camera (DAVIS dog, 427x240: another
size) publish from `test/clip_cameras_process.py`; one PamNode with `cameras: [head, wrist]`
(tiny random models, one SAM 2 and one PAM for both) tracks both. Checked: per-camera topics and
ids (`head/1`, `wrist/...`), outputs kept apart, masks informative on both, the encoder batching
frames of both cameras, describe on each, one camera going silent (the other goes on and
/diagnostics names the silent one), lifecycle transitions, and the bad inputs of the cameras
parameter.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from conftest import add_request, tracked_mask, wait_for
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import RegionOfInterest
from test_node_ros import node_parameters

from pam_ros.msg import TrackedObjectArray
from pam_ros.ros.dds_profile import profile_environment
from pam_ros.ros.executor import NodeExecutor
from pam_ros.ros.message_builders import stamp_to_ns
from pam_ros.ros.pam_node import PamNode
from pam_ros.ros.parameters import ParameterValidationError, camera_names
from pam_ros.srv import AddObject, Describe, RemoveObject

WAIT_S = 60.0
WARN = DiagnosticStatus.WARN
CAMERAS = Path(__file__).with_name("clip_cameras_process.py")
SIZES = {"head": (854, 480), "wrist": (427, 240)}
CLIPS = {"head": "car-shadow", "wrist": "dog"}
_namespaces = (f"/pam_cams_{i}" for i in itertools.count())


def stamp_of(index: int) -> int:  # as clip_cameras_process.py stamps frame `index`
    return 1_000_000_000 + index * 33_000_000


def parameters(checkpoints, **extra) -> list[Parameter]:
    """test_node_ros's tiny-model parameters with two cameras, short answers, no overlay."""
    values = node_parameters(
        checkpoints,
        cameras=["head", "wrist"],
        semantic_kinds=["category"],
        max_new_tokens=8,
        overlay_rate_hz=0.0,
        camera_timeout_s=1.0,
        **extra,
    )
    return [Parameter(name, value=value) for name, value in values.items()]


class TwoCameraHarness:
    """The node and a client in this process, the cameras in another."""

    def __init__(self, context, checkpoints) -> None:
        self.namespace = next(_namespaces)
        self.node = PamNode(
            namespace=self.namespace, context=context, parameter_overrides=parameters(checkpoints)
        )
        self.client = rclpy.create_node("cams_client", namespace=self.namespace, context=context)
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.tracked: dict[str, list[TrackedObjectArray]] = {name: [] for name in SIZES}
        for name, received in self.tracked.items():
            self.client.create_subscription(
                TrackedObjectArray, f"{name}/tracked_objects", received.append, reliable
            )
        self.diagnostics: list[DiagnosticArray] = []
        self.client.create_subscription(
            DiagnosticArray, "/diagnostics", self.diagnostics.append, 10
        )
        self.box_pubs = {
            name: self.client.create_publisher(RegionOfInterest, f"{name}/boxes", 10)
            for name in SIZES
        }
        self.add = self.client.create_client(AddObject, "add_object")
        self.remove = self.client.create_client(RemoveObject, "remove_object")
        self.describe = self.client.create_client(Describe, "describe")
        self.executor = NodeExecutor(num_threads=4, context=context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.client)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        assert self.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert self.node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        self.cameras = subprocess.Popen(
            [sys.executable, str(CAMERAS), self.namespace]
            + [f"{name}={CLIPS[name]}@{w}x{h}" for name, (w, h) in SIZES.items()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=dict(os.environ, **profile_environment("")),
        )  # fmt: skip
        assert self.cameras.stdout.readline().strip() == "ready"

    def publish(self, camera: str, index: int) -> None:
        self.cameras.stdin.write(f"pub {camera} {index}\n")
        self.cameras.stdin.flush()

    def step(self, index: int, cameras=("head", "wrist")) -> dict[str, TrackedObjectArray]:
        """Frame `index` on `cameras` and their results. A frame without a result after 5 s
        is sent again: a camera's publisher may not have matched a new subscription yet
        (start, re-activation) though the node already sees it (a frame sent then is lost)."""
        stamp, results = stamp_of(index), {}
        deadline = time.monotonic() + WAIT_S
        while len(results) < len(cameras) and time.monotonic() < deadline:
            for camera in cameras:
                if camera not in results:
                    self.publish(camera, index)
            resend_at = time.monotonic() + 5.0
            while len(results) < len(cameras) and time.monotonic() < resend_at:
                for camera in cameras:
                    found = [
                        m for m in self.tracked[camera] if stamp_to_ns(m.header.stamp) == stamp
                    ]
                    if found:
                        results[camera] = found[0]
                time.sleep(0.01)
        missing = [camera for camera in cameras if camera not in results]
        assert not missing, f"no result for frame {index} from {missing}"
        return results

    def call(self, client, request):
        assert client.wait_for_service(timeout_sec=10), f"{client.srv_name} not available"
        future = client.call_async(request)
        wait_for(future.done, what=f"{client.srv_name} response")
        return future.result()

    def camera_statuses(self) -> dict[str, DiagnosticStatus]:
        """Camera name -> its status in the newest /diagnostics message ({} before one)."""
        prefix = f"{self.node.get_fully_qualified_name()}: camera "
        for msg in reversed(self.diagnostics):
            found = {s.name[len(prefix) :]: s for s in msg.status if s.name.startswith(prefix)}
            if found:
                return found
        return {}

    def close(self) -> None:
        if self.cameras.poll() is None:
            self.cameras.stdin.write("quit\n")
            self.cameras.stdin.flush()
            self.cameras.wait(10)
        self.executor.shutdown(timeout_sec=10)
        self.thread.join(10)
        self.node.destroy_node()
        self.client.destroy_node()


def test_two_cameras_one_node_over_dds(ros_context, checkpoints):
    h = TwoCameraHarness(ros_context, checkpoints)
    try:
        node = h.node
        wait_for(
            lambda: all(
                node.count_publishers(c.image_intake.topic_name) for c in node.cameras.values()
            ),
            what="both cameras discovered",
        )
        first = h.step(0)
        for camera, msg in first.items():  # each camera's own size, header and topic
            assert (msg.image_width, msg.image_height) == SIZES[camera]
            assert msg.header.frame_id == f"{camera}_optical" and msg.objects == []

        # Prompts name their camera; ids name it too. Without a camera (two cameras) or with
        # one that does not exist the request is refused and nothing changes.
        vague = h.call(h.add, add_request(points=[(420, 260)]))
        assert not vague.success and "several cameras" in vague.message
        unknown = h.call(h.add, add_request(camera="belly", points=[(10, 10)]))
        assert not unknown.success and "unknown camera 'belly'" in unknown.message
        outside = h.call(
            h.add, add_request(camera="wrist", points=[(500, 100)])
        )  # inside head only
        assert not outside.success and "outside" in outside.message
        assert node.object_ids == []
        car = h.call(h.add, add_request(camera="head", box=(300, 150, 300, 200)))
        assert car.success and car.id == "head/1", car.message
        dog = h.call(h.add, add_request(object_id="wrist/dog", points=[(210, 120)]))
        assert dog.success and dog.id == "wrist/dog", dog.message
        named = h.call(h.add, add_request(camera="wrist", object_id="bowl", points=[(60, 200)]))
        assert named.success and named.id == "wrist/bowl", named.message

        for index in range(1, 7):
            results = h.step(index)
            head_ids = [obj.id for obj in results["head"].objects]
            wrist_ids = [obj.id for obj in results["wrist"].objects]
            assert head_ids == ["head/1"] and wrist_ids == ["wrist/dog", "wrist/bowl"]
            for camera, msg in results.items():
                width, height = SIZES[camera]
                for obj in msg.objects:  # informative random-weight masks on both cameras
                    assert obj.present, (camera, obj.id, obj.presence_score)
                    mask = tracked_mask(obj)
                    assert mask.shape == (height, width)
                    assert 0 < np.count_nonzero(mask) < 0.9 * mask.size, (camera, obj.id)
        # Frames waiting on both cameras are encoded together. Made certain here: while the
        # tracking thread is held at the pipelines' lock with head frame 30, wrist frame 30 and
        # head frame 31 arrive; released, it takes both waiting frames in one encoder pass.
        received = {c: node.cameras[c].counters.frames_received for c in ("head", "wrist")}
        with node.pipelines.lock:
            h.publish("head", 30)
            wait_for(lambda: node.cameras["head"].counters.frames_received > received["head"],
                     what="head frame 30")  # fmt: skip
            time.sleep(0.5)  # the tracking thread takes it and waits for the lock
            h.publish("wrist", 30)
            h.publish("head", 31)
            wait_for(
                lambda: (
                    node.cameras["wrist"].counters.frames_received > received["wrist"]
                    and node.cameras["head"].counters.frames_received > received["head"] + 1
                ),
                what="wrist frame 30 and head frame 31",
            )
        wait_for(
            lambda: any(stamp_to_ns(m.header.stamp) == stamp_of(30) for m in h.tracked["wrist"]),
            what="wrist frame 30 tracked",
        )
        tracker = node.tracker
        assert tracker.encoded_frames > tracker.encoder_passes, (
            tracker.encoded_frames,
            tracker.encoder_passes,
        )
        # Each camera's detector boxes prompt that camera only.
        h.box_pubs["wrist"].publish(RegionOfInterest(x_offset=5, y_offset=5, width=60, height=40))
        wait_for(lambda: len(node.object_ids) == 4, what="the wrist box object")
        assert [oid for oid in node.object_ids if oid.startswith("wrist/")] == [
            "wrist/dog",
            "wrist/bowl",
            "wrist/1",
        ]

        # Describe on each camera's object (one semantics worker serves both).
        for object_id in ("head/1", "wrist/dog"):
            answer = h.call(h.describe, Describe.Request(id=object_id, kind="category"))
            assert answer.success and answer.text, (object_id, answer.message)
        wait_for(
            lambda: all(node.scheduler.semantics(oid).category for oid in ("head/1", "wrist/dog")),
            what="the worker describing both cameras' objects",
        )

        # Removing on one camera leaves the other alone.
        assert h.call(h.remove, RemoveObject.Request(id="wrist/bowl")).success
        assert not h.call(h.remove, RemoveObject.Request(id="bowl")).success
        results = h.step(7)
        assert [obj.id for obj in results["head"].objects] == ["head/1"]
        assert [obj.id for obj in results["wrist"].objects] == ["wrist/dog", "wrist/1"]

        # The wrist camera stops: the head goes on; /diagnostics names the silent camera.
        index, silent = 8, None
        deadline = time.monotonic() + WAIT_S
        while silent is None and time.monotonic() < deadline:
            assert [obj.id for obj in h.step(index, ("head",))["head"].objects] == ["head/1"]
            index += 1
            statuses = h.camera_statuses()
            if statuses.get("wrist") is not None and statuses["wrist"].level == WARN:
                silent = statuses
        assert silent is not None, "the silent wrist camera was never reported"
        assert "no frames" in silent["wrist"].message
        assert "wrist/image" in silent["wrist"].message
        assert silent["head"].level == DiagnosticStatus.OK, silent["head"].message
        # It comes back and is tracked where it left off.
        assert [obj.id for obj in h.step(index, ("wrist",))["wrist"].objects] == [
            "wrist/dog",
            "wrist/1",
        ]

        # Lifecycle: deactivate / activate keeps both cameras' objects and topics.
        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        wait_for(
            lambda: all(
                node.count_publishers(c.image_intake.topic_name) for c in node.cameras.values()
            ),
            what="both cameras discovered again",
        )
        index += 1
        results = h.step(index)
        assert [obj.id for obj in results["head"].objects] == ["head/1"]
        assert [obj.id for obj in results["wrist"].objects] == ["wrist/dog", "wrist/1"]
        # max_objects is per camera; a run-time change applies to every camera.
        node.set_parameters([Parameter("max_objects", value=2)])
        full = h.call(h.add, add_request(camera="wrist", points=[(100, 100)]))
        assert not full.success and "max_objects=2" in full.message
        assert h.call(h.add, add_request(camera="head", points=[(100, 100)])).success
        # cleanup + configure: the models are rebuilt for both cameras, the objects are gone
        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
        assert node.tracker is None and node.object_ids == []
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        index += 1
        results = h.step(index)
        assert results["head"].objects == [] and results["wrist"].objects == []
        assert h.call(h.add, add_request(camera="wrist", points=[(210, 120)])).id == "wrist/1"
    finally:
        h.close()


def test_two_cameras_on_one_topic_are_refused(ros_context, checkpoints):
    """A remap that points two cameras at one topic fails configure with a clear error."""
    node = PamNode(
        namespace=next(_namespaces),
        context=ros_context,
        parameter_overrides=parameters(checkpoints, **{"semantics.enabled": False}),
        cli_args=["--ros-args", "-r", "wrist/image:=head/image"],
    )
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert "'head' and 'wrist' both subscribe to" in node.last_error
        assert node.tracker is None and node.lifecycle_state == "unconfigured"
    finally:
        node.destroy_node()


def test_camera_names_are_checked():
    assert camera_names([]) == [""] and camera_names([""]) == [""]
    assert camera_names(["head", "wrist_left"]) == ["head", "wrist_left"]
    for bad, words in (
        (["head", "head"], "more than once"),
        (["head", ""], "not camera name"),
        (["3d"], "not camera name"),
        (["head/left"], "not camera name"),
    ):
        with pytest.raises(ParameterValidationError, match=words):
            camera_names(bad)
