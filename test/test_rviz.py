"""rviz: the installed config/pam.rviz, and `ros2 launch pam_ros camera.launch.py rviz:=true`.

rviz2 cannot be installed here. `ros2 launch ... rviz:=true` runs as a user would run it: where
rviz2 is missing it says so in one line and the node runs; where an `rviz2` is on PATH (a stand-in
that records how it was started) it is started with the installed pam.rviz, the fixed frame and
the topics remapped to the node's, which the running node publishes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml
from conftest import wait_for

from pam_ros.ros.dds_profile import PROFILE_ENV, USER_PROFILE_ENVS, default_profile_path
from pam_ros.ros.launch_description import (
    RVIZ_INSTALL,
    RVIZ_MISSING,
    RVIZ_TOPICS,
    find_rviz2,
    rviz_missing,
    rviz_spec,
)

ROS2 = shutil.which("ros2")
WAIT_S = 90.0
STOP_S = 10.0
VIDEO_SOURCE_FRAME = "camera"  # the video source's frame_id parameter default


@pytest.fixture(scope="module")
def rviz_config() -> Path:
    from ament_index_python.packages import get_package_share_directory

    path = Path(get_package_share_directory("pam_ros")) / "config" / "pam.rviz"
    assert path.is_file(), f"{path} not installed: run scripts/setup.sh"
    return path


def test_installed_rviz_config_shows_the_nodes_outputs(rviz_config):
    config = yaml.safe_load(rviz_config.read_text())
    manager = config["Visualization Manager"]
    displays = {display["Name"]: display for display in manager["Displays"]}
    topics = {
        display["Topic"]["Value"]: display["Class"]
        for display in displays.values()
        if "Topic" in display
    }
    assert topics == {
        "/overlay": "rviz_default_plugins/Image",
        "/markers": "rviz_default_plugins/MarkerArray",
        "/markers_3d": "rviz_default_plugins/MarkerArray",
    }
    assert set(topics) == {f"/{topic}" for topic in RVIZ_TOPICS}  # what the launch remaps
    assert any(d["Class"] == "rviz_default_plugins/TF" for d in displays.values())
    # only displays rviz2 ships (vision_msgs' are a separate package)
    assert all(d["Class"].startswith("rviz_default_plugins/") for d in displays.values())
    assert all(d["Enabled"] for d in displays.values())
    assert manager["Global Options"]["Fixed Frame"] == VIDEO_SOURCE_FRAME
    for panel in config["Panels"]:
        assert panel["Class"].startswith("rviz_common/")


def test_rviz_spec_starts_rviz2_on_the_config_with_the_nodes_topics(tmp_path):
    config, rviz2 = tmp_path / "pam.rviz", "/opt/ros/jazzy/lib/rviz2/rviz2"
    assert rviz_spec({}, config, rviz2) is None  # rviz defaults to false
    assert rviz_missing({}, None) is None
    spec = rviz_spec({"rviz": "true"}, config, rviz2)
    assert (spec.package, spec.executable, spec.name) == ("", rviz2, "")
    assert spec.arguments == ["-d", str(config)] and spec.remappings == []
    spec = rviz_spec(
        {
            "rviz": "true",
            "namespace": "/robot",
            "cameras": "head,wrist",
            "rviz_fixed_frame": "head_color_optical_frame",
        },
        config,
        rviz2,
    )
    assert spec.arguments == ["-d", str(config), "-f", "head_color_optical_frame"]
    assert spec.remappings == [(f"/{t}", f"/robot/head/{t}") for t in RVIZ_TOPICS]
    spec = rviz_spec({"rviz": "true", "namespace": "robot"}, config, rviz2)
    assert spec.remappings == [(f"/{t}", f"/robot/{t}") for t in RVIZ_TOPICS]
    assert rviz_spec({"rviz": "true"}, config, None) is None  # not installed
    assert rviz_missing({"rviz": "true"}, None) == RVIZ_MISSING
    assert RVIZ_INSTALL in RVIZ_MISSING and "\n" not in RVIZ_MISSING


def test_find_rviz2_on_path(tmp_path, monkeypatch):
    if find_rviz2() is not None:
        pytest.skip(f"rviz2 is installed here ({find_rviz2()})")
    fake = tmp_path / "rviz2"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert find_rviz2() == str(fake)


FAKE_RVIZ2 = textwrap.dedent(
    """\
    #!{python}
    # Stands in for rviz2: records its command line and DDS profile, runs until SIGINT.
    import json, os, signal, sys, time
    signal.signal(signal.SIGINT, lambda *_: os._exit(0))
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    with open({record!r}, "w") as f:
        json.dump({{"argv": sys.argv, "profile": os.environ.get({env!r}, "")}}, f)
    while True:
        time.sleep(0.1)
    """
)


@pytest.mark.skipif(ROS2 is None, reason="the ros2 command line is not installed")
@pytest.mark.parametrize("rviz2", ["missing", "on PATH"])
def test_ros2_launch_with_rviz(rviz_config, tmp_path, rviz2):
    """`ros2 launch pam_ros camera.launch.py rviz:=true video_source:=generated`, stopped by
    Ctrl-C; with depth, so that markers_3d exists too."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from pam_ros.msg import TrackedObjectArray
    from pam_ros.testing.random_sam2 import write_random_checkpoint
    from pam_ros.tracking import TrackerConfig

    if find_rviz2() is not None:
        pytest.skip(f"a real rviz2 is installed ({find_rviz2()}): it would open a window")
    env = {name: value for name, value in os.environ.items() if name not in USER_PROFILE_ENVS}
    record = tmp_path / "rviz2.json"
    if rviz2 == "on PATH":
        folder = tmp_path / "bin"
        folder.mkdir()
        fake = folder / "rviz2"
        fake.write_text(
            FAKE_RVIZ2.format(python=shutil.which("python3"), record=str(record), env=PROFILE_ENV)
        )
        fake.chmod(0o755)
        env["PATH"] = f"{folder}{os.pathsep}{env['PATH']}"
    sam = write_random_checkpoint(
        TrackerConfig(model_size="tiny", image_size=256), tmp_path / "sam_tiny.pt"
    )
    params = tmp_path / "params.yaml"
    params.write_text(
        "/**:\n  ros__parameters:\n"
        f'    tracker: {{model_size: tiny, image_size: 256, checkpoint: "{sam}", '
        "allow_download: false}\n"
        "    semantics: {enabled: false}\n    device: cpu\n"
    )
    namespace = f"pam_rviz_{os.getpid()}"
    log_path = tmp_path / "launch.log"
    with log_path.open("w") as log:
        launch = subprocess.Popen(
            [
                *(ROS2, "launch", "pam_ros", "camera.launch.py"),
                *("rviz:=true", "video_source:=generated", "video_rate_hz:=5.0", "depth:=true"),
                *(f"namespace:={namespace}", f"params_file:={params}"),
                "rviz_fixed_frame:=camera",
            ],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, like a launch in a terminal
        )
    context = rclpy.Context()
    rclpy.init(context=context)
    probe = rclpy.create_node("rviz_probe", namespace=f"/{namespace}", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(probe)
    tracked: list[TrackedObjectArray] = []
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    probe.create_subscription(TrackedObjectArray, "tracked_objects", tracked.append, reliable)

    def spin_until(condition, what):
        def step():
            assert launch.poll() is None, log_path.read_text()
            executor.spin_once(timeout_sec=0.1)
            return condition()

        return wait_for(step, WAIT_S, what)

    rviz_topics = [f"/{namespace}/{topic}" for topic in RVIZ_TOPICS]
    try:
        spin_until(lambda: tracked, "tracked_objects from the node")  # the node runs

        def node_publishes_rviz_topics():
            names = probe.get_publisher_names_and_types_by_node("pam_ros", f"/{namespace}")
            return set(rviz_topics) <= {name for name, _ in names}

        spin_until(node_publishes_rviz_topics, f"the node's publishers of {rviz_topics}")
        if rviz2 == "on PATH":
            spin_until(record.is_file, "rviz2 started")
    except BaseException:
        os.killpg(launch.pid, signal.SIGKILL)
        launch.wait()
        raise
    finally:
        executor.shutdown()
        probe.destroy_node()
        rclpy.shutdown(context=context)
    # Ctrl-C. Without a terminal `ros2 launch` is non-interactive and forwards SIGINT to its
    # processes itself, so the signal goes to launch alone: each process gets one, as from a
    # Ctrl-C in a terminal (a SIGINT to the whole group here would give each a second one).
    launch.send_signal(signal.SIGINT)
    try:
        code = launch.wait(timeout=STOP_S)
    except subprocess.TimeoutExpired:
        os.killpg(launch.pid, signal.SIGKILL)
        launch.wait()
        raise AssertionError(f"launch did not stop:\n{log_path.read_text()}") from None
    output = log_path.read_text()
    assert code == 0, output
    assert "Traceback" not in output, output
    if rviz2 == "missing":
        assert output.count(RVIZ_MISSING) == 1, output
        assert not record.exists()
        return
    assert RVIZ_MISSING not in output, output
    started = json.loads(record.read_text())
    argv = started["argv"]
    assert argv[1:5] == ["-d", str(rviz_config), "-f", "camera"], argv
    ros_arguments = argv[argv.index("--ros-args") :]
    for topic, remapped in zip(RVIZ_TOPICS, rviz_topics, strict=True):
        assert f"/{topic}:={remapped}" in ros_arguments, argv
    assert started["profile"] == str(default_profile_path())  # as the node's processes
    exits = [line for line in output.splitlines() if "process has finished" in line]
    assert any("rviz2" in line for line in exits), output
