from __future__ import annotations

import pytest

from callcenter.cli import main


def test_calendar_days_shows_the_holiday_monday_and_the_makeup_saturday(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CALLCENTER_HOLIDAYS_FILE", raising=False)
    assert main(["calendar", "days", "--from", "2026-04-06", "--days", "1"]) == 0
    assert main(["calendar", "days", "--from", "2026-05-09", "--days", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("2026-04-06 Mon  closed (清明节")
    assert out[1].startswith("2026-05-09 Sat  calling day (调休上班")


def test_calendar_rejects_a_bad_date_with_exit_code_2() -> None:
    assert main(["calendar", "days", "--from", "2026-02-30"]) == 2
