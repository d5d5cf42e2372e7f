"""The newcomer's demo: its folder is never someone else's, its settings are everyone's, the
commands it prints work on its data, and its summary says what its numbers mean."""

from __future__ import annotations

import asyncio
import csv
import os
import shlex
import socket
import subprocess
import sys
from datetime import UTC, date, datetime, time
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import demo_folder
from callcenter.database import session_factory
from callcenter.demo import (
    DEMO_PASSWORD,
    PERSON_LOGIN,
    DayCounts,
    DemoOptions,
    cli_commands,
    day_counts,
    day_summary_lines,
    demo_settings,
    preparation_lines,
    prepare_database,
    say_seat_page,
)
from callcenter.demo_folder import DemoRefused
from callcenter.pages.accounts import Accounts
from crm_sync.auth import authenticate
from crm_sync.models import Lead, Specialist
from dialer.models import CallAttempt
from schedules.clock import VirtualClock
from schedules.config import DeskCalendar
from schedules.distribution_run import run_distribution
from schedules.timeline_run import run_timeline
from schedules.windows import CallingHours, CallingPlan, Window

ROOT = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).with_name("callcenter"))
DAY = date(2026, 3, 11)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a new shell: no CALLCENTER_* settings but the ones given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def shell(line: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", line], cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=60
    )


def run_demo_cli(data_dir: Path, port: int) -> subprocess.CompletedProcess[str]:
    argv = [CLI, "demo", "--data-dir", str(data_dir), "--port", str(port), "--exit"]
    argv += ["--policies", "10", "--specialists", "1"]
    return subprocess.run(
        argv, cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=120
    )


@pytest.fixture(autouse=True)
def no_settings_from_the_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [k for k in os.environ if k.startswith("CALLCENTER_")]:
        monkeypatch.delenv(name)


# ------------------------------------------------------------------------- the demo's folder


def test_the_demo_refuses_a_folder_holding_files_it_did_not_create(tmp_path: Path) -> None:
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "thesis.docx").write_text("three years of work")
    (folder / "callcenter.db").write_text("someone's real database")

    done = run_demo_cli(folder, free_port())

    assert done.returncode == 1, done.stdout + done.stderr
    assert "not a demo folder" in done.stdout and "DATA=" in done.stdout
    assert (folder / "thesis.docx").read_text() == "three years of work"
    assert (folder / "callcenter.db").read_text() == "someone's real database"
    assert sorted(p.name for p in folder.iterdir()) == ["callcenter.db", "thesis.docx"]


