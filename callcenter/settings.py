"""Settings: environment variables `CALLCENTER_*` (nested with `__`), then an optional TOML file.

The TOML file is named by `CALLCENTER_CONFIG` (or `callcenter --config FILE`). Environment
variables win over the file; the file wins over the defaults. See docs/configuration.md.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from callcenter.board.config import BoardSettings
from crm_sync.config import CrmSettings
from crm_sync.dialplan import TECHNOLOGY, CallerId, SoundName
from dialer import prompts
from recordings.config import RecordingSettings
from schedules.retry import DAILY_CALLS_PER_NUMBER


class AmiServer(BaseModel):
    """One Asterisk manager interface; each is owned by exactly one dialer process."""

    name: str = "pbx1"
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "dialer"
    secret: SecretStr = SecretStr("dialer")
    ping_interval: float = 10.0
    ping_timeout: float = 5.0
    channel_family: str = Field(default="pjsip", pattern="^(pjsip|local)$")
    # false: deliberately off (maintenance); the dialer leaves it alone and /readyz says "off"
    enabled: bool = True


class DialerSettings(BaseModel):
    """What the dialer puts into every Originate: checked here, so a bad value stops the
    service at start instead of reaching Asterisk's dialplan."""

    caller_id: CallerId = '"续保专员" <95500>'
    automatic_caller_id: CallerId = '"续保回访" <95500>'
    reminder_message: SoundName = prompts.RENEWAL_REMINDER
    # The most a campaign's abandon cap may be set to: the desk's jurisdiction's limit on
    # abandoned live answers over 30 days (dialer/predictive.py).
    legal_max_abandon: float = Field(default=0.03, ge=0.0, lt=1.0)


class ObservabilitySettings(BaseModel):
    """/metrics needs `Authorization: Bearer <metrics_token>`; without a token it is off.
    Logs: "json" lines, "text" for people, "auto" = text on a terminal, else JSON."""

    metrics_token: SecretStr | None = None
    log_format: Literal["auto", "json", "text"] = "auto"


class HttpSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8080


class MailSettings(BaseModel):
    """Branch e-mails. Without an SMTP host, messages are written as .eml files."""

    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    sender: str = "renewal-desk@localhost"
    outbox_dir: Path | None = None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CALLCENTER_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    data_dir: Path = Path("data")
    database_url: str | None = None
    timezone: str = "Asia/Shanghai"
    holidays_file: Path | None = None
    distribution_time: str = "08:30"
    result_deadline: str = "17:00"
    branch_mail_time: str = "17:30"
    # Calls one number may get per day, every campaign together (docs/dialer.md).
    daily_calls_per_number: int = Field(default=DAILY_CALLS_PER_NUMBER, ge=1)
    simulator: bool = True
    ami: list[AmiServer] = Field(default_factory=lambda: [AmiServer()])
    http: HttpSettings = Field(default_factory=HttpSettings)
    dialer: DialerSettings = Field(default_factory=DialerSettings)
    mail: MailSettings = Field(default_factory=MailSettings)
    recordings_dir: Path | None = None
    monitor_dir: Path | None = None
    recordings: RecordingSettings = Field(default_factory=RecordingSettings)
    crm: CrmSettings = Field(default_factory=CrmSettings)  # the CRM link (docs/crm.md)
    ops: ObservabilitySettings = Field(default_factory=ObservabilitySettings)  # docs/operations.md
    board: BoardSettings = Field(default_factory=BoardSettings)  # the wallboard (docs/board.md)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_file = os.environ.get("CALLCENTER_CONFIG")
        if toml_file:
            if not Path(toml_file).is_file():
                raise FileNotFoundError(
                    f"settings file {toml_file} (CALLCENTER_CONFIG) does not exist"
                )
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    @property
    def seat_technologies(self) -> list[str]:
        """The seat technologies the configured servers dial (PJSIP; Local in the lab)."""
        return sorted({TECHNOLOGY[s.channel_family] for s in self.ami})

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'callcenter.db').resolve()}"

    @property
    def effective_recordings_dir(self) -> Path:
        return self.recordings_dir or self.data_dir / "recordings"

    @property
    def effective_monitor_dir(self) -> Path:
        return self.monitor_dir or self.data_dir / "monitor"

    @property
    def effective_mail_outbox(self) -> Path:
        return self.mail.outbox_dir or self.data_dir / "mail-outbox"


def load_settings(**overrides: Any) -> Settings:
    return Settings(**overrides)
