"""The pam_ros demo: a video source, the pam_ros node and a client, over real ROS 2 topics.

    python -m pam_ros.tools.demo.run_demo [--source PATH|generated] [--frames N] [--output DIR]
                                    [--random-weights] [--box x0,y0,x1,y1] [--point x,y] ...

Three nodes share one process and talk over DDS exactly as they would across processes:

- `video_source` publishes the frames of a clip (by default a real DAVIS clip when
  ../shared/data is there, otherwise a generated scene) on `image`;
- the `pam_ros` lifecycle node tracks and describes;
- `pam_demo_client` prompts objects (a box through the `add_object` service, a point on the
  `click` topic), asks the node to `discover` objects nobody prompted (on frame 4, at most 2),
  asks `describe` while tracking runs and at the end, asks `find_objects` "something to pour
  with" (which object, how sure, where), and records every `tracked_objects` and `overlay`
  message.

The source is stepped frame by frame (each frame is published when the previous one has been
tracked), so the recording holds every frame however slow the machine; `--realtime HZ`
publishes at a fixed rate instead and lets the node drop what it cannot keep up with.

Output folder: `overlay.mp4` (masks, ids and labels as the node drew them), `recording/` (an
MCAP rosbag2 of the camera frames, tracked_objects and overlays), `tracked_objects.jsonl`
(one line per frame), `descriptions.jsonl` (every Describe answer) and `summary.json`.

Default models are the real ones (SAM 2.1 Hiera-L at 1024 px and PAM-1.5B). Where they cannot be
had the demo says what to fetch and stops; `--random-weights` runs the same pipeline on small
randomly initialised models of the real architectures, and every output says so.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import rclpy
from geometry_msgs.msg import Point, PointStamped
from rclpy.executors import MultiThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, RegionOfInterest
from tqdm import tqdm

from pam_ros.core.paths import DAVIS_SUBSET
from pam_ros.core.vocabulary import KINDS, MODEL_SIZES
from pam_ros.msg import TrackedObjectArray
from pam_ros.ros.dds_profile import apply_profile
from pam_ros.ros.image_conversion import image_msg_to_rgb
from pam_ros.ros.message_builders import stamp_to_ns
from pam_ros.ros.pam_node import PamNode
from pam_ros.srv import AddObject, Describe, Discover, FindObjects
from pam_ros.tools.demo.frame_sources import GeneratedScene, ImageFolderFrames
from pam_ros.tools.demo.video_source import VideoSourceNode

DEFAULT_DAVIS = DAVIS_SUBSET
DEFAULT_SEQUENCE = "car-shadow"
RANDOM_WARNING = (
    "RANDOM WEIGHTS: masks and descriptions come from randomly initialised models; "
    "they show that the pipeline runs, not what any object is."
)


class DemoError(RuntimeError):
    """The demo cannot run as asked; the message says why and what to do."""


@dataclass
class Prompt:
    kind: str  # "box" (AddObject service) or "click" (click topic)
    name: str
    box: tuple[int, int, int, int] | None = None  # x0, y0, x1, y1
    point: tuple[float, float] | None = None


@dataclass
class DemoSource:
    description: str
    frames: object  # an iterable of RGB frames (pam_ros.tools.demo.frame_sources)
    spec: str  # what VideoSourceNode's `source` parameter takes
    prompts: list[Prompt] = field(default_factory=list)


# ---- what to run on ------------------------------------------------------------------------


def _davis_prompts(sequence_dir: Path) -> list[Prompt]:
    """A box around the annotated object of frame 0, and a click on the background point
    farthest from it (a second, independent object)."""
    annotations = sequence_dir.parents[2] / "Annotations" / "480p" / sequence_dir.name
    first_mask = sorted(annotations.glob("*.png"))
    if not first_mask:
        return []
    mask = cv2.imread(str(first_mask[0]), cv2.IMREAD_GRAYSCALE) > 127
    ys, xs = np.nonzero(mask)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    free = (~mask).astype(np.uint8)
    free[[0, -1], :] = 0  # stay away from the image border too
    free[:, [0, -1]] = 0
    distance = cv2.distanceTransform(free, cv2.DIST_L2, 5)
    y, x = np.unravel_index(int(np.argmax(distance)), distance.shape)
    return [
        Prompt("box", f"{sequence_dir.name} (annotated object)", box=box),
        Prompt("click", "background region", point=(float(x), float(y))),
    ]


def open_demo_source(spec: str | None, max_frames: int) -> DemoSource:
    if spec is None:
        sequence = DEFAULT_DAVIS / "JPEGImages" / "480p" / DEFAULT_SEQUENCE
        spec = str(sequence) if sequence.is_dir() else "generated"
    if spec == "generated":
        scene = GeneratedScene(num_frames=max_frames)
        disc, square = scene.object_boxes(0)
        prompts = [
            Prompt("box", "red disc", box=disc),
            Prompt(
                "click",
                "green block",
                point=((square[0] + square[2]) / 2, (square[1] + square[3]) / 2),
            ),
        ]
        return DemoSource("a generated scene of two moving shapes", scene, spec, prompts)
    path = Path(spec)
    if path.is_dir():
        frames = ImageFolderFrames(path, max_frames)
        return DemoSource(
            f"image folder {path} ({len(frames)} frames)", frames, spec, _davis_prompts(path)
        )
    if path.is_file():
        from pam_ros.tools.demo.frame_sources import VideoFileFrames

        return DemoSource(f"video file {path}", VideoFileFrames(path, max_frames), spec, [])
    raise DemoError(f"--source {spec!r} is neither 'generated', an image folder nor a video file")


def model_parameters(args: argparse.Namespace, output: Path) -> tuple[dict, bool]:
    """The node's model parameters, and whether the weights are random."""
    if not args.random_weights:
        return {
            "tracker.model_size": args.tracker_size,
            "tracker.image_size": args.image_size,
            "tracker.checkpoint": args.tracker_checkpoint,
            "semantics.model_path": args.pam,
            "device": args.device,
            "discovery.mode": "on_request",
        }, False
    from pam_ros.testing.random_pam import write_random_checkpoint as write_pam
    from pam_ros.testing.random_sam2 import write_random_checkpoint as write_sam
    from pam_ros.tracking import TrackerConfig

    models = output / "random_models"
    image_size = 256 if args.image_size == 1024 else args.image_size  # 1024 is slow on a CPU
    sam = write_sam(
        TrackerConfig(model_size="tiny", image_size=image_size, seed=args.seed),
        models / f"sam2.1_hiera_tiny_random_{image_size}.pt",
    )
    pam = write_pam(models / "PAM-tiny-random", size="tiny", seed=args.seed)
    return {
        "tracker.model_size": "tiny",
        "tracker.image_size": image_size,
        "tracker.checkpoint": str(sam),
        "semantics.model_path": str(pam),
        "device": args.device,
        "discovery.mode": "on_request",
        # Random SAM 2 masks are image-wide textures with predicted IoU ~0.5 and stability
        # ~0.3-0.5: SAM 2's default thresholds keep none, so the demo relaxes them to show the
        # discovery step run (the objects it finds mean nothing).
        **RANDOM_DISCOVERY,
    }, True


