"""Wallboard benchmark: prints figures (not a test).

The desk: `--seats` specialists (200) signed in on seat-first renewal calls that talk ~56 s,
plus the automatic callback campaign at `--automatic` concurrent calls (100), so that about
300 calls are live at once, on the PBX simulator over TCP, at real speed.

1. Update latency, from the AMI event to the board's DOM, in one headless Chromium board
   (and to a plain event-stream reader in this process, to tell the service's delivery from
   the browser's drawing):
   - answered: the simulator sends the call's first `BridgeEnter` → the call's row shows it
     answered (`tr[data-answered="1"]`);
   - ended: the simulator sends the call's last `Hangup` → the call's row is gone (this path
     includes the dialer writing the result first).
   Both clocks are this machine's wall clock (the simulator's send, the page's
   MutationObserver). p50/p99/max.
2. The service's CPU per connected board: the process's CPU time per second with no board
   open, then with `--boards` event streams open (plain SSE readers in a child process, so
   their own CPU is not counted), same desk; the difference divided by the boards.

    .venv/bin/python bench/bench_board.py                       # SQLite, 60 s + 2 × 30 s
    .venv/bin/python bench/bench_board.py --db postgresql+asyncpg://postgres@127.0.0.1/bench_board
    .venv/bin/python bench/bench_board.py --seats 50 --automatic 25 --seconds 30

The simulator, the service and the browser share the machine (and the dialer runs in the
same process as the simulator, so the CPU figures include it in both phases).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import tempfile
import time
from collections.abc import Iterable
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
from crm_sync.models import Specialist
from dialer.domain import AttemptSettled, CallBridged
from dialer.engine import DialerConfig
from dialer.simulator import PbxSimulator
from schedules.clock import ScaledClock
from tests.chromium_support import CHROMIUM, CHROMIUM_ARGS
from tests.test_dialer_support import seed

MONDAY_1000 = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)  # 10:00 in Asia/Shanghai
PASSWORD = "bench-password"
OBSERVER = """
window.__answered = {}; window.__gone = {};
document.addEventListener("DOMContentLoaded", () => {
  const calls = document.getElementById("calls");
  const answered = (n) => {
    if (n.dataset && n.dataset.answered === "1" && !(n.dataset.key in window.__answered)) {
      window.__answered[n.dataset.key] = Date.now();
    }
  };
  new MutationObserver((records) => {
    const t = Date.now();
    for (const r of records) {
      if (r.type === "attributes") answered(r.target);
      for (const n of r.addedNodes) answered(n);
      for (const n of r.removedNodes) {
        if (n.dataset && n.dataset.key && !calls.querySelector(`tr[data-key="${n.dataset.key}"]`)) {
          window.__gone[n.dataset.key] = t;
        }
      }
    }
  }).observe(calls, { childList: true, subtree: true, attributes: true, attributeFilter: ["data-answered"] });
});
"""
READER = """
import asyncio, sys, aiohttp
async def one(url, cookie):
    async with aiohttp.ClientSession(cookies={"cc_session": cookie}) as s:
        async with s.get(url, timeout=aiohttp.ClientTimeout(total=None)) as r:
            async for _ in r.content.iter_any():
                pass
async def main():
    url, cookie, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    await asyncio.gather(*(one(url, cookie) for _ in range(n)))
