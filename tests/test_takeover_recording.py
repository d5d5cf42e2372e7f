"""A call a supervisor moves to another seat keeps one recording (issue 15).

After the Redirect the customer's channel runs connect-seat again. Before, that started a
second MixMonitor: on a seat-first call a second file (the attempt then named only the new
seat's part, and the old seat's part was never ingested); on a customer-first call a second
MixMonitor on the same file, which truncates it. Now (docker/asterisk/extensions.conf, the
simulator's `_connect_seat_recording`) a channel that records already keeps its MixMonitor,
and a seat-first call's customer appends to the file the old seat's channel recorded
(RECORDING, set by the move; MixMonitor option `a`). The simulator writes the WAV files, so
the test reads what was recorded: one file, with both seats' parts."""

from __future__ import annotations

import wave
from pathlib import Path, PurePosixPath

import pytest
from sqlalchemy import select

from dialer.models import CallAttempt
from tests.seat_page_support import Site, drive_until, site_fixture  # noqa: F401
from tests.test_board_api import _board, _talking, free_seat


def _events(seen: list[str], name: str) -> list[dict[str, str]]:
    out = []
    for raw in seen:
        if raw.startswith(f"Event: {name}\r\n"):
            lines = (line.partition(": ") for line in raw.split("\r\n") if ": " in line)
            out.append({k: v for k, _, v in lines})
    return out


def _recorded(folder: Path) -> dict[str, float]:
    """The WAV files the simulator wrote, with their seconds of audio."""
    out = {}
    for path in sorted(folder.glob("*.wav")):
        with wave.open(str(path)) as w:
            out[path.name] = w.getnframes() / w.getframerate()
    return out


@pytest.mark.parametrize("mode", ["seat_first", "customer_first"])
async def test_a_moved_call_keeps_one_recording_with_both_seats_parts(
    site: Site, tmp_path: Path, mode: str
) -> None:
    site.sim.pbx.monitor_dir = tmp_path
    if mode == "customer_first":
        await site.service.dialer.update_campaign("renewal", mode=mode)
    attempt = await _talking(site)
    live = site.service.engine.live_attempt(attempt)
    assert live is not None and live.recording, "the call records from its first bridge"
    first = live.recording
    lina = site.specialists[1]
    await free_seat(site)
    await site.clock.advance(10.0)  # 王芳 talks a while first
    seen: list[str] = []
    site.sim.pbx.sinks.add(lambda data, _cls: seen.append(data.decode()))
    resp = await site.client.post(
        f"/api/board/calls/{attempt}/move", headers=site.bearer(), json={"to": str(lina)}
    )
    assert resp.status == 200, await resp.text()

    async def with_lina() -> bool:
        seat = (await _board(site))["seat"][str(lina)]
        return bool(seat["state"] == "on_call")

    await drive_until(site.clock, with_lina)

    async def written() -> bool:
        async with site.service.container.sessions() as s:
            row = await s.scalar(select(CallAttempt).where(CallAttempt.attempt_id == attempt))
        return row is not None and row.outcome is not None

    await drive_until(site.clock, written, step=1.0)
    monitors = [e for e in _events(seen, "Newexten") if e.get("Application") == "MixMonitor"]
    if mode == "seat_first":  # the customer's channel appends to the seat's file
        assert [e["AppData"] for e in monitors] == [f"{first},ab"]
    else:  # the customer's channel records already: no second MixMonitor
        assert monitors == []
    names = {e["Value"] for e in _events(seen, "VarSet") if e["Variable"] == "MIXMONITOR_FILENAME"}
    assert names <= {first}
    async with site.service.container.sessions() as s:
        row = await s.scalar(select(CallAttempt).where(CallAttempt.attempt_id == attempt))
    assert row is not None and row.recording_file == first, "the attempt names the one file"
    files = _recorded(tmp_path)
    assert list(files) == [PurePosixPath(first).name], "one call, one recording"
    seconds = files[PurePosixPath(first).name]
    # The customer talks 56 s in all (digit 7), split between the seats: 王芳's part is 10 s
    # and a little more, 李娜's the rest; either part alone is under 50 s.
    assert 50.0 < seconds <= 56.5, f"both parts recorded, not one: {seconds:.1f} s"
