"""Runs the PAM perceiver-LLM beside tracking: throttled, prioritised, cached per object.

ROS-free. The tracking thread calls `observe` after every tracked frame (cheap: it stores
references to the tracker's features and a small copy of each mask). A worker thread calls the
semantic engine at most `rate_hz` times a second. Each call (a tick) is one `engine.describe`
filled with up to `max_batch_size` requests, taken job by job in priority order (a job is one
object's `kinds` on its latest frame, or one video segment; a job is never split, and the
first one is always taken whole), choosing in this order:

1. new objects, never described yet, in the order they appeared;
2. finished streaming video-caption segments (spec section 7: every `video_segment_frames`
   tracked frames, 16 frames selected as frame 0 + linspace(1, N-1, 15), the previous
   segment's caption as history, the segment's last frame carried into the next segment);
3. objects due for a refresh - described more than `refresh_period_s` ago, or whose mask changed
   (1 - IoU against the mask at the last description > `appearance_change_threshold`) -
   stalest first. Objects the tracker scores absent are not refreshed.

Several cameras share one worker: each observation names its `group` (the camera), and within
each of the three classes the worker takes turns between groups - the group served longest ago
goes first - so a camera with many objects never starves one with few.

Results go into a cache keyed by object id (`semantics(id)`), which the node copies into every
TrackedObjectArray. `describe_now` serves the Describe service synchronously: from the cache
when fresh enough, otherwise it hands the request to the worker, which puts on-demand requests
first in its next call (without waiting for the throttle) and fills the rest of that batch with
due work; with no worker running it runs the engine itself.

An engine that raises is logged and counted; the object is retried after `refresh_period_s`
and the worker keeps running. Removing an object (or reset) drops all its state; a result that
comes back for a removed object is discarded.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from pam_ros.core.features import RegionFeatures
from pam_ros.core.vocabulary import (
    IMAGE_KINDS,
    KINDS,
    LANGUAGES,
    VIDEO_FEATURE_FRAMES,
    video_frame_positions,
)

_MASK_SIDE = 128  # masks are compared at about this resolution


class SchedulerError(ValueError):
    """Base of the scheduler's errors."""