def test_a_second_demo_on_a_folder_in_use_is_refused_and_deletes_nothing(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "demo"
    running = demo_folder.claim(folder, address="127.0.0.1:8080")  # the first demo
    try:
        (folder / "callcenter.db").write_text("the running demo's database")
        (folder / "recordings").mkdir()
        (folder / "recordings" / "call.wav").write_bytes(b"RIFF")

        done = run_demo_cli(folder, free_port())

        assert done.returncode == 1, done.stdout + done.stderr
        assert "in use by a running demo" in done.stdout
        assert f"pid {os.getpid()}" in done.stdout and "127.0.0.1:8080" in done.stdout
        assert "Stop that demo first" in done.stdout
        assert (folder / "callcenter.db").read_text() == "the running demo's database"
        assert (folder / "recordings" / "call.wav").read_bytes() == b"RIFF"
    finally:
        running.release()
    # Once the first demo is gone, the folder is free again.
    demo_folder.claim(folder, address="127.0.0.1:8181").release()


def test_a_reset_removes_only_what_a_demo_wrote(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    claimed = demo_folder.claim(folder, address="127.0.0.1:8080")
    try:
        for name in ("callcenter.db", "callcenter.db-wal", "demo-export.csv", "notes.txt"):
            (folder / name).write_text(name)
        (folder / "demo-export.csv.errors.csv").write_text("row,reason")
        for sub in ("recordings", "monitor", "mail-outbox", "my-scripts"):
            (folder / sub).mkdir()
            (folder / sub / "f").write_text(sub)

        claimed.reset()

        left = sorted(p.name for p in folder.iterdir())
        assert left == [demo_folder.MARKER, demo_folder.LOCK, "my-scripts", "notes.txt"]
        assert (folder / "my-scripts" / "f").read_text() == "my-scripts"
    finally:
        claimed.release()


def test_a_refused_port_leaves_the_folder_as_it_was(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    demo_folder.claim(folder, address="127.0.0.1:1").release()
    (folder / "callcenter.db").write_text("yesterday's demo")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        done = run_demo_cli(folder, taken.getsockname()[1])
    assert done.returncode == 1 and "is taken" in done.stdout and "PORT=" in done.stdout
    assert (folder / "callcenter.db").read_text() == "yesterday's demo"


# ------------------------------------------------------------------------- settings


def test_the_demo_reads_the_callcenter_settings_and_its_options_win(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert demo_settings(DemoOptions()).data_dir == tmp_path / "data" / "demo"
    assert demo_settings(DemoOptions()).http.port == 8080

    monkeypatch.setenv("CALLCENTER_DATA_DIR", str(tmp_path / "from-env"))
    monkeypatch.setenv("CALLCENTER_HTTP__PORT", "8282")
    monkeypatch.setenv("CALLCENTER_TIMEZONE", "Asia/Urumqi")
    s = demo_settings(DemoOptions())
    assert (s.data_dir, s.http.port, s.timezone) == (tmp_path / "from-env", 8282, "Asia/Urumqi")

    s = demo_settings(DemoOptions(data_dir=Path("elsewhere"), port=8181))
    assert (s.data_dir, s.http.port) == (tmp_path / "elsewhere", 8181)

    config = tmp_path / "desk.toml"
    config.write_text('timezone = "Asia/Hong_Kong"\n[http]\nport = 9191\n')
    monkeypatch.delenv("CALLCENTER_HTTP__PORT")
    monkeypatch.delenv("CALLCENTER_TIMEZONE")
    monkeypatch.setenv("CALLCENTER_CONFIG", str(config))
    s = demo_settings(DemoOptions())
    assert (s.http.port, s.timezone) == (9191, "Asia/Hong_Kong")


def test_the_demos_outbox_alarm_means_a_real_minute_unless_it_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert demo_settings(DemoOptions(speed=150)).crm.alarm_age == 60 * 150
    monkeypatch.setenv("CALLCENTER_CRM__ALARM_AGE", "300")
    assert demo_settings(DemoOptions(speed=150)).crm.alarm_age == 300


async def test_a_printed_command_works_on_the_demos_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the demo's folder is relative, as in `make run`
    opts = DemoOptions(data_dir=Path("data/demo"), policies=20, specialists=2)
    settings = demo_settings(opts)
    claimed = demo_folder.claim(settings.data_dir, address="127.0.0.1:8080")
    try:
        await prepare_database(opts, settings, DAY)
    finally:
        claimed.release()
    commands = cli_commands(settings, DAY)
    listing = next(c for c in commands if c.endswith("specialists list"))

    # A new shell in another folder, with no CALLCENTER_* settings: the line alone suffices.
    done = await asyncio.to_thread(shell, listing, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "王芳" in done.stdout and "李娜" in done.stdout and "PJSIP/8002" in done.stdout

    dry = next(c for c in commands if "distribute" in c)
    done = await asyncio.to_thread(shell, dry, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "DRY RUN" in done.stdout and "2 specialists" in done.stdout


async def test_the_demo_fills_only_an_empty_database(
    db_url: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    async with session_factory(engine)() as s:
        s.add(Specialist(name="真的专员", seat="PJSIP/1001"))
        await s.commit()
    opts = DemoOptions(data_dir=tmp_path, policies=10, specialists=1)
    settings = demo_settings(opts).model_copy(update={"database_url": db_url})
    with pytest.raises(DemoRefused, match="already holds specialists or leads"):
        await prepare_database(opts, settings, DAY)
    async with session_factory(engine)() as s:
        names = (await s.scalars(select(Specialist.name))).all()
        leads = (await s.scalars(select(Lead.id))).all()
    assert list(names) == ["真的专员"] and list(leads) == []


async def test_the_persons_demo_login_signs_in_to_seat_8001_as_the_same_user_as_its_token(
    db_url: str, engine: AsyncEngine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    opts = DemoOptions(data_dir=tmp_path, policies=10, specialists=2)
    settings = demo_settings(opts).model_copy(update={"database_url": db_url})
    prepared = await prepare_database(opts, settings, DAY)
    now = datetime(2026, 1, 6, 2, 0, tzinfo=UTC)
    accounts = Accounts(session_factory(engine), VirtualClock(now))
    signed = await accounts.sign_in(PERSON_LOGIN, DEMO_PASSWORD, "127.0.0.1")
    async with session_factory(engine)() as s:
        seat = await s.scalar(
            select(Specialist.seat).where(Specialist.id == signed.principal.user_id)
        )
        by_token = await authenticate(s, prepared.tokens["王芳"], now)
    assert seat == "PJSIP/8001"
    assert by_token == signed.principal  # a cookie and a token are the same Principal
    boss = await accounts.sign_in("supervisor", DEMO_PASSWORD, "127.0.0.1")
    assert boss.principal.is_supervisor

    say_seat_page("127.0.0.1", 8181, 2)
    out = capsys.readouterr().out
    assert "http://127.0.0.1:8181/seat" in out and PERSON_LOGIN in out and DEMO_PASSWORD in out


# ------------------------------------------------------------------------- the summary


async def test_the_summary_explains_each_number_with_the_real_counts(
    db_url: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    opts = DemoOptions(data_dir=tmp_path, policies=60, specialists=3)
    settings = demo_settings(opts).model_copy(update={"database_url": db_url})
    prepared = await prepare_database(opts, settings, DAY)
    with (tmp_path / "demo-export.csv").open(encoding="utf-8-sig") as f:
        renewed_rows = sum(1 for row in csv.DictReader(f) if row["已续保"] == "是")
    assert renewed_rows > 0

    sessions = session_factory(engine)
    desk = DeskCalendar()
    now = datetime(2026, 3, 11, 0, 20, tzinfo=UTC)
    timeline = await run_timeline(sessions, day=DAY, now=now, desk=desk)
    dist = await run_distribution(sessions, day=DAY, now=now, desk=desk, seed=1)
    before = "\n".join(preparation_lines(prepared, timeline, dist))
    assert f"{renewed_rows} rows skipped as already renewed" in before
    assert "nobody calls its customer" in before
    assert f"{dist.dealt} leads dealt at random to 3 specialists" in before

    # Three calls to one lead, one to another: two of the four calls were retries.
    async with sessions() as s:
        first, second = (await s.scalars(select(Lead.id).order_by(Lead.id).limit(2))).all()
        for i, (lead, outcome) in enumerate(
            [(first, "busy"), (first, "no_answer"), (first, "answered"), (second, "answered")]
        ):
            s.add(
                CallAttempt(
                    attempt_id=f"att-{i}",
                    lead_id=lead,
                    number="13800000000",
                    mode="preview",
                    campaign_kind="renewal",
                    ami_server="pbx1",
                    state="ended",
                    outcome=outcome,
                    ended_at=now,
                )
            )
        await s.commit()
    counts = await day_counts(sessions)
    assert (counts.calls, counts.answered, counts.retry_calls) == (4, 2, 2)

    after = "\n".join(day_summary_lines(counts, desk, 1, tmp_path / "mail-outbox"))
    assert "day over: 4 calls, 2 answered" in after
    assert "2 of the calls were retries, i.e. another call on a lead already called" in after
    assert "calling windows (09:30-11:00 and 15:30-17:00, Asia/Shanghai" in after
    assert "the pause between them is the rule" in after
    assert "branch e-mails written: 1" in after


def test_the_summary_speaks_of_the_desks_own_windows() -> None:
    hours = CallingHours(windows=(Window(time(10, 0), time(12, 0)),), tz="Asia/Urumqi")
    desk = DeskCalendar(tz="Asia/Urumqi", plan=CallingPlan(default=hours))
    text = "\n".join(day_summary_lines(DayCounts(), desk, 0, Path("out")))
    assert "calling windows (10:00-12:00, Asia/Urumqi" in text


def test_printed_commands_name_the_demo_folder_and_the_settings_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALLCENTER_CONFIG", str(tmp_path / "desk.toml"))
    (tmp_path / "desk.toml").write_text("")
    settings = demo_settings(DemoOptions(data_dir=tmp_path / "my demo"))
    for line in cli_commands(settings, DAY):
        words = shlex.split(line)
        assert words[0] == f"CALLCENTER_DATA_DIR={tmp_path / 'my demo'}"
        assert words[2:4] == ["--config", str(tmp_path / "desk.toml")]
