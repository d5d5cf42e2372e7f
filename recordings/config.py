"""Settings of the recordings package (nested as `recordings` in callcenter.settings)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

DEFAULT_RUBRIC = ("greeting", "accuracy", "compliance", "outcome_handled")


class RecordingSettings(BaseModel):
    """`CALLCENTER_RECORDINGS__FORMAT=ogg`, `[recordings] retention_days = 730`, …"""

    # Compressed format: mp3 (libmp3lame) or ogg (Opus). 8 kHz mono speech needs little.
    format: Literal["mp3", "ogg"] = "mp3"
    bitrate: str = "24k"
    # Worker pool: threads by default (the heavy lifting is the ffmpeg child process, which
    # does not hold the GIL); "process" isolates the Python-side analysis as well.
    executor: Literal["thread", "process"] = "thread"
    workers: int = Field(default=0, ge=0, description="0 = number of CPUs")
    # A file is complete when its size and mtime stay unchanged over `stable_checks`
    # consecutive looks `stable_interval` seconds apart (there is no MixMonitorStop event).
    stable_checks: int = Field(default=3, ge=1)
    stable_interval: float = Field(default=0.5, gt=0)
    # How long to wait for a reported file to appear before the recording is marked missing.
    appear_timeout: float = Field(default=60.0, ge=0)
    silence_threshold_dbfs: float = -45.0
    silence_window_ms: int = Field(default=50, ge=10)
    waveform_points: int = Field(default=200, ge=10, le=5000)
    # Outcomes (the dialer's words) that mean "the customer talked": such a call must have audio.
    answered_outcomes: list[str] = Field(
        default_factory=lambda: ["answered", "answered_hung_up_early"]
    )
    # A transcode or store that failed (ffmpeg killed, disk full, the object store down) is
    # tried again after each of these delays in seconds; the WAV waits in the monitor folder.
    # Empty: never retried automatically.
    retry_delays: list[float] = Field(default_factory=lambda: [60.0, 600.0, 3600.0])
    # How often the worker looks for retries that are due.
    retry_poll: float = Field(default=30.0, gt=0)
    retention_days: int = Field(default=365, ge=1)
    # When the integrity check and retention run each day (local time of settings.timezone).
    daily_at: str = Field(default="02:30", pattern=r"^\d{2}:\d{2}$")
    rubric: list[str] = Field(default_factory=lambda: list(DEFAULT_RUBRIC))
    score_max: int = Field(default=5, ge=1)
    # URL the CRM opens; {id} is the recording id.
    url_template: str = "/api/recordings/{id}/audio"
    store: Literal["local", "s3"] = "local"
    s3_bucket: str | None = None
    s3_prefix: str = "recordings/"
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
