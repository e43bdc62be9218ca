"""The offline bag tool end to end: a rosbag2 written here from DAVIS frames, annotated with
tiny random models, read back with rosbags.

Source bags are written with the rosbags writer (MCAP with raw bgr8 Images, sqlite3 with JPEG
CompressedImages); messages are built with rclpy's classes and serialised with
serialize_message, as a recorder stores them. No ROS graph runs.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from builtin_interfaces.msg import Time
from conftest import REPO, davis_frames
from rclpy.serialization import serialize_message
from rosbags.highlevel import AnyReader  # a hard requirement: missing, the suite fails
from rosbags.rosbag2 import StoragePlugin, Writer
from sensor_msgs.msg import CompressedImage
from std_msgs.msg import Header

from pam_ros.ros.image_conversion import rgb_to_image_msg, uint8_field
from pam_ros.tools.bag.annotate import (
    AnnotateOptions,
    BagInputError,
    ModelOptions,
    OutputExistsError,
    annotate,
)
from pam_ros.tools.bag.bag_types import build_typestore, connection_definition
from pam_ros.tools.bag.prompts import PromptFileError

FRAME_PERIOD_NS = 100_000_000  # 10 Hz camera
FIRST_STAMP_NS = 1_700_000_000_000_000_000
COLOR_TOPIC = "/camera/image_raw"
OUTPUT_TOPICS = {"/tracked_objects", "/overlay/compressed", "/markers"}


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    paths = davis_frames("car-shadow")[:30]
    return [np.ascontiguousarray(cv2.imread(str(p))[:, :, ::-1]) for p in paths]  # 480x854


def header(index: int) -> Header:
    stamp_ns = FIRST_STAMP_NS + index * FRAME_PERIOD_NS
    return Header(
        stamp=Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000),
        frame_id="camera",
    )


def detection_array(index: int, boxes: list[tuple[str, tuple[int, int, int, int]]]):
    from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

    array = Detection2DArray(header=header(index))
    for label, (x0, y0, x1, y1) in boxes:
        detection = Detection2D(header=header(index))
        detection.bbox.center.position.x = (x0 + x1) / 2.0
        detection.bbox.center.position.y = (y0 + y1) / 2.0
        detection.bbox.size_x, detection.bbox.size_y = float(x1 - x0), float(y1 - y0)
        hypothesis = ObjectHypothesisWithPose()
        hypothesis.hypothesis.class_id, hypothesis.hypothesis.score = label, 0.9
        detection.results = [hypothesis]
        array.detections.append(detection)
    return array


def write_source_bag(path: Path, frames, *, compressed: bool, storage, detections=None) -> Path:
    """A camera bag: colour frames at 10 Hz (+ a Detection2DArray topic when given)."""
    typestore, _ = build_typestore()
    writer = Writer(path, version=9, storage_plugin=storage)
    writer.open()

    def connection(topic: str, msgtype: str):
        msgdef, digest = connection_definition(typestore, msgtype)
        return writer.add_connection(topic, msgtype, msgdef=msgdef, rihs01=digest)

    if compressed:
        color = connection(COLOR_TOPIC + "/compressed", "sensor_msgs/msg/CompressedImage")
    else:
        color = connection(COLOR_TOPIC, "sensor_msgs/msg/Image")
    detection_conn = None
    if detections:
        detection_conn = connection("/detector/detections", "vision_msgs/msg/Detection2DArray")
    for index, frame in enumerate(frames):
        bag_time = FIRST_STAMP_NS + index * FRAME_PERIOD_NS + 5_000_000  # logged 5 ms later
        if compressed:
            _, jpeg = cv2.imencode(".jpg", frame[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
            msg = CompressedImage(header=header(index), format="jpeg")
            msg.data = uint8_field(jpeg)
        else:
            msg = rgb_to_image_msg(frame, header(index), "bgr8")
        writer.write(color, bag_time, serialize_message(msg))
        if detections and index in detections:
            array = detection_array(index, detections[index])
            writer.write(detection_conn, bag_time + 1_000_000, serialize_message(array))
    writer.close()
    return path


def model_options(checkpoints, semantics: bool = True) -> ModelOptions:
    sam, pam = checkpoints
    return ModelOptions(
        tracker_model_size="tiny",
        tracker_image_size=256,
        tracker_checkpoint=sam,
        semantics_model=pam if semantics else "",
        device="cpu",
        dtype="float32",
    )


def read_bag(path: Path) -> list[tuple[str, str, int, bytes, object]]:
    """(topic, type, bag time, raw, message) of every message, each deserialised with the
    definition registered in the bag itself."""
    with AnyReader([path]) as reader:
        return [
            (c.topic, c.msgtype, t, bytes(raw), reader.deserialize(raw, c.msgtype))
            for c, t, raw in reader.messages()
        ]


def stamp_ns(msg) -> int:
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


def summary_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ---- the tool on a raw MCAP bag with a prompts file -------------------------------------


@pytest.fixture(scope="module")
def raw_runs(tmp_path_factory, frames, checkpoints):
    folder = tmp_path_factory.mktemp("raw")
    source = write_source_bag(
        folder / "source", frames[:6], compressed=False, storage=StoragePlugin.MCAP
    )
    prompts = folder / "prompts.yaml"
    prompts.write_text(
        "prompts:\n"
        "  - {frame: 0, name: car, box: [300, 150, 600, 380]}\n"
        "  - {frame: 1, points: [[900, 100]]}\n"  # outside the 854x480 image: refused
        "  - {time: 0.2, points: [[100, 60]], id: sky}\n"  # frame 2
        "  - {frame: 4, remove: sky}\n"
    )
    runs = []
    for run in ("a", "b"):
        options = AnnotateOptions(
            input=source,
            output=folder / f"out_{run}",
            prompts_file=prompts,
            models=model_options(checkpoints),
            semantic_rate_hz=2.0,  # per BAG second: frames 0 and 5 (0.5 s later) call
            semantic_kinds=("category",),
            video_caption_segment_frames=0,
            max_new_tokens=6,
            progress=False,
        )
        report = annotate(options)
        runs.append((options, report))
    return source, runs


def test_annotated_bag_reads_back_with_registered_types(raw_runs, frames):
    source, ((options, report), _) = raw_runs
    assert report.frames == 6 and not report.error and not report.interrupted
    messages = read_bag(options.output)
    topics = {topic for topic, *_ in messages}
    assert topics >= {COLOR_TOPIC, *OUTPUT_TOPICS, "/detections"}
    with AnyReader([options.output]) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        assert all(c.msgdef.data for c in reader.connections)  # definitions for Foxglove/rviz
    assert types["/tracked_objects"] == "pam_ros/msg/TrackedObjectArray"
    assert types["/detections"] == "vision_msgs/msg/Detection2DArray"
    # The input is copied unchanged, and the outputs sit on the source frames' stamps.
    source_messages = read_bag(source)
    copied = [(t, raw) for topic, _, t, raw, _ in messages if topic == COLOR_TOPIC]
    assert copied == [(t, raw) for _, _, t, raw, _ in source_messages]
    source_stamps = [stamp_ns(msg) for *_, msg in source_messages]
    for topic in ("/tracked_objects", "/overlay/compressed", "/detections"):
        assert [stamp_ns(msg) for t, *_, msg in messages if t == topic] == source_stamps
    bag_times = [t for topic, _, t, *_ in messages if topic == "/tracked_objects"]
    assert bag_times == [t for _, _, t, *_ in source_messages]


def test_ids_masks_and_semantics(raw_runs):
    _, ((options, report), _) = raw_runs
    tracked = [msg for topic, *_, msg in read_bag(options.output) if topic == "/tracked_objects"]
    ids = [[obj.id for obj in msg.objects] for msg in tracked]
    assert ids == [["1"], ["1"], ["1", "sky"], ["1", "sky"], ["1"], ["1"]]
    first = tracked[0].objects[0]
    assert first.name == "car" and first.present
    assert 0 < first.mask_area < tracked[0].image_width * tracked[0].image_height
    assert (tracked[0].image_width, tracked[0].image_height) == (854, 480)
    assert [msg.tracking_latency for msg in tracked] == [0.0] * 6  # a bag has no arrival
    # Semantics at 2 Hz of bag time: described on frame 0, the category carried on.
    car = [next(o for o in msg.objects if o.id == "1").semantics for msg in tracked]
    assert car[0].category and car[0].random_weights
    assert all(s.category for s in car)
    assert report.semantic_calls >= 1
    # The overlay is a JPEG of the frame's size.
    overlay = next(msg for topic, *_, msg in read_bag(options.output) if topic.startswith("/over"))
    image = cv2.imdecode(np.frombuffer(bytes(overlay.data), np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (480, 854, 3)
    # The prompt outside the image is refused with a message naming it, the rest applied.
    assert len(report.prompts_rejected) == 1
    assert "entry 1" in report.prompts_rejected[0] and "frame 1" in report.prompts_rejected[0]
    lines = summary_lines(options.summary_path)
    assert [line["event"] for line in lines if "event" in line] == [
        "added",
        "prompt_refused",
        "added",
        "removed",
        "done",
    ]
    assert sum("objects" in line for line in lines) == 6


def test_same_bag_same_options_same_output(raw_runs):
    _, ((first, _), (second, _)) = raw_runs
    a = [(topic, t, raw) for topic, _, t, raw, _ in read_bag(first.output)]
    b = [(topic, t, raw) for topic, _, t, raw, _ in read_bag(second.output)]
    assert a == b
    frames_a = [line for line in summary_lines(first.summary_path) if "objects" in line]
    frames_b = [line for line in summary_lines(second.summary_path) if "objects" in line]
    assert frames_a == frames_b


# ---- compressed sqlite3 input, prompts from a Detection2DArray topic ---------------------


def test_compressed_sqlite_with_detection_prompts(tmp_path, frames, checkpoints):
    pytest.importorskip("vision_msgs")
    detections = {
        1: [("car", (300, 150, 600, 380))],
        3: [("shadow", (20, 20, 140, 120))],
    }
    source = write_source_bag(
        tmp_path / "source",
        frames[:5],
        compressed=True,
        storage=StoragePlugin.SQLITE3,
        detections=detections,
    )
    options = AnnotateOptions(
        input=source,
        output=tmp_path / "out",
        prompt_topic="/detector/detections",
        models=model_options(checkpoints, semantics=False),
        progress=False,
    )
    report = annotate(options)
    assert report.frames == 5 and report.prompts_applied == 2
    messages = read_bag(options.output)
    tracked = [msg for topic, *_, msg in messages if topic == "/tracked_objects"]
    assert [[(o.id, o.name) for o in msg.objects] for msg in tracked] == [
        [],
        [("1", "car")],
        [("1", "car")],
        [("1", "car"), ("2", "shadow")],
        [("1", "car"), ("2", "shadow")],
    ]
    assert "/detector/detections" in {topic for topic, *_ in messages}
    out_detections = [msg for topic, *_, msg in messages if topic == "/detections"]
    assert [d.id for d in out_detections[1].detections] == ["1"]
    assert out_detections[1].detections[0].results[0].hypothesis.class_id == "car"


# ---- errors and Ctrl-C -----------------------------------------------------------------


@pytest.fixture(scope="module")
def small_bag(tmp_path_factory, frames):
    folder = tmp_path_factory.mktemp("small")
    return write_source_bag(
        folder / "source", frames[:3], compressed=False, storage=StoragePlugin.MCAP
    )


def test_missing_topic_lists_the_topics(small_bag, tmp_path, checkpoints):
    options = AnnotateOptions(
        input=small_bag, output=tmp_path / "out", color_topic="/camera/color", progress=False
    )
    with pytest.raises(BagInputError) as error:
        annotate(options)
    assert "'/camera/color' is not in the bag" in str(error.value)
    assert f"{COLOR_TOPIC}  [sensor_msgs/msg/Image]  3 msgs" in str(error.value)
    assert not (tmp_path / "out").exists()


def test_corrupt_input_names_the_file(small_bag, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (mcap,) = small_bag.glob("*.mcap")
    data = mcap.read_bytes()
    (broken / mcap.name).write_bytes(data[: len(data) // 2])  # truncated
    (broken / "metadata.yaml").write_bytes((small_bag / "metadata.yaml").read_bytes())
    options = AnnotateOptions(input=broken, output=tmp_path / "out", progress=False)
    with pytest.raises(BagInputError) as error:
        annotate(options)
    assert str(broken) in str(error.value) and mcap.name in str(error.value)
    garbage = tmp_path / "garbage.mcap"
    garbage.write_bytes(b"\x89MCAP0\r\n" + bytes(range(256)) * 4)
    with pytest.raises(BagInputError, match=r"garbage\.mcap"):
        annotate(AnnotateOptions(input=garbage, output=tmp_path / "out2", progress=False))


def test_existing_output_and_bad_prompts_are_refused(small_bag, tmp_path):
    existing = tmp_path / "out"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        annotate(AnnotateOptions(input=small_bag, output=existing, progress=False))
    assert (existing / "keep.txt").read_text() == "mine"
    bad = tmp_path / "prompts.json"
    bad.write_text(json.dumps([{"frame": 0, "boxes": [1, 2, 3, 4]}]))
    with pytest.raises(PromptFileError, match=r"prompts\.json entry 0: unknown key"):
        annotate(
            AnnotateOptions(
                input=small_bag, output=tmp_path / "o2", prompts_file=bad, progress=False
            )
        )


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_leaves_a_readable_bag(tmp_path, frames, checkpoints, signum):
    """Also when started with SIGINT ignored, as a non-interactive shell starts background jobs
    (CI): the tool installs its own handlers."""
    source = write_source_bag(
        tmp_path / "source", frames[:30], compressed=False, storage=StoragePlugin.MCAP
    )
    sam, _ = checkpoints
    output = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "pam_ros.tools.bag",
        "annotate",
        str(source),
        str(output),
        "--tracker-size=tiny",
        "--image-size=256",
        f"--tracker-checkpoint={sam}",
        "--no-semantics",
        "--device=cpu",
        "--no-progress",
    ]
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps([{"frame": 0, "box": [300, 150, 600, 380]}]))
    command += ["--prompts", str(prompts)]
    process = subprocess.Popen(
        command,
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    summary = Path(str(output) + ".jsonl")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if summary.exists() and summary.read_text().count('"objects"') >= 2:
            break
        time.sleep(0.05)
    assert process.poll() is None, process.stderr.read()
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    messages = read_bag(output)  # every message deserialises: the MCAP was closed properly
    tracked = [msg for topic, *_, msg in messages if topic == "/tracked_objects"]
    assert 2 <= len(tracked) < 30
    assert all([o.id for o in msg.objects] == ["1"] for msg in tracked)
    assert summary_lines(summary)[-1]["event"] == "interrupted"
