"""Log output: JSON lines in production, text for people (docs/operations.md "Logs").

Every record passes one filter on the handler, whatever logger wrote it:
* the attempt id of the call it is about (`attempt_id`): from `extra=`, else the first
  attempt id written in the message (the dialer's lines say "attempt att-…: …"), else the
  context (`common.logcontext`, set while the dialer sends a call);
* phone numbers masked but for the last four digits, in the message and any traceback;
* the configured secrets and API tokens replaced by `[redacted]`.
The filter rewrites the record before any formatter sees it, so no handler added later
through this module can print what it removed.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from typing import Any, TextIO

from pydantic import BaseModel, SecretStr
from pythonjsonlogger.json import JsonFormatter

from common.logcontext import ATTEMPT_ID

ATTEMPT_RE = re.compile(r"\batt-[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}\b")
# 7 to 15 digits, an optional +, not glued to a word, a dash or a dot: an E.164 number
# (+8613812345678), a national one (013812345678) or a channel's (PJSIP/13812345678@carrier).
# Dates (2026-01-05), times and the hex groups of attempt ids are not touched.
PHONE_RE = re.compile(r"(?<![\w.\-+])\+?\d{7,15}(?![\w.\-])")
# An API token (crm_sync.auth: "cc_" + 43 URL-safe characters); its 11-character prefix,
# which lists show, is no secret and stays readable.
TOKEN_RE = re.compile(r"\b(cc_[A-Za-z0-9_\-]{8})[A-Za-z0-9_\-]{20,}")
REDACTED = "[redacted]"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_HANDLER_MARK = "_callcenter_handler"


def mask_phone(match: re.Match[str]) -> str:
    number = match.group(0)
    digits = number.lstrip("+")
    return "*" * (len(digits) - 4) + digits[-4:]


def collect_secrets(settings: BaseModel) -> list[str]:
    """Every SecretStr value in the settings, however deep (AMI secrets, webhook secrets,
    the SMTP password, the metrics token …)."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, SecretStr):
            secret = value.get_secret_value()
            if len(secret) >= 8:  # shorter would mask ordinary words ("dialer")
                found.append(secret)
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)

    walk(settings)
    return sorted(set(found), key=len, reverse=True)


class Scrub(logging.Filter):
    """Adds `attempt_id`, masks phone numbers, removes secrets (see the module's text)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]
        self._tracebacks = logging.Formatter()

    def clean(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        text = TOKEN_RE.sub(lambda m: m.group(1) + "…" + REDACTED, text)
        return PHONE_RE.sub(mask_phone, text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if getattr(record, "attempt_id", None) is None:
            # The id the line names wins over the context's: a task started while one call
            # was handled (a wrap-up timer) inherits that call's context.
            found = ATTEMPT_RE.search(message)
            record.attempt_id = found.group(0) if found else ATTEMPT_ID.get()
        record.msg, record.args = self.clean(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._tracebacks.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.clean(record.exc_text)
            # Formatters (the JSON one among them) would format the exception again, raw.
            record.exc_info = None
        if record.stack_info:
            record.stack_info = self.clean(record.stack_info)
        return True


class TextFormatter(logging.Formatter):
    """The classic line, with the call's attempt id in brackets when the message lacks it."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        attempt = getattr(record, "attempt_id", None)
        if attempt and attempt not in record.getMessage():
            line += f" [{attempt}]"
        return line


def json_formatter() -> logging.Formatter:
    # "time": ISO 8601 in UTC with its offset, what log collectors parse without a pattern
    return JsonFormatter(
        "%(levelname)s %(name)s %(message)s %(attempt_id)s",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",
        json_ensure_ascii=False,
    )


def wants_json(log_format: str, stream: TextIO) -> bool:
    if log_format == "auto":
        return not (hasattr(stream, "isatty") and stream.isatty())
    return log_format == "json"


def configure_logging(
    level: int = logging.WARNING,
    log_format: str = "auto",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> logging.Handler:
    """Replace this module's handler on the root logger (calling it again, e.g. once the
    settings and their secrets are known, does not add a second one). Returns the handler."""
    out = stream or sys.stderr
    handler = logging.StreamHandler(out)
    setattr(handler, _HANDLER_MARK, True)
    handler.addFilter(Scrub(secrets))
    handler.setFormatter(
        json_formatter() if wants_json(log_format, out) else TextFormatter(TEXT_FORMAT)
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler


def configure_for(settings: BaseModel, log_format: str) -> logging.Handler:
    """Once the settings are loaded: their log format, and their secrets kept out of the
    log (the level stays what the command line chose)."""
    return configure_logging(logging.getLogger().level, log_format, collect_secrets(settings))
