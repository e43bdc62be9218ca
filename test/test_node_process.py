"""`bin/pam_node` as a robot runs it: its own process, clients over DDS, stopped by signals.

Bad start parameters, invalid lifecycle requests, signals while configuring and while frames
are being tracked. Tiny random models; every wait polls with a deadline.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
import rclpy
from conftest import davis_frames, wait_for
from geometry_msgs.msg import Point
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.srv import GetParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from pam_ros.msg import TrackedObjectArray
from pam_ros.ros.image_conversion import rgb_to_image_msg
from pam_ros.ros.message_builders import stamp_from_ns, stamp_to_ns
from pam_ros.srv import AddObject

ROOT = Path(__file__).resolve().parents[1]
WAIT_S = 60.0
STOP_S = 5.0  # launch's SIGINT → SIGTERM escalation
_namespaces = (f"/pam_process_{os.getpid()}_{i}" for i in itertools.count())


class NodeProcess:
    def __init__(
        self, log_path: Path, namespace: str, parameters: list[str], params_file=True, remaps=()
    ):
        command = [sys.executable, str(ROOT / "bin" / "pam_node"), "--ros-args"]
        for remap in (f"__ns:={namespace}", *remaps):
            command += ["-r", remap]
        if params_file:
            command += ["--params-file", str(ROOT / "config" / "pam.yaml")]
        for parameter in parameters:
            command += ["-p", parameter]
        self.log_path = log_path
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, env=os.environ
        )

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def stop(self, signum: int, timeout: float = STOP_S) -> tuple[int, float]:
        """Signal the node; (exit code, seconds it took)."""
        started = time.monotonic()
        self.process.send_signal(signum)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(
                f"no exit within {timeout} s of {signum!r}:\n{self.output()}"
            ) from None
        finally:
            self._log.close()
        return code, time.monotonic() - started


def model_parameters(checkpoints, *extra: str) -> list[str]:
    sam, pam = checkpoints
    return [
        "device:=cpu",
        "tracker.model_size:=tiny",
        "tracker.image_size:=256",
        f"tracker.checkpoint:={sam}",
        "tracker.allow_download:=false",
        f"semantics.model_path:={pam}",
        "max_new_tokens:=8",
        "video_caption_segment_frames:=0",
        *extra,
    ]


@pytest.mark.parametrize(
    "params_file, parameters, expected",
    [
        (
            False,
            ["max_objects:=0", "semantic_rate_hz:=0.0"],
            ["max_objects=0", "semantic_rate_hz=0.0"],
        ),
        (True, ["max_objects:=ten", "overlay_alpha:=half"], ["'ten'", "'half'"]),
        (True, ["max_objects:=5.0"], ["got 5.0"]),
    ],
)
def test_bad_start_parameters_exit_2_with_one_line_each(
    checkpoints, tmp_path, params_file, parameters, expected
):
    node = NodeProcess(
        tmp_path / "node.log",
        next(_namespaces),
        model_parameters(checkpoints, *parameters),
        params_file=params_file,
    )
    code = node.process.wait(timeout=WAIT_S)
    output = node.output()
    assert code == 2, output
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.startswith("pam_ros: bad parameter:")]
    assert len(lines) == len(parameters), output
    for line, value in zip(lines, expected, strict=True):
        assert value in line and "allowed:" in line, line


@pytest.fixture
def client(request):
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("probe", namespace=request.node.namespace, context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    yield node, executor
    executor.shutdown()
    node.destroy_node()
    rclpy.shutdown(context=context)


def _call(node, executor, client, request):
    assert client.wait_for_service(timeout_sec=WAIT_S), f"{client.srv_name} not available"
    future = client.call_async(request)
    executor.spin_until_future_complete(future, timeout_sec=WAIT_S)
    assert future.done(), f"no answer from {client.srv_name}"
    return future.result()


@pytest.fixture
def namespace(request):
    request.node.namespace = next(_namespaces)
    return request.node.namespace


def test_invalid_lifecycle_requests_are_refused_and_sigint_while_tracking_stops_cleanly(
    checkpoints, tmp_path, namespace, client
):
    probe, executor = client
    node = NodeProcess(
        tmp_path / "node.log",
        namespace,
        model_parameters(checkpoints, "autostart:=false", "semantic_rate_hz:=2"),
    )
    try:
        change = probe.create_client(ChangeState, "pam_ros/change_state")
        get_state = probe.create_client(GetState, "pam_ros/get_state")

        def transition(transition_id: int) -> bool:
            request = ChangeState.Request(transition=Transition(id=transition_id))
            return _call(probe, executor, change, request).success

        def state() -> str:
            return _call(probe, executor, get_state, GetState.Request()).current_state.label

        assert not transition(Transition.TRANSITION_ACTIVATE)  # unconfigured, autostart:=false
        assert not transition(99)  # no such transition
        assert state() == "unconfigured"
        assert transition(Transition.TRANSITION_CONFIGURE)
        assert transition(Transition.TRANSITION_ACTIVATE)
        for invalid in (
            Transition.TRANSITION_ACTIVATE,
            Transition.TRANSITION_CONFIGURE,
            Transition.TRANSITION_CLEANUP,
            99,
        ):
            assert not transition(invalid), invalid
            assert node.process.poll() is None, node.output()
        assert state() == "active"
        # An integer for a double is taken as the double (the params file says 1.0).
        get_parameters = probe.create_client(GetParameters, "pam_ros/get_parameters")
        values = _call(
            probe, executor, get_parameters, GetParameters.Request(names=["semantic_rate_hz"])
        ).values
        assert values[0].double_value == 2.0, values
        # Frames in flight: a prompted object tracked on every frame, then SIGINT mid-stream.
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        tracked: list[TrackedObjectArray] = []
        probe.create_subscription(TrackedObjectArray, "tracked_objects", tracked.append, reliable)
        images = probe.create_publisher(Image, "image", 1)
        frames = [cv2.imread(str(p))[:, :, ::-1].copy() for p in davis_frames("car-shadow")[:8]]
        stamp = itertools.count(1)

        def publish_and_spin():
            msg = rgb_to_image_msg(frames[0], encoding="rgb8")
            msg.header.stamp = stamp_from_ns(next(stamp))
            images.publish(msg)
            executor.spin_once(timeout_sec=0.1)
            return tracked

        wait_for(publish_and_spin, what="a tracked frame")
        add = probe.create_client(AddObject, "add_object")
        request = AddObject.Request(points=[Point(x=420.0, y=260.0)], labels=[1])
        assert _call(probe, executor, add, request).success
        count = len(tracked)
        wait_for(lambda: publish_and_spin() and len(tracked) > count + 2, what="more frames")
        for frame in frames:  # keep the tracker busy right up to the signal
            msg = rgb_to_image_msg(frame, encoding="rgb8")
            msg.header.stamp = stamp_from_ns(next(stamp))
            images.publish(msg)
    except BaseException:
        node.process.kill()
        raise
    code, seconds = node.stop(signal.SIGINT)
    output = node.output()
    print(f"stopped in {seconds:.2f} s")
    assert code == 0, output
    assert "Traceback" not in output and "context is invalid" not in output, output
    assert "[ERROR]" not in output, output
    assert "lifecycle request refused" in output


def test_objects_the_model_scores_present_or_absent_are_published_so(
    checkpoints, tmp_path, namespace, client
):
    """Both ways over DDS, the node in its own process: a model that scores the prompted
    object present publishes it present with a mask, a box, a detection and a marker; one
    that scores it absent (the same weights but the object-score bias) publishes it absent
    with an empty mask and no detection or marker, and keeps tracking."""
    from vision_msgs.msg import Detection2DArray
    from visualization_msgs.msg import Marker, MarkerArray

    from pam_ros.testing.random_sam2 import OBJECT_SCORE_ABSENT, write_random_checkpoint
    from pam_ros.tracking import TrackerConfig

    absent_sam = write_random_checkpoint(
        TrackerConfig(model_size="tiny", image_size=256), tmp_path / "absent.pt",
        OBJECT_SCORE_ABSENT,
    )  # fmt: skip
    probe, executor = client
    reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    frame = cv2.imread(str(davis_frames("car-shadow")[0]))[:, :, ::-1].copy()
    stamp = itertools.count(1)
    images = probe.create_publisher(Image, "image", 1)
    add = probe.create_client(AddObject, "add_object")
    outputs = {"tracked": [], "detections": [], "markers": []}
    probe.create_subscription(
        TrackedObjectArray, "tracked_objects", outputs["tracked"].append, reliable
    )
    probe.create_subscription(
        Detection2DArray, "detections", outputs["detections"].append, reliable
    )
    probe.create_subscription(MarkerArray, "markers", outputs["markers"].append, reliable)

    def publish_and_spin():
        msg = rgb_to_image_msg(frame, encoding="rgb8")
        msg.header.stamp = stamp_from_ns(next(stamp))
        images.publish(msg)
        executor.spin_once(timeout_sec=0.1)
        return outputs["tracked"]

    def by_stamp(messages):  # a MarkerArray's stamp is on its first marker (DELETEALL)
        return {stamp_to_ns((m.markers[0] if hasattr(m, "markers") else m).header.stamp): m
                for m in messages}  # fmt: skip

    seen = {}
    for scored, sam in (("present", checkpoints[0]), ("absent", str(absent_sam))):
        for messages in outputs.values():
            messages.clear()
        node = NodeProcess(
            tmp_path / f"node_{scored}.log",
            namespace,
            model_parameters((sam, checkpoints[1]), "semantics.enabled:=false"),
        )
        try:
            wait_for(publish_and_spin, what="a tracked frame")
            request = AddObject.Request(points=[Point(x=420.0, y=260.0)], labels=[1])
            assert _call(probe, executor, add, request).success
            after = len(outputs["tracked"])
            wait_for(lambda n=after + 3: publish_and_spin() and len(outputs["tracked"]) > n,
                     what=f"frames tracked with the {scored} object")  # fmt: skip

            def paired(start=after):  # frames whose detections and markers arrived too
                executor.spin_once(timeout_sec=0.05)
                seen_stamps = (
                    by_stamp(outputs["detections"]).keys() & by_stamp(outputs["markers"]).keys()
                )
                return [m for m in outputs["tracked"][start:]
                        if m.objects and stamp_to_ns(m.header.stamp) in seen_stamps]  # fmt: skip

            frames = wait_for(lambda: len(paired()) >= 3 and paired(),
                              what=f"detections and markers of the {scored} object")  # fmt: skip
        finally:
            code, _ = node.stop(signal.SIGINT)
        assert code == 0, node.output()
        detections, markers = by_stamp(outputs["detections"]), by_stamp(outputs["markers"])
        for msg in frames:
            (obj,) = msg.objects
            key = stamp_to_ns(msg.header.stamp)
            boxes = [m for m in markers[key].markers if m.action == Marker.ADD]
            seen.setdefault(scored, []).append(
                (obj.present, obj.score > 0, obj.mask_area, len(detections[key].detections),
                 len(boxes))
            )  # fmt: skip
    width, height = frame.shape[1], frame.shape[0]
    for present, positive, area, n_detections, n_markers in seen["present"]:
        assert present and positive and 0 < area < width * height
        assert n_detections == 1 and n_markers > 0
    for present, positive, area, n_detections, n_markers in seen["absent"]:
        assert not present and not positive and area == 0
        assert n_detections == 0 and n_markers == 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_configuring_ends_cleanly(checkpoints, tmp_path, namespace, signum):
    node = NodeProcess(tmp_path / "node.log", namespace, model_parameters(checkpoints))
    try:
        wait_for(lambda: "configuring: loading" in node.output(), what="configure to begin")
    except BaseException:
        node.process.kill()
        raise
    code, seconds = node.stop(signum)
    output = node.output()
    print(f"{signum!r} while configuring: exit {code} in {seconds:.2f} s")
    assert code == 0, output
    assert "Traceback" not in output and "[ERROR]" not in output, output


def test_a_camera_that_sends_nothing_is_named_in_the_log_and_diagnostics(
    checkpoints, tmp_path, namespace, client
):
    """A wrong topic is the first thing a new user meets: the node subscribed, nothing
    arrives. Its log and its /diagnostics status say so (WARN), and both say when frames
    come."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

    probe, executor = client
    topic = f"{namespace}/nobody_publishes_here"
    statuses: list[DiagnosticStatus] = []
    ours = f"{namespace}/pam_ros: tracking and semantics"
    probe.create_subscription(
        DiagnosticArray, "/diagnostics",
        lambda msg: statuses.extend(s for s in msg.status if s.name == ours), 10,
    )  # fmt: skip
    node = NodeProcess(
        tmp_path / "node.log",
        namespace,
        model_parameters(checkpoints, "semantics.enabled:=false", "camera_timeout_s:=1.0"),
        remaps=["image:=nobody_publishes_here"],
    )
    try:

        def spin_for(predicate):
            def check():
                executor.spin_once(timeout_sec=0.1)
                return predicate()

            return check

        warned = f"no frames yet on {topic} for"
        wait_for(spin_for(lambda: warned in node.output()), what="the silent camera in the log")
        line = next(line for line in node.output().splitlines() if warned in line)
        assert "[WARN]" in line and f"ros2 topic info {topic}" in line, line
        assert "-r image:=<topic>" in line and "camera_topic:=<topic>" in line, line
        wait_for(
            spin_for(lambda: any(warned in s.message for s in statuses)),
            what="the silent camera in /diagnostics",
        )
        status = next(s for s in statuses if warned in s.message)
        assert status.level == DiagnosticStatus.WARN, status

        images = probe.create_publisher(Image, "nobody_publishes_here", 1)
        frame = cv2.imread(str(davis_frames("car-shadow")[0]))[:, :, ::-1].copy()

        def publishing(predicate):  # a frame per check: camera_timeout_s is 1 s
            def check():
                images.publish(rgb_to_image_msg(frame, encoding="rgb8"))
                executor.spin_once(timeout_sec=0.2)
                return predicate()

            return check

        arrived = f"frames arriving on {topic}"
        wait_for(publishing(lambda: arrived in node.output()), what="the log saying frames arrive")
        statuses.clear()
        wait_for(publishing(lambda: statuses), what="a /diagnostics status after the frames")
        assert not any("no frames" in s.message for s in statuses), statuses
        assert node.output().count(warned) == 1  # once per silence, not once per second
    finally:
        code, _ = node.stop(signal.SIGINT)
    assert code == 0, node.output()
