"""Prompts for the bag tool: from a YAML/JSON file, or from a Detection2DArray topic in the bag.

A prompts file is a list (or a mapping with a `prompts:` list) of entries, each applied on one
colour frame, after that frame is tracked (as a live click lands on the newest frame):

    prompts:
      - frame: 0                      # colour-frame index from 0 ...
        name: car
        box: [250, 150, 550, 350]     # x0, y0, x1, y1 pixels (exclusive end)
      - time: 0.5                     # ... or seconds after the first colour frame's stamp
        points: [[420, 200], [430, 260]]
        labels: [1, 0]                # 1 positive, 0 negative (default: all positive)
        id: background                # optional; generated ("1", "2", ...) when absent
      - frame: 30
        remove: background            # stop tracking an object

A time applies on the first frame at or after it. Detection2DArray prompts: every detection
is a box applied on the colour frame with the same header stamp (or the first after it); a box
overlapping a tracked object by IoU > 0.5 is skipped; the name is the detection's best
hypothesis' class_id (highest score), else its id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pam_ros.ros.stamps import stamp_to_ns


class PromptFileError(ValueError):
    """A prompts file that cannot be read; the message names the file and the entry."""


@dataclass(frozen=True)
class Prompt:
    frame: int | None = None  # colour-frame index
    time_s: float | None = None  # seconds after the first colour frame's stamp
    stamp_ns: int | None = None  # exact source stamp (Detection2DArray prompts)
    points: tuple[tuple[float, float], ...] = ()
    labels: tuple[int, ...] = ()
    box: tuple[int, int, int, int] | None = None
    name: str = ""
    object_id: str | None = None
    remove: str | None = None  # an object id to remove instead of adding
    source: str = ""  # where it came from, for messages ("prompts.yaml entry 2")
    skip_if_tracked: bool = False  # detector boxes: skip when overlapping a tracked object

    def due(self, frame_index: int, stamp_ns: int, first_stamp_ns: int) -> bool:
        if self.frame is not None:
            return frame_index >= self.frame
        if self.stamp_ns is not None:
            return stamp_ns >= self.stamp_ns
        return (stamp_ns - first_stamp_ns) * 1e-9 >= self.time_s - 1e-9

    def describe(self) -> str:
        if self.remove is not None:
            return f"remove {self.remove!r}"
        parts = [f"box {list(self.box)}"] if self.box is not None else []
        if self.points:
            parts.append(f"points {[list(p) for p in self.points]}")
        return " + ".join(parts)


def _number_list(value, length: int | None, what: str, where: str) -> list[float]:
    if not isinstance(value, (list, tuple)) or (length is not None and len(value) != length):
        size = f"{length} numbers" if length else "a list"
        raise PromptFileError(f"{where}: {what} must be {size}, got {value!r}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise PromptFileError(f"{where}: {what} must hold numbers, got {value!r}")
    return [float(v) for v in value]


def _parse_entry(entry, where: str) -> Prompt:
    if not isinstance(entry, dict):
        raise PromptFileError(f"{where}: expected a mapping, got {entry!r}")
    known = {"frame", "time", "points", "labels", "box", "name", "id", "remove"}
    unknown = sorted(set(entry) - known)
    if unknown:
        raise PromptFileError(f"{where}: unknown key(s) {unknown}; use {sorted(known)}")
    if ("frame" in entry) == ("time" in entry):
        raise PromptFileError(f"{where}: give exactly one of 'frame' or 'time'")
    frame = entry.get("frame")
    if frame is not None and (not isinstance(frame, int) or isinstance(frame, bool) or frame < 0):
        raise PromptFileError(f"{where}: frame must be an integer >= 0, got {frame!r}")
    time_s = entry.get("time")
    if time_s is not None and (not isinstance(time_s, (int, float)) or time_s < 0):
        raise PromptFileError(f"{where}: time must be seconds >= 0, got {time_s!r}")
    if "remove" in entry:
        return Prompt(frame=frame, time_s=time_s, remove=str(entry["remove"]), source=where)
    points = [tuple(_number_list(p, 2, "each point", where)) for p in entry.get("points", []) or []]
    labels = [
        int(v) for v in _number_list(entry.get("labels", [1] * len(points)), None, "labels", where)
    ]
    if len(labels) != len(points):
        raise PromptFileError(f"{where}: {len(points)} points but {len(labels)} labels")
    box = None
    if entry.get("box") is not None:
        box = tuple(round(v) for v in _number_list(entry["box"], 4, "box", where))
    if not points and box is None:
        raise PromptFileError(f"{where}: give 'points' and/or 'box' (or 'remove')")
    object_id = entry.get("id")
    return Prompt(
        frame=frame,
        time_s=None if time_s is None else float(time_s),
        points=tuple(points),
        labels=tuple(labels),
        box=box,
        name=str(entry.get("name", "")),
        object_id=None if object_id is None else str(object_id),
        source=where,
    )


def load_prompt_file(path: str | Path) -> list[Prompt]:
    """Parse a YAML or JSON prompts file (see the module docstring)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise PromptFileError(f"cannot read prompts file {path}: {exc}") from exc
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # yaml.YAMLError / json.JSONDecodeError name line and column
        raise PromptFileError(f"prompts file {path} is not valid: {exc}") from exc
    if isinstance(data, dict):
        data = data.get("prompts")
    if not isinstance(data, list):
        raise PromptFileError(f"prompts file {path}: expected a list of prompts (or 'prompts:')")
    return [_parse_entry(entry, f"{path.name} entry {i}") for i, entry in enumerate(data)]


def detection_prompts(message, topic: str) -> list[Prompt]:
    """A deserialised vision_msgs/Detection2DArray → one box prompt per detection, boxes and
    names exactly as the node makes them from `detections_in`."""
    from pam_ros.ros.detections import prompts_from_detections

    stamp_ns = stamp_to_ns(message.header.stamp)
    return [
        Prompt(
            stamp_ns=stamp_ns,
            box=prompt.box,
            name=prompt.name,
            source=f"{topic} at stamp {stamp_ns} detection {index}",
            skip_if_tracked=True,
        )
        for index, prompt in enumerate(prompts_from_detections(message))
    ]
