"""The README's main job (the demo) runs end to end, and says clearly when weights are missing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import pytest
from conftest import DAVIS, REPO

DEMO = [sys.executable, "-m", "pam_ros.tools.demo.run_demo"]


def _run(args: list[str], timeout: float = 400) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run(
        DEMO + args, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.slow
def test_demo_with_random_weights_writes_every_output(tmp_path):
    # The demo's default source: DAVIS car-shadow where the data is, else the generated scene
    real = DAVIS.exists()
    frames = 8
    done = _run(["--random-weights", "--frames", str(frames), "--output", str(tmp_path)])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "RANDOM WEIGHTS" in done.stderr

    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["random_weights"] is True and "warning" in summary
    assert summary["frames_recorded"] == frames
    assert summary["objects"][:2] == ["1", "2"]  # the box by service, then the click
    # discovery on frame 4 added objects nobody prompted (random thresholds keep some)
    discovered = summary["discovered"]
    assert 1 <= len(discovered) <= 2 and summary["objects"][2:] == discovered
    found = summary["find_objects"]
    assert found["success"] and sorted(found["ids"]) == sorted(summary["objects"])
    assert summary["describe_failures"] == []

    records = [json.loads(line) for line in (tmp_path / "tracked_objects.jsonl").open()]
    assert [r["frame_index"] for r in records] == list(range(frames))
    stamps = [r["stamp_ns"] for r in records]
    assert stamps == sorted(set(stamps))
    last = {o["id"]: o for o in records[-1]["objects"]}
    assert set(last) == {"1", "2", *discovered}
    assert {i: last[i]["origin"] for i in last} == {
        **{i: "discovery" for i in discovered},
        "1": "prompt",
        "2": "prompt",
    }
    assert last["1"]["name"] == ("car-shadow (annotated object)" if real else "red disc")
    area = 854 * 480 if real else 640 * 480
    for obj in last.values():
        assert obj["random_weights"] is True
        if obj["present"]:
            assert 0 < obj["mask_area"] < area

    answers = [json.loads(line) for line in (tmp_path / "descriptions.jsonl").open()]
    final = [a for a in answers if a["from_cache"] is False]
    kinds = {"category", "explain", "caption", "detailed_caption", "video_caption"}
    assert {(a["id"], a["kind"]) for a in final} >= {(i, k) for i in ("1", "2") for k in kinds}
    assert {(a["id"], a["kind"]) for a in final} >= {
        (i, k) for i in discovered for k in ("category", "explain")
    }
    for answer in final:
        assert answer["success"] and answer["text"] and answer["random_weights"]

    video = cv2.VideoCapture(str(tmp_path / "overlay.mp4"))
    count = 0
    while video.read()[0]:
        count += 1
    assert count == frames

    # The MCAP recording beside the video: every message deserialises with the definition
    # registered in the bag, one of each per frame, on the frames' stamps.
    from rosbags.highlevel import AnyReader

    with AnyReader([tmp_path / "recording"]) as reader:
        by_topic: dict[str, list] = {}
        for connection, _, raw in reader.messages():
            message = reader.deserialize(raw, connection.msgtype)
            by_topic.setdefault(connection.topic, []).append(message)
    assert set(by_topic) == {
        "/camera/image_raw/compressed",
        "/tracked_objects",
        "/overlay/compressed",
    }
    tracked_stamps = [
        m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec
        for m in by_topic["/tracked_objects"]
    ]
    assert tracked_stamps == stamps
    assert len(by_topic["/camera/image_raw/compressed"]) == frames


def test_demo_without_weights_says_what_to_fetch(tmp_path):
    missing = tmp_path / "sam2.1_hiera_large.pt"
    done = _run(
        [
            "--frames",
            "2",
            "--output",
            str(tmp_path / "out"),
            "--tracker-checkpoint",
            str(missing),
            "--source",
            "generated",
        ],
        timeout=120,
    )
    assert done.returncode == 2
    assert "sam2.1_hiera_large.pt" in done.stderr
    assert "--random-weights" in done.stderr
    assert not (tmp_path / "out" / "summary.json").exists()


def test_demo_rejects_a_bad_source(tmp_path):
    done = _run(["--source", str(tmp_path / "nothing-here"), "--random-weights"], timeout=60)
    assert done.returncode == 2
    assert "neither 'generated', an image folder nor a video file" in done.stderr