class UnknownObjectError(SchedulerError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class UnknownKindError(SchedulerError):
    pass


class UnknownLanguageError(SchedulerError):
    """A language code the engine has no prompts for: a bad request, not an engine error."""


def normalise_language(language: str) -> str:
    """The language code in lower case ("EN" -> "en"); UnknownLanguageError if unknown."""
    code = language.strip().lower() if isinstance(language, str) else language
    if code not in LANGUAGES:
        raise UnknownLanguageError(
            f"unknown language {language!r}; use one of {', '.join(LANGUAGES)}"
        )
    return code


class InvalidQueryError(SchedulerError):
    """A find_objects query the engine cannot score (empty, too long, no objects, bad about)."""


@dataclass(frozen=True)
class FoundObject:
    """One find_objects result: the query's score for the object and its cached category."""

    object_id: str
    score: float  # mean log-probability per query token (<= 0; higher: better match)
    category: str


class DescribeFailedError(SchedulerError):
    """The engine raised while answering describe_now; the message carries its error."""


@dataclass(frozen=True)
class SchedulerConfig:
    rate_hz: float = 1.0  # engine calls per second at most
    refresh_period_s: float = 10.0
    appearance_change_threshold: float = 0.5  # 1 - IoU above this triggers a refresh
    video_segment_frames: int = 32  # 0 disables streaming video captions
    kinds: tuple[str, ...] = ("category", "explain")  # kept fresh automatically
    language: str = "en"
    max_new_tokens: int | None = None  # None: the engine's default for each kind
    max_batch_size: int = 8  # requests per engine call (a job's kinds are never split)

    def __post_init__(self) -> None:
        object.__setattr__(self, "language", normalise_language(self.language))
        if self.max_batch_size < 1:
            raise SchedulerError(f"max_batch_size must be >= 1, got {self.max_batch_size}")
        if not self.rate_hz > 0:
            raise SchedulerError(f"rate_hz must be > 0, got {self.rate_hz}")
        if not self.refresh_period_s > 0:
            raise SchedulerError(f"refresh_period_s must be > 0, got {self.refresh_period_s}")
        if not 0.0 <= self.appearance_change_threshold <= 1.0:
            raise SchedulerError("appearance_change_threshold must be within [0, 1]")
        if 0 < self.video_segment_frames < VIDEO_FEATURE_FRAMES:
            raise SchedulerError(
                f"video_segment_frames must be 0 or >= {VIDEO_FEATURE_FRAMES}, "
                f"got {self.video_segment_frames}"
            )
        unknown = [kind for kind in self.kinds if kind not in IMAGE_KINDS]
        if unknown:
            raise UnknownKindError(f"unknown description kind(s) {unknown}; use {IMAGE_KINDS}")


@dataclass
class ObjectSemanticsRecord:
    """The cached descriptions of one object (mirrors pam_ros/msg/ObjectSemantics)."""

    stamp_ns: int = 0  # source stamp of the newest described features
    category: str = ""
    definition: str = ""
    function: str = ""
    caption: str = ""
    detailed_caption: str = ""
    video_caption: str = ""
    language: str = ""
    latency: float = 0.0  # seconds the engine took for the newest field
    model: str = ""
    random_weights: bool = False
    updated_at: dict[str, float] = field(default_factory=dict)  # kind → scheduler clock
    texts: dict[str, str] = field(default_factory=dict)  # kind → raw model text

    def copy(self) -> ObjectSemanticsRecord:
        return dataclasses.replace(self, updated_at=dict(self.updated_at), texts=dict(self.texts))


@dataclass(frozen=True)
class ObjectObservation:
    """One object on one tracked frame, as the tracking thread hands it over."""

    object_id: str
    features: RegionFeatures
    mask: np.ndarray  # (H, W) bool
    present: bool
    group: str = ""  # the camera it was seen by: the worker takes turns between groups


@dataclass(frozen=True)
class DescribeAnswer:
    semantics: ObjectSemanticsRecord
    text: str
    from_cache: bool
    latency: float  # seconds spent answering
    cancelled: bool = False  # describe_streaming stopped by its cancel event (text: so far)


@dataclass(frozen=True)
class _StreamedDescription:  # the Description fields _apply reads, for a streamed answer
    kind: str
    text: str
    label: str | None
    definition: str | None
    function: str | None
    latency_s: float
    model_name: str
    random_weights: bool


@dataclass
class SchedulerStats:
    engine_calls: int = 0
    engine_errors: int = 0
    last_error: str = ""
    descriptions: int = 0
    video_captions: int = 0
    discarded_results: int = 0  # results for objects removed while the engine ran


@dataclass
class _ObjectState:
    object_id: str
    token: int  # changes when the id is removed and added again
    first_seen: float
    group: str
    latest: RegionFeatures
    present: bool
    mask_small: np.ndarray  # (h, w) bool, the newest mask downsampled
    recent: deque  # last VIDEO_FEATURE_FRAMES RegionFeatures, for describe_now(video_caption)
    described_mask: np.ndarray | None = None  # mask_small when last described
    last_attempt: float | None = None
    retry_at: float = 0.0
    described: bool = False
    segment_position: int = 0
    segment_features: list = field(default_factory=list)
    pending_video: tuple[list, str | None, float] | None = None  # features, history, ready at
    video_history: str | None = None
    record: ObjectSemanticsRecord = field(default_factory=ObjectSemanticsRecord)


@dataclass(frozen=True)
class _Job:
    object_id: str
    token: int
    kinds: tuple[str, ...]
    features: tuple[RegionFeatures, ...]
    history: str | None
    mask_small: np.ndarray | None
    language: str = "en"

    @property
    def is_video(self) -> bool:
        return self.kinds == ("video_caption",)


class _OnDemand:
    """A describe_now request waiting for the worker; `done` is set with a result or error."""

    def __init__(self, job: _Job) -> None:
        self.job = job
        self.done = threading.Event()
        self.description = None
        self.error: BaseException | None = None


def video_frame_selection(segment_frames: int) -> frozenset[int]:
    """Positions in a segment whose features feed the video caption: 0 + linspace(1, N-1, 15)."""
    return frozenset(video_frame_positions(segment_frames))


def _downsample(mask: np.ndarray) -> np.ndarray:
    stride = max(1, max(mask.shape) // _MASK_SIDE)
    return np.ascontiguousarray(mask[::stride, ::stride], dtype=bool)


def mask_change(previous: np.ndarray, current: np.ndarray) -> float:
    """1 - IoU of two equally shaped bool masks (0: identical, 1: disjoint); 0 when both empty."""
    if previous.shape != current.shape:
        return 1.0
    union = np.count_nonzero(previous | current)
    if union == 0:
        return 0.0
    return 1.0 - np.count_nonzero(previous & current) / union


def _make_request(kind, features, language, history, max_new_tokens):
    from pam_ros.semantics import DescribeRequest

    return DescribeRequest(
        kind=kind,
        features=list(features),
        language=language,
        history=history,
        max_new_tokens=max_new_tokens,
    )


class SemanticsScheduler:
    """See the module docstring. Thread-safe; `start` runs the worker, `stop` joins it."""

    def __init__(
        self,
        engine,
        config: SchedulerConfig | None = None,
        log_error: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self._config = config or SchedulerConfig()
        self._video_positions = self._positions_for(self._config)
        self._log_error = log_error or (lambda message: None)
        self._clock = clock
        self._lock = threading.Lock()  # guards every field below
        self._engine_lock = threading.Lock()  # one engine call at a time
        self._objects: dict[str, _ObjectState] = {}
        self._next_token = 0
        self._stats = SchedulerStats()
        self._on_demand: list[_OnDemand] = []  # describe_now requests for the worker
        self._stop = threading.Event()
        self._work = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_tick_at: float | None = None  # tick(): earliest clock time of the next call
        # group (camera) -> job count when it was last served: within each priority class the
        # group served longest ago goes first, so a camera with many objects cannot starve one
        # with few (one camera: a single group, the plain priority order).
        self._group_served: dict[str, int] = {}
        self._jobs_taken = 0

    # ---- configuration and lifetime -------------------------------------------------------

    @staticmethod
    def _positions_for(config: SchedulerConfig) -> frozenset[int]:
        if config.video_segment_frames == 0:
            return frozenset()
        return video_frame_selection(config.video_segment_frames)

    @property
    def config(self) -> SchedulerConfig:
        return self._config

    def update_config(self, config: SchedulerConfig) -> None:
        """Apply new rates/thresholds now; a changed segment length restarts the segments."""
        with self._lock:
            if config.video_segment_frames != self._config.video_segment_frames:
                for state in self._objects.values():
                    state.segment_position, state.segment_features = 0, []
                    state.pending_video = None
            self._config = config
            self._video_positions = self._positions_for(config)
        self._work.set()

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="pam_semantics", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the worker; waits for an engine call in progress (at most `timeout`)."""
        self._stop.set()
        self._work.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ---- input from the tracking thread ---------------------------------------------------

    def observe(self, stamp_ns: int, observations: list[ObjectObservation]) -> None:
        """Record one tracked frame's objects (call from the tracking thread)."""
        now = self._clock()
        with self._lock:
            for obs in observations:
                state = self._objects.get(obs.object_id)
                mask_small = _downsample(obs.mask)
                if state is None:
                    self._next_token += 1
                    state = _ObjectState(
                        object_id=obs.object_id,
                        token=self._next_token,
                        first_seen=now,
                        group=obs.group,
                        latest=obs.features,
                        present=obs.present,
                        mask_small=mask_small,
                        recent=deque(maxlen=VIDEO_FEATURE_FRAMES),
                    )
                    self._objects[obs.object_id] = state
                state.latest, state.present, state.mask_small = (
                    obs.features,
                    obs.present,
                    mask_small,
                )
                state.recent.append(obs.features)
                self._advance_segment(state, obs.features, now)
        self._work.set()

    def _advance_segment(self, state: _ObjectState, features: RegionFeatures, now: float) -> None:
        segment_frames = self._config.video_segment_frames
        if segment_frames == 0:
            return
        if state.segment_position in self._video_positions:
            state.segment_features.append(features)
        state.segment_position += 1
        if state.segment_position == segment_frames:
            # A finished segment replaces one still waiting: the newest video wins.
            state.pending_video = (state.segment_features, state.video_history, now)
            # The segment's last frame opens the next one (spec section 7, paper protocol).
            state.segment_features, state.segment_position = [features], 1

    def forget(self, object_id: str) -> None:
        """Drop all state of a removed object (unknown ids are ignored)."""
        with self._lock:
            self._objects.pop(object_id, None)

    def reset(self) -> None:
        with self._lock:
            self._objects.clear()

    # ---- cache ----------------------------------------------------------------------------

    def semantics(self, object_id: str) -> ObjectSemanticsRecord | None:
        with self._lock:
            state = self._objects.get(object_id)
            return None if state is None else state.record.copy()

    def all_semantics(self, ids=None) -> dict[str, ObjectSemanticsRecord]:
        """Copies of the records of every object, or of those of `ids` that are known."""
        with self._lock:
            if ids is None:
                return {oid: state.record.copy() for oid, state in self._objects.items()}
            return {oid: self._objects[oid].record.copy() for oid in ids if oid in self._objects}

    def queue_depth(self) -> int:
        """Objects waiting for the engine: new, finished video segments, refreshes due."""
        now = self._clock()
        with self._lock:
            return sum(self._is_due(state, now) for state in self._objects.values()) + sum(
                state.pending_video is not None for state in self._objects.values()
            )

    @property
    def stats(self) -> SchedulerStats:
        with self._lock:
            return dataclasses.replace(self._stats)

    # ---- choosing work --------------------------------------------------------------------

    def _is_due(self, state: _ObjectState, now: float) -> bool:
        config = self._config
        if not config.kinds or now < state.retry_at:
            return False
        if not state.described:
            return True
        if not state.present:
            return False
        if state.last_attempt is None or now - state.last_attempt >= config.refresh_period_s:
            return True
        if state.described_mask is None:
            return False
        return mask_change(state.described_mask, state.mask_small) > (
            config.appearance_change_threshold
        )

    def _next_job(self, now: float, taken: set[str]) -> _Job | None:
        """The most urgent job; `taken`: objects whose image kinds are already in this batch."""
        config = self._config
        states = list(self._objects.values())
        fresh = [s for s in states if s.object_id not in taken]
        new = [s for s in fresh if not s.described and self._is_due(s, now)]
        if new:
            state = min(new, key=lambda s: (self._turn(s), s.first_seen))
            return self._image_job(state)
        videos = [s for s in states if s.pending_video is not None]
        if videos:
            state = min(videos, key=lambda s: (self._turn(s), s.pending_video[2]))
            features, history, _ = state.pending_video
            state.pending_video = None
            return _Job(
                state.object_id,
                state.token,
                ("video_caption",),
                tuple(features),
                history,
                None,
                config.language,
            )
        due = [s for s in fresh if self._is_due(s, now)]
        if due and config.kinds:
            state = min(due, key=lambda s: (self._turn(s), s.last_attempt or 0.0))
            return self._image_job(state)
        return None

    def _turn(self, state: _ObjectState) -> int:
        """Sort key of `state`'s group: lower is served sooner (never served: -1)."""
        return self._group_served.get(state.group, -1)

    def _served(self, job: _Job) -> None:
        state = self._objects.get(job.object_id)
        if state is not None:
            self._jobs_taken += 1
            self._group_served[state.group] = self._jobs_taken

    def _image_job(self, state: _ObjectState) -> _Job:
        return _Job(
            state.object_id,
            state.token,
            self._config.kinds,
            (state.latest,),
            None,
            state.mask_small,
            self._config.language,
        )

    # ---- running the engine ---------------------------------------------------------------

    def run_once(self) -> bool:
        """Run one engine call now (no throttling): the waiting on-demand requests, then due
        jobs in priority order, up to `max_batch_size` requests. False when nothing is due."""
        now = self._clock()
        with self._lock:
            config = self._config
            on_demand, self._on_demand = self._on_demand, []
            jobs = [item.job for item in on_demand]
            size = sum(len(job.kinds) for job in jobs)
            taken: set[str] = set()
            while not jobs or size < config.max_batch_size:
                job = self._next_job(now, taken)
                if job is None:
                    break
                if jobs and size + len(job.kinds) > config.max_batch_size:
                    if job.is_video:  # not taken after all: keep the segment waiting
                        state = self._objects[job.object_id]
                        state.pending_video = (list(job.features), job.history, now)
                    break
                if not job.is_video:
                    self._objects[job.object_id].last_attempt = now
                    taken.add(job.object_id)
                self._served(job)
                jobs.append(job)
                size += len(job.kinds)
        if not jobs:
            return False
        self._run_jobs(jobs, on_demand, config)
        return True

    def _run_jobs(self, jobs: list[_Job], on_demand: list[_OnDemand], config) -> None:
        """One engine.describe over every job's requests; results applied job by job."""
        requests, spans = [], []
        for job in jobs:
            first = len(requests)
            requests += [
                _make_request(kind, job.features, job.language, job.history, config.max_new_tokens)
                for kind in job.kinds
            ]
            spans.append((first, len(requests)))
        try:
            with self._engine_lock:
                descriptions = self.engine.describe(requests)
        except Exception as exc:  # the engine failing must not stop the worker
            ids = ", ".join(repr(job.object_id) for job in jobs)
            message = f"semantic engine failed on object(s) {ids}: {exc!r}"
            with self._lock:
                self._stats.engine_calls += 1
                self._stats.engine_errors += 1
                self._stats.last_error = message
                for job in jobs[len(on_demand) :]:
                    state = self._objects.get(job.object_id)
                    if state is not None and state.token == job.token:
                        state.retry_at = self._clock() + config.refresh_period_s
            for item in on_demand:
                item.error = exc
                item.done.set()
            if len(jobs) > len(on_demand):
                self._log_error(message)
            return
        with self._lock:
            self._stats.engine_calls += 1
            for index, (job, (first, last)) in enumerate(zip(jobs, spans, strict=True)):
                answers = descriptions[first:last]
                state = self._objects.get(job.object_id)
                if state is None or state.token != job.token:
                    self._stats.discarded_results += 1
                    record = ObjectSemanticsRecord()
                else:
                    self._apply(state, answers, job, job.language)
                    if job.mask_small is not None:
                        state.described, state.described_mask = True, job.mask_small
                    record = state.record.copy()
                if index < len(on_demand):
                    on_demand[index].description = (answers[0], record)
        for item in on_demand:
            item.done.set()

    def _apply(self, state: _ObjectState, descriptions, job: _Job, language: str) -> None:
        record = state.record
        now = self._clock()
        for description in descriptions:
            kind = description.kind
            text = description.text
            if kind == "category":
                record.category = description.label or text
            elif kind == "explain":
                if description.label and "category" not in record.updated_at:
                    record.category = description.label  # the category kind has precedence
                record.definition = description.definition or text
                record.function = description.function or ""
            elif kind == "caption":
                record.caption = text
            elif kind == "detailed_caption":
                record.detailed_caption = text
            elif kind == "video_caption":
                record.video_caption = text
                state.video_history = text
                self._stats.video_captions += 1
            record.texts[kind] = text
            record.updated_at[kind] = now
            record.latency = float(description.latency_s)
            record.model = description.model_name
            record.random_weights = bool(description.random_weights)
            self._stats.descriptions += 1
        record.language = language
        record.stamp_ns = max(features.stamp_ns for features in job.features)

    def tick(self) -> int:
        """Synchronous alternative to the worker thread: run the jobs the `rate_hz` throttle
        allows at the scheduler's clock now, at most one per 1 / rate_hz of clock time, and
        return how many engine calls were made. With a clock that reads the stream's time
        (a bag's stamps) the same stream gives the same calls, however fast the machine."""
        now = self._clock()
        period = 1.0 / self._config.rate_hz
        if self._next_tick_at is None:
            self._next_tick_at = now
        calls = 0
        while now >= self._next_tick_at:
            if not self.run_once():
                self._next_tick_at = now  # idle: the next due job may run at once
                break
            calls += 1
            self._next_tick_at += period
        return calls

    def _run(self) -> None:
        next_call = 0.0  # monotonic time before which only on-demand requests are served
        while not self._stop.is_set():
            started = time.monotonic()
            ran = False
            if started >= next_call or self._has_on_demand():
                try:
                    ran = self.run_once()
                except Exception as exc:  # a bug here must not kill semantics for good
                    self._log_error(f"semantics worker error: {exc!r}")
                    ran = True
            period = 1.0 / self._config.rate_hz
            if ran:
                next_call = started + period
                continue
            wait = next_call - started if started < next_call else min(period, 0.5)
            self._work.wait(max(0.0, wait))
            self._work.clear()

    def _has_on_demand(self) -> bool:
        with self._lock:
            return bool(self._on_demand)

    # ---- the Describe service -------------------------------------------------------------

    def describe_streaming(
        self,
        object_id: str,
        kind: str,
        max_age_s: float = 0.0,
        language: str | None = None,
        on_piece: Callable[[str], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> DescribeAnswer:
        """describe_now, streamed: `on_piece` gets the text piece by piece as it is decoded;
        setting `cancel` stops generation at the next token and frees the engine (the answer
        then has cancelled=True and the text so far, and the cache is left as it was)."""
        started = time.monotonic()
        cached, job = self.describe_now(object_id, kind, max_age_s, language, stream=True)
        if cached is not None:
            return cached
        request = _make_request(
            kind, job.features, job.language, job.history, self._config.max_new_tokens
        )
        pieces: list[str] = []
        try:
            with self._engine_lock:
                for piece in self.engine.stream(request, cancel=cancel):
                    pieces.append(piece)
                    if on_piece is not None:
                        on_piece(piece)
        except Exception as exc:
            with self._lock:
                self._stats.engine_calls += 1
                self._stats.engine_errors += 1
                self._stats.last_error = repr(exc)
            raise DescribeFailedError(f"describing {object_id!r} ({kind}) failed: {exc}") from exc
        text = "".join(pieces)
        cancelled = cancel is not None and cancel.is_set()
        with self._lock:
            self._stats.engine_calls += 1
            state = self._objects.get(object_id)
            if cancelled or state is None or state.token != job.token:
                record = state.record.copy() if state is not None else ObjectSemanticsRecord()
            else:
                self._apply(state, [self._streamed(kind, text, started)], job, job.language)
                record = state.record.copy()
        return DescribeAnswer(record, text, False, time.monotonic() - started, cancelled)

    def _streamed(self, kind: str, text: str, started: float) -> _StreamedDescription:
        from pam_ros.semantics.parsing import parse_explain, parse_label

        label = definition = function = None
        if kind == "category":
            label = parse_label(text)
        elif kind == "explain":
            parsed = parse_explain(text)
            label, definition, function = parsed.label, parsed.definition, parsed.function
        engine = self.engine
        return _StreamedDescription(
            kind,
            text,
            label,
            definition,
            function,
            time.monotonic() - started,
            engine.model_name,
            bool(engine.random_weights),
        )

    def describe_now(
        self,
        object_id: str,
        kind: str,
        max_age_s: float = 0.0,
        language: str | None = None,
        stream: bool | None = None,
    ) -> DescribeAnswer:
        """Answer from the cache when `kind` is at most `max_age_s` old, else run the engine.

        stream=True (for describe_streaming): return (cached answer or None, the job) instead.
        """
        started = time.monotonic()
        if kind not in KINDS:
            raise UnknownKindError(f"unknown kind {kind!r}; use one of {', '.join(KINDS)}")
        if language:
            language = normalise_language(language)
        with self._lock:
            config = self._config
            language = language or config.language
            state = self._objects.get(object_id)
            if state is None:
                known = ", ".join(sorted(self._objects)) or "none"
                raise UnknownObjectError(f"unknown object id {object_id!r} (tracked: {known})")
            record = state.record
            updated = record.updated_at.get(kind)
            if (
                max_age_s > 0
                and updated is not None
                and record.language == language
                and self._clock() - updated <= max_age_s
            ):
                cached = DescribeAnswer(
                    record.copy(), record.texts[kind], True, time.monotonic() - started
                )
                return cached if stream is None else (cached, None)
            if kind == "video_caption":
                recent = list(state.recent)
                features = tuple(recent[i] for i in video_frame_positions(len(recent)))
                history = state.video_history
            else:
                features, history = (state.latest,), None
            job = _Job(object_id, state.token, (kind,), features, history, None, language)
            if stream is not None:
                return None, job
            item = _OnDemand(job)
            use_worker = self.running
            if use_worker:
                self._on_demand.append(item)
        if use_worker:
            self._work.set()
            while not item.done.wait(0.5):
                if not self.running:  # stopped before it reached the engine
                    with self._lock:
                        if item in self._on_demand:
                            self._on_demand.remove(item)
                    if not item.done.is_set():
                        raise DescribeFailedError(
                            f"describing {object_id!r} ({kind}) failed: the semantics worker "
                            "stopped"
                        )
        else:
            self._run_jobs([job], [item], config)
        if item.error is not None:
            raise DescribeFailedError(
                f"describing {object_id!r} ({kind}) failed: {item.error}"
            ) from item.error
        description, record = item.description
        return DescribeAnswer(record, description.text, False, time.monotonic() - started)

    # ---- the find_objects service ---------------------------------------------------------

    def find_objects(
        self,
        query: str,
        about: str = "category",
        object_ids: list[str] | None = None,
        language: str | None = None,
    ) -> list[FoundObject]:
        """Rank objects (all tracked ones when `object_ids` is empty) by the engine's score of
        `query` as their category / function, best first; one batched forward pass."""
        language = normalise_language(language) if language else None
        with self._lock:
            language = language or self._config.language
            if object_ids:
                unknown = [oid for oid in object_ids if oid not in self._objects]
                if unknown:
                    known = ", ".join(sorted(self._objects)) or "none"
                    raise UnknownObjectError(
                        f"unknown object id(s) {', '.join(map(repr, unknown))} (tracked: {known})"
                    )
                chosen = list(dict.fromkeys(object_ids))
            else:
                chosen = list(self._objects)
            if not chosen:
                raise InvalidQueryError("no objects are tracked: nothing to rank")
            features = [self._objects[oid].latest for oid in chosen]
            categories = [self._objects[oid].record.category for oid in chosen]
        try:
            with self._engine_lock:
                scores = self.engine.score_query(features, query, about=about, language=language)
        except ValueError as exc:  # the engine's SemanticsError: a bad query
            raise InvalidQueryError(str(exc)) from exc
        found = [
            FoundObject(oid, float(score), category)
            for oid, score, category in zip(chosen, scores, categories, strict=True)
        ]
        return sorted(found, key=lambda f: -f.score)
