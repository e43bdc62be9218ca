"""Discovery over DDS, as a robot uses it: the node and the camera (generated scene with
depth) started by `ros2 launch` in their own processes, this test the robot's client. No
prompt: discover -> the objects are tracked (origin "discovery") -> describe -> find_objects
with discover answers ids, scores and where each object is (position and volume centre).

The random tiny SAM 2 sees no real objects: its masks are image-wide textures with predicted
IoU about 0.5 and stability about 0.3-0.5 (under SAM 2's default thresholds nothing passes),
so the node runs with thresholds that keep them; the checks are on the mechanics: masks that
are neither empty nor full, ids, origins, descriptions, positions from real depth."""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap
import time

import numpy as np
import pytest
import rclpy
from conftest import WAIT_S
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy

from pam_ros.msg import TrackedObject, TrackedObjectArray
from pam_ros.srv import Describe, Discover, FindObjects

pytest.importorskip("launch", reason="launch is not installed (ROS 2 extras absent)")
pytest.importorskip("message_filters", reason="message_filters (ROS 2 extras) not installed")

MAX_OBJECTS = 4


@pytest.fixture(scope="module")
def running(tmp_path_factory, checkpoints):
    sam, pam = checkpoints
    folder = tmp_path_factory.mktemp("discovery")
    params = folder / "params.yaml"
    params.write_text(
        textwrap.dedent(
            f"""
            /**:
              ros__parameters:
                tracker: {{model_size: tiny, checkpoint: "{sam}", allow_download: false}}
                semantics: {{model_path: "{pam}"}}
                device: cpu
                max_objects: {MAX_OBJECTS}
                max_new_tokens: 8
                semantic_rate_hz: 0.5
                discovery:
                  points_per_side: 8
                  pred_iou_thresh: 0.45
                  stability_score_thresh: 0.25
                  stability_score_offset: 0.05
                  box_nms_thresh: 1.0
                  min_area_fraction: 0.0
                  max_area_fraction: 1.0
                  max_overlap_with_tracked: 1.0
                  max_new_per_pass: 3
            """
        )
    )
    namespace = f"pam_discovery_{os.getpid()}"
    log_path = folder / "launch.log"
    with log_path.open("w") as log:
        launch = subprocess.Popen(
            ["ros2", "launch", "pam_ros", "camera.launch.py", "video_source:=generated",
             "depth:=true", "discovery_mode:=on_request", f"namespace:={namespace}",
             f"params_file:={params}", "image_size:=256", "video_rate_hz:=5.0"],
            cwd=folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    context = rclpy.Context()
    rclpy.init(context=context)
    client = rclpy.create_node("robot", namespace=f"/{namespace}", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(client)
    tracked: list[TrackedObjectArray] = []
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    client.create_subscription(TrackedObjectArray, "tracked_objects", tracked.append, reliable)

    def call(srv_type, name, request, timeout=WAIT_S):
        service = client.create_client(srv_type, name)
        assert service.wait_for_service(timeout_sec=timeout), f"{name}\n{log_path.read_text()}"
        future = service.call_async(request)
        executor.spin_until_future_complete(future, timeout_sec=timeout)
        assert future.done(), f"{name} did not answer"
        return future.result()

    def spin_until(condition, what):
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
            value = condition()
            if value:
                return value
        raise AssertionError(f"timed out waiting for {what}\n{log_path.read_text()[-3000:]}")

    try:
        spin_until(lambda: tracked, "a tracked frame")
        yield call, spin_until, tracked
    finally:
        executor.shutdown()
        client.destroy_node()
        rclpy.shutdown(context=context)
        launch.send_signal(signal.SIGINT)
        try:
            launch.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(launch.pid, signal.SIGKILL)
            launch.wait()


def test_discover_track_describe_and_find_with_positions(running):
    call, spin_until, tracked = running
    outside = call(Discover, "discover", Discover.Request(use_region=True, region=_roi(900, 0)))
    assert not outside.success and "outside" in outside.message, outside.message

    answer = call(Discover, "discover", Discover.Request())
    assert answer.success, answer.message
    assert 1 <= len(answer.ids) <= 3 and answer.found >= len(answer.ids)  # max_new_per_pass
    assert len(answer.boxes) == len(answer.scores) == len(answer.ids)
    assert all(0.0 < s <= 1.0 for s in answer.scores)
    assert f"added {len(answer.ids)}" in answer.message
    discovered = set(answer.ids)

    # Tracked from the next frames on, marked as discovered, masks informative
    def with_all_discovered():
        for msg in reversed(tracked):
            objects = {o.id: o for o in msg.objects}
            if discovered <= set(objects):
                return msg, objects
        return None

    msg, objects = spin_until(with_all_discovered, "the discovered objects in tracked_objects")
    area = msg.image_width * msg.image_height
    for object_id in discovered:
        obj = objects[object_id]
        assert obj.origin == TrackedObject.ORIGIN_DISCOVERY
        if obj.present:
            assert 0 < obj.mask_area < area

    first = sorted(discovered)[0]
    described = call(Describe, "describe", Describe.Request(id=first, kind="category"))
    assert described.success and described.text, described.message

    # One call: discover first (skipped: the last pass is recent), rank, say where each one is
    found = call(
        FindObjects,
        "find_objects",
        FindObjects.Request(query="something to pour with", about="function", discover=True),
    )
    assert found.success, found.message
    assert discovered <= set(found.ids)
    assert list(found.scores) == sorted(found.scores, reverse=True)
    n = len(found.ids)
    assert len(found.has_position) == len(found.positions) == len(found.volume_centers) == n
    assert len(found.no_position_reasons) == n
    spin_until(
        lambda: any(
            call(FindObjects, "find_objects", FindObjects.Request(query="a cup")).has_position
        ),
        "a ranked object with a position",
    )
    again = call(FindObjects, "find_objects", FindObjects.Request(query="a cup"))
    for has, position, centre, reason in zip(
        again.has_position,
        again.positions,
        again.volume_centers,
        again.no_position_reasons,
        strict=True,
    ):
        if not has:
            assert reason, "an object without a position says why"
            continue
        assert position.header.frame_id == centre.header.frame_id == "camera"  # the source's
        p = np.array([position.point.x, position.point.y, position.point.z])
        c = np.array([centre.point.x, centre.point.y, centre.point.z])
        assert 0.5 < p[2] < 2.5 and c[2] >= p[2] - 1e-6  # the volume centre lies behind

    # max_objects reached: the answer says how many were skipped
    while True:
        more = call(Discover, "discover", Discover.Request(max_new_objects=10))
        if more.skipped:
            break
        assert more.ids, more.message  # still room: something new was added
    assert "max_objects reached" in more.message and str(more.skipped) in more.message
    spin_until(lambda: len(tracked[-1].objects) == MAX_OBJECTS, "max_objects objects")


def _roi(x: int, y: int):
    from sensor_msgs.msg import RegionOfInterest

    return RegionOfInterest(x_offset=x, y_offset=y, width=50, height=50)