RANDOM_DISCOVERY = {
    "discovery.points_per_side": 8,
    "discovery.pred_iou_thresh": 0.45,
    "discovery.stability_score_thresh": 0.25,
    "discovery.stability_score_offset": 0.05,
    "discovery.box_nms_thresh": 1.0,
    "discovery.min_area_fraction": 0.0,
    "discovery.max_area_fraction": 1.0,
    "discovery.max_overlap_with_tracked": 1.0,
}
DISCOVER_AT = 4  # the frame on which the demo asks the node to discover objects
DISCOVER_MAX = 2  # objects it adds
FIND_QUERY = ("something to pour with", "function")  # the robot's question at the end


# ---- the client node -----------------------------------------------------------------------


class DemoClient(Node):
    """Prompts objects, asks questions, and records what the pam_ros node publishes."""

    def __init__(self, **kwargs) -> None:
        super().__init__("pam_demo_client", **kwargs)
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self._lock = threading.Lock()
        self.tracked: dict[int, TrackedObjectArray] = {}  # source stamp (ns) → message
        self.overlays: dict[int, Image] = {}
        self.create_subscription(TrackedObjectArray, "tracked_objects", self._on_tracked, reliable)
        self.create_subscription(Image, "overlay", self._on_overlay, reliable)
        self.click = self.create_publisher(PointStamped, "click", 10)
        self.add_object = self.create_client(AddObject, "add_object")
        self.describe = self.create_client(Describe, "describe")
        self.discover = self.create_client(Discover, "discover")
        self.find_objects = self.create_client(FindObjects, "find_objects")

    def _on_tracked(self, msg: TrackedObjectArray) -> None:
        with self._lock:
            self.tracked[stamp_to_ns(msg.header.stamp)] = msg

    def _on_overlay(self, msg: Image) -> None:
        with self._lock:
            self.overlays[stamp_to_ns(msg.header.stamp)] = msg

    def pop(self, stamp_ns: int, timeout: float) -> tuple[TrackedObjectArray | None, Image | None]:
        """The tracked_objects (and overlay, when the node drew one) of the frame `stamp_ns`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if stamp_ns in self.tracked:
                    break
            time.sleep(0.005)
        overlay_deadline = time.monotonic() + 0.5
        while time.monotonic() < overlay_deadline:
            with self._lock:
                if stamp_ns in self.overlays or stamp_ns not in self.tracked:
                    break
            time.sleep(0.005)
        with self._lock:
            return self.tracked.pop(stamp_ns, None), self.overlays.pop(stamp_ns, None)

    def next_tracked(self, timeout: float) -> tuple[TrackedObjectArray | None, Image | None]:
        """The oldest recorded frame not yet taken (real-time mode)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                stamp = min(self.tracked, default=None)
            if stamp is not None:
                return self.pop(stamp, timeout=0)
            time.sleep(0.01)
        return None, None

    def call(self, client, request, timeout: float = 600.0):
        if not client.wait_for_service(timeout_sec=10.0):
            raise DemoError(f"service {client.srv_name} is not available")
        future = client.call_async(request)
        deadline = time.monotonic() + timeout
        while not future.done():
            if time.monotonic() > deadline:
                raise DemoError(f"service {client.srv_name} did not answer in {timeout} s")
            time.sleep(0.01)
        return future.result()


