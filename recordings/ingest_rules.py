"""The pure decisions of a recording's ingest: where the PBX's file is in our monitor folder,
the key the compressed copy is stored under and its URL, when a failed one is tried again, and
what the stored row and its CRM message (`recording.stored`) say. `recordings.ingest` does the
waiting, the processing and the writes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path, PurePath
from typing import Any

from recordings.audio import AudioResult
from recordings.exceptions import UnsafePath
from recordings.models import Recording, RecordingStatus

TOPIC_STORED = "recording.stored"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


def resolve_in_monitor(reported: str | PurePath, monitor_dir: Path) -> Path:
    """The file in our monitor folder for a name the PBX reported; never a path outside it.

    The PBX's path (its spool directory) is usually not ours (a shared volume mounted
    elsewhere), so only the last component counts, and it must be a plain safe file name.
    """
    name = PurePath(str(reported)).name
    if not _SAFE_NAME.match(name) or not name.lower().endswith(".wav"):
        raise UnsafePath(f"refusing recording file name {str(reported)!r}")
    root = monitor_dir.resolve()
    candidate = root / name
    if candidate.is_symlink() or not candidate.resolve().is_relative_to(root):
        raise UnsafePath(f"{name} is a link out of the monitor folder")
    return candidate


def storage_key(rec: Recording, fmt: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", rec.attempt_id)[:80]
    return f"{rec.ended_at:%Y/%m/%d}/{rec.id}-{safe}.{fmt}"


def recording_url(template: str, recording_id: int) -> str:
    return template.format(id=recording_id)


def retry_after(now: datetime, tries: int, delays: Sequence[float]) -> tuple[datetime | None, str]:
    """When a recording whose processing failed `tries` times is tried again, and why."""
    if tries > len(delays):
        return None, f"failed {tries} times: no automatic retry left (the WAV stays in place)"
    when = now + timedelta(seconds=delays[tries - 1])
    return when, f"try {tries + 1} of {len(delays) + 1} at {when.isoformat()}"


def mark_stored(
    row: Recording, result: AudioResult, fmt: str, key: str, url: str, now: datetime
) -> dict[str, Any]:
    """Set the row's stored columns from the processing's result; the payload of its
    `recording.stored` message (the CRM's link to the copy)."""
    assert result.sha256 is not None
    row.status = RecordingStatus.STORED.value
    row.stored_at = now
    row.duration_seconds = result.duration_seconds
    row.speech_seconds = result.speech_seconds
    row.silence_ratio = result.silence_ratio
    row.waveform = result.waveform
    row.format = fmt
    row.storage_key = key
    row.size_bytes = result.size_bytes
    row.sha256 = result.sha256
    row.error = None
    return {
        "recording_id": row.id,
        "attempt_id": row.attempt_id,
        "lead_id": row.lead_id,
        "specialist_id": row.specialist_id,
        "outcome": row.outcome,
        "url": url,
        "checksum": f"sha256:{result.sha256}",
        "duration": result.duration_seconds,
        "format": fmt,
        "ended_at": row.ended_at.isoformat(),
        "stored_at": now.isoformat(),
    }
