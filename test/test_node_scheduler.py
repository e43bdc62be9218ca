"""The semantics scheduler: priorities, throttling, appearance refresh, video segments, faults.

Ordering logic is checked with a small deterministic engine double that records what it was
asked (the scheduler only orders and caches; what the model says does not matter here). The
real tiny PAM engine is driven through the scheduler at the end of this file and in the node
tests.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from pam_ros.core.features import RegionFeatures
from pam_ros.pipeline.semantics_scheduler import (
    VIDEO_FEATURE_FRAMES,
    DescribeFailedError,
    ObjectObservation,
    SchedulerConfig,
    SchedulerError,
    SemanticsScheduler,
    UnknownKindError,
    UnknownObjectError,
    mask_change,
    video_frame_selection,
)


@dataclass
class _Description:  # the fields of pam_ros.semantics.Description the scheduler reads
    kind: str
    text: str
    label: str
    definition: str
    function: str
    latency_s: float
    model_name: str
    random_weights: bool


class RecordingEngine:
    """Answers "<kind> of <object> @ <frame>" and records every batch it was given."""

    model_name = "recording"
    random_weights = False

    def __init__(self) -> None:
        self.batches: list[list] = []
        self.call_times: list[float] = []
        self.failures_left = 0
        self.gate: threading.Event | None = None  # when set, describe waits for it

    def describe(self, requests):
        self.call_times.append(time.monotonic())
        if self.gate is not None:
            self.gate.wait(10)
        self.batches.append(list(requests))
        if self.failures_left:
            self.failures_left -= 1
            raise RuntimeError("injected engine failure")
        out = []
        for request in requests:
            frame = request.features[-1].frame_index
            text = f"{request.kind} @ {frame}"
            out.append(
                _Description(
                    request.kind,
                    text,
                    f"label{frame}",
                    "a thing",
                    "a use",
                    0.01,
                    self.model_name,
                    False,
                )
            )
        return out


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _features(frame_index: int) -> RegionFeatures:
    return RegionFeatures(torch.zeros(8, 2, 2), torch.zeros(2, 8), frame_index, frame_index * 10)


def _mask(x0: int, width: int = 20) -> np.ndarray:
    mask = np.zeros((60, 80), dtype=bool)
    mask[10:40, x0 : x0 + width] = True
    return mask


def _observe(scheduler, frame, objects, present=True):
    """objects: {id: mask x0}"""
    scheduler.observe(
        frame * 10,
        [
            ObjectObservation(oid, _features(frame), _mask(x0), present)
            for oid, x0 in objects.items()
        ],
    )


def _described(engine) -> list[tuple[str, ...]]:
    return [tuple(r.kind for r in batch) for batch in engine.batches]


@pytest.fixture
def clock():
    return FakeClock()


def _scheduler(engine, clock, **overrides):
    # One job per call unless a test asks for batches: these tests check the order.
    overrides.setdefault("max_batch_size", 1)
    config = SchedulerConfig(**{"video_segment_frames": 0, "kinds": ("category",), **overrides})
    return SemanticsScheduler(engine, config, clock=clock)


def test_new_objects_first_in_arrival_order_then_the_stalest(clock):
    engine = RecordingEngine()
    scheduler = _scheduler(engine, clock, refresh_period_s=10.0)
    _observe(scheduler, 0, {"a": 0})
    clock.now += 1
    _observe(scheduler, 1, {"a": 0, "b": 40})
    assert scheduler.queue_depth() == 2
    assert scheduler.run_once() and scheduler.run_once()
    assert [b[0].features[0].frame_index for b in engine.batches] == [1, 1]
    assert scheduler.semantics("a").category == "label1"
    assert scheduler.semantics("b").category == "label1"
    assert not scheduler.run_once() and scheduler.queue_depth() == 0
    # A newcomer jumps ahead of due refreshes.
    clock.now += 11
    _observe(scheduler, 2, {"a": 0, "b": 40, "c": 60})
    assert scheduler.queue_depth() == 3
    scheduler.run_once()
    assert len(engine.batches) == 3
    assert scheduler.semantics("c").category == "label2"
    # Then the due refreshes (their order is checked in the next test).
    assert scheduler.run_once() and scheduler.run_once()
    assert scheduler.semantics("a").category == "label2" == scheduler.semantics("b").category
    assert not scheduler.run_once()


def test_stalest_order_follows_last_description_time(clock):
    engine = RecordingEngine()
    scheduler = _scheduler(engine, clock, refresh_period_s=5.0)
    _observe(scheduler, 0, {"a": 0, "b": 40})
    scheduler.run_once()  # a at t=1000
    clock.now += 2
    scheduler.run_once()  # b at t=1002
    clock.now += 10
    _observe(scheduler, 1, {"a": 0, "b": 40})
    _observe(scheduler, 2, {"b": 40, "a": 0})
    described = []
    for _ in range(2):
        before = {oid: scheduler.semantics(oid).updated_at["category"] for oid in "ab"}
        clock.now += 0.5
        scheduler.run_once()
        after = {oid: scheduler.semantics(oid).updated_at["category"] for oid in "ab"}
        described += [oid for oid in "ab" if after[oid] != before[oid]]
    assert described == ["a", "b"]


def test_appearance_change_triggers_a_refresh_before_the_period(clock):
    engine = RecordingEngine()
    scheduler = _scheduler(engine, clock, refresh_period_s=100.0, appearance_change_threshold=0.5)
    _observe(scheduler, 0, {"a": 0})
    scheduler.run_once()
    _observe(scheduler, 1, {"a": 2})  # moved by 2 of 20 px: IoU 0.82, change 0.18
    assert not scheduler.run_once()
    _observe(scheduler, 2, {"a": 15})  # IoU 5/35: change 0.86 > 0.5
    assert scheduler.queue_depth() == 1
    assert scheduler.run_once()
    assert scheduler.semantics("a").category == "label2"
    # Compared with the newly described mask now: no further refresh.
    assert not scheduler.run_once()


def test_absent_objects_are_not_refreshed(clock):
    engine = RecordingEngine()
    scheduler = _scheduler(engine, clock, refresh_period_s=1.0)
    _observe(scheduler, 0, {"a": 0})
    scheduler.run_once()
    clock.now += 5
    _observe(scheduler, 1, {"a": 0}, present=False)
    assert not scheduler.run_once()
    _observe(scheduler, 2, {"a": 0}, present=True)
    assert scheduler.run_once()


def test_all_configured_kinds_go_in_one_batch(clock):
    engine = RecordingEngine()
    scheduler = _scheduler(engine, clock, kinds=("category", "explain", "caption"))
    _observe(scheduler, 3, {"a": 0})
    scheduler.run_once()
    assert _described(engine) == [("category", "explain", "caption")]
    record = scheduler.semantics("a")
    assert (record.category, record.definition, record.function) == ("label3", "a thing", "a use")
    assert record.caption == "caption @ 3"
    assert record.stamp_ns == 30 and record.model == "recording" and record.language == "en"


def test_video_frame_selection_follows_the_spec():
    assert video_frame_selection(16) == frozenset(range(16))
    selected = sorted(video_frame_selection(32))
    assert selected == [0, *np.linspace(1, 31, 15).astype(int).tolist()]
    assert len(selected) == VIDEO_FEATURE_FRAMES and selected[-1] == 31


def test_streaming_video_captions_carry_history_and_the_last_frame(clock):
    engine = RecordingEngine()
    scheduler = _scheduler(engine, clock, kinds=(), video_segment_frames=32)
    for frame in range(31):
        _observe(scheduler, frame, {"a": 0})
    assert not scheduler.run_once()  # 31 frames: the segment is not finished
    _observe(scheduler, 31, {"a": 0})
    assert scheduler.run_once()
    (request,) = engine.batches[0]
    assert request.kind == "video_caption" and request.history is None
    assert [f.frame_index for f in request.features] == sorted(video_frame_selection(32))
    assert scheduler.semantics("a").video_caption == "video_caption @ 31"
    # Segment 2 starts with segment 1's last frame and carries its caption as history.
    for frame in range(32, 63):
        _observe(scheduler, frame, {"a": 0})
    assert scheduler.run_once()
    (request,) = engine.batches[1]
    assert request.history == "video_caption @ 31"
    indices = [f.frame_index for f in request.features]
    assert indices[0] == 31 and indices[-1] == 62 and len(indices) == 16
    assert scheduler.stats.video_captions == 2


def test_engine_failure_is_counted_logged_and_retried_later(clock):
    engine = RecordingEngine()
    engine.failures_left = 1
    logged = []
    scheduler = SemanticsScheduler(
        engine,
        SchedulerConfig(video_segment_frames=0, kinds=("category",), refresh_period_s=3.0),
        log_error=logged.append,
        clock=clock,
    )
    _observe(scheduler, 0, {"a": 0})
    assert scheduler.run_once()
    assert scheduler.stats.engine_errors == 1 and "injected engine failure" in logged[0]
    assert scheduler.semantics("a").category == ""
    assert not scheduler.run_once()  # backs off instead of hammering a broken engine
    clock.now += 3.0
    assert scheduler.run_once()
    assert scheduler.semantics("a").category == "label0"


def test_worker_throttles_to_rate_and_survives_a_raising_engine():
    engine = RecordingEngine()
    engine.failures_left = 2
    scheduler = SemanticsScheduler(
        engine,
        SchedulerConfig(
            rate_hz=10.0, video_segment_frames=0, kinds=("category",), refresh_period_s=0.1
        ),
    )
    scheduler.start()
    try:
        _observe(scheduler, 0, {f"o{i}": 0 for i in range(6)})
        deadline = time.monotonic() + 10
        while len(engine.call_times) < 8 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert scheduler.running
    finally:
        scheduler.stop()
    assert not scheduler.running
    gaps = np.diff(engine.call_times[:8])
    assert len(gaps) == 7 and gaps.min() >= 0.1 - 0.01, gaps
    stats = scheduler.stats
    assert stats.engine_errors == 2 and stats.descriptions >= 5
    assert all(scheduler.semantics(f"o{i}") is not None for i in range(6))


def test_describe_now_uses_the_cache_when_fresh(clock):
    engine = RecordingEngine()
    scheduler = _scheduler(engine, clock)
    _observe(scheduler, 4, {"a": 0})
    answer = scheduler.describe_now("a", "explain", max_age_s=5.0)
    assert not answer.from_cache and answer.text == "explain @ 4"
    assert answer.semantics.definition == "a thing" and answer.latency >= 0
    clock.now += 4.0
    cached = scheduler.describe_now("a", "explain", max_age_s=5.0)
    assert cached.from_cache and cached.text == "explain @ 4" and len(engine.batches) == 1
    clock.now += 2.0
    assert not scheduler.describe_now("a", "explain", max_age_s=5.0).from_cache
    assert not scheduler.describe_now("a", "explain", max_age_s=0.0).from_cache
    # Another language is never answered from the English cache.
    assert not scheduler.describe_now("a", "explain", 100.0, language="zh").from_cache
    assert len(engine.batches) == 4


def test_describe_now_video_caption_uses_sixteen_recent_frames(clock):
    engine = RecordingEngine()
    scheduler = _scheduler(engine, clock)
    for frame in range(5):
        _observe(scheduler, frame, {"a": 0})
    answer = scheduler.describe_now("a", "video_caption")
    (request,) = engine.batches[-1]
    indices = [f.frame_index for f in request.features]
    assert len(indices) == 16 and indices[0] == 0 and indices[-1] == 4
    assert indices == sorted(indices)
    assert answer.semantics.video_caption == "video_caption @ 4"


def test_describe_now_errors_are_specific_and_leave_the_scheduler_usable(clock):
    engine = RecordingEngine()
    scheduler = _scheduler(engine, clock)
    _observe(scheduler, 0, {"a": 0})
    with pytest.raises(UnknownObjectError, match=r"'zz'.*tracked: a"):
        scheduler.describe_now("zz", "category")
    with pytest.raises(UnknownKindError, match="poem"):
        scheduler.describe_now("a", "poem")
    engine.failures_left = 1
    with pytest.raises(DescribeFailedError, match="injected"):
        scheduler.describe_now("a", "category")
    assert scheduler.describe_now("a", "category").text == "category @ 0"


def test_language_codes_are_case_insensitive_and_unknown_ones_are_bad_requests(real_models):
    """`EN` is `en` (request and config); `fr` is refused like an unknown kind, before the
    engine: not a DescribeFailedError, not an engine error, nothing logged at ERROR."""
    from pam_ros.pipeline.semantics_scheduler import UnknownLanguageError
    from pam_ros.ros.parameters import validate_parameter
    from pam_ros.semantics import DescribeRequest

    tracker, engine = real_models
    tracker.reset()
    errors = []
    config = SchedulerConfig(kinds=("category",), max_new_tokens=8, language="ZH")
    assert config.language == "zh"
    scheduler = SemanticsScheduler(engine, config, log_error=errors.append)
    frame = np.full((120, 160, 3), 90, np.uint8)
    frame[30:90, 40:120] = (200, 40, 40)
    tracker.track(frame)
    object_id = tracker.add_object(points=[(80, 60)], labels=[1])
    obj = tracker.last_result.objects[object_id]
    scheduler.observe(
        0, [ObjectObservation(object_id, tracker.latest_features(object_id), obj.mask, True)]
    )
    answer = scheduler.describe_now(object_id, "category", language="EN")
    assert answer.semantics.language == "en" and answer.text
    for bad in ("fr", "e n"):
        with pytest.raises(UnknownLanguageError, match="en, zh") as caught:
            scheduler.describe_now(object_id, "category", language=bad)
        assert not isinstance(caught.value, DescribeFailedError)
    with pytest.raises(UnknownLanguageError):
        SchedulerConfig(language="fr")
    assert scheduler.stats.engine_errors == 0 and errors == []
    assert validate_parameter("language", "EN") == "en"
    # the engine itself takes codes case-insensitively too
    (description,) = engine.describe(
        [
            DescribeRequest(
                kind="category",
                features=[tracker.latest_features(object_id)],
                language="Zh",
                max_new_tokens=4,
            )
        ]
    )
    assert description.language == "zh"


def test_results_for_removed_objects_are_discarded(clock):
    engine = RecordingEngine()
    engine.gate = threading.Event()
    scheduler = _scheduler(engine, clock)
    _observe(scheduler, 0, {"a": 0})
    worker = threading.Thread(target=scheduler.run_once)
    worker.start()
    while not engine.call_times:
        time.sleep(0.005)
    scheduler.forget("a")
    _observe(scheduler, 1, {"a": 0})  # the same id, prompted again: a new object
    engine.gate.set()
    worker.join(10)
    assert scheduler.stats.discarded_results == 1
    assert scheduler.semantics("a").category == ""
    assert scheduler.run_once() and scheduler.semantics("a").category == "label1"
    scheduler.reset()
    assert scheduler.semantics("a") is None and scheduler.queue_depth() == 0


def test_config_validation_and_runtime_update(clock):
    with pytest.raises(SchedulerError, match="rate_hz"):
        SchedulerConfig(rate_hz=0.0)
    with pytest.raises(SchedulerError, match="video_segment_frames"):
        SchedulerConfig(video_segment_frames=8)
    with pytest.raises(UnknownKindError, match="poem"):
        SchedulerConfig(kinds=("poem",))
    engine = RecordingEngine()
    scheduler = _scheduler(engine, clock, refresh_period_s=100.0)
    _observe(scheduler, 0, {"a": 0})
    scheduler.run_once()
    clock.now += 10
    assert not scheduler.run_once()
    scheduler.update_config(
        SchedulerConfig(video_segment_frames=0, kinds=("category",), refresh_period_s=5.0)
    )
    assert scheduler.run_once()


def test_mask_change():
    assert mask_change(_mask(0), _mask(0)) == 0.0
    assert mask_change(_mask(0), _mask(40)) == 1.0
    assert mask_change(np.zeros((3, 3), bool), np.zeros((3, 3), bool)) == 0.0
    assert mask_change(_mask(0), _mask(10)) == pytest.approx(1 - 10 / 30)


# ---- the real tiny models ----------------------------------------------------------------


@pytest.fixture(scope="module")
def real_models(tmp_path_factory):
    from pam_ros.semantics import SemanticEngine
    from pam_ros.testing.random_pam import write_random_checkpoint as write_pam
    from pam_ros.testing.random_sam2 import write_random_checkpoint as write_sam
    from pam_ros.tracking import StreamingTracker, TrackerConfig

    folder = tmp_path_factory.mktemp("models")
    config = TrackerConfig(model_size="tiny", image_size=256)
    sam = write_sam(config, folder / "sam2.1_tiny_random.pt")
    pam = write_pam(folder / "pam_tiny", size="tiny", seed=0)
    tracker = StreamingTracker.from_config(
        TrackerConfig(model_size="tiny", image_size=256, checkpoint=sam)
    )
    engine = SemanticEngine.from_pretrained(pam)
    yield tracker, engine
    tracker.release()
    engine.release()


def test_real_engine_describes_tracked_objects_and_streams_video_captions(real_models):
    import cv2
    from conftest import davis_frames

    tracker, engine = real_models
    tracker.reset()
    scheduler = SemanticsScheduler(
        engine,
        SchedulerConfig(
            video_segment_frames=16,
            kinds=("category", "explain"),
            max_new_tokens=24,
            max_batch_size=1,  # the segment alone, not with the refresh its last frame makes due
        ),
    )
    object_id = None
    for index, path in enumerate(davis_frames("car-shadow")[:17]):
        frame = np.ascontiguousarray(cv2.imread(str(path))[:, :, ::-1])
        result = tracker.track(frame, stamp_ns=1_000 + index)
        if object_id is None:
            object_id = tracker.add_object(points=[(420, 260)], labels=[1])
            result = tracker.last_result
        obj = result.objects[object_id]
        assert obj.present and 0.0 < obj.mask.mean() < 1.0  # informative random SAM 2
        scheduler.observe(
            1_000 + index,
            [ObjectObservation(object_id, tracker.latest_features(object_id), obj.mask, True)],
        )
        if index == 0:
            assert scheduler.run_once()  # the new object is described on its prompt frame
    assert scheduler.run_once()  # the finished 16-frame segment
    record = scheduler.semantics(object_id)
    assert record.category and record.definition and record.video_caption
    assert record.random_weights and record.model == engine.model_name
    assert record.stamp_ns == 1_015  # the segment's newest frame
    answer = scheduler.describe_now(object_id, "caption")
    ids = engine.tokenizer(answer.text)["input_ids"]
    assert len(ids) > 3 and len(set(ids)) > 1  # informative: not one token repeated
    assert not answer.from_cache and answer.semantics.caption == answer.text
    stats = scheduler.stats
    assert stats.engine_errors == 0 and stats.video_captions == 1


def test_a_tick_fills_one_call_with_due_jobs_in_priority_order(clock):
    engine = RecordingEngine()
    scheduler = _scheduler(engine, clock, kinds=("category", "explain"), max_batch_size=5)
    for index, oid in enumerate("abcde"):
        _observe(scheduler, index, {oid: 0})
        clock.now += 1
    assert scheduler.run_once()  # a and b (4 requests); c would make 6
    assert scheduler.run_once() and scheduler.run_once()
    assert not scheduler.run_once()
    objects = [[r.features[0].frame_index for r in batch] for batch in engine.batches]
    assert objects == [[0, 0, 1, 1], [2, 2, 3, 3], [4, 4]]
    assert _described(engine)[0] == ("category", "explain", "category", "explain")
    assert all(scheduler.semantics(oid).category == f"label{i}" for i, oid in enumerate("abcde"))
    # Refreshes come stalest first in one call too; a job bigger than the batch still runs.
    clock.now += 20
    scheduler.update_config(dataclasses.replace(scheduler.config, max_batch_size=1))
    _observe(scheduler, 9, {oid: 0 for oid in "abcde"})
    assert scheduler.run_once()
    assert [r.kind for r in engine.batches[-1]] == ["category", "explain"]
    assert scheduler.semantics("a").updated_at["category"] == clock.now
    with pytest.raises(SchedulerError, match="max_batch_size"):
        SchedulerConfig(max_batch_size=0)


def test_on_demand_requests_join_the_next_batch_first():
    engine = RecordingEngine()
    engine.gate = threading.Event()
    scheduler = SemanticsScheduler(
        engine,
        SchedulerConfig(
            rate_hz=0.01, video_segment_frames=0, kinds=("category",), refresh_period_s=1000
        ),
    )
    _observe(scheduler, 0, {"a": 0, "b": 40})
    scheduler.start()
    try:
        deadline = time.monotonic() + 10
        while not engine.call_times and time.monotonic() < deadline:
            time.sleep(0.01)  # the first tick (a and b) is in the engine, held by the gate
        _observe(scheduler, 1, {"a": 0, "b": 40, "c": 60})  # c is new: due at the next tick
        answers = {}

        def ask(oid, kind):
            answers[(oid, kind)] = scheduler.describe_now(oid, kind)

        askers = [
            threading.Thread(target=ask, args=("a", "caption")),
            threading.Thread(target=ask, args=("b", "explain")),
        ]
        for thread in askers:
            thread.start()
        while len(scheduler._on_demand) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        engine.gate.set()
        for thread in askers:
            thread.join(10)
    finally:
        scheduler.stop()
    # The second call, long before the 100 s throttle: both on-demand requests first, then c.
    assert len(engine.batches) == 2, _described(engine)
    assert sorted(_described(engine)[1][:2]) == ["caption", "explain"]
    assert _described(engine)[1][2:] == ("category",)
    assert answers[("a", "caption")].text == "caption @ 1"
    assert answers[("b", "explain")].semantics.definition == "a thing"
    assert scheduler.semantics("c").category == "label1"


class _TappedEngine:
    """The real engine, recording each answer's ids by (frame index, kind) and each call."""

    def __init__(self, engine) -> None:
        self.engine, self.calls, self.ids = engine, [], {}
        self.model_name, self.random_weights = engine.model_name, engine.random_weights

    def describe(self, requests):
        descriptions = self.engine.describe(requests)
        self.calls.append(len(requests))
        for request, description in zip(requests, descriptions, strict=True):
            self.ids[(request.features[0].frame_index, request.kind)] = description.token_ids
        return descriptions


