"""`callcenter specialists …` in-process on both databases."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter.cli import main
from crm_sync.models import Branch, Specialist


@pytest.fixture(autouse=True)
def cli_env(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLCENTER_DATABASE_URL", db_url)
    monkeypatch.setenv("CALLCENTER_DATA_DIR", str(tmp_path / "data"))


async def cli(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


async def test_add_list_leave_return_and_deactivate(
    engine: AsyncEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    async with engine.begin() as conn:
        await conn.execute(Branch.__table__.insert().values(code="1301", name="石家庄分公司"))
    assert (
        await cli(
            "specialists", "add", "--name", "陈丽", "--seat", "PJSIP/8001", "--branch", "1301"
        )
        == 0
    )
    assert await cli("specialists", "add", "--name", "王强", "--seat", "PJSIP/8002", "--json") == 0
    capsys.readouterr()
    assert await cli("specialists", "leave", "PJSIP/8002") == 0
    assert await cli("specialists", "deactivate", "PJSIP/8001") == 0
    assert "inactive" in capsys.readouterr().out
    assert await cli("specialists", "list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(s["name"], s["seat"], s["branch"], s["active"], s["on_leave"]) for s in listed] == [
        ("陈丽", "PJSIP/8001", "1301", False, False),
        ("王强", "PJSIP/8002", None, True, True),
    ]
    assert await cli("specialists", "return", str(listed[1]["id"])) == 0
    assert "active" in capsys.readouterr().out
    assert await cli("specialists", "list", "--active", "--json") == 0
    active = json.loads(capsys.readouterr().out)
    assert [(s["name"], s["on_leave"]) for s in active] == [("王强", False)]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["add", "--name", "李娜", "--seat", "PJSIP/8001"], "already belongs"),
        (["add", "--name", "李娜", "--seat", "8003"], "a seat is one device such as PJSIP/8001"),
        # What reaches Dial(): one endpoint of the configured technology, nothing more.
        (["add", "--name", "李娜", "--seat", "PJSIP/8003&PJSIP/8004"], "no &"),
        (["add", "--name", "李娜", "--seat", "PJSIP/8003,30,tT"], "no &"),
        (["add", "--name", "李娜", "--seat", "PJSIP/13800000000@carrier"], "no &, @ of a trunk"),
        (["add", "--name", "李娜", "--seat", "SIP/8003"], "a seat is one device"),
        (["add", "--name", "李娜", "--seat", "Local/8003@seats"], "seats here are PJSIP"),
        (
            ["add", "--name", "李娜", "--seat", "PJSIP/8003", "--branch", "9999"],
            "no branch with code",
        ),
        (["deactivate", "PJSIP/9999"], "no specialist with seat PJSIP/9999"),
        (["leave", "424242"], "no specialist with id 424242"),
    ],
)
async def test_bad_specialist_commands_exit_2_and_change_nothing(
    engine: AsyncEngine, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert await cli("specialists", "add", "--name", "陈丽", "--seat", "PJSIP/8001") == 0
    assert await cli("specialists", *argv) == 2
    assert message in capsys.readouterr().err
    async with engine.connect() as conn:
        rows = (
            await conn.execute(select(Specialist.name, Specialist.active, Specialist.on_leave))
        ).all()
    assert [tuple(r) for r in rows] == [("陈丽", True, False)]


async def test_a_supervisor_is_added_from_the_command_line_and_gets_a_token(
    engine: AsyncEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["specialists", "add", "--name", "主管", "--seat", "PJSIP/8999", "--role", "supervisor"]
    assert await cli(*argv) == 0
    assert "added supervisor" in capsys.readouterr().out
    async with engine.connect() as conn:
        role = await conn.scalar(select(Specialist.role).where(Specialist.seat == "PJSIP/8999"))
    assert role == "supervisor"
    assert await cli("tokens", "create", "PJSIP/8999") == 0
    assert "cc_" in capsys.readouterr().out
