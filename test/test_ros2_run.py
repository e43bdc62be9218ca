"""`ros2 run pam_ros pam_node` as a user runs it: the installed executable, from a folder other
than the source tree, with what the launch file would give it (the package's params file and
Fast DDS profile), and `--help` without a model or DDS.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import wait_for

from pam_ros.ros.command_line import default_params_file, help_requested, prepare
from pam_ros.ros.dds_profile import PROFILE_ENV, USER_PROFILE_ENVS, default_profile_path
from pam_ros.ros.parameters import PARAMETER_SPECS

ROS2 = shutil.which("ros2")
WAIT_S = 90.0
STOP_S = 10.0
PROFILE_SEGMENT_BYTES = 32 * 1024 * 1024  # config/fastdds_large_frames.xml's segment_size


def user_environment(**extra: str) -> dict[str, str]:
    """This environment without any Fast DDS profile named (a user's shell)."""
    env = {name: value for name, value in os.environ.items() if name not in USER_PROFILE_ENVS}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def installed() -> dict[str, Path]:
    from ament_index_python.packages import get_package_prefix, get_package_share_directory

    prefix = Path(get_package_prefix("pam_ros"))
    share = Path(get_package_share_directory("pam_ros"))
    files = {
        "pam_node": prefix / "lib" / "pam_ros" / "pam_node",
        "params": share / "config" / "pam.yaml",
        "profile": share / "config" / "fastdds_large_frames.xml",
    }
    for path in files.values():
        assert path.is_file(), f"{path} not installed: run scripts/setup.sh"
    return files


# ---- the command line, without a process --------------------------------------------------


def test_default_params_file_and_profile_are_the_installed_ones(installed):
    assert default_params_file() == installed["params"]
    assert default_profile_path() == installed["profile"]


def test_prepare_adds_the_default_params_file_first_and_the_profile():
    environ: dict[str, str] = {}
    argv, notes = prepare(["pam_node", "--ros-args", "-p", "max_objects:=3"], environ)
    # a section of its own before the user's: `-p` and later params files still win
    assert argv == [
        "pam_node",
        *("--ros-args", "--params-file", str(default_params_file()), "--"),
        *("--ros-args", "-p", "max_objects:=3"),
    ]
    assert environ == {PROFILE_ENV: str(default_profile_path())}
    assert any(str(default_params_file()) in note for note in notes)
    assert any(str(default_profile_path()) in note for note in notes)


@pytest.mark.parametrize("variable", USER_PROFILE_ENVS)
def test_prepare_keeps_a_given_params_file_and_the_users_profile(variable):
    environ = {variable: "/mine.xml"}
    given = ["pam_node", "--ros-args", "--params-file", "/robot.yaml", "-r", "image:=/cam"]
    argv, notes = prepare(given, environ)
    assert argv == given
    assert environ == {variable: "/mine.xml"}  # nothing added: the user's profile wins
    assert notes == [f"Fast DDS profile: /mine.xml (from {variable} in the environment)"]


def test_help_is_the_programs_own_argument():
    assert help_requested(["pam_node", "--help"]) and help_requested(["pam_node", "-h"])
    assert help_requested(["pam_node", "--ros-args", "-p", "a:=1", "--", "-h"])
    assert not help_requested(["pam_node", "--ros-args", "-p", "help:=1"])
    assert not help_requested(["pam_node"])


# ---- the installed executable, as a user runs it ------------------------------------------


def _check_usage(output: str) -> None:
    assert output.startswith("usage: ros2 run pam_ros pam_node"), output
    for spec in PARAMETER_SPECS:
        assert f"\n  {spec.name}  (default: " in output, spec.name
        assert " ".join(spec.description.split()[:4]) in output, spec.name
    assert str(default_params_file()) in output


@pytest.mark.skipif(ROS2 is None, reason="the ros2 command line is not installed")
def test_help_prints_every_parameter_without_a_model_or_dds(installed, tmp_path):
    # An RMW that does not exist: rcl refuses to load with it (`ros2` itself imports rclpy, so
    # only the executable runs so), and anything that reached rclpy.init would fail.
    no_dds = user_environment(RMW_IMPLEMENTATION="rmw_that_does_not_exist")
    for command, env in (
        ([ROS2, "run", "pam_ros", "pam_node", "--help"], user_environment()),
        ([installed["pam_node"], "-h"], no_dds),
    ):
        done = subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        _check_usage(done.stdout)
    # The executable's --help path imports neither the node (torch, the models) nor rclpy.
    probe = (
        "import runpy, sys\n"
        f"sys.argv = [{str(installed['pam_node'])!r}, '--help']\n"
        "try:\n"
        "    runpy.run_path(sys.argv[0], run_name='__main__')\n"
        "except SystemExit as exit:\n"
        "    assert exit.code in (0, None), exit.code\n"
        "heavy = sorted({'torch', 'rclpy', 'sam2'} & set(sys.modules))\n"
        "print('imported:', heavy, file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=no_dds, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "imported: []" in done.stderr, done.stderr


@pytest.mark.skipif(ROS2 is None, reason="the ros2 command line is not installed")
def test_video_source_help_lists_its_parameters_and_exits(installed, tmp_path):
    from pam_ros.tools.demo.video_source import PARAMETERS

    executable = installed["pam_node"].with_name("video_source")
    for command in ([ROS2, "run", "pam_ros", "video_source", "--help"], [executable, "-h"]):
        done = subprocess.run(
            command, cwd=tmp_path, env=user_environment(), capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("A camera stand-in"), done.stdout
        for name, _, description in PARAMETERS:
            assert f"\n  {name}  (default: " in done.stdout and description in done.stdout
        assert "end of source" not in done.stderr  # the source did not run


def _shared_memory_segments(pid: int) -> dict[str, int]:
    """Fast DDS shared-memory segments mapped by process `pid`: path -> bytes."""
    sizes: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[5].startswith("/dev/shm/fastrtps_"):
            start, end = (int(value, 16) for value in fields[0].split("-"))
            sizes[fields[5]] = sizes.get(fields[5], 0) + end - start
    return sizes


@pytest.mark.skipif(ROS2 is None, reason="the ros2 command line is not installed")
def test_ros2_run_uses_the_installed_defaults_and_tracks_frames_from_another_process(
    installed, tmp_path
):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from pam_ros.msg import TrackedObjectArray
    from pam_ros.ros.message_builders import stamp_to_ns

    namespace = f"/pam_ros2_run_{os.getpid()}"
    command = [ROS2, "run", "pam_ros", "pam_node", "--ros-args", "-r", f"__ns:={namespace}"]
    for parameter in (
        "tracker.random_weights:=true",  # no weights needed
        "tracker.model_size:=tiny",  # pam.yaml says large: -p must win over the default file
        "tracker.image_size:=256",
        "semantics.enabled:=false",
        "device:=cpu",
        "overlay_rate_hz:=0.0",
    ):
        command += ["-p", parameter]
    log_path = tmp_path / "node.log"
    with log_path.open("w") as log:
        node = subprocess.Popen(
            command,
            cwd=tmp_path,  # not the source tree: everything comes from the install
            env=user_environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a command in a terminal
        )
    context = rclpy.Context()
    rclpy.init(context=context)
    client = rclpy.create_node("camera", namespace=namespace, context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(client)
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    camera = client.create_publisher(Image, "image", reliable)
    tracked: list[TrackedObjectArray] = []
    client.create_subscription(TrackedObjectArray, "tracked_objects", tracked.append, reliable)
    width, height = 640, 480
    pixels = np.random.default_rng(0).integers(0, 255, (height, width, 3), np.uint8).tobytes()
    published: set[int] = set()

    def publish_and_spin() -> bool:
        assert node.poll() is None, log_path.read_text()
        msg = Image(height=height, width=width, encoding="rgb8", step=width * 3, data=pixels)
        msg.header.frame_id = "camera"
        msg.header.stamp.sec = len(published) + 1
        camera.publish(msg)
        published.add(stamp_to_ns(msg.header.stamp))
        end = time.monotonic() + 0.2
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
        return bool(tracked)

    try:
        wait_for(publish_and_spin, WAIT_S, "a TrackedObjectArray of a published frame")
        assert stamp_to_ns(tracked[0].header.stamp) in published
        assert (tracked[0].image_width, tracked[0].image_height) == (width, height)
        output = log_path.read_text()
        params_line = f"parameters: {installed['params']} (the package's default params file"
        profile_line = f"Fast DDS profile: {installed['profile']} (the package's profile"
        assert params_line in output and profile_line in output, output
        assert "SAM 2.1-tiny @ 256 px" in output, output
        # The profile is in effect, not only named: the node's own Fast DDS shared-memory
        # segment has the profile's 32 MiB (Fast DDS's default is 512 KiB).
        rmw = os.environ.get("RMW_IMPLEMENTATION") or "rmw_fastrtps_cpp"
        if rmw.startswith("rmw_fastrtps"):
            psutil = pytest.importorskip("psutil")
            children = psutil.Process(node.pid).children(recursive=True)
            pids = [node.pid] + [child.pid for child in children]
            largest = max(max(_shared_memory_segments(pid).values(), default=0) for pid in pids)
            assert largest >= PROFILE_SEGMENT_BYTES, largest
    except BaseException:
        os.killpg(node.pid, signal.SIGKILL)
        node.wait()
        raise
    finally:
        executor.shutdown()
        client.destroy_node()
        rclpy.shutdown(context=context)
    os.killpg(node.pid, signal.SIGINT)  # Ctrl-C: `ros2 run` forwards nothing, the group gets it
    try:
        code = node.wait(timeout=STOP_S)
    except subprocess.TimeoutExpired:
        os.killpg(node.pid, signal.SIGKILL)
        node.wait()
        raise AssertionError(f"no exit within {STOP_S} s:\n{log_path.read_text()}") from None
    output = log_path.read_text()
    assert code == 0, output
    assert "Traceback" not in output, output
