"""The newcomer's demo (`make run`): a whole calling day on the embedded default, in minutes.

It claims its data folder (`callcenter.demo_folder`: marked, locked, reset only in what a
demo wrote), imports generated demo lists, adds specialists and a supervisor with tokens,
runs the morning job (timeline + random equal allocation), starts the built-in PBX simulator
and the real service on one accelerated clock, signs every specialist in as ready, and plays
the specialists' part (a result for every answered call). A progress line shows calls,
answered, renewed, retries and inaccurate numbers; the lines before and after the day say
what each number means. After the day the clock slows to real time, the API stays up, and
the demo prints its address, tokens and command lines that work on its data.

The demo reads the same settings as every command (`CALLCENTER_*`, the settings file);
`--data-dir` and `--port` win over them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shlex
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from callcenter import demo_folder
from callcenter.bootstrap import bootstrap, build_app
from callcenter.database import create_engine, session_factory, upgrade
from callcenter.demo_folder import DemoRefused
from callcenter.jobs import parse_time
from callcenter.pages.accounts import Accounts
from callcenter.service import Service, wire
from callcenter.settings import Settings, load_settings
from callcenter.web import make_runner
from common.clock import ScaledClock, SystemClock
from crm_sync.auth import issue_token
from crm_sync.demo import write_demo_file
from crm_sync.import_report import ImportSummary
from crm_sync.models import Accuracy, CampaignKind, Lead, LeadKind, Phone, Specialist
from crm_sync.services import import_file
from crm_sync.specialists import add_specialist
from dialer.engine import DialerConfig
from dialer.exceptions import DialerError
from dialer.models import CallAttempt, SeatState
from dialer.seats import Seat
from dialer.simulator import PbxSimulator
from schedules.config import DeskCalendar
from schedules.distribution_run import DistributionReport, run_distribution
from schedules.timeline_run import TimelineReport, run_timeline

# The demo's web sign-in: every demo login has this password (a demo, not a deployment).
DEMO_PASSWORD = "renewal-demo"
PERSON_LOGIN = "user8001"  # the seat left to a person in the browser (PJSIP/8001)

# What the simulated specialists make of an answered call (weights).
CONVERSATIONS = (
    ("renewed", 30),
    ("interested", 20),
    ("callback", 20),
    ("declined", 10),
    ("renewed_elsewhere", 10),
    ("vehicle_sold", 5),
    ("other", 5),
)
ANSWERED = ("answered", "answered_hung_up_early")
SPECIALIST_NAMES = "王芳 李娜 张伟 刘洋 陈静 杨帆 赵磊 黄敏 周婷 吴斌 徐丽 孙浩 马超 朱琳 胡军 郭佳 何丹 高峰 林雪 罗勇".split()


@dataclass
class DemoOptions:
    data_dir: Path | None = None  # default: CALLCENTER_DATA_DIR if set, else data/demo
    policies: int = 2000
    specialists: int = 20
    speed: float = 150.0
    seed: int = 7
    host: str | None = None  # default: the http settings (127.0.0.1)
    port: int | None = None  # default: the http settings (8080)
    keep_running: bool = True


DEFAULT_DEMO_DIR = Path("data/demo")


def demo_settings(opts: DemoOptions) -> Settings:
    """The same settings as every other command (`CALLCENTER_*`, the settings file), with the
    demo's folder and address on top: options first, then the settings, then the defaults.
    The demo always dials the built-in PBX simulator."""
    base = load_settings()
    if opts.data_dir is not None:
        data_dir = opts.data_dir
    elif "data_dir" in base.model_fields_set:
        data_dir = base.data_dir
    else:
        data_dir = DEFAULT_DEMO_DIR
    http = base.http.model_copy(
        update={
            "host": opts.host or base.http.host,
            "port": opts.port if opts.port is not None else base.http.port,
        }
    )
    crm = base.crm
    if "alarm_age" not in crm.model_fields_set:
        # The demo's clock runs `speed` times faster: its ten minutes are four real seconds,
        # a relay's ordinary lag on a busy laptop, and the log filled with alarms. In the
        # demo the alarm means a real minute without delivery.
        crm = crm.model_copy(update={"alarm_age": max(crm.alarm_age, 60.0 * opts.speed)})
    return base.model_copy(
        update={
            "data_dir": data_dir.expanduser().absolute(),
            "http": http,
            "simulator": True,
            "crm": crm,
        }
    )


def check_port_free(host: str, port: int) -> None:
    """Refuse early (before the folder is reset) when another program holds the port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            raise DemoRefused(
                f"port {port} on {host} is taken (another service or demo?): choose a free "
                f"one, e.g. make run PORT={port + 101} (callcenter demo --port …)"
            ) from None


