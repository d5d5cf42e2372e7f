"""Log lines (callcenter.ops.logs): JSON in production with the call's attempt id, phone
numbers masked but for the last four digits, secrets and tokens never written."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from callcenter.ops.logs import collect_secrets, configure_logging, wants_json
from callcenter.settings import AmiServer, ObservabilitySettings, Settings
from common.logcontext import attempt_context
from crm_sync.config import CrmSettings

ATTEMPT = "att-0b6f2c1e-9a4d-4f7e-8c21-5d3e7a9b1c04"
OTHER = "att-11111111-2222-4333-8444-555555555555"
TOKEN = "cc_Ab3dEf7hIjKlMnOpQrStUvWxYz0123456789-_abcd"


@pytest.fixture
def lines() -> Iterator[tuple[io.StringIO, logging.Handler]]:
    stream, level = io.StringIO(), logging.getLogger().level
    handler = configure_logging(
        logging.DEBUG, "json", ["ami-s3cr3t-value", "whsec-0123456789"], stream=stream
    )
    yield stream, handler
    logging.getLogger().removeHandler(handler)
    logging.getLogger().setLevel(level)


def records(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_each_line_is_one_json_object_with_the_attempt_id_of_the_call_it_is_about(
    lines: tuple[io.StringIO, logging.Handler],
) -> None:
    stream, _ = lines
    log = logging.getLogger("dialer.engine")
    with attempt_context(ATTEMPT):
        log.warning("Originate fate unknown (%s); left for reconciliation", "timeout")
    log.info("attempt %s: Hangup of %s refused", OTHER, "PJSIP/8001-00000001")
    log.info("dialer engine started: servers %s", "pbx1")
    log.info("from extra", extra={"attempt_id": ATTEMPT})
    first, second, third, fourth = records(stream)
    assert first["attempt_id"] == ATTEMPT and first["level"] == "WARNING"
    assert first["logger"] == "dialer.engine" and "timeout" in str(first["message"])
    assert second["attempt_id"] == OTHER  # found in the message itself
    assert third["attempt_id"] is None
    assert fourth["attempt_id"] == ATTEMPT
    assert all("time" in r for r in records(stream))


def test_phone_numbers_are_masked_except_the_last_four_digits(
    lines: tuple[io.StringIO, logging.Handler],
) -> None:
    stream, _ = lines
    log = logging.getLogger("dialer.calls")
    log.info("dialling %s via PJSIP/%s@carrier", "+8613812345678", "013812345678")
    log.info("on %s at 2026-01-05 10:00:01, lead 12345, attempt %s", "Local/13912345678", ATTEMPT)
    first, second = (str(r["message"]) for r in records(stream))
    assert "13812345678" not in first and "*" * 9 + "5678" in first
    assert "PJSIP/********5678@carrier" in first
    assert "13912345678" not in second and "Local/*******5678" in second
    # dates, short ids and the attempt id's hex groups are left alone
    assert "2026-01-05 10:00:01" in second and "lead 12345" in second and ATTEMPT in second


def test_a_traceback_is_masked_too(lines: tuple[io.StringIO, logging.Handler]) -> None:
    stream, _ = lines
    try:
        raise ValueError("duplicate key (number)=(+8613812345678) secret ami-s3cr3t-value")
    except ValueError:
        logging.getLogger("x").exception("write failed")
    (rec,) = records(stream)
    text = json.dumps(rec)
    assert "ValueError" in text and "8613812345678" not in text and "ami-s3cr3t" not in text


def test_configured_secrets_and_api_tokens_never_reach_the_log(
    lines: tuple[io.StringIO, logging.Handler],
) -> None:
    stream, _ = lines
    log = logging.getLogger("crm_sync.relay")
    log.warning(
        "login with %s refused; webhook signed with %s", "ami-s3cr3t-value", "whsec-0123456789"
    )
    log.warning("Authorization: Bearer %s", TOKEN)
    text = stream.getvalue()
    assert "ami-s3cr3t-value" not in text and "whsec-0123456789" not in text
    assert TOKEN not in text and TOKEN[:11] in text  # the prefix that lists show stays


def test_every_secret_of_the_settings_is_collected() -> None:
    settings = Settings(
        ami=[
            AmiServer(secret=SecretStr("ami-secret-one")),
            AmiServer(name="b", secret=SecretStr("ami-secret-two")),
        ],
        crm=CrmSettings(webhook_secrets=[SecretStr("hook-secret")]),
        ops=ObservabilitySettings(metrics_token=SecretStr("scrape-token")),
    )
    assert {"ami-secret-one", "ami-secret-two", "hook-secret", "scrape-token"} <= set(
        collect_secrets(settings)
    )


def test_human_text_on_a_terminal_and_json_elsewhere() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert not wants_json("auto", Tty()) and wants_json("auto", io.StringIO())
    assert wants_json("json", Tty()) and not wants_json("text", io.StringIO())


def test_configuring_again_replaces_the_handler_instead_of_doubling_lines() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging(logging.INFO, "text", stream=first)
    handler = configure_logging(logging.INFO, "text", stream=second)
    try:
        logging.getLogger("y").info("once about %s", ATTEMPT)
        assert first.getvalue() == "" and second.getvalue().count("once about") == 1
    finally:
        logging.getLogger().removeHandler(handler)


def test_a_short_placeholder_secret_is_not_masked_in_ordinary_words() -> None:
    # AmiServer's default secret is "dialer": redacting it would eat "dialer engine started"
    assert "dialer" not in collect_secrets(Settings())
