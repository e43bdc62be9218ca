"""One frame in, tracked objects + their latest semantics out: the per-frame work, without ROS.

Shared by the offline bag tool (`pam_ros.tools.bag`) and meant for the live node: the node's
tracking thread and the bag tool both hand an RGB frame and its stamp to `FramePipeline.process`
and turn the returned `FrameOutput` into messages with `pam_ros.ros.message_builders`.

    pipeline = FramePipeline(tracker, scheduler, PipelineConfig(max_objects=16))
    output = pipeline.process(frame_rgb, stamp_ns)       # tracker.track + scheduler.observe
    new_id = pipeline.add_object(points=[(x, y)], labels=[1], name="mug")   # on the newest frame
    pipeline.remove_object(new_id); pipeline.reset()

Semantics run in one of two ways, chosen by whoever builds the scheduler:
- live: `scheduler.start()` runs its wall-clock worker thread; `process` only observes;
- synchronous (`PipelineConfig(synchronous_semantics=True)`, the bag tool): the scheduler's
  clock is the STREAM's time (`StreamClock`, set from each frame's stamp), and after each
  frame `process` lets the scheduler run what its throttle allows at that stream time
  (`SemanticsScheduler.tick`). The same frames and prompts then give the same descriptions,
  however fast or slow the machine.

Several cameras (`CameraPipelines`): one `FramePipeline` per camera over the streams of one
`MultiStreamTracker` (one SAM 2 in memory), sharing one scheduler and one lock. Frames waiting
on several cameras are tracked together (`CameraPipelines.process`: one batched encoder pass);
object ids of a named camera name it (`head/1`, `head/mug`), so every id is unique in the node
and the services find the camera from the id; the scheduler takes turns between cameras.

    cameras = CameraPipelines(MultiStreamTracker.from_config(config), ["head", "wrist"],
                              scheduler, PipelineConfig(max_objects=16))
    outputs = cameras.process({"head": (head_rgb, stamp_ns), "wrist": (wrist_rgb, stamp_ns)})
    cameras.camera("wrist").add_object(points=[(x, y)], labels=[1])      # -> "wrist/1"

Discovery (objects found without prompts): `pipeline.discover(DiscoveryConfig(), max_new=5)`
runs SAM 2's automatic mask generation on the newest frame's features (no second encoder pass,
`StreamingTracker.discover`) and adds the best new masks as objects (mask prompts), up to
`max_objects`; their origin is "discovery" (`FramePipeline.origins`), where prompted ones say
"prompt" and detector boxes "detection".

Thread-safe: one lock guards the tracker (the node calls `add_object` from service threads
while its tracking thread calls `process`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pam_ros.pipeline.semantics_scheduler import (
    ObjectObservation,
    ObjectSemanticsRecord,
    SemanticsScheduler,
)

BOX_DUPLICATE_IOU = 0.5  # a detector box overlapping a tracked object more than this is skipped
# How an object came to be tracked (TrackedObject.origin)
ORIGIN_PROMPT = "prompt"  # a point / box / id given by a client (add_object, click)
ORIGIN_DETECTION = "detection"  # a box from an upstream detector (boxes, detections_in)
ORIGIN_DISCOVERY = "discovery"  # found by a discovery pass without any prompt
ORIGINS = (ORIGIN_PROMPT, ORIGIN_DETECTION, ORIGIN_DISCOVERY)


class TooManyObjectsError(ValueError):
    """`max_objects` objects are tracked already."""


class UnknownCameraError(KeyError):
    """A camera name that is not one of the node's cameras."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class PipelineConfig:
    max_objects: int = 16
    synchronous_semantics: bool = False  # run the scheduler inline on stream time (bag tool)


@dataclass(frozen=True)
class DiscoveredAddition:
    """One object a discovery pass added."""

    object_id: str
    box: tuple[int, int, int, int]  # (x0, y0, x1, y1) of its mask, exclusive ends
    predicted_iou: float  # SAM 2's estimate of the mask's quality
    stability_score: float
    area: int  # pixels


@dataclass(frozen=True)
class DiscoveryOutcome:
    """What one discovery pass found and did."""

    found: int  # new masks that passed the filters (not overlapping tracked objects)
    added: list[DiscoveredAddition]  # best first
    skipped_max_objects: int  # found and wanted, but max_objects was reached
    seconds: float  # the pass and the additions