def cli_prefix(settings: Settings) -> str:
    """How to run the CLI on the demo's data: the demo's folder as `CALLCENTER_DATA_DIR`; any
    other `CALLCENTER_*` setting or settings file the demo ran with is in the same shell."""
    exe = Path(sys.executable).with_name("callcenter")
    with contextlib.suppress(ValueError):
        exe = exe.relative_to(Path.cwd())
    config = os.environ.get("CALLCENTER_CONFIG")
    return " ".join(
        [f"CALLCENTER_DATA_DIR={shlex.quote(str(settings.data_dir))}", shlex.quote(str(exe))]
        + ([f"--config {shlex.quote(config)}"] if config else [])
    )


def cli_commands(settings: Settings, day: date) -> list[str]:
    """The commands printed after the demo; each works on the demo's database as it is."""
    cli = cli_prefix(settings)
    return [
        f"{cli} specialists list",
        f"{cli} distribute --date {day.isoformat()} --dry-run",
        f"{cli} recordings check",
        f"{cli} tokens list",
    ]


def first_calling_morning(desk: DeskCalendar, now: datetime) -> datetime:
    """09:20 local on the next calling day (today if it is one and still before 09:20)."""
    tz = ZoneInfo(desk.tz)
    local = now.astimezone(tz)
    day = local.date() if local.time() < time(9, 20) else local.date() + timedelta(days=1)
    while not desk.is_calling_day(day):
        day += timedelta(days=1)
    return datetime.combine(day, time(9, 20), tzinfo=tz)


def say(text: str) -> None:
    print(text, flush=True)


@dataclass
class Prepared:
    """What the demo set up before the day: imports, tokens (name -> token)."""

    renewals: ImportSummary
    callbacks: ImportSummary
    tokens: dict[str, str]


async def _refuse_a_used_database(engine: AsyncEngine, url: str) -> None:
    """A database named by CALLCENTER_DATABASE_URL is not the demo's to reset: the demo only
    fills one that holds no specialists and no leads."""
    async with engine.connect() as conn:
        used = (await conn.scalar(select(func.count()).select_from(Specialist))) or 0
        used += (await conn.scalar(select(func.count()).select_from(Lead))) or 0
    if used:
        shown = make_url(url).render_as_string(hide_password=True)
        raise DemoRefused(
            f"the database {shown} (CALLCENTER_DATABASE_URL) already holds specialists or "
            "leads; the demo fills only an empty one. Unset CALLCENTER_DATABASE_URL to use the "
            "demo folder's own SQLite file, or name an empty database."
        )


