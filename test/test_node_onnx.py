"""The node with `tracker.encoder_backend: onnxruntime` over real rclpy + DDS: frames tracked
through the exported encoder (tiny random SAM 2.1 at 256 px, CPU), the provider in use in
/diagnostics, and a missing ONNX file refused on configure with its name."""

from __future__ import annotations

import pytest
from conftest import add_request, wait_for
from rclpy.lifecycle import TransitionCallbackReturn
from test_node_ros import Harness, node_parameters

FRAMES = 5


@pytest.fixture(scope="module")
def onnx_file(checkpoints, tmp_path_factory) -> str:
    from pam_ros.tracking.export_onnx import main as export_main

    path = tmp_path_factory.mktemp("onnx") / "sam_tiny_256.onnx"
    sam, _ = checkpoints
    from conftest import davis_frames

    frame = str(davis_frames("car-shadow")[0])  # the check frame (generated without the data)
    args = ["--size", "tiny", "--image-size", "256", "--checkpoint", sam, "--out", str(path)]
    assert export_main([*args, "--frame", frame]) == 0
    return str(path)


@pytest.fixture
def harnesses(ros_context):
    made: list[Harness] = []

    def make(parameters: dict, autostart: bool = True) -> Harness:
        made.append(Harness(ros_context, parameters, autostart))
        return made[-1]

    yield make
    for harness in made:
        harness.close()


def _frames():
    import cv2
    from conftest import davis_frames

    return [cv2.imread(str(p))[:, :, ::-1].copy() for p in davis_frames("car-shadow")[:FRAMES]]


def test_node_tracks_through_the_onnx_encoder(harnesses, checkpoints, onnx_file):
    onnx = {
        "tracker.encoder_backend": "onnxruntime",
        "tracker.onnx_path": onnx_file,
        "tracker.onnx_providers": ["CUDAExecutionProvider", "CPUExecutionProvider"],
        "semantics.enabled": False,
    }
    h = harnesses(node_parameters(checkpoints, **onnx))
    h.wait_connected()
    encoder = h.node.tracker.model.onnx_encoder
    assert encoder.provider == "CPUExecutionProvider"
    frames = _frames()
    stamp = 1_700_000_000_000_000_000
    h.track(frames[0], stamp)
    reply = h.call(h.add, add_request(points=[(420, 260)], object_id="car"))
    assert reply.success, reply.message
    for frame in frames[1:]:
        stamp += 33_000_000
        msg = h.track(frame, stamp)
        (car,) = msg.objects
        assert car.id == "car" and car.present and car.mask_area > 0
    assert encoder.calls >= FRAMES
    diagnostics = wait_for(lambda: h.diagnostics and h.diagnostics[-1], what="diagnostics")
    values = {kv.key: kv.value for kv in diagnostics.status[0].values}
    assert values["image_encoder"] == "onnxruntime:CPUExecutionProvider"


def test_missing_onnx_file_fails_configure_naming_it(harnesses, checkpoints, tmp_path):
    missing = tmp_path / "absent.onnx"
    parameters = node_parameters(
        checkpoints,
        **{
            "tracker.encoder_backend": "onnxruntime",
            "tracker.onnx_path": str(missing),
            "semantics.enabled": False,
        },
    )
    h = harnesses(parameters, autostart=False)
    assert h.node.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert str(missing) in h.node.last_error and "does not exist" in h.node.last_error
