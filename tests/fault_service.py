"""A real service process for the fault suite (no tests here): `callcenter serve`'s wiring
(bootstrap → wire → build_app → aiohttp runner) on the settings in the environment, with the
desk's clock started where the test says (`FAULT_T0`: the epoch second that is Monday
09:30 in Shanghai for the test and every process it starts), so that a calling window is open
whatever the machine's date. The test kills it with SIGKILL.

    CALLCENTER_DATABASE_URL=… CALLCENTER_AMI='[…]' FAULT_T0=… python -m tests.fault_service PORT
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from datetime import timedelta

from callcenter.bootstrap import bootstrap, build_app
from callcenter.service import wire
from callcenter.settings import load_settings
from callcenter.web import make_runner
from common.clock import ScaledClock
from tests.test_dialer_support import MONDAY_0930


def desk_clock(t0: float) -> ScaledClock:
    """Real time, shifted so that the epoch second `t0` reads Monday 09:30 in Shanghai."""
    return ScaledClock(MONDAY_0930 + timedelta(seconds=time.time() - t0), speed=1.0)


async def serve(port: int) -> None:
    settings = load_settings()
    container = await bootstrap(settings, desk_clock(float(os.environ["FAULT_T0"])))
    wire(container, daily_jobs=False)
    runner = make_runner(build_app(container))
    await runner.setup()
    try:
        from aiohttp import web

        await web.TCPSite(runner, "127.0.0.1", port).start()
        print(f"fault service up on {port}", flush=True)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(serve(int(sys.argv[1])))
