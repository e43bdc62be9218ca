"""Per-camera topic names: a named camera's topics live under its name.

camera_topic("", "image")      -> "image"           (the lone unnamed camera: as before)
camera_topic("wrist", "image") -> "wrist/image"     (relative: node namespace + remaps apply)
"""

from __future__ import annotations


def camera_topic(camera: str, name: str) -> str:
    return f"{camera}/{name}" if camera else name
