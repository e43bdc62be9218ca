"""Draws tracked objects on a frame for humans (rviz Image display, the demo's video).

ROS-free: numpy + cv2 (+ Pillow for text outside ASCII). Each object gets a stable colour from
its id; its mask is blended in, its outline and box drawn, and a label "id: category" written
above the box.

Labels: ASCII text is drawn with OpenCV's Hershey font; any other text (PAM answers in Chinese
with `language: zh`, the "…" of a cut label) with a TrueType font through Pillow, because
Hershey fonts draw every such character as "?". The font is `$PAM_ROS_OVERLAY_FONT` when set,
else the first of LABEL_FONTS that exists, else what fontconfig's `fc-match :lang=zh` names;
`scripts/setup.sh` installs WenQuanYi Micro Hei (Debian `fonts-wqy-microhei`) where it can.
Without any such font the text is drawn with the Hershey font ("?" for each character) and
`label_font()` returns None, which the node reports once.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
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


# TrueType fonts with CJK glyphs, looked for in this order (Debian/Ubuntu paths).
LABEL_FONTS = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
)
FONT_ENV = "PAM_ROS_OVERLAY_FONT"
HERSHEY_PX_PER_SCALE = 22  # the Hershey simplex font's cap-to-descender height at scale 1


@functools.lru_cache(maxsize=1)
def label_font() -> str | None:
    """The TrueType font file for non-ASCII labels, or None (see the module docstring)."""
    chosen = os.environ.get(FONT_ENV, "")
    if chosen:
        return chosen if os.path.isfile(chosen) else None
    for path in LABEL_FONTS:
        if os.path.isfile(path):
            return path
    if shutil.which("fc-match"):
        found = subprocess.run(
            ["fc-match", "-f", "%{file}", ":lang=zh"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        if found and os.path.isfile(found):
            return found
    return None


@functools.lru_cache(maxsize=8)
def _truetype(path: str, size_px: int):
    from PIL import ImageFont

    return ImageFont.truetype(path, size_px)


@functools.lru_cache(maxsize=1024)
def _text_size(text: str, scale: float) -> tuple[tuple[int, int], int]:
    """((width, height), baseline) of a label in pixels, as cv2.getTextSize reports it."""
    font = None if text.isascii() else label_font()
    if font is None:
        return cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)  # slow; labels repeat
    left, top, right, bottom = _truetype(font, _font_px(scale)).getbbox(text)
    return (right - left, bottom - min(top, 0)), 0


def _font_px(scale: float) -> int:
    return max(8, round(HERSHEY_PX_PER_SCALE * scale))


def _put_text(canvas: np.ndarray, text: str, origin: tuple[int, int], scale: float) -> None:
    """Black text with its top-left corner at `origin`, in place on (H, W, 3) RGB uint8."""
    font = None if text.isascii() else label_font()
    x, y = origin
    if font is None:
        (_, text_h), _ = _text_size(text, scale)
        cv2.putText(
            canvas, text, (x, y + text_h), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1,
            cv2.LINE_AA,
        )  # fmt: skip
        return
    from PIL import Image, ImageDraw

    (text_w, text_h), _ = _text_size(text, scale)
    height, width = canvas.shape[:2]
    x1, y1 = min(width, x + text_w + 1), min(height, y + text_h + 1)
    if x1 <= x or y1 <= y:
        return
    patch = Image.fromarray(canvas[y:y1, x:x1])  # only the label's pixels go through Pillow
    left, top, _, _ = _truetype(font, _font_px(scale)).getbbox(text)
    ImageDraw.Draw(patch).text((-left, -min(top, 0)), text, font=_truetype(font, _font_px(scale)),
                               fill=(0, 0, 0))  # fmt: skip
    canvas[y:y1, x:x1] = np.asarray(patch)


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
        _put_text(canvas, text, (x0 + 1, top + 1), scale)
    return canvas
