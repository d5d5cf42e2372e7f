"""The AMI user's read classes (issue 11, finding 1): the simulator drops the events
Asterisk would not send to a user without their class, the dialer notices what is missing
and names the fix, and the shipped manager.conf gives every answered call its recording."""

from __future__ import annotations

import asyncio
import configparser
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callcenter.web import create_app
from dialer import http as dialer_http
from dialer import originate
from dialer.ami import events as ev
from dialer.ami.connection import AmiConnection
from dialer.calls import CallResult, Mode, Outcome
from dialer.engine import AttemptEnded, DialerConfig
from dialer.readcheck import RECOMMENDED_READ, REQUIRED_CLASSES, ReadCheck
from dialer.services import DialerService
from dialer.simulator import PbxSimulator
from schedules.clock import VirtualClock
from tests.sim_calls import Planned, run_calls
from tests.test_dialer_support import disposing_hook, make_engine, seed
from tests.test_web import _user as make_user
from tests.virtual_time import Driver

ROOT = Path(__file__).resolve().parent.parent
MANAGER_CONF = ROOT / "docker" / "asterisk" / "manager.conf"
# The read line the example shipped before issue 11 (no `dialplan`).
OLD_READ = "call,cdr,user,dtmf,reporting,system"
MONDAY_1000 = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)  # 10:00 Shanghai


def manager_conf_read(path: Path = MANAGER_CONF, user: str = "dialer") -> str:
    """The `read =` line of `user` in a manager.conf (Asterisk's `;` comments stripped)."""
    conf = configparser.ConfigParser(
        strict=False, inline_comment_prefixes=(";",), comment_prefixes=(";",)
    )
    conf.read_string(path.read_text(encoding="utf-8"))
    return conf[user]["read"].strip()


async def _answered_calls(
    read: str, calls: int, window: int = 3
) -> tuple[list[CallResult], ReadCheck]:
    """`calls` seat-first calls to customers who answer (digit 0), one after another,
    against a simulator whose user `dialer` has these read classes."""
    clock = VirtualClock()
    sim = PbxSimulator(clock=clock, users={"dialer": "secret"}, read={"dialer": read})
    await sim.start("127.0.0.1", 0)
    check = ReadCheck("pbx1", "dialer", window=window)
    plan = originate.DialPlan()
    planned = [
        Planned(
            f"att-{i}",
            Mode.SEAT_FIRST,
            originate.seat_first(
                plan, attempt_id=f"att-{i}", seat="PJSIP/8001", number=f"1380000{i:03d}0", lead_id=i
            ),
        )
        for i in range(calls)
    ]
    try:
        results = await run_calls(sim, clock, planned, on_event=check.saw, on_results=check.ended)
    finally:
        await sim.stop()
    return results, check


async def test_without_dialplan_no_call_is_recorded_and_the_fix_is_named() -> None:
    results, check = await _answered_calls(OLD_READ, calls=3)
    assert [r.outcome for r in results] == [Outcome.ANSWERED] * 3
    assert [r.recording for r in results] == [None, None, None]
    (warning,) = check.warnings()
    assert "no call gets its recording" in warning
    assert "add 'dialplan' to the read line of the [dialer] user in manager.conf" in warning
    assert f"read = {RECOMMENDED_READ}" in warning


async def test_one_call_is_not_yet_a_pattern() -> None:
    _, check = await _answered_calls(OLD_READ, calls=1)
    assert check.warnings() == []


async def test_the_shipped_manager_conf_gives_every_answered_call_its_recording() -> None:
    read = manager_conf_read()
    results, check = await _answered_calls(read, calls=3)
    assert [r.outcome for r in results] == [Outcome.ANSWERED] * 3
    assert all(r.recording and r.recording.endswith(".wav") for r in results)
    assert check.warnings() == []


def test_the_shipped_manager_conf_reads_every_class_the_dialer_needs() -> None:
    read = {c.strip() for c in manager_conf_read().split(",")}
    assert set(REQUIRED_CLASSES) <= read
    assert read == set(RECOMMENDED_READ.split(","))
    filters = [
        line.split("=", 1)[1].strip()
        for line in MANAGER_CONF.read_text(encoding="utf-8").splitlines()
        if line.strip().startswith("eventfilter")
    ]
    for needed in ("VarSet", "Hangup", "UserEvent", "DialEnd", "Newchannel", "Cdr"):
        assert f"!Event: {needed}" not in filters


@pytest.mark.parametrize(
    ("read", "gets", "misses"),
    [
        ("all", {"VarSet", "Newexten", "Hangup", "Cdr"}, set()),
        (OLD_READ, {"Hangup", "Newchannel", "DialEnd", "Cdr"}, {"VarSet", "Newexten"}),
        ("dialplan", {"VarSet", "Newexten"}, {"Hangup", "Cdr", "OriginateResponse"}),
    ],
)
async def test_the_simulator_sends_only_the_classes_its_user_may_read(
    read: str, gets: set[str], misses: set[str]
) -> None:
    clock = VirtualClock()
    sim = PbxSimulator(clock=clock, users={"dialer": "secret"}, read={"dialer": read})
    await sim.start("127.0.0.1", 0)
    names: list[str] = []
    conn = AmiConnection(sim.host, sim.port, username="dialer", secret="secret", clock=clock)
    conn.subscribe(lambda e: names.append(e.name))
    await conn.connect()
    try:
        headers = originate.seat_first(
            originate.DialPlan(),
            attempt_id="a1",
            seat="PJSIP/8001",
            number="13800000010",
            lead_id=1,
        )
        assert (await conn.send("Originate", headers, action_id="a1")).ok
        await Driver(clock).run_for(10.0)
    finally:
        await conn.close()
        await sim.stop()
    assert gets <= set(names)
    assert not misses & set(names)
    for name in set(names) - {"FullyBooted"}:  # sent on login whatever the read classes
        assert ev.may_read(ev.read_classes(read), ev.event_class(name)), name


