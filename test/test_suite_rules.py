"""The suite's own rules: in CI (PAM_ROS_FAIL_ON_SKIP=1, set by .ci/run) a skip is a failure,
except for hardware the machine lacks; hard requirements are imported, never import-skipped."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from conftest import REPO

PROBE = """
import pytest

def test_missing_data():
    pytest.skip("DAVIS data not found under /nowhere")

def test_missing_gpu():
    pytest.skip("needs a CUDA device")
"""


def _run_probe(tmp_path, fail_on_skip: bool) -> str:
    (tmp_path / "test_probe.py").write_text(PROBE)
    env = dict(os.environ, PYTHONPATH=f"{REPO / 'test'}:{os.environ.get('PYTHONPATH', '')}")
    env["PAM_ROS_FAIL_ON_SKIP"] = "1" if fail_on_skip else "0"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "conftest", "-p", "no:cacheprovider",
         str(tmp_path / "test_probe.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return done.stdout.strip().splitlines()[-1]


def test_ci_fails_on_unexpected_skips_only(tmp_path):
    assert re.search(r"1 failed, 1 skipped", _run_probe(tmp_path, fail_on_skip=True))
    assert re.search(r"2 skipped", _run_probe(tmp_path, fail_on_skip=False))
    assert "PAM_ROS_FAIL_ON_SKIP=1 make test" in (REPO / ".ci" / "run").read_text()


def test_hard_requirements_are_not_import_skipped():
    hard = ("rclpy", "rosbags", "torch", "numpy", "cv2", "sam2", "transformers")
    for path in sorted((REPO / "test").glob("*.py")):
        for module in re.findall(r'importorskip\(\s*"([\w.]+)"', path.read_text()):
            assert module.split(".")[0] not in hard, f"{path.name} import-skips {module}"
