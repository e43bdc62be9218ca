"""Frames for the demo and the benchmarks, from a video file, an image folder or a generated scene.

Every source yields RGB uint8 arrays of shape (H, W, 3). Nothing here knows ROS.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pam_ros.geometry import CameraIntrinsics

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


class FrameSourceError(ValueError):
    """A frame source could not be opened or read."""


class VideoFileFrames:
    """Frames of a video file decoded with OpenCV."""

    def __init__(self, path: str | Path, max_frames: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FrameSourceError(f"video file not found: {self.path}")
        self.max_frames = max_frames

    def __iter__(self) -> Iterator[np.ndarray]:
        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            raise FrameSourceError(f"OpenCV cannot open video {self.path}")
        try:
            count = 0
            while self.max_frames is None or count < self.max_frames:
                ok, bgr = capture.read()
                if not ok:
                    break
                count += 1
                yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        finally:
            capture.release()


class ImageFolderFrames:
    """Image files of a folder in name order (e.g. DAVIS JPEGImages/480p/<sequence>)."""

    def __init__(self, folder: str | Path, max_frames: int | None = None) -> None:
        self.folder = Path(folder)
        self.paths = sorted(p for p in self.folder.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.paths:
            raise FrameSourceError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {self.folder}")
        if max_frames is not None:
            self.paths = self.paths[:max_frames]

    def __len__(self) -> int:
        return len(self.paths)

    def __iter__(self) -> Iterator[np.ndarray]:
        for path in self.paths:
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                raise FrameSourceError(f"cannot decode image {path}")
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@dataclass(frozen=True)
class GeneratedScene:
    """A textured background with two moving shapes: a source that needs no files.

    `object_boxes(i)` gives the true boxes (x0, y0, x1, y1) of the shapes on frame i, so a
    demo can prompt them and a test can check the tracker follows them.

    Depth (aligned to the colour, same size and intrinsics): the shapes are flat cards facing
    the camera at `object_depths_m` (disc, square) in front of a wall at `wall_depth_m`;
    `depth_frame(i)` renders it, `object_positions(i)` / `object_extents(i)` are the true
    centres and sizes of the cards in the optical frame (metres).
    """

    width: int = 640
    height: int = 480
    num_frames: int = 60
    seed: int = 0
    object_depths_m: tuple[float, float] = (1.0, 1.4)
    wall_depth_m: float = 2.0
    focal_px_per_width: float = 0.9  # fx = fy = 0.9 * width (about a 58 degree field of view)

    def intrinsics(self) -> CameraIntrinsics:
        focal = self.focal_px_per_width * self.width
        return CameraIntrinsics(
            focal, focal, (self.width - 1) / 2, (self.height - 1) / 2, self.width, self.height
        )

    def _object_masks(self, index: int) -> list[np.ndarray]:
        """(H, W) bool of the disc and the square as drawn on frame `index`."""
        (x0, y0, x1, y1), (sx0, sy0, sx1, sy1) = self.object_boxes(index)
        disc = np.zeros((self.height, self.width), np.uint8)
        cv2.circle(disc, ((x0 + x1) // 2, (y0 + y1) // 2), (x1 - x0) // 2, 1, -1)
        square = np.zeros_like(disc)
        cv2.rectangle(square, (sx0, sy0), (sx1 - 1, sy1 - 1), 1, -1)
        return [disc.astype(bool), square.astype(bool)]

    def depth_frame(self, index: int) -> np.ndarray:
        """(H, W) float32 metres: the wall, the cards on it (the disc is drawn last, in front)."""
        depth = np.full((self.height, self.width), self.wall_depth_m, np.float32)
        disc, square = self._object_masks(index)
        depth[square] = self.object_depths_m[1]
        depth[disc] = self.object_depths_m[0]
        return depth

    def object_positions(self, index: int) -> list[tuple[float, float, float]]:
        """True centres (x, y, z) of the disc and the square cards on frame `index`."""
        k = self.intrinsics()
        positions = []
        for (x0, y0, x1, y1), z in zip(self.object_boxes(index), self.object_depths_m, strict=True):
            u, v = (x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2  # centre of the pixels x0..x1-1
            positions.append(((u - k.cx) * z / k.fx, (v - k.cy) * z / k.fy, z))
        return positions

    def object_extents(self, index: int) -> list[tuple[float, float, float]]:
        """True sizes (x, y, z) of the cards (flat: z extent 0)."""
        k = self.intrinsics()
        return [
            ((x1 - x0) * z / k.fx, (y1 - y0) * z / k.fy, 0.0)
            for (x0, y0, x1, y1), z in zip(
                self.object_boxes(index), self.object_depths_m, strict=True
            )
        ]

    def _background(self) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        noise = rng.integers(0, 40, size=(self.height // 8, self.width // 8, 3), dtype=np.uint8)
        tile = cv2.resize(noise, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
        gradient = np.linspace(60, 140, self.width, dtype=np.float32)[None, :, None]
        return np.clip(tile + gradient, 0, 255).astype(np.uint8)

    def object_boxes(self, index: int) -> list[tuple[int, int, int, int]]:
        t = index / max(1, self.num_frames - 1)
        w, h = self.width, self.height
        cx = int(w * (0.2 + 0.5 * t))
        cy = int(h * 0.35)
        r = max(8, min(w, h) // 10)
        disc = (cx - r, cy - r, cx + r, cy + r)
        bx0 = int(w * (0.75 - 0.4 * t))
        by0 = int(h * 0.6)
        square = (bx0, by0, bx0 + 2 * r, by0 + int(1.4 * r))
        return [disc, square]

    def __len__(self) -> int:
        return self.num_frames

    def __iter__(self) -> Iterator[np.ndarray]:
        background = self._background()
        for i in range(self.num_frames):
            frame = background.copy()
            (x0, y0, x1, y1), (sx0, sy0, sx1, sy1) = self.object_boxes(i)
            cv2.circle(frame, ((x0 + x1) // 2, (y0 + y1) // 2), (x1 - x0) // 2, (220, 40, 40), -1)
            cv2.rectangle(frame, (sx0, sy0), (sx1 - 1, sy1 - 1), (40, 200, 60), -1)
            yield frame


def open_frame_source(spec: str, max_frames: int | None = None):
    """`generated`, a folder of images, or a video file."""
    if spec == "generated":
        return GeneratedScene(num_frames=max_frames or 60)
    path = Path(spec)
    if path.is_dir():
        return ImageFolderFrames(path, max_frames)
    if path.is_file():
        return VideoFileFrames(path, max_frames)
    raise FrameSourceError(
        f"frame source {spec!r} is neither 'generated', an image folder nor a video file"
    )
