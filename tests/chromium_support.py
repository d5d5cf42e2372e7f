"""One headless Chromium per test process, shared by the browser tests (no tests here).

Launching Chromium through Playwright for every test cost 1-2.5 s a test (more under load)
and closing it up to another second. The process started here lives for the test session
(`chromium` fixture, tests/conftest.py); each test connects to it over the DevTools protocol
(`connect_over_cdp`) and works in browser contexts of its own, which share no cookies,
storage or cache with other tests' contexts, and are closed when the test disconnects.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
START_TIMEOUT = 60.0  # real seconds; Chromium starts in about one on an idle machine


class SharedChromium:
    """A Chromium process listening for DevTools clients on a loopback port of its choosing;
    started again if it has died (a test that crashed it then fails alone)."""

    def __init__(self, profile: Path) -> None:
        self._profile = profile
        self._proc: subprocess.Popen[bytes] | None = None
        self._endpoint = ""

    def endpoint(self) -> str:
        """The browser's DevTools web-socket URL, starting Chromium if it is not running."""
        if self._proc is None or self._proc.poll() is not None:
            self._start()
        return self._endpoint

    def _start(self) -> None:
        if not Path(CHROMIUM).exists():
            raise RuntimeError(
                f"{CHROMIUM} is missing: `make test` installs it (apt-get install chromium)"
            )
        port_file = self._profile / "DevToolsActivePort"
        port_file.unlink(missing_ok=True)
        self._proc = subprocess.Popen(
            [
                CHROMIUM,
                *CHROMIUM_ARGS,
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                f"--user-data-dir={self._profile}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # Chromium writes the port it chose, then the browser's path, once it listens.
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            lines = port_file.read_text().splitlines() if port_file.exists() else []
            if len(lines) >= 2:
                self._endpoint = f"ws://127.0.0.1:{lines[0]}{lines[1]}"
                return
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Chromium did not start (exit {self._proc.returncode})")
            time.sleep(0.05)  # polling another process's start-up, not simulating time

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