# --- the service: the engine watches its links, GET /api/health says what to change ---------


@pytest.mark.parametrize("config", ["before issue 11", "shipped"])
async def test_the_service_reports_the_missing_class_on_its_health_endpoint(
    config: str, sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    read = OLD_READ if config == "before issue 11" else manager_conf_read()
    clock = VirtualClock(MONDAY_1000)
    async with sessions() as s:
        (sid,), _ = await seed(s, specialists=1, leads=[("renewal", "0", 0)] * 3)
        _, token = await make_user(sessions, "supervisor-1", "supervisor")
    sim = PbxSimulator(
        clock=clock, users={"dialer": "secret"}, read={"dialer": read}, monitor_dir=tmp_path
    )
    await sim.start("127.0.0.1", 0)
    ended: list[AttemptEnded] = []
    ref: list[DialerService] = []
    dispose = disposing_hook(ref, lambda _lead: "renewed")

    async def hook(e: AttemptEnded) -> None:
        ended.append(e)
        await dispose(e)

    engine = make_engine(
        sessions,
        clock,
        [("pbx1", sim)],
        on_attempt_ended=hook,
        config=DialerConfig(wrap_up_seconds=5, idle_recheck_seconds=30, action_timeout=3600),
    )
    service = DialerService(engine)
    ref.append(service)
    app = create_app(sessions, [dialer_http.routes])
    app[dialer_http.DIALER] = service
    await engine.start()
    try:
        await asyncio.wait_for(engine.wait_connected(), 30)
        await service.start_campaign("renewal")
        await service.sign_in(sid, ready=True)
        await Driver(clock, sessions).until(lambda: len(ended) >= 3)
        async with TestClient(TestServer(app)) as client:
            assert (await client.get("/api/health")).status == 401
            resp = await client.get("/api/health", headers={"Authorization": f"Bearer {token}"})
            assert resp.status == 200
            health = await resp.json()
    finally:
        await engine.stop()
        await sim.stop()
    assert [e.outcome for e in ended] == ["answered"] * 3
    (link,) = health["ami"]
    assert link["server"] == "pbx1" and link["connected"]
    if config == "before issue 11":
        assert [e.recording for e in ended] == [None] * 3
        (warning,) = link["warnings"]
        assert f"read = {RECOMMENDED_READ}" in warning and "'dialplan'" in warning
        assert not health["ok"]
    else:
        assert health == {"ok": True, "ami": [{**link, "warnings": []}]}
        for e in ended:
            assert e.recording is not None
            assert (tmp_path / Path(e.recording).name).exists()


# --- the check's other signals (pure) ---------------------------------------------------------


def _result(attempt: str, mode: Mode, *, channels: tuple[str, ...], outcome: Outcome) -> CallResult:
    return CallResult(
        attempt_id=attempt, seat=None, number=None, mode=mode, outcome=outcome, cause=None,
        cause_txt=None, tech_cause=None, dial_status=None, originate_response=None,
        originate_reason=None, answered=outcome is Outcome.ANSWERED, bridged=False,
        ring_seconds=None, talk_seconds=None, key_pressed=None, digits="", recording=None,
        linkedid=None, uniqueids=(), channels=channels, started_at=None, ended_at=None,
    )  # fmt: skip


def _varset(variable: str, value: str = "x") -> ev.VarSet:
    return ev.VarSet(channel="PJSIP/carrier-00000001", uniqueid="1.1", linkedid="1.1",
                     variable=variable, value=value)  # fmt: skip


def test_callback_menus_without_user_events_name_the_user_class() -> None:
    check = ReadCheck("pbx1", "dialer", window=2)
    chans = ("PJSIP/carrier-00000001",)
    for i in range(2):
        check.saw(_varset("READSTATUS", "OK"))
        check.ended([_result(f"a{i}", Mode.APPLICATION, channels=chans, outcome=Outcome.ANSWERED)])
    (warning,) = check.warnings()
    assert "callback's key is never read" in warning and "add 'user'" in warning


def test_attempts_lost_without_any_call_event_name_the_call_class() -> None:
    check = ReadCheck("pbx1", "dialer", window=2)
    lost = [
        _result(f"a{i}", Mode.SEAT_FIRST, channels=(), outcome=Outcome.UNKNOWN) for i in range(2)
    ]
    check.ended(lost)
    assert any("add 'call'" in w for w in check.warnings())


def test_a_warning_goes_away_when_the_events_arrive() -> None:
    check = ReadCheck("pbx1", "dialer", window=1)
    check.ended(
        [_result("a", Mode.SEAT_FIRST, channels=("PJSIP/8001-0",), outcome=Outcome.ANSWERED)]
    )
    assert len(check.warnings()) == 1
    check.saw(_varset("MIXMONITOR_FILENAME"))
    assert check.warnings() == []
