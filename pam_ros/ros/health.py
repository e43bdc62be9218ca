"""What /diagnostics calls the node's current health: errors in a recent window, not ever.

The node's counters (rejected frames, tracking errors, semantic-engine errors) only grow. A
status that warns whenever a counter is non-zero latches the first error for the node's whole
life; `ErrorWindow` instead compares the counters' total with its value a window ago, so the
level is WARN while errors are recent and back to OK once they stop, with the last error and
its age kept for the report.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

# /diagnostics warns while an error was seen within this many diagnostics periods.
ERROR_WINDOW_PERIODS = 10
# A warning of one kind is repeated at most once per this many seconds (KindThrottle).
LOG_THROTTLE_S = 5.0


@dataclass(frozen=True)
class RecentErrors:
    count: int  # errors within the window
    last_error: str  # the newest error message ever seen ("" when none)
    last_error_age_s: float | None  # seconds since it was first seen (None when none)


class ErrorWindow:
    """Errors within the last `window_s` seconds, from a monotonically growing error total."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._samples: deque[tuple[float, int]] = deque()  # (monotonic time, total), oldest first
        self._last_total = 0
        self._last_error = ""
        self._last_error_at: float | None = None

    def update(self, now: float, total_errors: int, last_error: str) -> RecentErrors:
        """Record the counters at `now` (call once per report) and return the recent errors."""
        if total_errors > self._last_total or (last_error and last_error != self._last_error):
            self._last_error_at = now
        if last_error:
            self._last_error = last_error
        self._last_total = max(self._last_total, total_errors)
        self._samples.append((now, total_errors))
        # Keep the newest sample at or before the window's start as the baseline.
        while len(self._samples) > 1 and self._samples[1][0] <= now - self.window_s:
            self._samples.popleft()
        baseline = self._samples[0][1] if self._samples[0][0] <= now - self.window_s else 0
        age = None if self._last_error_at is None else now - self._last_error_at
        return RecentErrors(max(0, total_errors - baseline), self._last_error, age)


class KindThrottle:
    """Log throttling per kind of fault, not per call site.

    rclpy's `throttle_duration_sec` throttles one logging call site: an unsupported encoding
    logged at 10:00:00 would hide a zero-size frame at 10:00:02 (it would show only in
    /diagnostics). `allow(kind)` is True for the first message of each kind, then once every
    `period_s` per kind.
    """

    def __init__(self, period_s: float = LOG_THROTTLE_S, clock=None) -> None:
        import time

        self.period_s = period_s
        self._clock = clock or time.monotonic
        self._last: dict[str, float] = {}

    def allow(self, kind: str) -> bool:
        now = self._clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.period_s:
            return False
        self._last[kind] = now
        return True
