"""The README documents what the code does: its reference tables are the code's own tables,
and its library example runs (on tiny random models standing in for the real weights)."""

from __future__ import annotations

import re
import shlex
import subprocess
import textwrap

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


# requirements/ml.txt's packages that a ROS 2 install takes from apt (rosdep keys in
# package.xml) instead of pip: PyPI's OpenCV 5 beside ROS's cv_bridge breaks its conversions.
FROM_ROSDEP = {"numpy": "python3-numpy", "opencv-python-headless": "python3-opencv"}


def _requirement_name(spec: str) -> str:
    return re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0].lower()


def _requirements(name: str) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in (REPO / "requirements" / name).open())
    return [line for line in lines if line]


def test_workstation_install_line_is_requirements_ml_less_what_rosdep_installs():
    section = README.split("## Install on a ROS 2 workstation or a Jetson", 1)[1]
    block = section.split("```bash", 1)[1].split("```", 1)[0].replace("\\\n", " ")
    commands = [shlex.split(line.split("#", 1)[0]) for line in block.splitlines()]
    pip = [words for words in commands if words[:2] == ["pip", "install"]]
    assert len(pip) == 1, pip  # one line for requirements/ml.txt (sam2 below, by its file)
    listed = [word for word in pip[0][2:] if not word.startswith("-")]
    wanted = [r for r in _requirements("ml.txt") if _requirement_name(r) not in FROM_ROSDEP]
    assert sorted(listed) == sorted(wanted), "README pip line != requirements/ml.txt"
    assert {_requirement_name(r) for r in _requirements("ml.txt")} >= set(FROM_ROSDEP)
    package_xml = (REPO / "package.xml").read_text()
    for key in FROM_ROSDEP.values():
        assert f"<exec_depend>{key}</exec_depend>" in package_xml, key
    # sam2 from its pinned, hashed file (as scripts/setup.sh installs it), not a copy of the pin
    sam2 = [words for words in commands if "pip" in words and "--no-deps" in words]
    assert len(sam2) == 1, sam2
    assert "--require-hashes" in sam2[0]
    assert sam2[0][sam2[0].index("-r") + 1] == "src/pam_ros/requirements/sam2.txt"
    assert (REPO / "requirements" / "sam2.txt").read_text().count("--hash=sha256:") == 1


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


def _bash_block(section: str, containing: str) -> str:
    """The README's ```bash block in `section` that holds `containing`, dedented."""
    body = README.split(section, 1)[1]
    blocks = re.findall(r"```bash\n(.*?)```", body, re.S)
    (block,) = [b for b in blocks if containing in b]
    return textwrap.dedent(block)


@pytest.mark.slow
def test_bag_tool_walkthrough_runs_as_written():
    """The bag tool section's two blocks, typed into bash in the repository root as a user
    would: random models, a camera bag, an annotated bag; then the same bag cut at 60 % of
    its bytes, annotated up to the cut with the warning and exit code the README shows."""
    section = "## Recorded data: the bag tool"
    walkthrough = _bash_block(section, "from-frames generated output/scene_bag")
    cut = _bash_block(section, "output/scene_cut")
    done = subprocess.run(  # the cut run ends in `echo "exit $?"`: not under set -e
        ["bash", "-c", f"set -e\n{walkthrough}\nset +e\n{cut}"], cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600,
    )  # fmt: skip
    output = done.stdout
    assert done.returncode == 0, output[-4000:]
    output_dir = REPO / "output"
    assert (output_dir / "scene_annotated" / "metadata.yaml").is_file()
    annotated = re.search(r"pam_bag: (\d+) frames in .*?(\d+) semantic calls", output)
    assert annotated and annotated.group(1) == "30" and int(annotated.group(2)) > 0, output
    # what the README shows as the cut run's output, its "..." standing for the figures
    shown = [line.strip()[2:] for line in cut.splitlines() if line.strip().startswith("# ")]
    pieces = " ".join(" ".join(shown[:-1]).split()).split("...")
    pattern = ".+?".join(re.escape(piece) for piece in pieces)
    assert re.search(pattern, " ".join(output.split())), (pattern, output[-3000:])
    assert output.rstrip().endswith(shown[-1]), output[-500:]  # "exit 3"
