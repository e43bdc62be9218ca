"""The README documents what the code does: its reference tables are the code's own tables,
and its library example runs (on tiny random models standing in for the real weights)."""

from __future__ import annotations

import re

import pytest
from conftest import REPO, davis_frames

from pam_ros.ros.launch_description import LAUNCH_ARGUMENTS, RVIZ_MISSING
from pam_ros.ros.parameters import PARAMETER_SPECS
from pam_ros.ros.reference import launch_argument_table, parameter_table

README = (REPO / "README.md").read_text()


def test_readme_carries_the_generated_parameter_and_launch_tables():
    # If this fails: python -m pam_ros.ros.reference, and paste its tables into the README.
    assert parameter_table() in README
    assert launch_argument_table() in README
    assert len(PARAMETER_SPECS) > 20 and len(LAUNCH_ARGUMENTS) > 10


def test_readme_quotes_the_missing_rviz2_line():
    assert RVIZ_MISSING in README


def test_readme_names_the_two_commands_and_ci_runs_the_test_one():
    assert "make demo RANDOM_WEIGHTS=1" in README
    assert "make test" in README
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_readme_documents_every_topic_and_service_the_node_creates():
    source = "\n".join(p.read_text() for p in sorted((REPO / "pam_ros" / "ros").glob("*.py")))
    names = set(re.findall(r'create_service\(\s*\w+,\s*"([^"]+)"', source))
    names |= set(re.findall(r'create_(?:lifecycle_)?publisher\(\s*\w+,\s*"([^"]+)"', source))
    names |= set(re.findall(r'create_subscription\(\s*\w+,\s*"([^"]+)"', source))
    # subscriptions that follow their publishers' QoS (pam_ros/ros/image_intake.py)
    names |= set(re.findall(r'QosMatchedSubscription\(\s*self,\s*\w+,\s*"([^"]+)"', source))
    # made in loops over (type, name, callback) / (name, type, ...) tuples, per camera
    names |= set(re.findall(r'\(\s*\w+,\s*"([^"]+)",\s*self\.\w+\)', source))
    names |= set(re.findall(r'\(\s*"([^"]+)",\s*\w+,\s*\w+\)', source))
    names |= set(re.findall(r'(?:self\.topic|camera_topic)\((?:\w+,\s*)?"([^"]+)"\)', source))
    assert {"add_object", "describe", "tracked_objects", "click", "image"} <= names
    for name in sorted(names):
        assert f"`{name}`" in README, f"README does not document {name!r}"


@pytest.mark.slow
def test_library_example_runs(tmp_path):
    import cv2

    from pam_ros.testing.random_pam import write_random_checkpoint
    from pam_ros.testing.random_sam2 import write_random_checkpoint as write_sam
    from pam_ros.tracking import TrackerConfig

    block = README.split("## The libraries", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    sam = write_sam(TrackerConfig(model_size="tiny", image_size=256), tmp_path / "sam.pt")
    pam = write_random_checkpoint(tmp_path / "pam", size="tiny", seed=0)
    real_tracker = 'TrackerConfig(model_size="large", device="cuda")'
    real_engine = 'SemanticEngine.from_pretrained("~/models/PAM-1.5B", device="cuda")'
    assert real_tracker in block and real_engine in block
    block = block.replace(
        real_tracker,
        f'TrackerConfig(model_size="tiny", image_size=256, checkpoint={str(sam)!r})',
    ).replace(real_engine, f'SemanticEngine.from_pretrained({str(pam)!r}, device="cpu")')
    paths = davis_frames("car-shadow")[:4]
    frames = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths]
    namespace = {"frame_rgb": frames[0], "frames": frames[1:]}
    exec(compile(block, "README.md", "exec"), namespace)
    mask = namespace["mask"]
    assert mask.shape == (480, 854) and mask.dtype == bool
    assert namespace["answer"].kind == "explain" and namespace["answer"].text
