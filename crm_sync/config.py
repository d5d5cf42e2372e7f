"""Settings of the CRM link (nested as `crm` in callcenter.settings): the outbox relay, its
sinks, the inbound changes and the spreadsheet export. See docs/crm.md."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr

ExportFormat = Literal["xlsx", "csv"]
XLSX: ExportFormat = "xlsx"


class CrmSettings(BaseModel):
    """`CALLCENTER_CRM__WEBHOOK_URL=https://crm.example/hook`,
    `CALLCENTER_CRM__WEBHOOK_SECRETS='["s3cret-new", "s3cret-old"]'`, `[crm] retention_days = 7`."""

    # The HTTP webhook sink. No URL: no sink, messages are marked delivered to "none".
    webhook_url: str | None = None
    # Every active secret signs each request (one `v1=` each): add the new secret, let the
    # receiver learn it, then drop the old one.
    webhook_secrets: list[SecretStr] = Field(default_factory=list)
    webhook_timeout: float = Field(default=10.0, gt=0)
    # Secrets the CRM signs inbound changes with (same scheme); empty: the endpoint refuses all.
    inbound_secrets: list[SecretStr] = Field(default_factory=list)
    # An inbound signature older (or newer) than this is a replay and refused.
    inbound_tolerance: float = Field(default=300.0, gt=0)

    # The relay.
    relay_batch: int = Field(default=500, ge=1)  # messages claimed per round
    relay_key_batch: int = Field(default=20, ge=1)  # of one key per round, in order
    relay_concurrency: int = Field(default=32, ge=1)  # keys delivered at once
    relay_lease: float = Field(default=60.0, gt=0)  # seconds; a crashed relay's keys free then
    relay_workers: int = Field(default=2, ge=1)  # rounds at once (PostgreSQL; SQLite: 1)
    relay_poll: float = Field(default=0.5, gt=0)  # SQLite's poll; PostgreSQL is woken by NOTIFY
    retry_base: float = Field(default=1.0, gt=0)  # first backoff, doubled each try
    retry_max: float = Field(default=900.0, gt=0)  # backoff ceiling (Retry-After may ask more)
    retention_days: float = Field(default=7.0, ge=0)  # delivered messages are purged after
    alarm_age: float = Field(default=600.0, gt=0)  # oldest undelivered older: an error in the log
    alarm_interval: float = Field(default=60.0, gt=0)  # how often the alarm (and purge) look

    # The spreadsheet export (a CRM that only imports files).
    export_dir: Path | None = None  # None: data_dir/crm-export
    # "18:00": daily, after the day's calls (local time); None: on demand only.
    export_time: str | None = Field(default=None, pattern=r"^\d{2}:\d{2}$")
    export_formats: list[ExportFormat] = Field(default_factory=lambda: [XLSX])
    export_csv_encoding: Literal["gb18030", "utf-8"] = "gb18030"
    # Also hand each exported file to `webhook_url` as a signed file upload (docs/crm.md).
    export_upload: bool = False