@dataclass(frozen=True)
class FrameOutput:
    """What the message builders need about one processed frame."""

    stamp_ns: int
    image_size: tuple[int, int]  # (width, height)
    frame: np.ndarray  # (H, W, 3) RGB uint8, the frame as tracked
    result: object  # pam_ros.tracking.FrameResult (frame_index, objects)
    names: dict[str, str]  # object id → human name ("" when none)
    origins: dict[str, str]  # object id → how it was found (one of ORIGINS)
    semantics: dict[str, ObjectSemanticsRecord]  # object id → latest descriptions
    semantic_calls: int  # engine calls made inline for this frame (synchronous mode)


class StreamClock:
    """A clock that reads the stream's time (seconds), for a scheduler driven by bag time."""

    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def box_iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """IoU of two (x0, y0, x1, y1) boxes, exclusive ends."""
    ix0, iy0, ix1, iy1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0, ix1 - ix0) * max(0, iy1 - iy0)
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0


class FramePipeline:
    """See the module docstring."""

    def __init__(
        self,
        tracker,
        scheduler: SemanticsScheduler | None = None,
        config: PipelineConfig | None = None,
        clock: StreamClock | None = None,
        camera: str = "",
        lock: threading.Lock | None = None,
    ) -> None:
        """`camera`: its name ("" for a lone unnamed camera): the prefix of the ids it gives
        and its group in the scheduler; `lock`: shared by the pipelines of one model."""
        self.tracker = tracker  # pam_ros.tracking.StreamingTracker (or one stream of several)
        self.scheduler = scheduler
        self.config = config or PipelineConfig()
        self.clock = clock  # set from the stamps in synchronous mode
        if self.config.synchronous_semantics and scheduler is not None and clock is None:
            raise ValueError("synchronous semantics need the scheduler's StreamClock")
        self.camera = camera
        self.lock = lock or threading.Lock()
        self._names: dict[str, str] = {}
        self._origins: dict[str, str] = {}
        self._last_stamp_ns = 0

    # ---- frames -------------------------------------------------------------------------

    def process(
        self, frame: np.ndarray, stamp_ns: int, prompts: Callable[[], None] | None = None
    ) -> FrameOutput:
        """Track `frame` ((H, W, 3) RGB uint8), hand the objects to the scheduler, and (in
        synchronous mode) run the semantics due at `stamp_ns`. Tracker errors propagate.

        `prompts`, when given, is called right after tracking: objects it adds or removes
        (with `add_object` / `remove_object`) are part of this frame's output, as a prompt
        on the newest frame is in the node."""
        with self.lock:
            result = self.tracker.track(frame, stamp_ns=stamp_ns)
            observations = self.tracked(result, stamp_ns)
        return self.finish(frame, stamp_ns, result, observations, prompts)

    def tracked(self, result, stamp_ns: int) -> list[ObjectObservation]:
        """Note a frame the tracker has just tracked (call with the lock held)."""
        self._last_stamp_ns = stamp_ns
        return self._observations(result)

    def finish(self, frame, stamp_ns: int, result, observations, prompts=None) -> FrameOutput:
        """The rest of `process` after tracking (outside the lock)."""
        if self.clock is not None:
            self.clock.now_s = stamp_ns * 1e-9
        if self.scheduler is not None:
            self.scheduler.observe(stamp_ns, observations)
        if prompts is not None:
            prompts()
            with self.lock:
                result = self.tracker.last_result  # with the objects added on this frame
        with self.lock:
            names = dict(self._names)
            origins = dict(self._origins)
        calls = 0
        if self.scheduler is not None:
            if self.config.synchronous_semantics:
                calls = self.scheduler.tick()
        # only this frame's objects (the scheduler may hold other cameras' too)
        semantics = (
            self.scheduler.all_semantics(result.objects) if self.scheduler is not None else {}
        )
        return FrameOutput(
            stamp_ns=stamp_ns,
            image_size=(frame.shape[1], frame.shape[0]),
            frame=frame,
            result=result,
            names=names,
            origins=origins,
            semantics=semantics,
            semantic_calls=calls,
        )

    def _observations(self, result) -> list[ObjectObservation]:
        """The scheduler's view of `result` (call with the lock held)."""
        return [
            ObjectObservation(
                oid, self.tracker.latest_features(oid), obj.mask, obj.present, self.camera
            )
            for oid, obj in result.objects.items()
        ]

    # ---- prompts ------------------------------------------------------------------------

    def add_object(
        self,
        points: list[tuple[float, float]] | None = None,
        labels: list[int] | None = None,
        box: tuple[int, int, int, int] | None = None,
        object_id: str | None = None,
        name: str = "",
        origin: str = ORIGIN_PROMPT,
    ) -> str:
        """Prompt a new object on the newest processed frame; returns its id.

        Raises the tracker's ValueError-derived errors (no frame yet, point outside the image,
        duplicate id) or TooManyObjectsError; nothing changes when it raises."""
        with self.lock:
            if len(self.tracker.object_ids) >= self.config.max_objects:
                raise TooManyObjectsError(
                    f"already tracking max_objects={self.config.max_objects} objects; "
                    "remove one first"
                )
            new_id = self.tracker.add_object(
                points=points or None,
                labels=labels or None,
                box=box,
                object_id=self._object_id(object_id),
            )
            self._names[new_id] = name
            self._origins[new_id] = origin
            observations = [
                obs
                for obs in self._observations(self.tracker.last_result)
                if obs.object_id == new_id
            ]
            stamp_ns = self._last_stamp_ns
        if self.scheduler is not None:
            self.scheduler.observe(stamp_ns, observations)
        return new_id

    def discover(
        self,
        config=None,
        region: tuple[int, int, int, int] | None = None,
        max_new: int | None = None,
    ) -> DiscoveryOutcome:
        """One discovery pass on the newest processed frame; adds the best new objects.

        config: a `pam_ros.tracking.DiscoveryConfig` (None: its defaults); region: (x0, y0,
        x1, y1) pixels to look in; max_new: at most this many objects added (None: all found),
        and never more than `max_objects` allows (the rest are counted as skipped). Raises the
        tracker's errors (no frame yet, a region outside the image); nothing changes then.
        The new objects are observed at once, so the scheduler describes them first (never
        described objects lead its queue).

        The pass does not hold the lock (tracking goes on beside it); its masks prompt the
        objects on the newest frame, which is the frame they were found on unless tracking
        moved on during the pass (a slow pass on a moving camera prompts slightly stale
        masks; the tracker corrects them over the next frames).
        """
        started = time.perf_counter()
        with self.lock:  # the frame, taken at once; the pass runs beside tracking
            frame = self.tracker.discovery_input()
        found = self.tracker.discover(config, region, frame=frame)
        with self.lock:
            wanted = found if max_new is None else found[: max(0, max_new)]
            room = max(0, self.config.max_objects - len(self.tracker.object_ids))
            added = []
            for candidate in wanted[:room]:
                new_id = self.tracker.add_object(
                    mask=candidate.mask, object_id=self._object_id(None)
                )
                self._names[new_id] = ""
                self._origins[new_id] = ORIGIN_DISCOVERY
                added.append(
                    DiscoveredAddition(
                        new_id,
                        candidate.box,
                        candidate.predicted_iou,
                        candidate.stability_score,
                        candidate.area,
                    )
                )
            new_ids = {a.object_id for a in added}
            observations = [
                obs
                for obs in self._observations(self.tracker.last_result)
                if obs.object_id in new_ids
            ]
            stamp_ns = self._last_stamp_ns
        if self.scheduler is not None and observations:
            self.scheduler.observe(stamp_ns, observations)
        return DiscoveryOutcome(
            found=len(found),
            added=added,
            skipped_max_objects=len(wanted) - len(added),
            seconds=time.perf_counter() - started,
        )

    def _object_id(self, object_id: str | None) -> str | None:
        """A named camera's ids begin with `<camera>/`: given ids get it, new ones are
        `<camera>/1`, `<camera>/2`, ... (the lowest free number, as the tracker's own)."""
        if not self.camera:
            return object_id
        prefix = f"{self.camera}/"
        if object_id is not None:
            return object_id if object_id.startswith(prefix) else prefix + object_id
        taken = set(self.tracker.object_ids)
        number = 1
        while f"{prefix}{number}" in taken:
            number += 1
        return f"{prefix}{number}"

    @property
    def last_stamp_ns(self) -> int:
        """Stamp of the newest processed frame (0 before the first)."""
        return self._last_stamp_ns

    @property
    def names(self) -> dict[str, str]:
        """Object id -> the name it was given ("" when none)."""
        with self.lock:
            return dict(self._names)

    @property
    def origins(self) -> dict[str, str]:
        """Object id -> how it was found (ORIGINS)."""
        with self.lock:
            return dict(self._origins)

    def overlaps_tracked(self, box: tuple[int, int, int, int]) -> bool:
        """Whether `box` overlaps a tracked object's box by IoU > BOX_DUPLICATE_IOU."""
        with self.lock:
            last = self.tracker.last_result
            boxes = [] if last is None else [o.box for o in last.objects.values() if o.box]
        return any(box_iou(box, tracked) > BOX_DUPLICATE_IOU for tracked in boxes)

    def remove_object(self, object_id: str) -> None:
        """Stop tracking `object_id` and forget its descriptions (UnknownObjectError)."""
        with self.lock:
            self.tracker.remove_object(object_id)
            self._names.pop(object_id, None)
            self._origins.pop(object_id, None)
        if self.scheduler is not None:
            self.scheduler.forget(object_id)

    def reset(self) -> int:
        """Forget every object; returns how many there were."""
        with self.lock:
            forgotten = list(self.tracker.object_ids)
            self.tracker.reset()
            self._names.clear()
            self._origins.clear()
        if self.scheduler is not None:  # only this camera's objects (the scheduler is shared)
            for object_id in forgotten:
                self.scheduler.forget(object_id)
        return len(forgotten)

    @property
    def object_ids(self) -> list[str]:
        with self.lock:
            return list(self.tracker.object_ids)


