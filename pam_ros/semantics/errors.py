"""Errors raised by the semantic engine.

Every error a caller can provoke with a bad request derives from `SemanticsError` (a
ValueError), so the node can catch one type, log the message and keep serving: after an error
the engine is unchanged and usable. Checkpoint problems have their own types.
"""

from __future__ import annotations


class SemanticsError(ValueError):
    """Base class of every error the semantic engine raises for bad input or bad use."""


class UnknownKindError(SemanticsError):
    """A request kind that is not one of `KINDS`."""


class InvalidRequestError(SemanticsError):
    """A request field has an invalid value (language, history, token limit, feature count)."""


class InvalidFeaturesError(SemanticsError):
    """Region features of the wrong type, shape, dtype or with non-finite values."""


class NotEnoughFramesError(InvalidRequestError):
    """A video caption got fewer than 16 frames of features and did not allow short clips."""


class EngineReleasedError(SemanticsError):
    """The engine was used after `release()`."""


class CheckpointError(SemanticsError):
    """A PAM checkpoint folder is malformed: missing, unexpected or misshapen tensors, a bad
    config.json or index, or a missing tokenizer."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The PAM checkpoint is not on disk and could not be downloaded.

    The message names the path looked at and what to fetch.
    """
