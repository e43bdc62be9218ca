"""Annotate a recorded rosbag2: every colour frame tracked, semantics in bag time, MCAP out.

No ROS graph: the input is read with `rosbags`, each frame goes through the same per-frame
pipeline as the node (`pam_ros.pipeline.FramePipeline`), the outputs are built by the node's
message builders and serialised with rclpy's `serialize_message`, and the output bag is written
with `rosbags` as MCAP, every connection carrying its message definition (see `bag_types`).

Damaged input: an MCAP that rosbags cannot open (a recorder killed before writing the footer)
is read as a stream from its first byte (`salvage.SalvageReader`) up to the first record that
is not whole; after the run the messages read per topic are compared with the counts that
metadata.yaml or the MCAP summary records (a corrupt chunk can be skipped without an error).
Either finding is a line in `AnnotateReport.partial_input`, and the output holds what was read.

Determinism: semantics run inline, throttled on the frames' STAMPS (not the wall clock), so the
same bag and options give the same output bag. For that the latency fields of the output
messages (`tracking_latency`, `semantics.latency`) are 0 — a bag has no arrival time; the
measured timings are in the summary's last line.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pam_ros.pipeline import (
    ORIGIN_DETECTION,
    ORIGIN_PROMPT,
    FramePipeline,
    PipelineConfig,
    StreamClock,
)
from pam_ros.pipeline.models import build_models
from pam_ros.ros.model_settings import model_settings
from pam_ros.ros.parameters import PARAMETER_SPECS, NodeParameters
from pam_ros.ros.stamps import stamp_to_ns
from pam_ros.tools.bag.bag_types import DETECTION_ARRAY_TYPE, build_typestore, connection_definition
from pam_ros.tools.bag.prompts import Prompt, detection_prompts, load_prompt_file
from pam_ros.tools.bag.recorder import jpeg_msg

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
COLOR_TYPES = (IMAGE_TYPE, COMPRESSED_TYPE)
OUTPUT_TYPES = {
    "tracked_objects": "pam_ros/msg/TrackedObjectArray",
    "overlay/compressed": COMPRESSED_TYPE,
    "markers": "visualization_msgs/msg/MarkerArray",
    "detections": DETECTION_ARRAY_TYPE,
}
EXIT_OK, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 130
EXIT_PARTIAL = 3  # the input was read only in part (cut or damaged); OUT holds what was read


def node_default(name: str):
    """The node's default for parameter `name`: the bag tool's defaults follow the node's."""
    return next(spec.default for spec in PARAMETER_SPECS if spec.name == name)


class BagToolError(Exception):
    """A problem with the inputs or the output path; the message says what and where."""


class BagInputError(BagToolError):
    """IN cannot be read (missing, corrupt, truncated) or lacks a topic asked for."""


class ModelLoadError(BagToolError):
    """The models could not be loaded (the message says why)."""


class OutputExistsError(BagToolError):
    pass


@dataclass(frozen=True)
class ModelOptions:
    tracker_model_size: str = node_default("tracker.model_size")
    tracker_image_size: int = node_default("tracker.image_size")
    tracker_checkpoint: str = ""  # empty: the official file (downloaded where possible)
    tracker_random_weights: bool = False  # TESTING ONLY
    semantics_model: str = node_default("semantics.model_path")  # "" disables semantics
    device: str = node_default("device")
    dtype: str = node_default("dtype")