def test_batched_ticks_give_the_one_by_one_ids(real_models):
    _, engine = real_models
    gen = torch.Generator().manual_seed(5)
    features = [
        RegionFeatures(
            torch.randn(256, 16, 16, generator=gen), torch.randn(2, 256, generator=gen), i
        )
        for i in range(5)
    ]
    results = {}
    for batch_size in (8, 1):
        tapped = _TappedEngine(engine)
        scheduler = SemanticsScheduler(
            tapped,
            SchedulerConfig(
                video_segment_frames=0,
                kinds=("category", "explain"),
                max_new_tokens=10,
                max_batch_size=batch_size,
            ),
        )
        scheduler.observe(
            0,
            [
                ObjectObservation(f"o{i}", features[i], _mask(10 * i), True)
                for i in range(len(features))
            ],
        )
        while scheduler.run_once():
            pass
        results[batch_size] = (tapped.calls, tapped.ids)
    assert results[8][0] == [8, 2] and results[1][0] == [2] * 5
    assert results[8][1] == results[1][1] and len(results[1][1]) == 10
    for ids in results[1][1].values():
        assert len(ids) > 3 and len(set(ids)) > 1  # informative
    assert len({ids for ids in results[1][1].values()}) > 2  # objects differ


def test_cameras_take_turns_so_a_busy_camera_cannot_starve_another(clock):
    """Observations name their camera (group): within a priority class the camera served
    longest ago goes first, so one wrist object is not queued behind five head objects."""
    engine = RecordingEngine()
    scheduler = _scheduler(engine, clock, refresh_period_s=5.0)

    def observe(frame, group, ids):
        scheduler.observe(
            frame * 10,
            [ObjectObservation(oid, _features(frame), _mask(0), True, group) for oid in ids],
        )

    head = [f"head/{n}" for n in range(1, 6)]
    observe(0, "head", head)
    clock.now += 1
    observe(1, "wrist", ["wrist/1"])

    def described():
        return [oid for oid in [*head, "wrist/1"] if scheduler.semantics(oid).category]

    assert scheduler.run_once() and described() == ["head/1"]
    assert scheduler.run_once() and described() == ["head/1", "wrist/1"]  # not 6th
    assert scheduler.run_once() and described() == ["head/1", "head/2", "wrist/1"]
    while scheduler.run_once():
        pass
    assert described() == [*head, "wrist/1"]
    # Refreshes too: when everything is due, the wrist object is not refreshed last.
    clock.now += 10
    observe(2, "head", head)
    observe(2, "wrist", ["wrist/1"])
    order = []
    for _ in range(3):
        assert scheduler.run_once()
        order.append(
            next(oid for oid in [*head, "wrist/1"] if scheduler.semantics(oid).category == "label2"
                 and oid not in order)
        )  # fmt: skip
    assert "wrist/1" in order[:2], order