async def prepare_database(opts: DemoOptions, settings: Settings, day: date) -> Prepared:
    """Schema, imported demo lists, specialists and a supervisor with tokens."""
    url = settings.effective_database_url
    await upgrade(url)
    engine = create_engine(url)
    try:
        if settings.database_url:
            await _refuse_a_used_database(engine, url)
        export = settings.data_dir / "demo-export.csv"
        write_demo_file(export, opts.policies, seed=opts.seed, today=day)
        now = datetime.now(UTC)
        rules = DeskCalendar.from_settings(settings).rules
        summary = await import_file(
            engine, export, LeadKind.RENEWAL, now=now, today=day, rules=rules
        )
        callback_export = settings.data_dir / "demo-callbacks.csv"
        write_demo_file(
            callback_export, max(opts.policies // 10, 10), seed=opts.seed + 1, today=day
        )
        cb = await import_file(
            engine, callback_export, LeadKind.CALLBACK, now=now, today=day, rules=rules
        )
        tokens: dict[str, str] = {}
        async with session_factory(engine)() as s:
            for i in range(opts.specialists):
                name = SPECIALIST_NAMES[i % len(SPECIALIST_NAMES)] + ("" if i < 20 else str(i))
                sp = await add_specialist(s, name, f"PJSIP/{8001 + i}")
                tokens[name] = await issue_token(s, sp.id, "demo")
            boss = Specialist(name="主管 supervisor", seat="PJSIP/8999", role="supervisor")
            s.add(boss)
            await s.flush()
            tokens["supervisor"] = await issue_token(s, boss.id, "demo")
            await s.commit()
            logins = [(sp.id, sp.seat) for sp in await s.scalars(select(Specialist))]
        accounts = Accounts(session_factory(engine), SystemClock())
        for sid, seat in logins:
            username = "supervisor" if seat == "PJSIP/8999" else "user" + seat.split("/")[-1]
            await accounts.add(sid, username, DEMO_PASSWORD)
        return Prepared(summary, cb, tokens)
    finally:
        await engine.dispose()


@dataclass(frozen=True)
class DayCounts:
    calls: int = 0
    answered: int = 0
    renewed: int = 0
    retry_calls: int = 0  # calls to a lead that had been called before
    retries_booked: int = 0  # open leads with a next call booked
    inaccurate: int = 0
    in_flight: int = 0


async def day_counts(sessions: async_sessionmaker[AsyncSession], in_flight: int = 0) -> DayCounts:
    async with sessions() as s:
        # One statement, so that an attempt written between two counts cannot make the
        # retries (calls less leads called) negative.
        calls, leads_called = (
            await s.execute(
                select(func.count(), func.count(func.distinct(CallAttempt.lead_id))).select_from(
                    CallAttempt
                )
            )
        ).one()
        answered = (
            await s.scalar(select(func.count()).where(CallAttempt.outcome.in_(ANSWERED))) or 0
        )
        renewed = await s.scalar(select(func.count()).where(Lead.contact_result == "renewed")) or 0
        booked = (
            await s.scalar(
                select(func.count()).where(
                    Lead.next_attempt_at.is_not(None), Lead.status != "closed"
                )
            )
            or 0
        )
        inaccurate = (
            await s.scalar(select(func.count()).where(Phone.accuracy == Accuracy.INACCURATE.value))
            or 0
        )
    return DayCounts(calls, answered, renewed, calls - leads_called, booked, inaccurate, in_flight)


def progress_line(local: str, c: DayCounts) -> str:
    return (
        f"\r{local}  calls {c.calls:5}  answered {c.answered:5}  renewed {c.renewed:4}"
        f"  retries {c.retry_calls:4}  inaccurate {c.inaccurate:3}  in flight {c.in_flight:3}"
    )


def preparation_lines(
    prepared: Prepared, timeline: TimelineReport, dist: DistributionReport
) -> list[str]:
    """What the import and the morning job did, each number with what it means."""
    r, cb = prepared.renewals, prepared.callbacks
    renewed_rows = r.skipped.get("renewed", 0)
    other_skips = sum(r.skipped.values()) - renewed_rows
    dealt = ", ".join(f"{s.name} {s.total}" for s in dist.specialists[:6])
    lines = [
        f"imported {Path(r.file).name}: {r.read} rows read, {r.imported} policies to work on, "
        f"{r.rejected} rejected (unreadable rows, listed in the import's error file)",
        f"  {renewed_rows} rows skipped as already renewed: the core system's export says the "
        "policy was renewed, so nobody calls its customer",
    ]
    if other_skips:
        lines.append(f"  {other_skips} rows skipped for other reasons (already handled, unchanged)")
    lines += [
        f"imported {Path(cb.file).name} as post-underwriting callbacks (承保回访): "
        f"{cb.imported}; called automatically, no specialist needed",
        f"morning job ({timeline.day}): {sum(timeline.made_due.values())} leads became due "
        "today (a renewal lead is due 25 days before its policy expires)"
        + (
            f"; {timeline.closed_renewed} open leads closed because their policy was renewed "
            "meanwhile"
            if timeline.closed_renewed
            else ""
        ),
        f"distribution (随机等额分配): {dist.dealt} leads dealt at random to "
        f"{len(dist.specialists)} specialists, each gets the same number give or take one "
        f"({dealt}, …; seed {dist.seed})",
    ]
    return lines


def day_summary_lines(c: DayCounts, desk: DeskCalendar, mails: int, outbox: Path) -> list[str]:
    """The end of the day, each number with what it means."""
    windows = " and ".join(str(w) for w in desk.hours().windows)
    return [
        f"day over: {c.calls} calls, {c.answered} answered, {c.renewed} renewed "
        f"(a specialist's result for an answered call)",
        f"  retries: {c.retry_calls} of the calls were retries, i.e. another call on a lead "
        "already called: after busy (30 min later), no answer (next window) or switched off "
        "(next day), or at the time a customer asked to be called back; "
        f"{c.retries_booked} leads have their next call booked",
        f"  the dialler calls only inside the calling windows ({windows}, {desk.tz}, on "
        "calling days): the pause between them is the rule, not a fault",
        f"  {c.inaccurate} numbers marked inaccurate (不准确): a callback number not reached on "
        "the third call, or one the network reports as not in service; each branch is told "
        "by e-mail",
        f"branch e-mails written: {mails} in {outbox} (no SMTP server set, so .eml files)",
    ]


def say_seat_page(host: str, port: int, specialists: int) -> None:
    say(
        f"\nseat page: http://{host}:{port}/seat  (sign in as {PERSON_LOGIN}, "
        f"password {DEMO_PASSWORD}; seat PJSIP/8001 is yours: press Ready (Alt+R) and the "
        "simulator rings it)"
    )
    say(
        f"other logins: user8002 … user{8000 + specialists}, supervisor "
        f"(same password); the day runs at real speed while your seat has a call\n"
    )


def real_time_for_the_person(
    clock: ScaledClock, person: int, speed: float
) -> Callable[[Seat], None]:
    """A person cannot talk at x150: while their seat rings, talks or wraps up, the whole
    desk runs at real speed; when they are ready or paused again the day speeds up."""
    busy = (SeatState.RINGING, SeatState.ON_CALL, SeatState.WRAP_UP)

    def follow(seat: Seat) -> None:
        if seat.specialist_id == person:
            clock.set_speed(1.0 if seat.state in busy else speed)

    return follow


async def play_specialists(
    service: Service, rng: random.Random, skip: frozenset[int] = frozenset()
) -> None:
    """Each specialist gives every answered call a conversational result during wrap-up,
    through the same service the seat page uses (not the seats in `skip`: people's)."""
    done: set[str] = set()
    results, weights = zip(*CONVERSATIONS, strict=True)
    clock = service.container.clock
    while True:
        wrapping = [
            seat.specialist_id
            for seat in service.engine.signed_in_seats()
            if seat.state is SeatState.WRAP_UP and seat.specialist_id not in skip
        ]
        for sid in wrapping:
            with contextlib.suppress(DialerError):
                call = await service.dialer.current_call(sid)
                if call is None:
                    continue
                attempt = call["attempt"]
                if attempt["attempt_id"] in done or attempt["outcome"] not in ANSWERED:
                    continue
                done.add(attempt["attempt_id"])
                result = rng.choices(results, weights)[0]
                when = None
                if result == "callback":
                    when = clock.now() + timedelta(hours=rng.choice((1, 3, 20)))
                await service.dialer.dispose(call["lead"]["id"], sid, result, when, "demo")
        await clock.sleep(1.0)


async def run_demo(opts: DemoOptions) -> None:
    settings = demo_settings(opts)
    host, port = settings.http.host, settings.http.port
    folder = demo_folder.claim(settings.data_dir, address=f"{host}:{port}")
    try:
        check_port_free(host, port)
        folder.reset()
        await _play(opts, settings, host, port)
    finally:
        folder.release()


async def _play(opts: DemoOptions, settings: Settings, host: str, port: int) -> None:
    desk = DeskCalendar.from_settings(settings)
    start = first_calling_morning(desk, datetime.now(UTC))
    day = start.date()
    say(f"demo: a calling day of {day} ({desk.tz}) at x{opts.speed:g}, data in {settings.data_dir}")
    prepared = await prepare_database(opts, settings, day)

    clock = ScaledClock(start, opts.speed)
    container = await bootstrap(settings, clock)
    ami = settings.ami[0]
    sim = PbxSimulator(
        clock=clock,
        users={ami.username: ami.secret.get_secret_value()},
        monitor_dir=settings.effective_monitor_dir,
        seed=opts.seed,
    )
    await sim.start("127.0.0.1", 0)
    service = wire(container, simulator=sim, dialer_config=DialerConfig(wrap_up_seconds=30))
    timeline = await run_timeline(container.sessions, day=day, now=clock.now(), desk=desk)
    dist = await run_distribution(container.sessions, day=day, now=clock.now(), desk=desk)
    for line in preparation_lines(prepared, timeline, dist):
        say(line)

    runner = make_runner(build_app(container))
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    async with container.sessions() as s:
        ids = list(
            (await s.scalars(select(Specialist.id).where(Specialist.role == "specialist"))).all()
        )
    for campaign in CampaignKind:
        await service.dialer.start_campaign(campaign)
    person = ids[0]  # PJSIP/8001: a person signs in and presses ready in the browser
    for sid in ids[1:]:
        await service.dialer.sign_in(sid, ready=True)
    service.engine.seat_listeners.append(real_time_for_the_person(clock, person, opts.speed))
    say_seat_page(host, port, opts.specialists)
    bot = asyncio.create_task(
        play_specialists(service, random.Random(opts.seed), skip=frozenset({person}))
    )
    tz = ZoneInfo(desk.tz)
    # Through the afternoon window and the branch e-mails that follow it.
    mail_at = datetime.combine(day, parse_time(settings.branch_mail_time), tzinfo=tz)
    end = max(datetime.combine(day, time(17, 5), tzinfo=tz), mail_at + timedelta(minutes=2))
    windows = desk.hours().windows
    say(
        f"calling: {len(ids) - 1} specialists ready (PJSIP/8001 waits for you); calls are made "
        f"only inside the windows ({' and '.join(str(w) for w in windows)}), so the numbers stand still between them"
    )
    try:
        while clock.now() < end:
            c = await day_counts(container.sessions, len(service.engine.live_calls()))
            local = clock.now().astimezone(tz).strftime("%H:%M")
            sys.stdout.write(progress_line(local, c))
            sys.stdout.flush()
            await asyncio.sleep(1.0)
        c = await day_counts(container.sessions)
        outbox = settings.effective_mail_outbox
        say("")
        for line in day_summary_lines(c, desk, len(list(outbox.glob("*.eml"))), outbox):
            say(line)
        clock.set_speed(1.0)
        base = f"http://{host}:{port}"
        say(
            f"\nthe service: {base}/ (the seat page; what it is: {base}/about, "
            f"API page: {base}/api/docs)"
        )
        say(f"supervisor token: {prepared.tokens['supervisor']}")
        name = next(iter(prepared.tokens))
        say(f"specialist {name} token: {prepared.tokens[name]}")
        say(
            f"try: curl -H 'Authorization: Bearer {prepared.tokens['supervisor']}' {base}/api/recordings"
        )
        say_seat_page(host, port, opts.specialists)
        say("the command line on the demo's data (in this shell, from this folder):")
        for command in cli_commands(settings, day):
            say(f"  {command}")
        if opts.keep_running:
            say("the service keeps running at real speed; Ctrl-C stops it")
            await asyncio.Event().wait()
    finally:
        bot.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await bot
        await runner.cleanup()
        await sim.stop()