@dataclass(frozen=True)
class AnnotateOptions:
    input: Path
    output: Path
    color_topic: str | None = None  # None: the bag's only Image / CompressedImage topic
    prompts_file: Path | None = None
    prompt_topic: str | None = None  # vision_msgs/Detection2DArray in the bag
    overwrite: bool = False
    models: ModelOptions = field(default_factory=ModelOptions)
    semantic_rate_hz: float = node_default("semantic_rate_hz")  # engine calls per BAG second
    refresh_period_s: float = node_default("refresh_period_s")
    appearance_change_threshold: float = node_default("appearance_change_threshold")
    video_caption_segment_frames: int = node_default("video_caption_segment_frames")
    semantic_kinds: tuple[str, ...] = tuple(node_default("semantic_kinds"))
    language: str = node_default("language")
    max_new_tokens: int = node_default("max_new_tokens")  # 0: the engine's default per kind
    max_objects: int = node_default("max_objects")
    mask_layout: str = node_default("mask_layout")
    marker_frame_id: str = ""
    marker_pixel_scale: float = node_default("marker_pixel_scale")
    overlay_every: int = 1  # draw the overlay on every n-th frame (0: no overlay)
    overlay_alpha: float = node_default("overlay_alpha")
    jpeg_quality: int = 90
    output_prefix: str = ""  # output topics are <prefix>/tracked_objects ...
    summary: Path | None = None  # None: <OUT>.jsonl beside the bag
    max_frames: int = 0  # 0: every frame
    progress: bool = True

    @property
    def summary_path(self) -> Path:
        return self.summary or self.output.with_name(self.output.name + ".jsonl")


@dataclass
class AnnotateReport:
    frames: int = 0  # colour frames tracked
    frames_rejected: int = 0  # colour messages that could not be decoded
    messages_copied: int = 0
    prompts_applied: int = 0
    prompts_rejected: list[str] = field(default_factory=list)
    semantic_calls: int = 0
    interrupted: bool = False
    # Why the input was read only in part (cut short, a read error, fewer messages on a topic
    # than the bag records); empty for a whole input. OUT holds everything that was read.
    partial_input: list[str] = field(default_factory=list)
    seconds: float = 0.0
    first_frame_s: float = 0.0  # of `seconds`, until the first frame was written (warm-up)

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def steady_frames_per_second(self) -> float:
        """Frames after the first per second (the first carries the models' warm-up)."""
        steady = self.seconds - self.first_frame_s
        return (self.frames - 1) / steady if self.frames > 1 and steady > 0 else 0.0


def _log(message: str) -> None:
    from tqdm import tqdm

    tqdm.write(f"pam_bag: {message}")


# ---- input ------------------------------------------------------------------------------


def _topic_table(connections) -> str:
    rows = sorted({(c.topic, c.msgtype, c.msgcount) for c in connections})
    return "\n".join(f"  {topic}  [{msgtype}]  {count} msgs" for topic, msgtype, count in rows)


def _find_connection(reader, topic: str | None, types: tuple[str, ...], what: str, path):
    connections = reader.connections
    if topic is None:
        matches = [c for c in connections if c.msgtype in types]
        if len({c.topic for c in matches}) == 1:
            return matches[0]
        reason = "has none" if not matches else "has several; choose one with --topic"
        raise BagInputError(
            f"{path}: no {what} topic given and the bag {reason} of type "
            f"{' / '.join(types)}. Topics in the bag:\n{_topic_table(connections)}"
        )
    normalized = topic if topic.startswith("/") else "/" + topic
    matches = [c for c in connections if c.topic in (topic, normalized)]
    if not matches:
        raise BagInputError(
            f"{path}: topic {topic!r} is not in the bag. Topics in the bag:\n"
            f"{_topic_table(connections)}"
        )
    if matches[0].msgtype not in types:
        raise BagInputError(
            f"{path}: topic {topic!r} is {matches[0].msgtype}, expected {' or '.join(types)}"
        )
    return matches[0]


def _bag_files(path: Path) -> str:
    if path.is_dir():
        files = sorted(p.name for p in path.iterdir() if p.suffix in (".mcap", ".db3"))
        return f"{path} ({', '.join(files) or 'no storage files'})"
    return str(path)


