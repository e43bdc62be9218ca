"""The README's `ros2` commands, run as a user types them, against a node started by
`ros2 launch pam_ros camera.launch.py` in another process group, from a folder that is not the
source tree. The commands are read from the README at test time: when the README changes, this
test runs the new commands."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import textwrap
import time

import pytest
from conftest import REPO, WAIT_S

pytest.importorskip("launch", reason="launch is not installed (ROS 2 extras absent)")
pytest.importorskip(
    "ros2cli", reason="the ros2 command line is not installed (ROS 2 extras absent)"
)

README = (REPO / "README.md").read_text()
CHECK_BLOCK = "ros2 lifecycle get /pam_ros"  # a line of each block the test runs
SERVICE_BLOCK = 'ros2 service call /add_object pam_ros/srv/AddObject "{name: mug'


def bash_block(containing: str) -> list[str]:
    """The commands of the README's ```bash block that holds `containing` (\\-continuations
    joined, comments and blank lines dropped)."""
    blocks = re.findall(r"```bash\n(.*?)```", README, re.S)
    (block,) = [b for b in blocks if containing in b]
    commands = block.replace("\\\n", " ").splitlines()
    return [c.strip() for c in commands if c.strip() and not c.lstrip().startswith("#")]


def run(command: str, cwd, timeout: float = 120) -> str:
    for _ in range(10):  # the ros2 daemon may not have discovered the node yet under load
        done = subprocess.run(
            ["bash", "-c", command], cwd=cwd, capture_output=True, text=True, timeout=timeout
        )
        output = done.stdout + done.stderr
        if "Node not found" not in output:
            break
        time.sleep(1.0)
    assert done.returncode == 0, f"{command}\n{output}"
    return output


def expected(command: str, output: str) -> None:
    """What each kind of command must print (ros2cli's own wording)."""
    if command.startswith("ros2 service call"):
        assert "response:" in output, output
        assert "success=True" in output, (command, output)
    elif command.startswith("ros2 action send_goal"):
        assert "Feedback:" in output and "Goal finished with status: SUCCEEDED" in output, output
    elif command.startswith("ros2 param set"):
        assert "Set parameter successful" in output, output
    elif command.startswith("ros2 param get"):
        assert "Integer value is: 3" in output, output  # max_objects from the params file
    elif command.startswith("ros2 lifecycle get"):
        assert output.startswith("active"), output
    elif command.startswith("ros2 topic echo"):
        assert "stamp" in output and "frame_id: camera" in output, output
    else:
        raise AssertionError(f"no expectation for {command!r}: add one")


@pytest.fixture(scope="module")
def launched(tmp_path_factory, checkpoints):
    """`ros2 launch` with the generated video source and tiny random models, in the root
    namespace (the README's service names are absolute), on this session's DDS domain."""
    sam, pam = checkpoints
    folder = tmp_path_factory.mktemp("readme_commands")
    params = folder / "params.yaml"
    params.write_text(
        textwrap.dedent(
            f"""
            /**:
              ros__parameters:
                tracker: {{model_size: tiny, checkpoint: "{sam}", allow_download: false}}
                semantics: {{model_path: "{pam}"}}
                device: cpu
                max_objects: 3
                max_new_tokens: 16
                semantic_rate_hz: 0.2
            """
        )
    )
    log_path = folder / "launch.log"
    with log_path.open("w") as log:
        launch = subprocess.Popen(
            ["ros2", "launch", "pam_ros", "camera.launch.py", "video_source:=generated",
             f"params_file:={params}", "image_size:=256", "video_rate_hz:=5.0"],
            cwd=folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + WAIT_S
        while True:
            state = subprocess.run(
                ["ros2", "lifecycle", "get", "/pam_ros"],
                capture_output=True, text=True, timeout=60,
            ).stdout  # fmt: skip
            if state.startswith("active"):
                break
            assert launch.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, f"node not active: {state}\n{log_path.read_text()}"
            time.sleep(1.0)
        yield folder
    finally:
        launch.send_signal(signal.SIGINT)  # to ros2 launch alone: it stops what it started
        try:
            launch.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(launch.pid, signal.SIGKILL)
            launch.wait()


def test_readme_commands_run_as_written(launched):
    commands = bash_block(CHECK_BLOCK) + bash_block(SERVICE_BLOCK)
    kinds = {" ".join(c.split()[:2]) for c in commands}
    assert {"ros2 lifecycle", "ros2 topic", "ros2 service", "ros2 action", "ros2 param"} <= kinds
    for command in commands:
        expected(command, run(command, cwd=launched))
