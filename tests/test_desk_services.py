"""The desk pages' services on both databases: a person added with a seat and a login in one
step (or not at all), disable and enable, who is signed in where, the next recording of a
list, the campaign filter, the distribution's audit with names, and imports started from the
page with their progress, report and the workbook of rejected rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from callcenter.desk.imports import REASON_HEADER, DeskImports, rejected_rows_workbook
from callcenter.desk.services import DeskPages
from callcenter.desk.wiring import translations
from callcenter.pages.accounts import Accounts
from callcenter.pages.exceptions import PagesError
from callcenter.pages.models import WebLogin
from common.principal import Principal
from common.web import ApiError
from crm_sync.auth import ApiToken, issue_token
from crm_sync.exceptions import ImportInputError, SpecialistError
from crm_sync.models import Lead, Specialist
from dialer.services import DialerService
from recordings.config import RecordingSettings
from recordings.listing import RecordingFilter
from recordings.services import RecordingsService
from recordings.store import LocalStore
from schedules.clock import VirtualClock
from schedules.config import DeskCalendar
from schedules.services import DeskService
from schedules.timeline import TimelineRules
from tests.test_recordings_helpers import add_recording, make_lead

T0 = datetime(2026, 1, 5, 1, 30, tzinfo=UTC)  # Monday 09:30 in Shanghai
BOSS = Principal(1000, "主管", "supervisor")
ZH = translations()["zh_CN"].gettext


@dataclass
class FakeDialer:
    """The dialer's seat views, as DialerService.seats() gives them."""

    signed_in: list[dict[str, Any]] = field(default_factory=list)

    async def seats(self) -> list[dict[str, Any]]:
        return self.signed_in


def _desk(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path, dialer: FakeDialer | None = None
) -> DeskPages:
    clock = VirtualClock(T0)
    store = LocalStore(tmp_path / "store")
    return DeskPages(
        sessions,
        clock,
        "Asia/Shanghai",
        accounts=Accounts(sessions, clock),
        dialer=cast(DialerService, dialer or FakeDialer()),
        recordings=RecordingsService(sessions, store, clock, RecordingSettings()),
        distribution=DeskService(sessions, DeskCalendar(), clock),
        technologies=("PJSIP",),
    )


async def _add(desk: DeskPages, name: str, seat: str, username: str, password: str) -> Any:
    return await desk.add_person(
        BOSS, name=name, seat=seat, role="specialist", username=username, password=password
    )