def _open_reader(path: Path, typestore):
    """rosbags' AnyReader; for an MCAP bag it cannot open (no footer, a broken index), the
    records that can be streamed from the start of the file(s) (`SalvageReader`)."""
    from rosbags.highlevel import AnyReader

    if not path.exists():
        raise BagInputError(f"input bag {path} does not exist")
    try:
        reader = AnyReader([path], default_typestore=typestore)
        reader.open()
    except Exception as exc:  # AnyReaderError, mcap/sqlite errors on a corrupt file
        return _salvage_reader(path, typestore, exc)
    return reader


def _salvage_reader(path: Path, typestore, error: Exception):
    from pam_ros.tools.bag.salvage import SalvageReader, mcap_files

    cannot = f"cannot open input bag {_bag_files(path)}: {error}"
    files = mcap_files(path)
    if not files:
        raise BagInputError(cannot) from error
    try:
        reader = SalvageReader(files, typestore)
        reader.open()
    except ImportError as exc:
        raise BagInputError(f"{cannot} (reading it as a stream needs `pip install mcap`)") from exc
    except Exception as exc:
        raise BagInputError(f"{cannot}; reading it as a stream failed too: {exc}") from exc
    if not any(c.msgcount for c in reader.connections):
        stop = "; ".join(f"{d.file.name} at byte {d.good_until}: {d.reason}" for d in reader.damage)
        raise BagInputError(f"{cannot}; no whole message in it from the start ({stop})")
    read = sum(c.msgcount for c in reader.connections)
    _log(f"{cannot} — reading it as a stream from the start: {read} messages can be read")
    return reader


def _header(header_msg):
    """A deserialised (rosbags) std_msgs/Header → rclpy std_msgs/Header."""
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    stamp = header_msg.stamp
    return Header(
        stamp=Time(sec=int(stamp.sec), nanosec=int(stamp.nanosec)),
        frame_id=str(header_msg.frame_id),
    )


def _decode(message, msgtype: str) -> np.ndarray:
    from pam_ros.ros.image_conversion import compressed_msg_to_rgb, image_msg_to_rgb

    if msgtype == COMPRESSED_TYPE:
        return compressed_msg_to_rgb(message)
    return image_msg_to_rgb(message)


# ---- models -----------------------------------------------------------------------------


def node_parameters(options: AnnotateOptions) -> NodeParameters:
    """The options as the node's parameters: the bag tool builds its models exactly as the node
    does (`pam_ros.ros.model_settings`), node defaults for what the options do not set."""
    models = options.models
    return dataclasses.replace(
        NodeParameters(),
        tracker_model_size=models.tracker_model_size,
        tracker_image_size=models.tracker_image_size,
        tracker_checkpoint=models.tracker_checkpoint,
        tracker_random_weights=models.tracker_random_weights,
        semantics_enabled=bool(models.semantics_model),
        semantics_model_path=models.semantics_model,
        device=models.device,
        dtype=models.dtype,
        semantic_rate_hz=options.semantic_rate_hz,
        refresh_period_s=options.refresh_period_s,
        appearance_change_threshold=options.appearance_change_threshold,
        video_caption_segment_frames=options.video_caption_segment_frames,
        semantic_kinds=list(options.semantic_kinds),
        language=options.language,
        max_new_tokens=options.max_new_tokens,
        max_objects=options.max_objects,
    )


def build_pipeline(options: AnnotateOptions) -> FramePipeline:
    """The models from the one factory, one camera, semantics inline on bag time."""
    clock = StreamClock()
    try:
        settings = model_settings(node_parameters(options))
        models = build_models(settings, log_error=_log, clock=clock)
    except Exception as exc:  # missing weights, a bad checkpoint, no such device, no memory
        raise ModelLoadError(f"cannot load the models: {exc}") from exc
    return FramePipeline(
        models.tracker.add_stream(""),
        models.scheduler,
        PipelineConfig(max_objects=options.max_objects, synchronous_semantics=True),
        clock=clock if models.scheduler is not None else None,
    )


# ---- output -----------------------------------------------------------------------------


def _without_latency(semantics: dict) -> dict:
    return {oid: dataclasses.replace(rec, latency=0.0) for oid, rec in semantics.items()}


