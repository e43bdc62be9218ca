"""builtin_interfaces/Time ⇄ integer nanoseconds, through rclpy.time.Time (one place)."""

from __future__ import annotations

from builtin_interfaces.msg import Time as TimeMsg
from rclpy.time import Time


def stamp_to_ns(stamp) -> int:
    """A Time message (or any object with `sec` and `nanosec`, e.g. a deserialised bag
    message) → nanoseconds."""
    return Time(seconds=int(stamp.sec), nanoseconds=int(stamp.nanosec)).nanoseconds


def stamp_from_ns(stamp_ns: int) -> TimeMsg:
    return Time(nanoseconds=int(stamp_ns)).to_msg()
