"""The board's settings (`[board]` in the settings file, CALLCENTER_BOARD__*): alert
thresholds and how fast the live state moves. docs/board.md says what each does."""

from __future__ import annotations

from pydantic import BaseModel, Field


class BoardSettings(BaseModel):
    # Alerts
    pause_alert_minutes: float = Field(default=15.0, gt=0)  # a seat paused longer
    abandon_rate_cap: float = Field(default=0.03, gt=0, le=1)  # abandoned / answered, per day
    abandon_warn_fraction: float = Field(default=0.8, gt=0, le=1)  # warn from 80 % of the cap
    abandon_min_answered: int = Field(default=20, ge=1)  # no rate alert on fewer calls
    deadline_warn_minutes: float = Field(default=120.0, gt=0)  # before node 3's 17:00
    outbox_age_minutes: float = Field(default=10.0, gt=0)  # an undelivered CRM message
    # Live state
    coalesce_seconds: float = Field(default=0.02, ge=0)  # events gathered into one update
    # Writes of this process's share to `board_entries` at most this often (its own board has
    # every change at once; other processes' boards see them up to this much later).
    write_seconds: float = Field(default=0.1, ge=0)
    heartbeat_seconds: float = Field(default=5.0, gt=0)  # full re-check, process alive
    stale_after_seconds: float = Field(default=20.0, gt=0)  # a process silent this long
    poll_seconds: float = Field(default=0.25, gt=0)  # SQLite's poll (PostgreSQL: NOTIFY)
    stats_seconds: float = Field(default=5.0, gt=0)  # campaign figures and alerts
