"""The INSTALLED launch/camera.launch.py run by the real launch system (launch + launch_ros).

A launcher process runs `launch.LaunchService` on share/pam_ros/launch/camera.launch.py with the
generated video source and tiny random models; this test is the robot's client in another
process: it prompts an object, receives TrackedObjectArrays on the source headers, checks a
value from params_file, then SIGINTs the launcher while frames are being tracked and checks both
processes stop cleanly, before launch would escalate to SIGTERM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import rclpy
from geometry_msgs.msg import Point
from rcl_interfaces.srv import GetParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy

from pam_ros.msg import TrackedObjectArray
from pam_ros.ros.message_builders import stamp_to_ns
from pam_ros.srv import AddObject

pytest.importorskip("launch", reason="launch is not installed (ROS 2 extras absent)")
pytest.importorskip("launch_ros", reason="launch_ros is not installed (ROS 2 extras absent)")

WAIT_S = 90.0
STOP_S = 8.0  # launch itself sends SIGTERM 5 s after SIGINT; a clean stop needs less

LAUNCHER = textwrap.dedent(
    """
    import sys
    from launch import LaunchDescription, LaunchService
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource
    arguments = dict(a.split(":=", 1) for a in sys.argv[2:])
    service = LaunchService()
    service.include_launch_description(LaunchDescription([IncludeLaunchDescription(
        PythonLaunchDescriptionSource(sys.argv[1]), launch_arguments=arguments.items())]))
    sys.exit(service.run())
    """
)


def wait_for(condition, timeout: float = WAIT_S, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture(scope="module")
def installed():
    from ament_index_python.packages import get_package_prefix, get_package_share_directory

    prefix = Path(get_package_prefix("pam_ros"))
    for executable in ("pam_node", "video_source"):
        assert (prefix / "lib" / "pam_ros" / executable).is_file(), executable
    launch_file = Path(get_package_share_directory("pam_ros")) / "launch" / "camera.launch.py"
    assert launch_file.is_file()
    return launch_file


@pytest.mark.parametrize("cameras", ["", "head,wrist"], ids=["one camera", "two cameras"])
def test_installed_launch_file_tracks_and_stops_cleanly_on_sigint(installed, tmp_path, cameras):
    """With `cameras:=head,wrist` one node tracks two video sources (one per camera)."""
    from pam_ros.testing.random_sam2 import write_random_checkpoint
    from pam_ros.tracking import TrackerConfig

    sam = write_random_checkpoint(
        TrackerConfig(model_size="tiny", image_size=256), tmp_path / "sam_tiny.pt"
    )
    params = tmp_path / "params.yaml"
    params.write_text(
        textwrap.dedent(
            f"""
            /**:
              ros__parameters:
                tracker: {{model_size: tiny, checkpoint: "{sam}", allow_download: false}}
                semantics: {{enabled: false}}
                device: cpu
                max_objects: 3
                overlay_rate_hz: 0.0
            """
        )
    )
    namespace = f"pam_launch_{os.getpid()}"
    log_path = tmp_path / "launch.log"
    log = log_path.open("w")
    launcher = subprocess.Popen(
        [
            sys.executable,
            "-c",
            LAUNCHER,
            str(installed),
            f"namespace:={namespace}",
            f"params_file:={params}",
            "image_size:=256",  # a launch argument over the file's default
            "video_source:=generated",
            "video_rate_hz:=10.0",
            *([f"cameras:={cameras}"] if cameras else []),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=os.environ,
        start_new_session=True,  # its own process group, like a launch in a terminal
    )
    context = rclpy.Context()
    rclpy.init(context=context)
    probe = rclpy.create_node("launch_probe", namespace=f"/{namespace}", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(probe)
    names = cameras.split(",") if cameras else [""]
    by_camera: dict[str, list[TrackedObjectArray]] = {name: [] for name in names}
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    for name, received in by_camera.items():
        topic = f"{name}/tracked_objects" if name else "tracked_objects"
        probe.create_subscription(TrackedObjectArray, topic, received.append, reliable)
    tracked = by_camera[names[0]]  # the camera prompted below

    def spin_until(condition, what, timeout=WAIT_S):
        def step():
            assert launcher.poll() is None, log_path.read_text()
            executor.spin_once(timeout_sec=0.1)
            return condition()

        return wait_for(step, timeout, what)

    def call(client, request):
        spin_until(client.service_is_ready, f"{client.srv_name}")
        future = client.call_async(request)
        spin_until(future.done, f"answer of {client.srv_name}")
        return future.result()

    try:
        spin_until(lambda: all(by_camera.values()), "tracked_objects of every camera")
        add = probe.create_client(AddObject, "add_object")
        request = AddObject.Request(camera=names[0], points=[Point(x=120.0, y=100.0)], labels=[1])
        answer = call(add, request)
        assert answer.success, answer.message
        assert answer.id == (f"{names[0]}/1" if names[0] else "1")
        count = len(tracked)
        spin_until(lambda: any(m.objects for m in tracked[count:]), "a frame with the object")
        latest = tracked[-1]
        assert latest.header.frame_id and stamp_to_ns(latest.header.stamp) > 0
        assert len({stamp_to_ns(m.header.stamp) for m in tracked}) == len(tracked)
        get = probe.create_client(GetParameters, "pam_ros/get_parameters")
        values = call(get, GetParameters.Request(names=["max_objects", "tracker.image_size"]))
        assert values.values[0].integer_value == 3  # from params_file
        assert values.values[1].integer_value == 256  # from the launch argument
        count = len(tracked)
        spin_until(lambda: len(tracked) > count, "a frame being tracked")  # frames in flight
    except BaseException:
        launcher.kill()
        raise
    finally:
        executor.shutdown()
        probe.destroy_node()
        rclpy.shutdown(context=context)
    started = time.monotonic()
    # Ctrl-C in a terminal: SIGINT to the whole process group (launch then sends none itself).
    os.killpg(launcher.pid, signal.SIGINT)
    try:
        code = launcher.wait(timeout=STOP_S)
    except subprocess.TimeoutExpired:
        launcher.kill()
        launcher.wait()
        raise AssertionError(
            f"launch did not stop within {STOP_S} s:\n{log_path.read_text()}"
        ) from None
    seconds = time.monotonic() - started
    log.close()
    output = log_path.read_text()
    print(f"launch stopped {seconds:.2f} s after SIGINT")
    assert code == 0, output
    assert "context is invalid" not in output and "Traceback" not in output, output
    assert "SIGTERM" not in output, output  # launch did not have to escalate
    for name, count in (("pam_node", 1), ("video_source", len(names))):  # a source per camera
        exits = [
            line for line in output.splitlines() if "process has finished" in line and name in line
        ]
        assert len(exits) == count, output
        assert all("exit code 0" in line or "cleanly" in line for line in exits), output
