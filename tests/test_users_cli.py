"""`callcenter users`: a supervisor manages web logins from the command line."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callcenter.cli import main
from callcenter.pages.accounts import Accounts
from crm_sync.models import Specialist
from schedules.clock import VirtualClock


def _cli(monkeypatch: pytest.MonkeyPatch, args: list[str], stdin: str = "") -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(args)


async def test_users_add_passwd_disable_and_list_from_the_command_line(
    db_url: str,
    sessions: async_sessionmaker[AsyncSession],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with sessions() as s:
        s.add(Specialist(name="王芳", seat="PJSIP/8001"))
        await s.commit()
    monkeypatch.setenv("CALLCENTER_DATABASE_URL", db_url)
    monkeypatch.setenv("CALLCENTER_DATA_DIR", str(tmp_path / "data"))
    accounts = Accounts(sessions, VirtualClock())

    add = ["users", "add", "PJSIP/8001", "wangfang", "--password-stdin"]
    assert await _to_thread(monkeypatch, add, "first-password\n") == 0
    assert json.loads(capsys.readouterr().out)["username"] == "wangfang"
    assert (await accounts.sign_in("wangfang", "first-password", "test")).principal.name == "王芳"

    assert await _to_thread(monkeypatch, add, "another-one\n") == 2
    assert "is taken" in capsys.readouterr().err
    short = ["users", "passwd", "wangfang", "--password-stdin"]
    assert await _to_thread(monkeypatch, short, "short\n") == 2
    assert "at least 8 characters" in capsys.readouterr().err

    assert await _to_thread(monkeypatch, short, "second-password\n") == 0
    assert (await accounts.sign_in("wangfang", "second-password", "test")).principal
    assert await _to_thread(monkeypatch, ["users", "disable", "wangfang"]) == 0
    capsys.readouterr()
    assert await _to_thread(monkeypatch, ["users", "list"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["username"] == "wangfang" and listed[0]["disabled"] is True


async def _to_thread(monkeypatch: pytest.MonkeyPatch, args: list[str], stdin: str = "") -> int:
    # The command runs its own event loop (asyncio.run), so it runs beside the test's.
    import asyncio

    return await asyncio.to_thread(_cli, monkeypatch, args, stdin)
