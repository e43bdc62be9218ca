"""A one-slot mailbox between the image subscription and the tracking worker.

The subscription callback only stores the newest frame; a frame that arrives before the worker
took the previous one replaces it and is counted as dropped. So the worker always tracks the
most recent image and never works through a backlog of stale ones.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any


@dataclass
class SlotCounters:
    received: int = 0  # frames put into the slot
    taken: int = 0  # frames handed to the worker
    dropped: int = 0  # frames replaced before the worker took them


class LatestFrameSlot:
    """Thread-safe holder of the newest item; `take` blocks until one arrives or timeout."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._item: Any = None
        self._has_item = False
        self._closed = False
        self._counters = SlotCounters()

    def put(self, item: Any) -> bool:
        """Store `item`, replacing any untaken one. Returns True when one was dropped."""
        with self._condition:
            dropped = self._has_item
            self._item, self._has_item = item, True
            self._counters.received += 1
            self._counters.dropped += int(dropped)
            self._condition.notify()
            return dropped

    def take(self, timeout: float | None = None) -> Any | None:
        """The newest item (removed from the slot), or None on timeout or after `close`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._condition:
            while not self._has_item and not self._closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._condition.wait(remaining)
            if not self._has_item:
                return None
            item, self._item, self._has_item = self._item, None, False
            self._counters.taken += 1
            return item

    def clear(self) -> None:
        """Discard a waiting item without counting it as dropped (reset, deactivate)."""
        with self._condition:
            self._item, self._has_item = None, False

    def close(self) -> None:
        """Wake every waiting `take` (they return None); later puts still store."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    def reopen(self) -> None:
        with self._condition:
            self._closed = False

    @property
    def counters(self) -> SlotCounters:
        with self._condition:
            return SlotCounters(**vars(self._counters))