def _overlay_msg(output, header, options: AnnotateOptions):
    from pam_ros.pipeline.overlay import draw_overlay, overlay_objects

    objects = overlay_objects(output.result, output.semantics)
    canvas = draw_overlay(output.frame, objects, options.overlay_alpha)  # (H, W, 3) RGB
    return jpeg_msg(canvas, header, options.jpeg_quality)


def _detections_msg(output, header):
    """The node's own builder: the same Detection2DArray for the same frame."""
    from pam_ros.ros.detections import detection_array_msg

    return detection_array_msg(header, output.result, output.names, output.semantics)


def _summary_record(frame_index: int, output, bag_time_ns: int) -> dict:
    objects = []
    for oid, obj in output.result.objects.items():
        record = output.semantics.get(oid)
        objects.append(
            {
                "id": oid,
                "name": output.names.get(oid, ""),
                "present": bool(obj.present),
                "score": round(float(obj.score), 4),
                "box": list(obj.box) if obj.box is not None else None,
                "mask_area": int(np.count_nonzero(obj.mask)),
                "category": record.category if record else "",
                "definition": record.definition if record else "",
                "function": record.function if record else "",
                "video_caption": record.video_caption if record else "",
                "random_weights": bool(record.random_weights) if record else False,
            }
        )
    return {
        "frame": frame_index,
        "stamp_ns": output.stamp_ns,
        "bag_time_ns": bag_time_ns,
        "tracker_frame_index": int(output.result.frame_index),
        "objects": objects,
    }


class _Outputs:
    """The output bag's connections and how each output message is written."""

    def __init__(self, writer, typestore, has_vision: bool, options: AnnotateOptions) -> None:
        from rosbags.interfaces import Qos  # noqa: F401  (keeps the import error early)

        self.writer = writer
        self.typestore = typestore
        self.options = options
        self.connections = {}
        prefix = options.output_prefix.rstrip("/")
        for name, msgtype in OUTPUT_TYPES.items():
            if name == "detections" and not has_vision:
                _log("vision_msgs is not installed: no `detections` topic in the output")
                continue
            if name == "overlay/compressed" and options.overlay_every == 0:
                continue
            msgdef, digest = connection_definition(typestore, msgtype)
            self.connections[name] = writer.add_connection(
                f"{prefix}/{name}", msgtype, msgdef=msgdef, rihs01=digest
            )

    @property
    def topics(self) -> list[str]:
        return [c.topic for c in self.connections.values()]

    def write(self, name: str, bag_time_ns: int, msg) -> None:
        from rclpy.serialization import serialize_message

        connection = self.connections.get(name)
        if connection is None:
            return
        # rclpy's CDR leaves alignment padding bytes uninitialised; one pass through the
        # typestore writes them as zeros, so the same input gives a byte-identical bag.
        msgtype = connection.msgtype
        raw = serialize_message(msg)
        data = self.typestore.serialize_cdr(self.typestore.deserialize_cdr(raw, msgtype), msgtype)
        self.writer.write(connection, bag_time_ns, data)

    def write_frame(self, frame_index: int, output, header, bag_time_ns: int) -> None:
        from pam_ros.ros import message_builders

        options = self.options
        semantics = _without_latency(output.semantics)
        self.write(
            "tracked_objects",
            bag_time_ns,
            message_builders.tracked_object_array(
                header,
                output.result,
                output.image_size,
                output.names,
                semantics,
                options.mask_layout,
                0.0,
                output.origins,
            ),
        )
        self.write(
            "markers",
            bag_time_ns,
            message_builders.marker_array(
                header,
                output.result,
                semantics,
                options.marker_frame_id,
                options.marker_pixel_scale,
            ),
        )
        if "overlay/compressed" in self.connections and frame_index % options.overlay_every == 0:
            self.write("overlay/compressed", bag_time_ns, _overlay_msg(output, header, options))
        if "detections" in self.connections:
            self.write("detections", bag_time_ns, _detections_msg(output, header))


