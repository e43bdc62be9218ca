"""Draws tracked objects on a frame for humans (rviz Image display, the demo's video).

ROS-free: numpy + cv2. Each object gets a stable colour from its id; its mask is blended in,
its outline and box drawn, and a label "id: category" written above the box.
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass

import cv2
import numpy as np

# Well-separated colours (RGB), picked by a hash of the object id.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
    (170, 110, 40),
)


# Labels longer than this are cut (a category is a few words; a long answer would cross the
# whole frame).
MAX_LABEL_CHARS = 32


def label_text(object_id: str, label: str) -> str:
    """'id: label', the label cut to MAX_LABEL_CHARS characters with an ellipsis."""
    label = " ".join(label.split())
    if len(label) > MAX_LABEL_CHARS:
        label = label[: MAX_LABEL_CHARS - 1].rstrip() + "…"
    return f"{object_id}: {label}" if label else object_id


@dataclass(frozen=True)
class OverlayObject:
    object_id: str
    mask: np.ndarray  # (H, W) bool
    box: tuple[int, int, int, int] | None  # (x0, y0, x1, y1) of the mask, exclusive end
    present: bool
    label: str = ""  # e.g. the category


def overlay_objects(result, semantics: dict) -> list[OverlayObject]:
    """What to draw for a tracked frame: `result` a tracking FrameResult, `semantics` object
    id -> ObjectSemanticsRecord (the label is its latest category)."""
    return [
        OverlayObject(
            oid,
            obj.mask,
            obj.box,
            obj.present,
            semantics[oid].category if oid in semantics else "",
        )
        for oid, obj in result.objects.items()
    ]


@functools.lru_cache(maxsize=1024)
def _text_size(text: str, scale: float) -> tuple[tuple[int, int], int]:
    return cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)  # slow; labels repeat


def color_for(object_id: str) -> tuple[int, int, int]:
    return PALETTE[zlib.crc32(object_id.encode()) % len(PALETTE)]


def draw_overlay(frame: np.ndarray, objects: list[OverlayObject], alpha: float = 0.5) -> np.ndarray:
    """(H, W, 3) RGB uint8 → a new (H, W, 3) RGB uint8 with the objects drawn on it."""
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"draw_overlay expects (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
    canvas = frame.copy()
    height, width = frame.shape[:2]
    for obj in objects:
        if obj.mask.shape != (height, width):
            raise ValueError(
                f"mask of {obj.object_id!r} is {obj.mask.shape}, frame is {(height, width)}"
            )
        if not obj.present or obj.box is None:
            continue
        x0, y0, x1, y1 = obj.box
        region = canvas[y0:y1, x0:x1]  # a view: blending touches only the object's box
        inside = obj.mask[y0:y1, x0:x1]  # (h, w) bool
        if not inside.any():
            continue
        red, green, blue = color_for(obj.object_id)
        faded = cv2.convertScaleAbs(region, alpha=1.0 - alpha)  # (h, w, 3) uint8
        tinted = cv2.add(faded, (red * alpha, green * alpha, blue * alpha, 0.0))
        cv2.copyTo(tinted, inside.view(np.uint8), region)  # in place: region views canvas
        contours, _ = cv2.findContours(
            inside.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE, offset=(x0, y0)
        )
        cv2.drawContours(canvas, contours, -1, color_for(obj.object_id), 2)
    for obj in objects:  # labels last so masks never cover text
        if not obj.present or obj.box is None:
            continue
        x0, y0, x1, y1 = obj.box
        color = color_for(obj.object_id)
        cv2.rectangle(canvas, (x0, y0), (x1 - 1, y1 - 1), color, 1)
        text = label_text(obj.object_id, obj.label)
        scale = max(0.4, min(1.0, width / 1280))
        (text_w, text_h), baseline = _text_size(text, scale)
        top = max(0, y0 - text_h - baseline - 2)
        cv2.rectangle(canvas, (x0, top), (x0 + text_w + 2, top + text_h + baseline + 2), color, -1)
        cv2.putText(
            canvas,
            text,
            (x0 + 1, top + text_h + 1),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
    return canvas
