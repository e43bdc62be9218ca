"""The offline bag tool end to end: a rosbag2 written here from DAVIS frames, annotated with
tiny random models, read back with rosbags.

Source bags are written with the rosbags writer (MCAP with raw bgr8 Images, sqlite3 with JPEG
CompressedImages); messages are built with rclpy's classes and serialised with
serialize_message, as a recorder stores them. No ROS graph runs.
"""

from __future__ import annotations

import json
import shutil
import signal
import struct
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
    EXIT_ERROR,
    EXIT_OK,
    EXIT_PARTIAL,
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
    assert report.frames == 6 and not report.partial_input and not report.interrupted
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


def test_models_that_cannot_load_are_one_line_and_exit_1(small_bag, tmp_path, checkpoints):
    """Missing weights, CUDA asked for where there is none: the command line says so in one
    line (no traceback), exits 1 and writes nothing; an OUT that --overwrite would replace is
    kept (it goes only once the models are loaded)."""
    import torch

    cases = [(["--tracker-checkpoint", str(tmp_path / "missing.pt")], "missing.pt")]
    if not torch.cuda.is_available():
        cases.append(
            (["--tracker-checkpoint", checkpoints[0], "--device", "cuda"], "device 'cuda' asked")
        )
    out = tmp_path / "out"

    def annotate_command(*arguments: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "pam_ros.tools.bag", "annotate", str(small_bag), str(out),
             "--tracker-size", "tiny", "--image-size", "256", "--no-semantics", "--no-progress",
             *arguments],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip

    for arguments, named in cases:
        done = annotate_command(*arguments)
        assert done.returncode == EXIT_ERROR and "Traceback" not in done.stderr, done.stderr
        (line,) = done.stderr.strip().splitlines()
        assert line.startswith("pam_bag: cannot load the models:") and named in line, line
        assert not out.exists()
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    done = annotate_command("--overwrite", *cases[0][0])
    assert done.returncode == EXIT_ERROR, done.stderr
    assert (out / "keep.txt").read_text() == "mine"


def test_unreadable_input_names_the_file(small_bag, tmp_path):
    """Nothing written where not one whole message can be read: a file cut inside its first
    chunk, a file of garbage after the magic."""
    broken = tmp_path / "broken"
    broken.mkdir()
    (mcap,) = small_bag.glob("*.mcap")
    (broken / mcap.name).write_bytes(mcap.read_bytes()[:1000])  # inside the first chunk
    (broken / "metadata.yaml").write_bytes((small_bag / "metadata.yaml").read_bytes())
    options = AnnotateOptions(input=broken, output=tmp_path / "out", progress=False)
    with pytest.raises(BagInputError) as error:
        annotate(options)
    assert str(broken) in str(error.value) and mcap.name in str(error.value)
    assert "no whole message" in str(error.value)
    assert not (tmp_path / "out").exists()
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


def test_from_frames_refuses_an_existing_bag_unless_overwrite(tmp_path, capsys):
    from pam_ros.tools.bag.cli import build_parser, from_frames

    out = tmp_path / "camera"

    def from_frames_run(*args: str) -> int:
        return from_frames(build_parser().parse_args(["from-frames", *args]))

    assert from_frames_run("generated", str(out), "--frames", "2") == EXIT_OK
    first = sorted(p.name for p in out.iterdir())
    assert from_frames_run("generated", str(out), "--frames", "3") == EXIT_ERROR
    assert "exists already (use --overwrite" in capsys.readouterr().err
    assert from_frames_run("no_such.mp4", str(out), "--overwrite") == EXIT_ERROR  # kept
    assert sorted(p.name for p in out.iterdir()) == first
    assert from_frames_run("generated", str(out), "--frames", "3", "--overwrite") == EXIT_OK
    assert sum(m[0] == COLOR_TOPIC for m in read_bag(out)) == 3


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


# ---- damaged input: a recorder killed mid-write, a corrupt chunk -------------------------


@pytest.fixture(scope="module")
def five_frames_bag(tmp_path_factory, frames):
    """5 raw 854x480 frames: the rosbags writer closes a chunk past 1 MiB, so one per chunk."""
    folder = tmp_path_factory.mktemp("damage")
    return write_source_bag(
        folder / "source", frames[:5], compressed=False, storage=StoragePlugin.MCAP
    )


def chunk_offsets(mcap_file: Path) -> list[tuple[int, int, str]]:
    """(start, length, compression) of every chunk, from the file's own chunk index."""
    from mcap.reader import make_reader

    with mcap_file.open("rb") as file:
        indexes = make_reader(file).get_summary().chunk_indexes
    return [(c.chunk_start_offset, c.chunk_length, c.compression) for c in indexes]


def damaged_copy(bag: Path, folder: Path, damage) -> tuple[Path, Path]:
    """(folder bag, its .mcap): `bag` copied with its metadata.yaml, the MCAP's bytes passed
    through `damage`."""
    folder.mkdir()
    (mcap,) = bag.glob("*.mcap")
    shutil.copy(bag / "metadata.yaml", folder)
    (folder / mcap.name).write_bytes(damage(mcap.read_bytes(), chunk_offsets(mcap)))
    return folder, folder / mcap.name


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    """The command line in this process: (exit code, what it printed)."""
    from pam_ros.tools.bag.cli import main

    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        code = main(["annotate", *argv])
    finally:
        signal.signal(signal.SIGINT, handlers[0])
        signal.signal(signal.SIGTERM, handlers[1])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def tracking_only_args(checkpoints) -> list[str]:
    sam, _ = checkpoints
    return [
        "--tracker-size=tiny",
        "--image-size=256",
        f"--tracker-checkpoint={sam}",
        "--no-semantics",
        "--device=cpu",
        "--overlay-every=0",
        "--no-progress",
    ]


