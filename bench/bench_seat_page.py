"""Seat page benchmark: prints figures (not a test).

1. Screen-pop latency: from the AMI event that bridges the customer with the seat (the
   engine's BridgeEnter → seat `on_call`, recorded by a seat listener) to the seat page's DOM
   showing that customer's name (a MutationObserver in the page), with N seats each signed in
   in its own headless Chromium page, on the PBX simulator over TCP. p50/p99/max.
2. Page load on loopback: navigation start to the page being interactive (the seat page's
   script has loaded its state, opened its event stream and set body[data-ready]).

    .venv/bin/python bench/bench_seat_page.py                  # 50 seats, 60 s, SQLite
    .venv/bin/python bench/bench_seat_page.py --seats 20 --seconds 30
    .venv/bin/python bench/bench_seat_page.py --db postgresql+asyncpg://postgres@127.0.0.1/bench

Chromium is Debian's /usr/bin/chromium (`make test` installs it). The service, the simulator
and the browser share the machine; the figures say what a loaded 2-core box does.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import socket
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiohttp import web
from pydantic import SecretStr

from callcenter.bootstrap import Container, build_app
from callcenter.database import create_engine, session_factory, upgrade
from callcenter.pages.accounts import Accounts
from callcenter.service import wire
from callcenter.settings import AmiServer, Settings
from callcenter.web import make_runner
from dialer.engine import DialerConfig
from dialer.models import SeatState
from dialer.seats import Seat
from dialer.simulator import PbxSimulator
from schedules.clock import ScaledClock
from tests.chromium_support import CHROMIUM, CHROMIUM_ARGS
from tests.test_dialer_support import seed

MONDAY_1000 = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)  # 10:00 in Asia/Shanghai
PASSWORD = "bench-password"
OBSERVER = """
window.__pops = [];
document.addEventListener("DOMContentLoaded", () => {
  const name = document.getElementById("pop-name");
  if (name) {
    new MutationObserver(() => window.__pops.push([Date.now(), name.textContent]))
      .observe(name, { childList: true, characterData: true, subtree: true });
  }
  new MutationObserver(() => {
    if (document.body.dataset.ready === "1" && window.__readyAt === undefined) {
      window.__readyAt = performance.now();
    }
  }).observe(document.body, { attributes: true });
});
"""


# Navigation start to the page's "seat-ready" mark (set once its state is shown and the event
# stream is opening); the observer's time when the mark is missing (an older page).
READY_AT = """
(() => {
  const mark = performance.getEntriesByName("seat-ready")[0];
  return mark ? mark.startTime : window.__readyAt;
})()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def run(args: argparse.Namespace) -> None:
    from playwright.async_api import async_playwright

    tmp = Path(tempfile.mkdtemp(prefix="bench-seat-page-"))
    url = args.db or f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
    await upgrade(url)
    engine = create_engine(url)
    sessions = session_factory(engine)
    clock = ScaledClock(MONDAY_1000, 1.0)
    async with sessions() as s:
        specs, _ = await seed(
            s,
            specialists=args.seats,
            leads=[("renewal", "0", i % args.seats) for i in range(args.seats * 40)],
        )
    accounts = Accounts(sessions, clock)
    for sid in specs:
        await accounts.add(sid, f"u{sid}", PASSWORD)
    sim = PbxSimulator(clock=clock, users={"dialer": "secret"}, seed=1)
    await sim.start("127.0.0.1", 0)
    settings = Settings(
        data_dir=tmp,
        database_url=url,
        ami=[AmiServer(name="pbx1", host=sim.host, port=sim.port, secret=SecretStr("secret"))],
    )
    container = Container(settings=settings, clock=clock, engine=engine, sessions=sessions)
    service = wire(container, daily_jobs=False, dialer_config=DialerConfig(wrap_up_seconds=2))
    on_call: dict[int, list[float]] = defaultdict(list)

    def bridged(seat: Seat) -> None:
        if seat.state is SeatState.ON_CALL:
            on_call[seat.specialist_id].append(time.time() * 1000)

    service.engine.seat_listeners.append(bridged)
    runner = make_runner(build_app(container))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    await service.engine.wait_connected()

    loads: list[float] = []
    pages: dict[int, Any] = {}
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for sid in specs:
                ctx = await browser.new_context(
                    viewport={"width": 1366, "height": 768}, base_url=base
                )
                await ctx.add_init_script(OBSERVER)
                page = await ctx.new_page()
                await page.goto("/login")
                await page.fill("#username", f"u{sid}")
                await page.fill("#password", PASSWORD)
                await page.keyboard.press("Enter")
                await page.wait_for_selector('body[data-ready="1"]')
                # Page load: a fresh navigation to the seat page, signed in.
                await page.goto("/seat")
                await page.wait_for_selector('body[data-ready="1"]')
                loads.append(await page.evaluate(READY_AT))
                pages[sid] = page
            print(f"{len(pages)} seat pages open; calling for {args.seconds:g} s …", flush=True)
            await service.dialer.start_campaign("renewal")
            for sid in specs:
                await service.dialer.sign_in(sid, ready=True)
            await asyncio.sleep(args.seconds)
            await service.dialer.stop_campaign("renewal")
            latencies: list[float] = []
            for sid, page in pages.items():
                pops = await page.evaluate("window.__pops")
                shown: list[tuple[float, str]] = []
                for t, name in pops:
                    if name and (not shown or shown[-1][1] != name):
                        shown.append((t, name))
                bridges = on_call[sid]
                for t, _name in shown:
                    i = bisect.bisect_right(bridges, t) - 1
                    if i >= 0:
                        latencies.append(t - bridges[i])
        finally:
            await browser.close()
    await runner.cleanup()
    await sim.stop()

    calls = sum(len(v) for v in on_call.values())
    print(f"seats: {args.seats}, calls bridged: {calls}, pops measured: {len(latencies)}")
    if latencies:
        print(
            f"screen pop (bridge -> DOM): p50 {pct(latencies, 50):.0f} ms, "
            f"p99 {pct(latencies, 99):.0f} ms, max {max(latencies):.0f} ms"
        )
    print(
        f"page load to interactive ({len(loads)} loads): p50 {pct(loads, 50):.0f} ms, "
        f"p99 {pct(loads, 99):.0f} ms, max {max(loads):.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seats", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--db", help="database URL (default: a fresh SQLite file)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
