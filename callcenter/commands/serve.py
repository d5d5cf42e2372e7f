"""`callcenter serve` — run the service: API, dialer, recordings, daily jobs (and, on the
embedded default, the built-in PBX simulator)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal

from aiohttp import web

from callcenter.bootstrap import bootstrap, build_app
from callcenter.database import SchemaOutOfDate
from callcenter.ops.logs import configure_for
from callcenter.service import wire
from callcenter.settings import Settings, load_settings
from callcenter.web import make_runner
from dialer.simulator import PbxSimulator

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="run the service (API, dialer, recordings, daily jobs)")
    p.add_argument("--host", help="listen address (default: settings http.host)")
    p.add_argument("--port", type=int, help="listen port (default: settings http.port)")
    p.set_defaults(func=_serve)


async def start_simulator(settings: Settings) -> PbxSimulator:
    """The embedded default's PBX: an AMI server on a free loopback port."""
    ami = settings.ami[0]
    sim = PbxSimulator(
        users={ami.username: ami.secret.get_secret_value()},
        monitor_dir=settings.effective_monitor_dir,
    )
    await sim.start("127.0.0.1", 0)
    return sim


async def stop_requested() -> None:
    """Until SIGTERM (systemd, docker stop) or SIGINT: either stops the service cleanly (the
    dialer's grace, the cleanup contexts), where Python's default would end it on SIGTERM at
    once, and a container's PID 1 would ignore it."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
        log.info("stop requested: finishing the work under way")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


async def run_service(settings: Settings, host: str, port: int) -> None:
    container = await bootstrap(settings)
    sim = await start_simulator(settings) if settings.simulator else None
    wire(container, simulator=sim)
    runner = make_runner(build_app(container))
    await runner.setup()  # starts the dialer and the rest (cleanup contexts)
    # What is alive now lives as long as the process: keep it out of the garbage collector's
    # full passes, which stalled the dialer's event loop 100-600 ms each (docs/dialer.md).
    gc.collect()
    gc.freeze()
    try:
        await web.TCPSite(runner, host, port).start()
        print(
            f"callcenter: API on http://{host}:{port}/api (OpenAPI: /api/openapi.json)", flush=True
        )
        if sim is not None:
            print(f"callcenter: built-in PBX simulator on 127.0.0.1:{sim.port}", flush=True)
        await stop_requested()
    finally:
        await runner.cleanup()
        if sim is not None:
            await sim.stop()


def _serve(args: argparse.Namespace) -> int:
    settings = load_settings()
    configure_for(settings, settings.ops.log_format)
    try:
        asyncio.run(
            run_service(settings, args.host or settings.http.host, args.port or settings.http.port)
        )
    except SchemaOutOfDate as exc:
        print(f"callcenter: {exc}")
        return 1
    except OSError as exc:
        print(f"callcenter: cannot listen: {exc}. Choose another port with --port.")
        return 1
    return 0