def test_cut_short_mcap_is_annotated_up_to_the_cut(five_frames_bag, tmp_path, checkpoints, capsys):
    """A recorder killed while writing the 4th chunk leaves no footer: rosbags refuses the file,
    the tool streams it and annotates the 3 whole frames, then exits 3 naming the file, the
    frames read and the byte where reading stopped."""
    (mcap,) = five_frames_bag.glob("*.mcap")
    chunks = chunk_offsets(mcap)
    fourth_start, fourth_length, _ = chunks[3]
    cut_at = fourth_start + fourth_length // 2
    bag, cut_file = damaged_copy(five_frames_bag, tmp_path / "cut", lambda data, _: data[:cut_at])
    output = tmp_path / "out"
    code, printed = run_cli([str(bag), str(output), *tracking_only_args(checkpoints)], capsys)
    assert code == EXIT_PARTIAL == 3, printed
    (warning,) = [line for line in printed.splitlines() if "WARNING: partial input" in line]
    assert str(cut_file) in warning
    assert f"reading stopped at byte {fourth_start} of {cut_at}" in warning
    assert "read 3 of 5 frames on /camera/image_raw (count from metadata.yaml)" in warning
    last_bag_time = FIRST_STAMP_NS + 2 * FRAME_PERIOD_NS + 5_000_000
    assert f"the last at bag time {last_bag_time // 10**9}.{last_bag_time % 10**9:09d} s" in (
        warning
    )
    # The output is a whole, indexed bag with the 3 frames read, copied and annotated.
    source = read_bag(five_frames_bag)
    messages = read_bag(output)
    assert [(t, raw) for topic, _, t, raw, _ in messages if topic == COLOR_TOPIC] == [
        (t, raw) for _, _, t, raw, _ in source[:3]
    ]
    tracked = [msg for topic, *_, msg in messages if topic == "/tracked_objects"]
    assert [stamp_ns(msg) for msg in tracked] == [stamp_ns(msg) for *_, msg in source[:3]]
    last = summary_lines(Path(str(output) + ".jsonl"))[-1]
    assert last["frames"] == 3 and last["partial_input"] == [warning.split("partial input: ")[1]]
    # The bare file (no metadata.yaml): the same frames, no expected count to name.
    report = annotate(
        AnnotateOptions(
            input=cut_file,
            output=tmp_path / "bare_out",
            models=model_options(checkpoints, semantics=False),
            overlay_every=0,
            max_frames=1,
            progress=False,
        )
    )
    assert report.frames == 1
    (line,) = report.partial_input
    assert "read 3 frames on /camera/image_raw, the last at" in line
    # Cut in the summary, after the data section's end: no message lost, nothing to report.
    bag, _ = damaged_copy(five_frames_bag, tmp_path / "no_footer", lambda data, _: data[:-100])
    report = annotate(
        AnnotateOptions(
            input=bag,
            output=tmp_path / "no_footer_out",
            models=model_options(checkpoints, semantics=False),
            overlay_every=0,
            max_frames=1,
            progress=False,
        )
    )
    assert report.messages_copied == 5 and report.partial_input == []


def test_corrupt_chunk_is_reported_not_skipped(five_frames_bag, tmp_path, checkpoints, capsys):
    """A record with an unknown opcode and a huge length in place of the 3rd chunk's first
    message: the reader skips the rest of that chunk without an error, so the tool compares
    the frames read with the bag's own counts and says so (exit 3, or 0 with --allow-partial)."""

    def corrupt(data: bytes, chunks) -> bytes:
        start, _, compression = chunks[2]
        assert compression == ""  # the rosbags writer's default: records readable in place
        # Chunk record: opcode 1, length 8, then start/end time 8+8, uncompressed size 8,
        # CRC 4, compression string 4+len, records length 8; then its first record.
        first_record = start + 1 + 8 + 8 + 8 + 8 + 4 + 4 + len(compression) + 8
        assert data[first_record] == 0x05  # a Message record
        unknown = struct.pack("<BQ", 0x7E, 2**40)  # opcode 0x7E is not defined by MCAP
        return data[:first_record] + unknown + data[first_record + len(unknown) :]

    bag, bad_file = damaged_copy(five_frames_bag, tmp_path / "corrupt", corrupt)
    output = tmp_path / "out"
    code, printed = run_cli([str(bag), str(output), *tracking_only_args(checkpoints)], capsys)
    assert code == EXIT_PARTIAL, printed
    (warning,) = [line for line in printed.splitlines() if "WARNING: partial input" in line]
    assert str(bag) in warning and bad_file.name in warning
    assert "/camera/image_raw: read 4 frames but metadata.yaml records 5" in warning
    source = read_bag(five_frames_bag)
    tracked = [msg for topic, *_, msg in read_bag(output) if topic == "/tracked_objects"]
    assert [stamp_ns(msg) for msg in tracked] == [
        stamp_ns(msg) for i, (*_, msg) in enumerate(source) if i != 2
    ]
    # Accepted explicitly: exit 0, the warning all the same (the bare file: its MCAP summary).
    code, printed = run_cli(
        [
            str(bad_file),
            str(tmp_path / "accepted"),
            *tracking_only_args(checkpoints),
            "--max-frames=1",
            "--allow-partial",
        ],
        capsys,
    )
    assert code == EXIT_OK, printed
    assert f"read 4 frames but the summary of {bad_file.name} records 5" in printed