class CameraPipelines:
    """Several cameras on one SAM 2 model; see the module docstring."""

    def __init__(
        self,
        tracker,
        cameras: list[str],
        scheduler: SemanticsScheduler | None = None,
        config: PipelineConfig | None = None,
    ) -> None:
        if not cameras:
            raise ValueError("give at least one camera")
        if "" in cameras and len(cameras) > 1:
            raise ValueError("the unnamed camera ('') can only be the only one")
        self.tracker = tracker  # pam_ros.tracking.MultiStreamTracker
        self.scheduler = scheduler
        self.lock = threading.Lock()
        self._cameras = {
            name: FramePipeline(
                tracker.add_stream(name), scheduler, config, camera=name, lock=self.lock
            )
            for name in cameras
        }

    @property
    def names(self) -> list[str]:
        return list(self._cameras)

    def camera(self, name: str) -> FramePipeline:
        try:
            return self._cameras[name]
        except KeyError:
            cameras = ", ".join(repr(n) for n in self._cameras)
            raise UnknownCameraError(f"unknown camera {name!r}; cameras: {cameras}") from None

    def camera_of(self, object_id: str) -> FramePipeline:
        """The camera tracking `object_id` (UnknownObjectError when none does)."""
        from pam_ros.tracking import UnknownObjectError

        with self.lock:
            for pipeline in self._cameras.values():
                if object_id in pipeline.tracker.object_ids:
                    return pipeline
            tracked = [oid for p in self._cameras.values() for oid in p.tracker.object_ids]
        raise UnknownObjectError(f"unknown object id {object_id!r}; tracked ids: {tracked}")

    @property
    def object_ids(self) -> list[str]:
        with self.lock:
            return [oid for p in self._cameras.values() for oid in p.tracker.object_ids]

    def process(self, frames: dict[str, tuple[np.ndarray, int]]) -> dict[str, FrameOutput]:
        """Track each camera's frame ((H, W, 3) RGB uint8, stamp ns) in one batched encoder
        pass, then hand every camera's objects to the scheduler. Tracker errors propagate
        (before any camera changes when a frame is invalid)."""
        for name in frames:
            self.camera(name)
        with self.lock:
            results = self.tracker.track(
                {name: frame for name, (frame, _) in frames.items()},
                {name: stamp for name, (_, stamp) in frames.items()},
            )
            observed = {
                name: self._cameras[name].tracked(result, frames[name][1])
                for name, result in results.items()
            }
        return {
            name: self._cameras[name].finish(
                frames[name][0], frames[name][1], results[name], observed[name]
            )
            for name in results
        }

    def reset(self) -> int:
        """Forget every object of every camera; returns how many there were."""
        return sum(pipeline.reset() for pipeline in self._cameras.values())