# ---- recording -----------------------------------------------------------------------------


def frame_record(msg: TrackedObjectArray) -> dict:
    return {
        "stamp_ns": stamp_to_ns(msg.header.stamp),
        "frame_index": int(msg.frame_index),
        "tracking_latency_s": round(float(msg.tracking_latency), 4),
        "objects": [
            {
                "id": obj.id,
                "name": obj.name,
                "origin": obj.origin,
                "present": bool(obj.present),
                "score": round(float(obj.score), 3),
                "box_xywh": [obj.box.x_offset, obj.box.y_offset, obj.box.width, obj.box.height],
                "mask_area": int(obj.mask_area),
                "category": obj.semantics.category,
                "caption": obj.semantics.caption,
                "video_caption": obj.semantics.video_caption,
                "random_weights": bool(obj.semantics.random_weights),
            }
            for obj in msg.objects
        ],
    }


def describe_record(object_id: str, kind: str, response: Describe.Response, random: bool) -> dict:
    semantics = response.semantics
    return {
        "id": object_id,
        "kind": kind,
        "success": bool(response.success),
        "message": response.message,
        "text": response.text,
        "category": semantics.category,
        "definition": semantics.definition,
        "function": semantics.function,
        "from_cache": bool(response.from_cache),
        "latency_s": round(float(response.latency), 4),
        "model": semantics.model,
        "random_weights": bool(semantics.random_weights) or random,
    }