def _copy_connection(writer, connection, typestore):
    ext = connection.ext
    qos = list(getattr(ext, "offered_qos_profiles", []) or [])
    msgdef, digest = connection.msgdef.data, connection.digest
    if not msgdef or not digest:  # a bag without definitions (old sqlite3): the typestore's
        msgdef, digest = connection_definition(typestore, connection.msgtype)
    return writer.add_connection(
        connection.topic,
        connection.msgtype,
        msgdef=msgdef,
        rihs01=digest,
        serialization_format=getattr(ext, "serialization_format", "cdr"),
        offered_qos_profiles=qos,
    )


def _check_output(options: AnnotateOptions, clear: bool = False) -> None:
    """Refuses OUT (and OUT.jsonl) when it is the input or exists without --overwrite; with
    `clear`, removes what --overwrite replaces (done once the input and models are ready, so
    a run that cannot start loses nothing)."""
    output, summary = options.output, options.summary_path
    if output.resolve() == options.input.resolve():
        raise OutputExistsError(f"OUT {output} is the input bag")
    for path in (output, summary):
        clear_output(path, options.overwrite, remove=clear)


def clear_output(path: Path, overwrite: bool, remove: bool = True) -> None:
    """Refuses an existing output file or folder unless `overwrite`; then removes it (when
    `remove`)."""
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise OutputExistsError(f"{path} exists already (use --overwrite to replace it)")
        if not remove:
            return
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


# ---- the run ----------------------------------------------------------------------------


def _apply_prompts(pipeline, prompts: list[Prompt], report, summary, frame_index, size):
    for prompt in prompts:
        try:
            if prompt.remove is not None:
                pipeline.remove_object(prompt.remove)
                event = {"event": "removed", "id": prompt.remove}
            else:
                if prompt.skip_if_tracked and pipeline.overlaps_tracked(prompt.box):
                    continue
                new_id = pipeline.add_object(
                    points=list(prompt.points),
                    labels=list(prompt.labels),
                    box=prompt.box,
                    object_id=prompt.object_id,
                    name=prompt.name,
                    origin=ORIGIN_DETECTION if prompt.skip_if_tracked else ORIGIN_PROMPT,
                )
                event = {"event": "added", "id": new_id, "name": prompt.name}
            report.prompts_applied += 1
        except (KeyError, ValueError) as exc:  # outside the image, unknown id, too many ...
            reason = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
            message = (
                f"{prompt.source}: {prompt.describe()} on frame {frame_index} "
                f"({size[0]}x{size[1]}) refused: {reason}"
            )
            _log(message)
            report.prompts_rejected.append(message)
            event = {"event": "prompt_refused", "source": prompt.source, "reason": reason}
        summary.write(json.dumps({**event, "frame": frame_index, "source": prompt.source}) + "\n")


def annotate(options: AnnotateOptions) -> AnnotateReport:
    """Run the whole tool; raises BagToolError subclasses for bad inputs/outputs (nothing
    written then). Ctrl-C, and an input read only in part (cut short, a read error mid-bag,
    fewer messages than the bag records), still close the output bag with what was done
    (`report.interrupted` / `report.partial_input`)."""
    from tqdm import tqdm

    if options.overlay_every < 0:
        raise BagToolError("--overlay-every must be >= 0")
    _check_output(options)
    typestore, has_vision = build_typestore()
    prompts = load_prompt_file(options.prompts_file) if options.prompts_file else []
    reader = _open_reader(options.input, typestore)
    report = AnnotateReport()
    try:
        color = _find_connection(reader, options.color_topic, COLOR_TYPES, "colour", options.input)
        if options.prompt_topic:
            detections = _find_connection(
                reader, options.prompt_topic, (DETECTION_ARRAY_TYPE,), "prompt", options.input
            )
            prompts += _read_detection_prompts(reader, detections, options.input)
        pipeline = build_pipeline(options)
        _check_output(options, clear=True)
        _run(reader, color, prompts, pipeline, typestore, has_vision, options, report, tqdm)
    finally:
        reader.close()
    return report


