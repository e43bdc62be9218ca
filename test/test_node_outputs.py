"""Overlay drawing, output message building and the latest-frame slot."""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field

import numpy as np
import pytest
from std_msgs.msg import Header
from visualization_msgs.msg import Marker

from pam_ros.msg import TrackedObject
from pam_ros.pipeline.latest_frame import LatestFrameSlot
from pam_ros.pipeline.overlay import (
    MAX_LABEL_CHARS,
    OverlayObject,
    color_for,
    draw_overlay,
    label_text,
)
from pam_ros.pipeline.semantics_scheduler import ObjectSemanticsRecord
from pam_ros.ros.health import ErrorWindow, RecentErrors
from pam_ros.ros.message_builders import (
    NodeHealth,
    diagnostics_msg,
    marker_array,
    stamp_from_ns,
    stamp_to_ns,
    tracked_object_array,
)
from pam_ros.tracking import FrameResult, ObjectResult


def _object(oid: str, x0: int, y0: int, x1: int, y1: int, present=True) -> ObjectResult:
    mask = np.zeros((48, 64), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return ObjectResult(oid, mask, 2.5 if present else -3.0, present, (x0, y0, x1, y1))


def _frame_result() -> FrameResult:
    empty = ObjectResult("gone", np.zeros((48, 64), dtype=bool), -5.0, False, None)
    return FrameResult(
        7, {"1": _object("1", 4, 6, 20, 30), "2": _object("2", 30, 10, 60, 40), "gone": empty}
    )


def _header() -> Header:
    header = Header(frame_id="camera_optical")
    header.stamp.sec, header.stamp.nanosec = 12, 345
    return header


# ---- overlay -----------------------------------------------------------------------------


def test_overlay_tints_masks_and_leaves_background_alone():
    frame = np.full((48, 64, 3), 100, dtype=np.uint8)
    result = _frame_result()
    objects = [
        OverlayObject(o.object_id, o.mask, o.box, o.present, "mug") for o in result.objects.values()
    ]
    canvas = draw_overlay(frame, objects, alpha=0.5)
    assert canvas.shape == frame.shape and canvas.dtype == np.uint8
    assert (frame == 100).all()  # input untouched
    inner = canvas[22, 12]  # inside object 1, away from its outline and its label
    expected = np.full(3, 100.0) * 0.5 + np.array(color_for("1")) * 0.5
    np.testing.assert_allclose(inner, expected, atol=1.0)
    assert (canvas[45, 25] == 100).all()  # background below both objects
    changed = (canvas != 100).any(axis=2)
    assert changed[objects[0].mask].all() and not changed[42:].any()


def test_overlay_rejects_mismatched_masks():
    frame = np.zeros((48, 64, 3), dtype=np.uint8)
    wrong = OverlayObject("1", np.zeros((10, 10), dtype=bool), None, True)
    with pytest.raises(ValueError, match="mask of '1'"):
        draw_overlay(frame, [wrong])
    with pytest.raises(ValueError, match="uint8"):
        draw_overlay(frame.astype(np.float32), [])


def _label_pixels(label: str) -> np.ndarray:
    """The label strip above one object's box, drawn on a grey 720p frame (22 px text)."""
    frame = np.full((720, 1280, 3), 128, dtype=np.uint8)
    mask = np.zeros((720, 1280), dtype=bool)
    mask[120:180, 20:380] = True
    canvas = draw_overlay(frame, [OverlayObject("7", mask, (20, 120, 380, 180), True, label)])
    return canvas[80:120, 20:380]


def test_chinese_labels_are_drawn_with_their_glyphs():
    """PAM answers in Chinese with language zh: each character gets its own glyph, not the
    "?" OpenCV's Hershey font draws for anything outside ASCII (as before this font support)."""
    from pam_ros.pipeline.overlay import label_font

    assert label_font(), "no CJK font: install fonts-wqy-microhei or set PAM_ROS_OVERLAY_FONT"
    cup, bottle, question = _label_pixels("杯子"), _label_pixels("瓶子"), _label_pixels("??")
    ink = (cup < 60).all(axis=2)  # black text on the label's colour
    assert ink.sum() > 60  # something is written
    assert (cup != question).any() and (cup != bottle).any()  # different words, different ink
    assert (_label_pixels("mug") != _label_pixels("杯")).any()


def test_long_labels_are_cut_and_short_ones_kept():
    assert label_text("3", "mug") == "3: mug"
    assert label_text("3", "") == "3"
    long = label_text("7", "a ceramic mug with a handle, used for holding hot drinks " * 3)
    assert long.startswith("7: a ceramic mug") and long.endswith("…")
    assert len(long) == len("7: ") + MAX_LABEL_CHARS
    assert label_text("1", "two\nlines") == "1: two lines"


def test_colours_are_stable_per_id():
    assert color_for("1") == color_for("1")
    assert len({color_for(str(i)) for i in range(12)}) > 4


# ---- messages ----------------------------------------------------------------------------


def test_tracked_object_array_full_frame_masks_on_the_source_header():
    semantics = {
        "1": ObjectSemanticsRecord(
            stamp_ns=12_000_000_345,
            category="mug",
            definition="a cup",
            function="drinking",
            model="PAM-tiny",
            random_weights=True,
        )
    }
    msg = tracked_object_array(
        _header(), _frame_result(), (64, 48), {"1": "my mug"}, semantics, "full_frame", 0.25
    )
    assert msg.header.frame_id == "camera_optical" and msg.header.stamp.sec == 12
    assert (msg.image_width, msg.image_height, msg.frame_index) == (64, 48, 7)
    assert msg.tracking_latency == pytest.approx(0.25)
    first, second, gone = msg.objects
    assert (first.id, first.name, first.present) == ("1", "my mug", True)
    assert first.score == pytest.approx(2.5)
    assert (first.box.x_offset, first.box.y_offset, first.box.width, first.box.height) == (
        4,
        6,
        16,
        24,
    )
    assert first.mask_layout == TrackedObject.MASK_FULL_FRAME
    assert (first.mask.width, first.mask.height, first.mask.encoding) == (64, 48, "mono8")
    mask = np.frombuffer(bytes(first.mask.data), np.uint8).reshape(48, 64)
    np.testing.assert_array_equal(mask == 255, _frame_result().objects["1"].mask)
    assert first.mask_area == 16 * 24
    assert first.semantics.category == "mug" and first.semantics.random_weights
    assert stamp_to_ns(first.semantics.stamp) == 12_000_000_345
    assert second.semantics.category == "" and second.name == ""
    assert gone.mask_area == 0 and not gone.present


def test_cropped_and_no_masks():
    msg = tracked_object_array(_header(), _frame_result(), (64, 48), {}, {}, "cropped", 0.0)
    first, _, gone = msg.objects
    assert first.mask_layout == TrackedObject.MASK_CROPPED
    assert (first.mask.width, first.mask.height) == (16, 24)
    assert set(bytes(first.mask.data)) == {255}
    assert gone.mask_layout == TrackedObject.MASK_NONE  # empty mask: nothing to crop
    msg = tracked_object_array(_header(), _frame_result(), (64, 48), {}, {}, "none", 0.0)
    assert all(o.mask_layout == TrackedObject.MASK_NONE and not o.mask.data for o in msg.objects)
    assert msg.objects[0].mask_area == 16 * 24
    with pytest.raises(ValueError, match="polygon"):
        tracked_object_array(_header(), _frame_result(), (64, 48), {}, {}, "polygon", 0.0)


def test_markers_label_and_box_present_objects():
    semantics = {"2": ObjectSemanticsRecord(category="chair")}
    markers = marker_array(_header(), _frame_result(), semantics, "map", 0.01).markers
    assert markers[0].action == Marker.DELETEALL
    boxes = [m for m in markers if m.type == Marker.LINE_STRIP]
    labels = [m for m in markers if m.type == Marker.TEXT_VIEW_FACING]
    assert len(boxes) == len(labels) == 2  # the absent object gets no markers
    assert [m.text for m in labels] == ["1", "2: chair"]
    assert all(m.header.frame_id == "map" for m in boxes + labels)
    corners = [(p.x, p.y) for p in boxes[0].points]
    assert corners[0] == corners[-1] == pytest.approx((0.04, 0.06))
    assert corners[2] == pytest.approx((0.20, 0.30))
    same_frame = marker_array(_header(), _frame_result(), {}, "", 0.01).markers
    source = _header()
    moved = marker_array(source, _frame_result(), {}, "map", 0.01).markers
    assert all(m.header.frame_id == "map" for m in moved)
    assert source.frame_id == "camera_optical"  # the image's header is left alone
    assert same_frame[1].header.frame_id == "camera_optical"


def test_diagnostics_report_health_levels():
    health = NodeHealth("active", 4.5, 0.21, 100, 40, 0, 0, 2, 1, 3, 0, 0.0)
    status = diagnostics_msg(stamp_from_ns(5), "pam_ros", health).status[0]
    values = {kv.key: kv.value for kv in status.values}
    assert status.level == status.OK
    assert values["frame_rate_hz"] == "4.50" and values["frames_dropped"] == "40"
    assert values["semantic_queue_depth"] == "1" and values["gpu_memory_mb"] == "0.0"
    bad = NodeHealth(
        "active",
        1,
        0.1,
        1,
        0,
        3,
        0,
        0,
        0,
        0,
        0,
        0.0,
        "unsupported encoding 'x'",
        recent_errors=3,
        last_error_age_s=0.4,
    )
    status = diagnostics_msg(stamp_from_ns(5), "pam_ros", bad).status[0]
    assert status.level == status.WARN and "unsupported" in status.message
    # Errors no longer recent: OK again, the last error kept as a value with its age.
    old = dataclasses.replace(bad, recent_errors=0, last_error_age_s=42.0)
    status = diagnostics_msg(stamp_from_ns(5), "pam_ros", old).status[0]
    values = {kv.key: kv.value for kv in status.values}
    assert status.level == status.OK and values["last_error_age_s"] == "42.0"
    assert values["last_error"] == "unsupported encoding 'x'" and values["frames_rejected"] == "3"
    # QoS events (lost messages, incompatible peers) warn while recent, not for ever
    lossy = dataclasses.replace(health, messages_lost=7, incompatible_qos=1, recent_qos_events=2)
    status = diagnostics_msg(stamp_from_ns(5), "pam_ros", lossy).status[0]
    assert status.level == status.WARN and "7 message(s) lost" in status.message
    status = diagnostics_msg(
        stamp_from_ns(5), "pam_ros", dataclasses.replace(lossy, recent_qos_events=0)
    ).status[0]
    values = {kv.key: kv.value for kv in status.values}
    assert status.level == status.OK and values["messages_lost"] == "7"
    idle = NodeHealth("unconfigured", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.0)
    assert diagnostics_msg(stamp_from_ns(5), "pam_ros", idle).status[0].level == status.STALE


def test_a_silent_camera_is_said_with_the_remap_and_launch_argument_that_set_its_topic():
    from pam_ros.ros.camera_io import CameraHealth, silence_warning

    def health(name, topic, received=0, silent_s=6.0):
        return CameraHealth(name, topic, received, 0, 0, 0, 0, None, silent_s, 5.0)

    lone = silence_warning(health("", "/image"))
    assert lone.startswith("no frames yet on /image for 6.0 s: ")
    assert "ros2 topic info /image" in lone and "-r image:=<topic>" in lone
    assert "camera_topic:=<topic> in camera.launch.py" in lone
    compressed = silence_warning(health("", "/image/compressed", received=9))
    assert compressed.startswith("no frames on /image/compressed") and (
        "-r image/compressed:=<topic>" in compressed
    )
    wrist = silence_warning(health("wrist", "/wrist/image"))
    assert "-r wrist/image:=<topic>" in wrist and "camera_topics:=wrist:<topic>" in wrist
    # the lone camera's silence is the node's status; a quiet camera is not
    idle = NodeHealth("active", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.0)
    silent = dataclasses.replace(idle, silent_camera="no frames yet on /image for 6.0 s")
    status = diagnostics_msg(stamp_from_ns(5), "pam_ros", silent).status[0]
    assert status.level == status.WARN and status.message == silent.silent_camera
    assert diagnostics_msg(stamp_from_ns(5), "pam_ros", idle).status[0].level == status.OK


def test_stamp_conversion_round_trips():
    assert stamp_to_ns(stamp_from_ns(1_700_000_000_123_456_789)) == 1_700_000_000_123_456_789


# ---- latest-frame slot -------------------------------------------------------------------


def test_slot_keeps_only_the_newest_and_counts_drops():
    slot = LatestFrameSlot()
    assert slot.take(timeout=0.01) is None
    assert not slot.put(1) and slot.put(2) and slot.put(3)
    assert slot.take(timeout=0) == 3
    assert slot.take(timeout=0.01) is None
    counters = slot.counters
    assert (counters.received, counters.taken, counters.dropped) == (3, 1, 2)


def test_slot_wakes_a_waiting_taker_and_close_releases_it():
    slot = LatestFrameSlot()
    got = []
    taker = threading.Thread(target=lambda: got.append(slot.take(timeout=10)))
    taker.start()
    slot.put("frame")
    taker.join(5)
    assert got == ["frame"]
    taker = threading.Thread(target=lambda: got.append(slot.take(timeout=10)))
    taker.start()
    slot.close()
    taker.join(5)
    assert not taker.is_alive() and got == ["frame", None]
    slot.reopen()
    slot.put("next")
    slot.clear()
    assert slot.take(timeout=0) is None and slot.counters.dropped == 0


@dataclass
class _Producer:
    slot: LatestFrameSlot
    count: int
    done: threading.Event = field(default_factory=threading.Event)

    def run(self):
        for i in range(self.count):
            self.slot.put(i)
        self.done.set()


def test_slot_under_concurrency_loses_nothing_but_stale_frames():
    slot = LatestFrameSlot()
    producer = _Producer(slot, 20000)
    thread = threading.Thread(target=producer.run)
    thread.start()
    seen = []
    while not (
        producer.done.is_set()
        and slot.counters.received == slot.counters.taken + slot.counters.dropped
    ):
        item = slot.take(timeout=0.01)
        if item is not None:
            seen.append(item)
    thread.join()
    counters = slot.counters
    assert counters.received == 20000 and counters.taken == len(seen)
    assert counters.taken + counters.dropped == 20000
    assert seen == sorted(seen) and seen[-1] == 19999


def test_error_window_counts_only_recent_errors():
    window = ErrorWindow(window_s=10.0)
    assert window.update(0.0, 0, "") == RecentErrors(0, "", None)
    assert window.update(1.0, 1, "frame rejected: x") == RecentErrors(1, "frame rejected: x", 0.0)
    assert window.update(5.0, 1, "frame rejected: x").count == 1
    later = window.update(11.5, 1, "frame rejected: x")  # the error is 10.5 s old
    assert later.count == 0 and later.last_error_age_s == pytest.approx(10.5)
    again = window.update(12.0, 3, "tracking failed: y")
    assert again == RecentErrors(2, "tracking failed: y", 0.0)
    assert window.update(30.0, 3, "tracking failed: y").count == 0


def test_log_throttle_is_per_kind_of_fault():
    from pam_ros.ros.health import KindThrottle

    now = [0.0]
    throttle = KindThrottle(5.0, clock=lambda: now[0])
    assert throttle.allow("UnsupportedEncodingError")
    now[0] = 2.0
    assert throttle.allow("EmptyImageError")  # another kind: not hidden by the first
    assert not throttle.allow("UnsupportedEncodingError")
    now[0] = 5.0
    assert throttle.allow("UnsupportedEncodingError") and not throttle.allow("EmptyImageError")