# ---- the run -------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict:
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    source = open_demo_source(args.source, args.frames)
    prompts = source.prompts
    if args.box or args.point:
        prompts = [Prompt("box", f"box {i + 1}", box=b) for i, b in enumerate(args.box)]
        prompts += [Prompt("click", f"point {i + 1}", point=p) for i, p in enumerate(args.point)]
    if not prompts:
        raise DemoError("nothing to prompt: give --box x0,y0,x1,y1 or --point x,y")
    params, random_weights = model_parameters(args, output)
    if random_weights:
        print(RANDOM_WARNING, file=sys.stderr)
    print(f"pam_ros demo on {source.description}; output in {output}", file=sys.stderr)

    context = rclpy.Context()
    rclpy.init(context=context)
    namespace = "/pam_demo"
    node_params = {
        **params,
        "overlay_rate_hz": 100.0,  # an overlay for every frame of the recording
        # the demo steps the camera itself and asks its last questions after the clip ended:
        # the pauses are by design, not a silent camera to warn about
        "camera_timeout_s": 3600.0,
        "semantic_rate_hz": args.semantic_rate_hz,
    }
    pam = PamNode(
        namespace=namespace,
        context=context,
        parameter_overrides=[Parameter(k, value=v) for k, v in node_params.items()],
    )
    camera = VideoSourceNode(
        namespace=namespace,
        context=context,
        parameter_overrides=[
            Parameter("source", value=source.spec),
            Parameter("rate_hz", value=float(args.realtime)),
            Parameter("max_frames", value=int(args.frames)),
            Parameter("frame_id", value="camera"),
        ],
    )
    client = DemoClient(namespace=namespace, context=context)
    executor = MultiThreadedExecutor(num_threads=4, context=context)
    for node in (pam, camera, client):
        executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    writer = None
    recording = _open_recording(output / "recording")
    frames_log = (output / "tracked_objects.jsonl").open("w")
    describe_log = (output / "descriptions.jsonl").open("w")
    summary: dict = {"random_weights": random_weights, "source": source.description}
    try:
        if pam.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            hint = (
                ""
                if random_weights
                else (
                    "\nThe real weights are needed (see README, 'Weights'), or run with "
                    "--random-weights (make demo RANDOM_WEIGHTS=1) to see the pipeline work on "
                    "randomly initialised models."
                )
            )
            raise DemoError(f"the pam_ros node could not load its models: {pam.last_error}{hint}")
        pam.trigger_activate()
        summary["tracker"] = (
            f"SAM 2.1-{params['tracker.model_size']} @ {params['tracker.image_size']} px"
        )
        summary["semantics"] = pam.engine.model_name if pam.engine is not None else "disabled"
        deadline = time.monotonic() + 10
        while camera.publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.01)

        object_ids: list[str] = []  # every id seen, in order of appearance
        discovered: list[str] = []
        prompted = False
        frames_recorded = 0
        latencies: list[float] = []
        progress = tqdm(total=args.frames, desc="frames", unit="frame", file=sys.stderr)
        index = 0
        while index < args.frames:
            if args.realtime == 0:
                sent = camera.publish_next()
                if sent is None:
                    break
                stamp = stamp_to_ns(sent.header.stamp)
                tracked, overlay = client.pop(stamp, timeout=args.frame_timeout)
                if tracked is None:
                    raise DemoError(
                        f"frame {index} was not tracked within {args.frame_timeout} s: "
                        f"{pam.last_error or 'no error reported'}"
                    )
            else:  # the camera publishes on its own timer; record what the node keeps up with
                wait = 2.0 if camera.finished else args.frame_timeout
                tracked, overlay = client.next_tracked(timeout=wait)
                if tracked is None:
                    break

            if not prompted:
                prompted = True
                object_ids = add_prompts(client, prompts)
            if index == min(DISCOVER_AT, args.frames - 1):
                discovered = discover(client)
            for obj in tracked.objects:
                if obj.id not in object_ids:
                    object_ids.append(obj.id)
            _record(recording, sent if args.realtime == 0 else None, tracked, overlay)
            record = frame_record(tracked)
            frames_log.write(json.dumps(record) + "\n")
            latencies.append(record["tracking_latency_s"])
            if overlay is not None:
                canvas = image_msg_to_rgb(overlay)
                if random_weights:
                    cv2.putText(
                        canvas,
                        "RANDOM WEIGHTS",
                        (8, canvas.shape[0] - 10),
                        cv2.FONT_HERSHEY_SIMPLEX,
                        0.6,
                        (255, 0, 0),
                        2,
                    )
                if writer is None:
                    writer = cv2.VideoWriter(
                        str(output / "overlay.mp4"),
                        cv2.VideoWriter_fourcc(*"mp4v"),
                        15.0,
                        (canvas.shape[1], canvas.shape[0]),
                    )
                writer.write(cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
            frames_recorded += 1
            if index == args.frames // 2 and object_ids:
                # A robot asking while tracking runs.
                ask(client, object_ids[0], "category", describe_log, random_weights, max_age=5.0)
            progress.update(1)
            index += 1
        progress.close()

        if not object_ids:
            raise DemoError("the node tracked none of the prompted objects")
        answers = [  # every kind for the prompted objects, what and what-for for found ones
            ask(client, object_id, kind, describe_log, random_weights, max_age=0.0)
            for object_id in object_ids
            for kind in (("category", "explain") if object_id in discovered else KINDS)
        ]
        summary["find_objects"] = find(client, random_weights)
        summary.update(
            frames_published=camera.published,
            frames_recorded=frames_recorded,
            frames_dropped=pam.health().frames_dropped,
            objects=object_ids,
            discovered=discovered,
            tracking_latency_p50_s=float(np.percentile(latencies, 50)) if latencies else None,
            tracking_latency_p95_s=float(np.percentile(latencies, 95)) if latencies else None,
            describe_answers=sum(a["success"] for a in answers),
            describe_failures=[
                f"{a['id']}/{a['kind']}: {a['message']}" for a in answers if not a["success"]
            ],
        )
    finally:
        frames_log.close()
        describe_log.close()
        if writer is not None:
            writer.release()
        if recording is not None:
            recording.close()  # a valid MCAP with what was recorded, also after an error
        executor.shutdown(timeout_sec=10)
        for node in (pam, camera, client):
            node.destroy_node()
        rclpy.try_shutdown(context=context)
        spinner.join(timeout=10)
    if random_weights:
        summary["warning"] = RANDOM_WARNING
    (output / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _open_recording(path: Path):
    """The MCAP recording beside overlay.mp4 (None, with a line saying why, without rosbags)."""
    try:
        from pam_ros.tools.bag.recorder import BagRecorder
    except ImportError as exc:
        print(f"no MCAP recording ({exc}); install rosbags for it", file=sys.stderr)
        return None
    if path.exists():
        shutil.rmtree(path)
    return BagRecorder(path)


def _record(recording, camera_msg, tracked: TrackedObjectArray, overlay) -> None:
    """Camera frame (JPEG), tracked_objects and overlay (JPEG), at the frame's stamp."""
    if recording is None:
        return
    from pam_ros.tools.bag.recorder import jpeg_msg

    stamp_ns = stamp_to_ns(tracked.header.stamp)
    compressed = "sensor_msgs/msg/CompressedImage"
    if camera_msg is not None:
        frame = image_msg_to_rgb(camera_msg)
        recording.write(
            "/camera/image_raw/compressed", jpeg_msg(frame, camera_msg.header), compressed, stamp_ns
        )
    recording.write("/tracked_objects", tracked, "pam_ros/msg/TrackedObjectArray", stamp_ns)
    if overlay is not None:
        recording.write(
            "/overlay/compressed",
            jpeg_msg(image_msg_to_rgb(overlay), overlay.header),
            compressed,
            stamp_ns,
        )


def add_prompts(client: DemoClient, prompts: list[Prompt]) -> list[str]:
    """Boxes go through the add_object service (their ids come back); clicks go on the click
    topic, like a click in rviz (their ids appear in the next tracked_objects)."""
    ids = []
    for prompt in prompts:
        if prompt.kind == "box":
            x0, y0, x1, y1 = prompt.box
            request = AddObject.Request(name=prompt.name, use_box=True)
            request.box = RegionOfInterest(x_offset=x0, y_offset=y0, width=x1 - x0, height=y1 - y0)
            response = client.call(client.add_object, request, timeout=120)
            if response.success:
                ids.append(response.id)
            else:
                print(f"add_object {prompt.name!r} refused: {response.message}", file=sys.stderr)
        else:
            msg = PointStamped()
            msg.header.frame_id = "camera"
            msg.point = Point(x=prompt.point[0], y=prompt.point[1], z=0.0)
            client.click.publish(msg)
    return ids


def discover(client: DemoClient) -> list[str]:
    """Objects nobody prompted: one discovery pass on the newest frame."""
    response = client.call(
        client.discover, Discover.Request(max_new_objects=DISCOVER_MAX), timeout=300
    )
    print(f"  discover: {response.message}", file=sys.stderr)
    return list(response.ids) if response.success else []


def find(client: DemoClient, random_weights: bool) -> dict:
    """The robot's question: which object can I pour with, and where is it?"""
    query, about = FIND_QUERY
    response = client.call(client.find_objects, FindObjects.Request(query=query, about=about))
    answer = {
        "query": query,
        "about": about,
        "success": bool(response.success),
        "message": response.message,
        "ids": list(response.ids),
        "scores": [round(float(s), 4) for s in response.scores],
        "categories": list(response.categories),
        "random_weights": random_weights,
    }
    if response.success and response.ids:
        best = response.ids[0]
        where = ""
        if response.has_position and response.has_position[0]:
            p = response.volume_centers[0].point
            where = f", volume centre ({p.x:.2f}, {p.y:.2f}, {p.z:.2f}) m"
        print(
            f"  find_objects {query!r} ({about}): {best} "
            f"{response.categories[0]!r} score {response.scores[0]:.3f}{where}",
            file=sys.stderr,
        )
    else:
        print(f"  find_objects {query!r}: {response.message}", file=sys.stderr)
    return answer


def ask(
    client: DemoClient, object_id: str, kind: str, log, random_weights: bool, max_age: float
) -> dict:
    request = Describe.Request(id=object_id, kind=kind, max_age=max_age)
    response = client.call(client.describe, request)
    record = describe_record(object_id, kind, response, random_weights)
    log.write(json.dumps(record, ensure_ascii=False) + "\n")
    log.flush()
    shown = response.text if response.success else f"failed: {response.message}"
    print(
        f"  describe {object_id} {kind}: {shown[:100]!r} ({response.latency:.2f} s)",
        file=sys.stderr,
    )
    return record


# ---- command line --------------------------------------------------------------------------


def _box(text: str) -> tuple[int, int, int, int]:
    values = [int(float(v)) for v in text.split(",")]
    if len(values) != 4 or values[2] <= values[0] or values[3] <= values[1]:
        raise argparse.ArgumentTypeError(f"a box is x0,y0,x1,y1 with x1>x0 and y1>y0: {text!r}")
    return tuple(values)


def _point(text: str) -> tuple[float, float]:
    values = [float(v) for v in text.split(",")]
    if len(values) != 2:
        raise argparse.ArgumentTypeError(f"a point is x,y: {text!r}")
    return tuple(values)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="pam_demo",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--source",
        default=None,
        help="'generated', an image folder or a video file "
        f"(default: DAVIS {DEFAULT_SEQUENCE} when present, else generated)",
    )
    parser.add_argument("--frames", type=int, default=40, help="frames to run")
    parser.add_argument("--output", default="output/demo", help="output folder")
    parser.add_argument(
        "--random-weights",
        action="store_true",
        help="run on randomly initialised models (outputs are marked; text is meaningless)",
    )
    parser.add_argument(
        "--box",
        type=_box,
        action="append",
        default=[],
        help="prompt a box x0,y0,x1,y1 on the first frame (repeatable)",
    )
    parser.add_argument(
        "--point",
        type=_point,
        action="append",
        default=[],
        help="prompt a click x,y on the first frame (repeatable)",
    )
    parser.add_argument(
        "--tracker-size",
        default="large",
        choices=MODEL_SIZES,
        help="SAM 2.1 variant",
    )
    parser.add_argument(
        "--tracker-checkpoint",
        default="",
        help="SAM 2.1 checkpoint (.pt); empty: the default download location",
    )
    parser.add_argument("--image-size", type=int, default=1024, help="SAM 2 input size")
    parser.add_argument(
        "--pam",
        default="Perceive-Anything/PAM-1.5B",
        help="PAM checkpoint folder or Hugging Face id",
    )
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument(
        "--semantic-rate-hz",
        type=float,
        default=2.0,
        help="how often the node runs the perceiver-LLM while tracking",
    )
    parser.add_argument(
        "--realtime",
        type=float,
        default=0.0,
        help="publish at this rate and let the node drop frames (0: step)",
    )
    parser.add_argument(
        "--frame-timeout",
        type=float,
        default=300.0,
        help="seconds to wait for one frame to be tracked",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    args = parser.parse_args(argv)
    if args.frames < 1:
        parser.error("--frames must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Before rclpy.init: a viewer in another process (rviz) using the same profile then gets
    # every full-size overlay frame, best-effort or reliable.
    print(f"Fast DDS profile: {apply_profile()}", file=sys.stderr)
    try:
        summary = run(args)
    except DemoError as exc:
        print(f"pam_demo: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