def _read_detection_prompts(reader, connection, path) -> list[Prompt]:
    prompts: list[Prompt] = []
    count = 0
    try:
        for _, _, raw in reader.messages(connections=[connection]):
            message = reader.deserialize(raw, connection.msgtype)
            prompts += detection_prompts(message, connection.topic)
            count += 1
    except Exception as exc:
        raise BagInputError(
            f"{_bag_files(path)}: reading {connection.topic} failed after {count} messages: {exc}"
        ) from exc
    return sorted(prompts, key=lambda p: p.stamp_ns)


def _run(reader, color, prompts, pipeline, typestore, has_vision, options, report, tqdm) -> None:
    from rosbags.rosbag2 import StoragePlugin, Writer

    started = time.perf_counter()
    pending = list(prompts)
    writer = Writer(
        options.output, version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.MCAP
    )
    writer.open()
    summary = options.summary_path.open("w")
    total = color.msgcount if not options.max_frames else min(color.msgcount, options.max_frames)
    progress = tqdm(total=total, unit="frame", disable=not options.progress, desc="annotate")
    messages_read, last_time = 0, None
    first_stamp_ns = None
    last_frame = (None, None)  # (bag time, header stamp) of the last colour message read
    read_counts: dict[int, int] = {}
    stopped = ""  # why reading stopped before the end (a read error)
    try:
        copies = {c.id: _copy_connection(writer, c, typestore) for c in reader.connections}
        outputs = _Outputs(writer, typestore, has_vision, options)
        clash = sorted(set(outputs.topics) & {c.topic for c in reader.connections})
        if clash:
            raise BagToolError(
                f"output topic(s) {clash} already in the input bag; use --output-prefix"
            )
        iterator = iter(reader.messages())
        while True:
            try:
                connection, bag_time_ns, raw = next(iterator)
            except StopIteration:
                break
            except Exception as exc:  # corrupt or truncated storage
                where = (
                    f"after message {messages_read} (bag time {last_time} ns)"
                    if last_time is not None
                    else "before the first message"
                )
                stopped = f"read error {where}: {exc}"
                break
            messages_read += 1
            last_time = bag_time_ns
            read_counts[connection.id] = read_counts.get(connection.id, 0) + 1
            writer.write(copies[connection.id], bag_time_ns, raw)
            report.messages_copied += 1
            if connection.id != color.id:
                continue
            last_frame = (bag_time_ns, None)
            if options.max_frames and report.frames >= options.max_frames:
                continue
            try:
                message = reader.deserialize(raw, connection.msgtype)
                frame = _decode(message, connection.msgtype)  # (H, W, 3) RGB uint8
            except Exception as exc:  # a bad frame is skipped, as the node does
                report.frames_rejected += 1
                _log(f"frame at bag time {bag_time_ns} ns rejected: {exc}")
                continue
            header = _header(message.header)
            stamp_ns = stamp_to_ns(header.stamp)
            last_frame = (bag_time_ns, stamp_ns)
            if first_stamp_ns is None:
                first_stamp_ns = stamp_ns
            frame_index = report.frames
            due = [p for p in pending if p.due(frame_index, stamp_ns, first_stamp_ns)]
            pending = [p for p in pending if p not in due]
            size = (frame.shape[1], frame.shape[0])
            output = pipeline.process(
                frame,
                stamp_ns,
                prompts=functools.partial(
                    _apply_prompts, pipeline, due, report, summary, frame_index, size
                ),
            )
            report.semantic_calls += output.semantic_calls
            outputs.write_frame(frame_index, output, header, bag_time_ns)
            summary.write(json.dumps(_summary_record(frame_index, output, bag_time_ns)) + "\n")
            summary.flush()
            report.frames += 1
            if report.frames == 1:
                report.first_frame_s = time.perf_counter() - started
            progress.update(1)
        report.partial_input = _partial_input(
            reader, options.input, color, read_counts, stopped, last_frame
        )
    except KeyboardInterrupt:
        report.interrupted = True
        _log(f"interrupted: the output keeps the {report.frames} frames annotated so far")
    finally:
        progress.close()
        writer.close()  # a valid, indexed MCAP with what was written
        report.seconds = time.perf_counter() - started
        for prompt in pending:
            if prompt.remove is None and prompt.frame is not None:
                report.prompts_rejected.append(
                    f"{prompt.source}: frame {prompt.frame} never reached"
                )
        summary.write(
            json.dumps(
                {
                    "event": "interrupted" if report.interrupted else "done",
                    "frames": report.frames,
                    "frames_rejected": report.frames_rejected,
                    "messages_copied": report.messages_copied,
                    "prompts_applied": report.prompts_applied,
                    "prompts_refused": report.prompts_rejected,
                    "semantic_calls": report.semantic_calls,
                    "partial_input": report.partial_input,
                    "seconds": round(report.seconds, 3),
                    "frames_per_second": round(report.frames_per_second, 3),
                    "steady_frames_per_second": round(report.steady_frames_per_second, 3),
                }
            )
            + "\n"
        )
        summary.close()


