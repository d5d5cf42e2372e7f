"""The newcomer's demo (`make run`): a whole calling day on the embedded default, in minutes.

It builds a fresh data folder, imports generated demo lists, adds specialists and a
supervisor with tokens, runs the morning job (timeline + random equal allocation), starts
the built-in PBX simulator and the real service on one accelerated clock, signs every
specialist in as ready, and plays the specialists' part (a result for every answered call).
A progress line shows calls, answered, renewed, retries and inaccurate numbers; after the
day the clock slows to real time and the API stays up with a printed address and token.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from callcenter.bootstrap import bootstrap, build_app
from callcenter.database import create_engine, upgrade
from callcenter.jobs import parse_time
from callcenter.pages.services import Accounts
from callcenter.service import Service, wire
from callcenter.settings import Settings
from callcenter.web import make_runner
from crm_sync.auth import issue_token
from crm_sync.demo import write_demo_file
from crm_sync.models import Accuracy, Lead, LeadKind, Phone, Specialist
from crm_sync.services import add_specialist, import_file
from dialer.engine import DialerConfig
from dialer.exceptions import DialerError
from dialer.models import CallAttempt, SeatState
from dialer.seats import Seat
from dialer.simulator import PbxSimulator
from schedules.clock import ScaledClock, SystemClock
from schedules.config import DeskCalendar
from schedules.services import run_distribution, run_timeline

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
    data_dir: Path
    policies: int = 2000
    specialists: int = 20
    speed: float = 150.0
    seed: int = 7
    host: str = "127.0.0.1"
    port: int = 8080
    keep_running: bool = True


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


async def prepare_database(opts: DemoOptions, settings: Settings, day: date) -> dict[str, str]:
    """Fresh schema, imported demo lists, specialists; returns name -> token."""
    url = settings.effective_database_url
    create_engine(url)  # creates the folder
    await upgrade(url)
    export = opts.data_dir / "demo-export.csv"
    write_demo_file(export, opts.policies, seed=opts.seed, today=day)
    engine = create_engine(url)
    try:
        now = datetime.now(UTC)
        summary = await import_file(engine, export, LeadKind.RENEWAL, now=now, today=day)
        say(
            f"imported {export.name}: {summary.read} rows read, {summary.imported} policies, "
            f"{summary.rejected} rejected"
        )
        callback_export = opts.data_dir / "demo-callbacks.csv"
        write_demo_file(
            callback_export, max(opts.policies // 10, 10), seed=opts.seed + 1, today=day
        )
        cb = await import_file(engine, callback_export, LeadKind.CALLBACK, now=now, today=day)
        say(f"imported {callback_export.name} as post-underwriting callbacks: {cb.imported}")
        tokens: dict[str, str] = {}
        async with async_sessionmaker(engine, expire_on_commit=False)() as s:
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
        accounts = Accounts(async_sessionmaker(engine, expire_on_commit=False), SystemClock())
        for sid, seat in logins:
            username = "supervisor" if seat == "PJSIP/8999" else "user" + seat.split("/")[-1]
            await accounts.add(sid, username, DEMO_PASSWORD)
        return tokens
    finally:
        await engine.dispose()


async def counts(service: Service) -> dict[str, int]:
    async with service.container.sessions() as s:
        calls = await s.scalar(select(func.count()).select_from(CallAttempt)) or 0
        answered = (
            await s.scalar(select(func.count()).where(CallAttempt.outcome.in_(ANSWERED))) or 0
        )
        renewed = await s.scalar(select(func.count()).where(Lead.contact_result == "renewed")) or 0
        retries = (
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
    return {
        "calls": calls,
        "answered": answered,
        "renewed": renewed,
        "retries": retries,
        "inaccurate": inaccurate,
        "in_flight": len(service.engine.live_calls()),
    }


def say_seat_page(opts: DemoOptions) -> None:
    say(
        f"\nseat page: http://{opts.host}:{opts.port}/seat  (sign in as {PERSON_LOGIN}, "
        f"password {DEMO_PASSWORD}; seat PJSIP/8001 is yours: press Ready (Alt+R) and the "
        "simulator rings it)"
    )
    say(
        f"other logins: user8002 … user{8000 + opts.specialists}, supervisor "
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
            for seat in list(service.engine.seats.values())
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
    if opts.data_dir.exists():
        shutil.rmtree(opts.data_dir)
    opts.data_dir.mkdir(parents=True)
    settings = Settings(data_dir=opts.data_dir, simulator=True)
    desk = DeskCalendar.from_settings(settings)
    start = first_calling_morning(desk, datetime.now(UTC))
    day = start.date()
    say(f"demo: a calling day of {day} ({desk.tz}) at x{opts.speed:g}, data in {opts.data_dir}")
    tokens = await prepare_database(opts, settings, day)

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
    say(timeline.line())
    dealt = ", ".join(f"{s.name} {s.total}" for s in dist.specialists[:6])
    say(
        f"distribution (随机等额分配): {dist.dealt} leads to {len(dist.specialists)} specialists ({dealt}, …), seed {dist.seed}"
    )

    runner = make_runner(build_app(container))
    await runner.setup()
    await web.TCPSite(runner, opts.host, opts.port).start()
    async with container.sessions() as s:
        ids = list(
            (await s.scalars(select(Specialist.id).where(Specialist.role == "specialist"))).all()
        )
    for campaign in ("renewal", "lapsed", "trial", "callback", "reminder"):
        await service.dialer.start_campaign(campaign)
    person = ids[0]  # PJSIP/8001: a person signs in and presses ready in the browser
    for sid in ids[1:]:
        await service.dialer.sign_in(sid, ready=True)
    service.engine.seat_listeners.append(real_time_for_the_person(clock, person, opts.speed))
    say_seat_page(opts)
    bot = asyncio.create_task(
        play_specialists(service, random.Random(opts.seed), skip=frozenset({person}))
    )
    tz = ZoneInfo(desk.tz)
    # Through the afternoon window and the branch e-mails that follow it.
    mail_at = datetime.combine(day, parse_time(settings.branch_mail_time), tzinfo=tz)
    end = max(datetime.combine(day, time(17, 5), tzinfo=tz), mail_at + timedelta(minutes=2))
    try:
        while clock.now() < end:
            c = await counts(service)
            local = clock.now().astimezone(tz).strftime("%H:%M")
            line = (
                f"\r{local}  calls {c['calls']:5}  answered {c['answered']:5}  renewed {c['renewed']:4}"
                f"  retries {c['retries']:4}  inaccurate {c['inaccurate']:3}  in flight {c['in_flight']:3}"
            )
            sys.stdout.write(line)
            sys.stdout.flush()
            await asyncio.sleep(1.0)
        c = await counts(service)
        say(
            f"\nday over: {c['calls']} calls, {c['answered']} answered, {c['renewed']} renewed, "
            f"{c['retries']} retries booked, {c['inaccurate']} numbers marked inaccurate"
        )
        outbox = sorted(settings.effective_mail_outbox.glob("*.eml"))
        say(f"branch e-mails written: {len(outbox)} in {settings.effective_mail_outbox}")
        clock.set_speed(1.0)
        base = f"http://{opts.host}:{opts.port}/api"
        say(f"\nAPI: {base}  (OpenAPI: {base}/openapi.json)")
        say(f"supervisor token: {tokens['supervisor']}")
        name = next(iter(tokens))
        say(f"specialist {name} token: {tokens[name]}")
        say_seat_page(opts)
        say(f"try: curl -H 'Authorization: Bearer {tokens['supervisor']}' {base}/recordings")
        if opts.keep_running:
            say("the service keeps running at real speed; Ctrl-C stops it")
            await asyncio.Event().wait()
    finally:
        bot.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await bot
        await runner.cleanup()
        await sim.stop()
