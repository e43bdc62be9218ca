"""Depth images: encodings, units and what counts as a valid depth value.

A `DepthImage` keeps the raw array (uint16 or float32, shape (H, W)) and the metres per raw
unit; regions are decoded to metres on demand, so a frame's full image is never converted when
only the objects' boxes are read.

Units come from the encoding (ROS REP 118): `16UC1` / `mono16` are millimetres, `32FC1` metres.
Cameras that differ (e.g. 16-bit depth in 0.1 mm or 0.25 mm steps) set `metres_per_unit`
explicitly. Invalid values: 0 in integer images; 0, negative, NaN and inf in float images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# encoding -> (numpy dtype, metres per unit when not overridden)
DEPTH_ENCODINGS: dict[str, tuple[np.dtype, float]] = {
    "16UC1": (np.dtype(np.uint16), 0.001),
    "mono16": (np.dtype(np.uint16), 0.001),
    "32FC1": (np.dtype(np.float32), 1.0),
}


class DepthError(ValueError):
    """A depth image that cannot be used; the message says what was wrong."""


class UnsupportedDepthEncodingError(DepthError):
    """An encoding other than those in DEPTH_ENCODINGS."""


@dataclass(frozen=True)
class DepthImage:
    raw: np.ndarray  # (H, W) uint16 or float32, as received
    metres_per_unit: float
    encoding: str

    @property
    def height(self) -> int:
        return int(self.raw.shape[0])

    @property
    def width(self) -> int:
        return int(self.raw.shape[1])

    def metres(self, y0=0, y1=None, x0=0, x1=None, stride: int = 1) -> np.ndarray:
        """Depth in metres of rows y0:y1:stride, columns x0:x1:stride; invalid pixels are NaN.
        (h, w) float32."""
        region = self.raw[y0:y1:stride, x0:x1:stride]
        metres = region.astype(np.float32) * np.float32(self.metres_per_unit)
        if region.dtype.kind == "u":
            metres[region == 0] = np.nan
        else:
            metres[~(np.isfinite(metres) & (metres > 0))] = np.nan
        return metres


def decode_depth(
    raw: np.ndarray, encoding: str, metres_per_unit: float = 0.0, big_endian: bool = False
) -> DepthImage:
    """Wrap a raw depth array. `metres_per_unit` 0 takes the unit from the encoding.

    `raw` may be a flat byte buffer only through `depth_from_buffer`; here it is (H, W).
    """
    if encoding not in DEPTH_ENCODINGS:
        raise UnsupportedDepthEncodingError(
            f"unsupported depth encoding {encoding!r}: expected one of "
            f"{', '.join(DEPTH_ENCODINGS)} (16UC1/mono16 in mm, 32FC1 in m)"
        )
    dtype, default_scale = DEPTH_ENCODINGS[encoding]
    if raw.ndim != 2 or raw.size == 0:
        raise DepthError(f"depth image must be (H, W) and non-empty, got shape {raw.shape}")
    if raw.dtype != dtype:
        raise DepthError(f"{encoding} depth must be {dtype}, got {raw.dtype}")
    if big_endian:
        raw = raw.byteswap().view(raw.dtype.newbyteorder())
    scale = float(metres_per_unit) if metres_per_unit else default_scale
    if not (np.isfinite(scale) and scale > 0):
        raise DepthError(f"metres per depth unit must be > 0, got {metres_per_unit}")
    return DepthImage(raw=raw, metres_per_unit=scale, encoding=encoding)


def depth_from_buffer(
    data,
    width: int,
    height: int,
    step: int,
    encoding: str,
    metres_per_unit: float = 0.0,
    big_endian: bool = False,
) -> DepthImage:
    """A DepthImage from a sensor_msgs/Image-like byte buffer with row stride `step` bytes."""
    if encoding not in DEPTH_ENCODINGS:
        return decode_depth(np.zeros((1, 1), np.uint8), encoding)  # raises with the message
    dtype = DEPTH_ENCODINGS[encoding][0]
    if width <= 0 or height <= 0:
        raise DepthError(f"empty depth image ({width}x{height})")
    row_bytes = width * dtype.itemsize
    if step < row_bytes:
        raise DepthError(f"depth step {step} < width {width} x {dtype.itemsize} bytes")
    buffer = np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
    if buffer.size < step * height:
        raise DepthError(
            f"depth data has {buffer.size} bytes, expected step {step} x height {height}"
        )
    rows = buffer[: step * height].reshape(height, step)[:, :row_bytes]
    raw = np.ascontiguousarray(rows).view(dtype.newbyteorder(">" if big_endian else "<"))
    raw = raw.astype(dtype, copy=False)
    return decode_depth(raw, encoding, metres_per_unit)