def _expected_counts(reader, path: Path) -> tuple[dict[str, int], str]:
    """(messages per topic that the bag itself records, where that count comes from)."""
    from pam_ros.tools.bag.salvage import SalvageReader, metadata_counts

    if isinstance(reader, SalvageReader):  # its connections count what it could read
        return metadata_counts(path), "metadata.yaml"
    counts: dict[str, int] = {}
    for connection in reader.connections:
        counts[connection.topic] = counts.get(connection.topic, 0) + connection.msgcount
    source = "metadata.yaml" if path.is_dir() else f"the summary of {path.name}"
    return counts, source


def _seconds(time_ns: int) -> str:
    return f"{time_ns // 10**9}.{time_ns % 10**9:09d} s"


def _partial_input(reader, path, color, read_counts, stopped, last_frame) -> list[str]:
    """One line per way the input was read only in part; [] for a whole input."""
    expected, source = _expected_counts(reader, path)
    frames = read_counts.get(color.id, 0)
    of = f" of {expected[color.topic]}" if color.topic in expected else ""
    read = f"read {frames}{of} frames on {color.topic}{f' (count from {source})' if of else ''}"
    bag_time_ns, stamp_ns = last_frame
    if bag_time_ns is not None:
        read += f", the last at bag time {_seconds(bag_time_ns)}"
        if stamp_ns is not None:
            read += f" (header stamp {_seconds(stamp_ns)})"
    lines = []
    if stopped:  # rosbags failed mid-bag
        lines.append(f"{_bag_files(path)}: {stopped}; {read}")
    for damage in getattr(reader, "damage", []):  # SalvageReader: a file cut or corrupt
        lines.append(
            f"{damage.file}: reading stopped at byte {damage.good_until} of {damage.size}, "
            f"after the last whole record ({damage.reason}); {read}"
        )
    if lines:  # reading stopped early: the counts below are short for that reason
        return lines
    by_topic: dict[str, int] = {}
    for connection in reader.connections:
        by_topic[connection.topic] = by_topic.get(connection.topic, 0) + read_counts.get(
            connection.id, 0
        )
    for topic in sorted(expected):
        if by_topic.get(topic, 0) != expected[topic]:
            what = "frames" if topic == color.topic else "messages"
            lines.append(
                f"{_bag_files(path)}: {topic}: read {by_topic.get(topic, 0)} {what} but "
                f"{source} records {expected[topic]}: part of the file is damaged and was "
                f"skipped by the reader without an error (e.g. a corrupt chunk)"
            )
    return lines