asyncio.run(main())
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class AmiClock:
    """When the simulator sent each call's first BridgeEnter and last Hangup (wall ms)."""

    def __init__(self, sim: PbxSimulator) -> None:
        self.pbx = sim.pbx
        self.bridged: dict[str, float] = {}
        self.hung_up: dict[str, float] = {}
        self._emit = self.pbx.emit
        self.pbx.emit = self.emit  # type: ignore[method-assign]

    def _attempt(self, pairs: list[tuple[str, str]]) -> str | None:
        d = dict(pairs)
        chan = self.pbx.channels.get(d.get("Channel", ""))
        if chan is not None and "ATTEMPT_ID" in chan.variables:
            return chan.variables["ATTEMPT_ID"]
        linked = d.get("Linkedid")
        for c in self.pbx.channels.values():
            if c.linkedid == linked and "ATTEMPT_ID" in c.variables:
                return c.variables["ATTEMPT_ID"]
        return None

    def emit(self, name: str, privilege: str | None, pairs: Iterable[tuple[str, str]]) -> None:
        pairs = list(pairs)
        if name in ("BridgeEnter", "Hangup"):
            t = time.time() * 1000
            aid = self._attempt(pairs)
            if aid is not None:
                if name == "BridgeEnter":
                    self.bridged.setdefault(aid, t)
                else:
                    self.hung_up[aid] = t
        self._emit(name, privilege, pairs)


async def sse_probe(url: str, cookie: str, seen: dict[str, dict[str, float]]) -> None:
    """A plain event-stream reader in this process: when each call's answer and end reached
    a client, without a browser (the service's delivery apart from the browser's drawing)."""
    import json

    import aiohttp

    async with aiohttp.ClientSession(cookies={"cc_session": cookie}) as s:
        async with s.get(url, timeout=aiohttp.ClientTimeout(total=None)) as r:
            event = ""
            async for raw in r.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "patch":
                    t = time.time() * 1000
                    d = json.loads(line[6:])
                    for key, row in d.get("set", {}).get("call", {}).items():
                        if row.get("answered"):
                            seen["answered"].setdefault(key, t)
                    for key in d.get("del", {}).get("call", []):
                        seen["gone"][key] = t


async def loop_lag(out: list[float], step: float = 0.01) -> None:
    """How late the event loop wakes a 10 ms sleep: what the machine's load costs every
    task of the process (the dialer, the simulator, the board alike)."""
    while True:
        t = time.monotonic()
        await asyncio.sleep(step)
        out.append((time.monotonic() - t - step) * 1000)


async def cpu_per_second(seconds: float) -> float:
    c0, t0 = time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    return (time.process_time() - c0) / (time.monotonic() - t0)


async def setup(args: argparse.Namespace, tmp: Path, url: str) -> tuple[Any, Any, int]:
    await upgrade(url)
    engine = create_engine(url)
    sessions = session_factory(engine)
    clock = ScaledClock(MONDAY_1000, 1.0)
    async with sessions() as s:
        specs, _ = await seed(
            s,
            specialists=args.seats,
            # Most calls talk ~56 s (digit 7), one in four ~3 s (digit 0): ~300 live calls
            # and a steady flow of answers and hang-ups.
            leads=[
                ("renewal", "0" if i % 4 == 0 else "7", i % args.seats)
                for i in range(args.seats * 8)
            ]
            + [("callback", "7", None) for _ in range(args.automatic * 30)],
        )
        boss = Specialist(name="主管", seat="PJSIP/8999", role="supervisor")
        s.add(boss)
        await s.commit()
    await Accounts(sessions, clock).add(boss.id, "boss", PASSWORD)
    sim = PbxSimulator(clock=clock, users={"dialer": "secret"}, seed=1)
    await sim.start("127.0.0.1", 0)
    settings = Settings(
        data_dir=tmp,
        database_url=url,
        ami=[AmiServer(name="pbx1", host=sim.host, port=sim.port, secret=SecretStr("secret"))],
    )
    container = Container(settings=settings, clock=clock, engine=engine, sessions=sessions)
    service = wire(container, daily_jobs=False, dialer_config=DialerConfig(wrap_up_seconds=2))
    runner = make_runner(build_app(container))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await service.engine.wait_connected()
    trunk = {"trunk_max_calls": args.seats + args.automatic + 50, "trunk_max_cps": 100.0}
    await service.dialer.update_campaign("renewal", **trunk)
    await service.dialer.update_campaign("callback", concurrency=args.automatic, **trunk)
    for sid in specs:
        await service.dialer.sign_in(sid, ready=True)
    await service.dialer.start_campaign("renewal")
    await service.dialer.start_campaign("callback")
    return (sim, service, runner), specs, port


