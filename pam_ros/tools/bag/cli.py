"""Command line of the bag tool.

    python -m pam_ros.tools.bag annotate IN OUT --topic /camera/image_raw --prompts prompts.yaml
    python -m pam_ros.tools.bag annotate IN OUT --prompt-topic /detections --overwrite
    python -m pam_ros.tools.bag from-frames clip.mp4 camera_bag --rate 15

Exit codes: 0 done, 1 an input or output problem (the message says what and where; nothing is
written), 2 bad arguments, 3 partial input: the input was cut short (a recorder killed before
closing its MCAP), failed to read mid-bag, or gave fewer messages on a topic than the bag
records (a corrupt chunk); the output holds every frame that could be read and a WARNING line
says which file, where and how many (`--allow-partial` accepts that: exit 0, the warning
stays), 130 interrupted (Ctrl-C; the output bag is closed and valid with the frames done so
far).
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from pam_ros.core.vocabulary import DTYPES, MODEL_SIZES
from pam_ros.tools.bag.annotate import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PARTIAL,
    AnnotateOptions,
    BagToolError,
    ModelOptions,
    OutputExistsError,
    annotate,
    clear_output,
    node_default,
)
from pam_ros.tools.bag.prompts import PromptFileError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pam_bag", description="Offline tools on recorded rosbag2 files (no ROS graph)."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    ann = commands.add_parser(
        "annotate",
        help="track every colour frame of IN and write OUT (MCAP) with the annotations",
        description="Reads IN (a rosbag2 folder, MCAP or sqlite3, or a .mcap/.db3 file), "
        "tracks every colour frame, runs semantics at --semantic-rate in BAG time and writes "
        "OUT, an MCAP rosbag2 with the input topics plus tracked_objects, overlay/compressed, "
        "markers and detections, and OUT.jsonl, a JSON-lines summary.",
    )
    ann.add_argument("input", type=Path, metavar="IN")
    ann.add_argument("output", type=Path, metavar="OUT")
    ann.add_argument(
        "--topic", help="colour topic, Image or CompressedImage (default: the only one)"
    )
    ann.add_argument(
        "--prompts", type=Path, help="YAML/JSON prompts file (frame/time + box/points)"
    )
    ann.add_argument(
        "--prompt-topic", help="vision_msgs/Detection2DArray topic of IN: one object per box"
    )
    ann.add_argument("--overwrite", action="store_true", help="replace OUT (and OUT.jsonl)")
    ann.add_argument("--summary", type=Path, help="JSON-lines summary path (default: OUT.jsonl)")
    ann.add_argument("--output-prefix", default="", help="prefix of the output topics (e.g. /pam)")
    ann.add_argument("--max-frames", type=int, default=0, help="stop after N frames (0: all)")
    ann.add_argument("--no-progress", action="store_true", help="no progress bar")
    ann.add_argument(
        "--allow-partial",
        action="store_true",
        help="exit 0 (not 3) when the input could be read only in part (cut short, a damaged "
        "chunk); the warning is printed all the same",
    )
    models = ann.add_argument_group("models (defaults: the node's parameters)")
    models.add_argument(
        "--tracker-size",
        default=node_default("tracker.model_size"),
        choices=MODEL_SIZES,
    )
    models.add_argument("--image-size", type=int, default=node_default("tracker.image_size"))
    models.add_argument("--tracker-checkpoint", default="", help="SAM 2.1 .pt (default: official)")
    models.add_argument(
        "--random-tracker-weights", action="store_true", help="TESTING ONLY: random SAM 2 weights"
    )
    models.add_argument(
        "--pam",
        default=node_default("semantics.model_path"),
        help="PAM checkpoint folder or hub id",
    )
    models.add_argument("--no-semantics", action="store_true", help="tracking only")
    models.add_argument("--device", default=node_default("device"), choices=("cpu", "cuda", "auto"))
    models.add_argument("--dtype", default=node_default("dtype"), choices=DTYPES)
    sem = ann.add_argument_group("semantics (rates in bag time)")
    sem.add_argument(
        "--semantic-rate",
        type=float,
        default=node_default("semantic_rate_hz"),
        help="engine calls per second of bag time",
    )
    sem.add_argument("--refresh-period", type=float, default=node_default("refresh_period_s"))
    sem.add_argument(
        "--video-caption-frames", type=int, default=node_default("video_caption_segment_frames")
    )
    sem.add_argument("--kinds", nargs="+", default=list(node_default("semantic_kinds")))
    sem.add_argument("--language", default=node_default("language"), choices=("en", "zh"))
    out = ann.add_argument_group("outputs")
    out.add_argument(
        "--mask-layout",
        default=node_default("mask_layout"),
        choices=("full_frame", "cropped", "none"),
    )
    out.add_argument("--max-objects", type=int, default=node_default("max_objects"))
    out.add_argument(
        "--overlay-every", type=int, default=1, help="overlay on every n-th frame (0: no overlay)"
    )
    out.add_argument("--jpeg-quality", type=int, default=90)
    out.add_argument("--marker-frame-id", default="")
    rec = commands.add_parser(
        "from-frames",
        help="write a camera bag (MCAP) from a video file, an image folder or 'generated'",
    )
    rec.add_argument("source", help="video file, image folder, or 'generated'")
    rec.add_argument("output", type=Path, metavar="OUT")
    rec.add_argument("--topic", default="/camera/image_raw")
    rec.add_argument("--rate", type=float, default=15.0, help="frame rate of the stamps (Hz)")
    rec.add_argument("--frames", type=int, default=0, help="at most N frames (0: all)")
    rec.add_argument("--compressed", action="store_true", help="JPEG CompressedImage")
    rec.add_argument("--storage", default="mcap", choices=("mcap", "sqlite3"))
    rec.add_argument("--overwrite", action="store_true", help="replace OUT")
    return parser


def from_frames(args: argparse.Namespace) -> int:
    from pam_ros.tools.bag.record import write_frames_bag
    from pam_ros.tools.demo.frame_sources import FrameSourceError, open_frame_source

    try:
        frames = open_frame_source(args.source, args.frames or None)
        clear_output(args.output, args.overwrite)  # after the source opened: kept on a bad one
        count = write_frames_bag(
            frames, args.output, args.topic, args.rate, args.compressed, storage=args.storage
        )
    except (FrameSourceError, OutputExistsError, ValueError) as exc:
        print(f"pam_bag: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(f"pam_bag: wrote {count} frames to {args.output}", file=sys.stderr)
    return EXIT_OK


def options_from_args(args: argparse.Namespace) -> AnnotateOptions:
    return AnnotateOptions(
        input=args.input,
        output=args.output,
        color_topic=args.topic,
        prompts_file=args.prompts,
        prompt_topic=args.prompt_topic,
        overwrite=args.overwrite,
        models=ModelOptions(
            tracker_model_size=args.tracker_size,
            tracker_image_size=args.image_size,
            tracker_checkpoint=args.tracker_checkpoint,
            tracker_random_weights=args.random_tracker_weights,
            semantics_model="" if args.no_semantics else args.pam,
            device=args.device,
            dtype=args.dtype,
        ),
        semantic_rate_hz=args.semantic_rate,
        refresh_period_s=args.refresh_period,
        video_caption_segment_frames=args.video_caption_frames,
        semantic_kinds=tuple(args.kinds),
        language=args.language,
        mask_layout=args.mask_layout,
        max_objects=args.max_objects,
        overlay_every=args.overlay_every,
        jpeg_quality=args.jpeg_quality,
        marker_frame_id=args.marker_frame_id,
        output_prefix=args.output_prefix,
        summary=args.summary,
        max_frames=args.max_frames,
        progress=not args.no_progress,
    )


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Ctrl-C and `kill` stop after the current frame and close the bag. Explicit handlers: a
    # process started in the background by a non-interactive shell (CI, `cmd &`) inherits
    # SIGINT ignored, and Python then installs no KeyboardInterrupt handler of its own.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    if args.command == "from-frames":
        return from_frames(args)
    options = options_from_args(args)
    try:
        report = annotate(options)
    except (BagToolError, PromptFileError) as exc:
        print(f"pam_bag: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:  # before the output was opened: nothing written
        print("pam_bag: interrupted before any frame was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(
        f"pam_bag: {report.frames} frames in {report.seconds:.1f} s "
        f"({report.frames_per_second:.2f} frames/s), {report.semantic_calls} semantic calls, "
        f"{len(report.prompts_rejected)} prompt(s) refused → {options.output} "
        f"(summary {options.summary_path})",
        file=sys.stderr,
    )
    if report.interrupted:
        return EXIT_INTERRUPTED
    for line in report.partial_input:  # repeated last, where a user reads
        print(f"pam_bag: WARNING: partial input: {line}", file=sys.stderr)
    if report.partial_input and not args.allow_partial:
        print(
            f"pam_bag: exit {EXIT_PARTIAL}: the input was read only in part; {options.output} "
            "holds what was read (--allow-partial accepts such input with exit 0)",
            file=sys.stderr,
        )
        return EXIT_PARTIAL
    return EXIT_OK
