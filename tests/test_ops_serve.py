"""`callcenter serve` as the process supervisor runs it: JSON lines on a pipe, /readyz, and a
clean stop on SIGTERM (systemd's and docker's stop signal)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "callcenter"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def test_serve_answers_readyz_logs_json_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CALLCENTER_DATA_DIR": str(tmp_path),
        "CALLCENTER_OPS__LOG_FORMAT": "auto",  # stderr is a pipe here: JSON
        "CALLCENTER_OPS__METRICS_TOKEN": "serve-test-scrape-token",
    }
    env.pop("CALLCENTER_CONFIG", None)
    env.pop("CALLCENTER_DATABASE_URL", None)
    subprocess.run([*CLI, "db", "upgrade"], env=env, cwd=ROOT, check=True, timeout=300)
    port = _free_port()
    proc = subprocess.Popen(
        [*CLI, "-v", "serve", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240  # a loaded machine starts slowly; never a pace
        while not _ready(f"http://127.0.0.1:{port}/readyz"):
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "not ready in 240 s"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    messages = [str(r["message"]) for r in lines]
    assert any("stop requested" in m for m in messages)
    assert any(m.startswith("dialer engine stopped") for m in messages), messages[-10:]
    assert "serve-test-scrape-token" not in err