async def run(args: argparse.Namespace) -> None:
    from playwright.async_api import async_playwright

    tmp = Path(tempfile.mkdtemp(prefix="bench-board-"))
    url = args.db or f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
    (sim, service, runner), _specs, port = await setup(args, tmp, url)
    ami = AmiClock(sim)
    bus: dict[str, dict[str, float]] = {"bridged": {}, "ended": {}}
    service.engine.bus.subscribe(
        CallBridged, lambda e: bus["bridged"].setdefault(e.attempt_id, time.time() * 1000)
    )
    service.engine.bus.subscribe(
        AttemptSettled,
        lambda e: bus["ended"].setdefault(e.live.attempt_id, time.time() * 1000),
    )
    base = f"http://127.0.0.1:{port}"
    hub_seen: dict[str, dict[str, float]] = {"answered": {}, "gone": {}}
    probe_seen: dict[str, dict[str, float]] = {"answered": {}, "gone": {}}
    hub = runner.app[_hub_key()]
    take = hub.take

    def timed_take(owner: str, rev: int, changed: dict[Any, Any], gone: list[Any]) -> int:
        t = time.time() * 1000
        for (kind, key), data in changed.items():
            if kind == "call" and data.get("answered"):
                hub_seen["answered"].setdefault(key, t)
        for kind, key in gone:
            if kind == "call":
                hub_seen["gone"].setdefault(key, t)
        return int(take(owner, rev, changed, gone))

    assert service.board is not None
    service.board.publisher.local = timed_take
    peak = 0
    lags: list[float] = []
    lag_task = asyncio.create_task(loop_lag(lags))
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            ctx = await browser.new_context(viewport={"width": 1920, "height": 1080}, base_url=base)
            await ctx.add_init_script(OBSERVER)
            page = await ctx.new_page()
            await page.goto("/login?next=/board")
            await page.fill("#username", "boss")
            await page.fill("#password", PASSWORD)
            await page.keyboard.press("Enter")
            await page.wait_for_selector('body[data-live="1"]')
            opened = time.time() * 1000 + 1000  # calls answered before this were in the snapshot
            cookie = next(c["value"] for c in await ctx.cookies() if c["name"] == "cc_session")
            probe_task = asyncio.create_task(
                sse_probe(f"{base}/api/board/events", cookie, probe_seen)
            )
            print(f"board open; calling for {args.seconds:g} s …", flush=True)
            t_end = time.monotonic() + args.seconds
            while time.monotonic() < t_end:
                await asyncio.sleep(1.0)
                peak = max(peak, len(service.engine.live_calls()))
            lag_task.cancel()
            probe_task.cancel()
            answered = await page.evaluate("window.__answered")
            gone = await page.evaluate("window.__gone")
            dom_rows = await page.locator("#calls tr").count()
            await page.close()
            idle = await cpu_per_second(args.cpu_seconds)
            reader = await asyncio.create_subprocess_exec(
                sys.executable, "-c", READER, f"{base}/api/board/events", cookie, str(args.boards)
            )
            for _ in range(120):  # the streams open (a loaded machine starts Python slowly)
                if service_hub_watching(runner) >= args.boards:
                    break
                await asyncio.sleep(0.5)
            await asyncio.sleep(2.0)  # and get their snapshots
            watching = service_hub_watching(runner)
            loaded = await cpu_per_second(args.cpu_seconds)
            reader.terminate()
            await reader.wait()
        finally:
            await browser.close()
    await service.dialer.stop_campaign("renewal")
    await service.dialer.stop_campaign("callback")
    await runner.cleanup()
    await sim.stop()
    up = [answered[k] - ami.bridged[k] for k in answered if ami.bridged.get(k, 0) > opened]
    down = [gone[k] - ami.hung_up[k] for k in gone if ami.hung_up.get(k, 0) > opened]
    # Where the time goes: the AMI event to the dialer's bus event, the bus event to the DOM.
    parts = {
        "answered: AMI -> bus": [
            bus["bridged"][k] - ami.bridged[k]
            for k in answered
            if ami.bridged.get(k, 0) > opened and k in bus["bridged"]
        ],
        "answered: bus -> hub": [
            hub_seen["answered"][k] - bus["bridged"][k]
            for k in answered
            if ami.bridged.get(k, 0) > opened and k in bus["bridged"] and k in hub_seen["answered"]
        ],
        "answered: hub -> DOM (SSE, browser)": [
            answered[k] - hub_seen["answered"][k]
            for k in answered
            if ami.bridged.get(k, 0) > opened and k in hub_seen["answered"]
        ],
        "answered: hub -> event-stream reader (no browser)": [
            probe_seen["answered"][k] - hub_seen["answered"][k]
            for k in probe_seen["answered"]
            if ami.bridged.get(k, 0) > opened and k in hub_seen["answered"]
        ],
        "ended: hub -> event-stream reader (no browser)": [
            probe_seen["gone"][k] - hub_seen["gone"][k]
            for k in probe_seen["gone"]
            if ami.hung_up.get(k, 0) > opened and k in hub_seen["gone"]
        ],
        "ended: AMI -> event-stream reader (no browser)": [
            probe_seen["gone"][k] - ami.hung_up[k]
            for k in probe_seen["gone"]
            if ami.hung_up.get(k, 0) > opened
        ],
        "ended: hub -> DOM (SSE, browser)": [
            gone[k] - hub_seen["gone"][k]
            for k in gone
            if ami.hung_up.get(k, 0) > opened and k in hub_seen["gone"]
        ],
        "answered: bus -> DOM": [
            answered[k] - bus["bridged"][k]
            for k in answered
            if ami.bridged.get(k, 0) > opened and k in bus["bridged"]
        ],
        "ended: AMI -> bus (result written)": [
            bus["ended"][k] - ami.hung_up[k]
            for k in gone
            if ami.hung_up.get(k, 0) > opened and k in bus["ended"]
        ],
        "ended: bus -> DOM": [
            gone[k] - bus["ended"][k]
            for k in gone
            if ami.hung_up.get(k, 0) > opened and k in bus["ended"]
        ],
    }
    print(
        f"seats {args.seats}, automatic {args.automatic}, live calls peak {peak}, rows now {dom_rows}"
    )
    print(f"hub: {hub.fetches} fetches, {hub.patches} patches broadcast")
    for label, values in (("answered", up), ("ended", down)):
        if values:
            print(
                f"AMI event -> board DOM, {label} ({len(values)} calls): p50 {pct(values, 50):.0f} ms, "
                f"p99 {pct(values, 99):.0f} ms, max {max(values):.0f} ms"
            )
    for label, values in parts.items():
        if values:
            print(f"  {label}: p50 {pct(values, 50):.0f} ms, p99 {pct(values, 99):.0f} ms")
    if lags:
        print(
            f"event loop lag while calling: p50 {pct(lags, 50):.0f} ms, p99 {pct(lags, 99):.0f} ms"
        )
    per_board = (loaded - idle) / max(1, watching)
    print(
        f"service CPU: {idle * 100:.1f} % of a core with no board, {loaded * 100:.1f} % with "
        f"{watching} boards -> {per_board * 100:.2f} % of a core per board"
    )


def _hub_key() -> Any:
    from callcenter.board.http import BOARD_HUB

    return BOARD_HUB


def service_hub_watching(runner: Any) -> int:
    return int(runner.app[_hub_key()].watching)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seats", type=int, default=200)
    parser.add_argument("--automatic", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--cpu-seconds", type=float, default=30.0)
    parser.add_argument("--boards", type=int, default=20)
    parser.add_argument("--db", help="database URL (default: a fresh SQLite file)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