async def _count(sessions: async_sessionmaker[AsyncSession], model: Any) -> int:
    async with sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def test_a_person_is_added_with_seat_and_login_or_not_at_all(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    desk = _desk(sessions, tmp_path)
    view = await _add(desk, "孙新人", "PJSIP/8301", "sunxin", "sun-xin-2026")
    signed = await desk.accounts.sign_in("sunxin", "sun-xin-2026", "127.0.0.1")
    assert signed.principal.user_id == view["id"]

    refusals: list[tuple[dict[str, str], type[Exception]]] = [
        ({"seat": "PJSIP/8302", "username": "sunxin", "password": "long-enough"}, SpecialistError),
        ({"seat": "PJSIP/8301", "username": "other", "password": "long-enough"}, SpecialistError),
        (
            {"seat": "PJSIP/9@trunk", "username": "other", "password": "long-enough"},
            SpecialistError,
        ),
        ({"seat": "PJSIP/8302", "username": "other", "password": "short"}, PagesError),
    ]
    for fields, error in refusals:
        with pytest.raises(error):
            await desk.add_person(BOSS, name="再来", role="specialist", **fields)
    assert await _count(sessions, Specialist) == 1
    assert await _count(sessions, WebLogin) == 1
    with pytest.raises(ApiError):
        await desk.add_person(
            Principal(1, "专员", "specialist"), name="x", seat="PJSIP/8303", role="specialist",
            username="x1", password="long-enough",
        )  # fmt: skip


async def test_disable_ends_sign_ins_and_tokens_and_enable_lets_the_login_in_again(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    desk = _desk(sessions, tmp_path)
    view = await _add(desk, "孙新人", "PJSIP/8301", "sunxin", "sun-xin-2026")
    async with sessions() as s:
        await issue_token(s, view["id"])
        await s.commit()
    state = await desk.set_state(BOSS, view["id"], active=False, on_leave=None)
    assert state == {"id": view["id"], "active": False, "on_leave": False}
    with pytest.raises(PagesError):
        await desk.accounts.sign_in("sunxin", "sun-xin-2026", "127.0.0.1")
    async with sessions() as s:
        token = await s.scalar(select(ApiToken).where(ApiToken.specialist_id == view["id"]))
        assert token is not None and token.revoked_at is not None
    await desk.set_state(BOSS, view["id"], active=True, on_leave=True)
    assert (await desk.accounts.sign_in("sunxin", "sun-xin-2026", "127.0.0.1")).session_id
    people = {p["id"]: p for p in await desk.people()}
    assert people[view["id"]]["on_leave"] is True


async def test_people_show_the_seat_signed_in_to_and_the_open_web_sessions(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    dialer = FakeDialer()
    desk = _desk(sessions, tmp_path, dialer)
    one = await _add(desk, "王芳", "PJSIP/8100", "wangfang", "wang-fang-2026")
    two = await _add(desk, "李娜", "PJSIP/8101", "lina", "li-na-2026!")
    await desk.accounts.sign_in("wangfang", "wang-fang-2026", "10.0.0.5")
    await desk.accounts.sign_in("wangfang", "wang-fang-2026", "10.0.0.6")
    dialer.signed_in.append(
        {"specialist_id": two["id"], "seat": "PJSIP/8101", "state": "paused", "since": None}
    )
    people = {p["id"]: p for p in await desk.people()}
    assert people[one["id"]]["web_sessions"] == 2
    assert people[one["id"]]["web_since"] == "01-05 09:30"
    assert people[one["id"]]["web_from"] == "10.0.0.6"  # the latest sign-in
    assert people[one["id"]]["seat_now"] is None
    assert people[two["id"]]["web_sessions"] == 0
    assert people[two["id"]]["seat_now"]["state"] == "paused"
    assert people[two["id"]]["username"] == "lina"


async def test_next_recording_follows_the_list_and_the_campaign_filter_uses_the_lead_kind(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    desk = _desk(sessions, tmp_path)
    store = desk.recordings.store
    assert isinstance(store, LocalStore)
    renewal = await make_lead(sessions, 1)
    lapsed = await make_lead(sessions, 2)
    async with sessions() as s:
        lead = await s.get(Lead, lapsed)
        assert lead is not None
        lead.kind = "lapsed"
        await s.commit()
    ids = [
        await add_recording(sessions, store, f"a{i}", ended_at=T0 - timedelta(minutes=i),
                            lead_id=lead_id)
        for i, lead_id in enumerate([renewal, lapsed, renewal])
    ]  # fmt: skip
    everything = RecordingFilter()
    assert await desk.next_recording(BOSS, everything, ids[0]) == ids[1]
    assert await desk.next_recording(BOSS, everything, ids[2]) is None
    only_renewal = RecordingFilter(campaign="renewal")
    page = await desk.recordings_page(BOSS, only_renewal)
    assert [r["id"] for r in page["items"]] == [ids[0], ids[2]]
    assert await desk.next_recording(BOSS, only_renewal, ids[0]) == ids[2]
    lapsed_page = await desk.recordings.list(BOSS, RecordingFilter(campaign="lapsed"))
    assert [r["id"] for r in lapsed_page["items"]] == [ids[1]]


async def test_the_audit_lists_past_runs_with_the_specialists_names(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    desk = _desk(sessions, tmp_path)
    async with sessions() as s:
        s.add_all(
            [Specialist(name="王芳", seat="PJSIP/8100"), Specialist(name="李娜", seat="PJSIP/8101")]
        )
        await s.commit()
    for n in range(3):
        lead = await make_lead(sessions, 10 + n)
        async with sessions() as s:
            row = await s.get(Lead, lead)
            assert row is not None
            row.status, row.due_on = "due", date(2026, 1, 5)
            await s.commit()
    preview = await desk.distribution.distribute(dry_run=True, seed=7)
    ran = await desk.distribution.distribute(seed=7)
    assert ran.distribution.specialists == preview.distribution.specialists
    audit = await desk.audit()
    assert len(audit) == 1 and audit[0]["seed"] == 7
    assert sorted((s["name"], s["new"]) for s in audit[0]["shares"]) == sorted(
        (s.name, s.new) for s in ran.distribution.specialists
    )


def _export(path: Path) -> Path:
    path.write_text(
        "保单号,投保人,投保人联系电话,终保日期,备注\n"
        "P1,陈一,13900000001,2026-02-01,好\n"
        "P2,,13900000002,2026-02-02,无投保人\n"
        "P3,陈三,13900000003,明年,日期错\n"
        "P4,陈四,13900000004,2026-02-04,好\n",
        encoding="utf-8",
    )
    return path


async def test_an_import_from_the_page_reports_progress_rows_and_the_rejects(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    imports = DeskImports(
        engine, VirtualClock(T0), tmp_path / "imports", "Asia/Shanghai", TimelineRules()
    )
    path = imports.new_path("../../续保 清单.csv")
    assert path.parent == tmp_path / "imports"
    _export(path)
    job = await imports.start(path, "续保 清单.csv", "renewal")
    assert job.total == 4
    await imports.wait()
    view = job.view(ZH)
    assert view["state"] == "done" and view["done"] == 4
    report = view["report"]
    assert (report["read"], report["imported"], report["rejected"]) == (4, 2, 2)
    assert [(e["row"], e["reason"]) for e in report["errors"]] == [
        (3, "缺少投保人"),
        (4, "不是日期"),
    ]
    workbook = tmp_path / "rejects.xlsx"
    workbook.write_bytes(rejected_rows_workbook(path, job.errors, ZH))
    ws = load_workbook(workbook).active
    assert ws is not None
    rows = [list(r) for r in ws.iter_rows(values_only=True)]
    assert rows == [
        ["保单号", "投保人", "投保人联系电话", "终保日期", "备注", REASON_HEADER],
        ["P2", None, "13900000002", "2026-02-02", "无投保人", "投保人：缺少投保人"],
        ["P3", "陈三", "13900000003", "明年", "日期错", "终保日期：不是日期"],
    ]
    bad = imports.new_path("notes.csv")
    bad.write_text("姓名\n张三\n", encoding="utf-8")
    with pytest.raises(ImportInputError):
        await imports.start(bad, "notes.csv", "renewal")
    await imports.close()


def test_every_desk_text_has_a_chinese_translation_and_english_ships_too() -> None:
    from babel.messages.pofile import read_po

    from callcenter.desk.wiring import LOCALE

    with (LOCALE / "messages.pot").open("rb") as f:
        template = {m.id for m in read_po(f) if m.id}
    for lang in ("zh_CN", "en"):
        with (LOCALE / lang / "LC_MESSAGES" / "messages.po").open("rb") as f:
            catalog = read_po(f, locale=lang)
        translated = {m.id for m in catalog if m.id and m.string}
        assert template <= translated, f"{lang} lacks {sorted(template - translated)}"
    assert ZH("Campaigns") == "外呼活动"


async def test_a_long_import_shows_its_progress_batch_by_batch(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    import asyncio

    imports = DeskImports(
        engine, VirtualClock(T0), tmp_path, "Asia/Shanghai", TimelineRules(), batch_size=100
    )
    path = imports.new_path("long.csv")
    lines = ["保单号,投保人,投保人联系电话,终保日期"]
    lines += [f"L{i:05d},客户{i},139{i:08d},2026-02-01" for i in range(500)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    job = await imports.start(path, "long.csv", "renewal")
    assert job.total == 500
    seen = set()
    while job.state == "running":  # what the page's poll sees, turn by turn
        seen.add(job.done)
        await asyncio.sleep(0)
    assert job.state == "done" and job.done == 500
    assert seen - {0, 500}, f"no progress between start and end: {seen}"
    assert all(n % 100 == 0 for n in seen)
