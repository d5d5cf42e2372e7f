"""Errors of the recordings package."""

from __future__ import annotations

from common.errors import DomainError


class RecordingError(DomainError):
    """Base class."""


class UnsafePath(RecordingError):
    """A reported file name would leave the monitor folder."""


class CorruptAudio(RecordingError):
    """The WAV cannot be read as the PCM file MixMonitor writes (truncated, garbage, …)."""


class StoreError(RecordingError):
    """The store could not write, read or verify an object."""

    status = 503


class ChecksumMismatch(StoreError):
    """An object's content no longer matches its recorded sha256."""
