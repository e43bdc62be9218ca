"""Errors raised by the streaming tracker.

Every error a caller can provoke with bad input derives from `TrackerError` (a ValueError),
so a node can catch one type, log the message and keep running: after an error the tracker
is unchanged and usable.
"""

from __future__ import annotations


class TrackerError(ValueError):
    """Base class of every error the tracker raises for bad input or bad use."""


class InvalidFrameError(TrackerError):
    """The frame is empty, not uint8, or not an (H, W, 3) RGB image."""


class InvalidPromptError(TrackerError):
    """The points, labels or box of a prompt are malformed or lie outside the frame."""


class NoFrameError(TrackerError):
    """An object was added before any frame was tracked (there is nothing to prompt on)."""


class UnknownObjectError(TrackerError, KeyError):
    """An object id that the tracker does not hold."""

    def __str__(self) -> str:  # KeyError would quote the message; keep it readable
        return str(self.args[0]) if self.args else ""


class DuplicateObjectError(TrackerError):
    """`add_object` was given an object id that is already tracked."""


class TrackerConfigError(TrackerError):
    """A `TrackerConfig` field has an invalid value."""


class DiscoveryConfigError(TrackerError):
    """A `DiscoveryConfig` field has an invalid value."""


class CheckpointNotFoundError(FileNotFoundError):
    """The SAM 2.1 checkpoint is not on disk and could not be downloaded.

    The message names the file, the path looked at and the official URL to fetch it from.
    """
