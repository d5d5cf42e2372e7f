"""The board's pure core: what a seat, a call and an AMI link look like on the board, the
rates, and the alerts. Plain data in, plain data out; `now` is given."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol

from callcenter.board.config import BoardSettings
from dialer.seats import Seat, seat_view

Key = tuple[str, str]  # (kind, key): ("seat", "12"), ("call", "att-…"), ("link", "pbx1")


class Trunk(Protocol):
    active: int
    max_calls: int


def seat_entry(seat: Seat) -> dict[str, Any]:
    """The dialer's view of the seat, less the preview flag the board does not show."""
    entry = seat_view(seat)
    del entry["preview"]
    return entry


def mask_number(number: str) -> str:
    """A wall display shows whose call it is, not the customer's full number."""
    if len(number) <= 7:
        return number[:2] + "*" * max(0, len(number) - 2)
    return number[:3] + "*" * (len(number) - 7) + number[-4:]


class LiveCall(Protocol):
    attempt_id: str
    specialist_id: int | None
    seat: str | None
    number: str
    mode: str
    kind: str
    server: str


def call_entry(live: LiveCall, state: str, started: str, answered: str | None) -> dict[str, Any]:
    return {
        "attempt_id": live.attempt_id,
        "specialist_id": live.specialist_id,
        "seat": live.seat,
        "number": mask_number(live.number),
        "mode": live.mode,
        "kind": live.kind,
        "server": live.server,
        "state": state,
        "started": started,
        "answered": answered,
    }


def link_entry(health: Mapping[str, Any], trunks: Mapping[str, Trunk]) -> dict[str, Any]:
    return {
        "server": health["server"],
        "connected": bool(health["connected"]),
        "warnings": list(health.get("warnings") or []),
        "trunks": {
            name: {"active": t.active, "max": t.max_calls} for name, t in sorted(trunks.items())
        },
    }


def rate(part: int, whole: int) -> float | None:
    return None if whole <= 0 else round(part / whole, 4)


def abandon_rate(abandoned: int, answered: int) -> float | None:
    """Abandoned calls over the calls a customer picked up (answered + abandoned)."""
    return rate(abandoned, answered + abandoned)


def _alert(code: str, level: str, key: str, **params: Any) -> dict[str, Any]:
    return {"code": code, "level": level, "key": key, "params": params}


def seat_alerts(
    seats: Iterable[Mapping[str, Any]], now: datetime, cfg: BoardSettings
) -> list[dict[str, Any]]:
    out = []
    limit = timedelta(minutes=cfg.pause_alert_minutes)
    for s in seats:
        if s.get("state") != "paused" or not s.get("since"):
            continue
        paused = now - datetime.fromisoformat(s["since"])
        if paused >= limit:
            out.append(
                _alert(
                    "seat_paused",
                    "warn",
                    f"seat_paused:{s['specialist_id']}",
                    specialist_id=s["specialist_id"],
                    seat=s["seat"],
                    minutes=int(paused.total_seconds() // 60),
                    reason=s.get("pause_reason"),
                )
            )
    return out


def link_alerts(
    links: Iterable[Mapping[str, Any]], stale_owners: Iterable[str]
) -> list[dict[str, Any]]:
    out = [
        _alert("link_down", "alarm", f"link_down:{link['server']}", server=link["server"])
        for link in links
        if not link.get("connected")
    ]
    out += [
        _alert("process_silent", "alarm", f"process_silent:{owner}", owner=owner)
        for owner in stale_owners
    ]
    return out


def campaign_alerts(
    campaigns: Iterable[Mapping[str, Any]], cfg: BoardSettings
) -> list[dict[str, Any]]:
    out = []
    for c in campaigns:
        today = c["today"]
        answered = today["answered"] + today["abandoned"]
        r = abandon_rate(today["abandoned"], today["answered"])
        if r is None or answered < cfg.abandon_min_answered:
            continue
        if r >= cfg.abandon_rate_cap * cfg.abandon_warn_fraction:
            out.append(
                _alert(
                    "abandon_rate",
                    "alarm" if r >= cfg.abandon_rate_cap else "warn",
                    f"abandon_rate:{c['kind']}",
                    kind=c["kind"],
                    rate=r,
                    cap=cfg.abandon_rate_cap,
                )
            )
    return out


def deadline_alert(
    missing: int, deadline: datetime, now: datetime, cfg: BoardSettings
) -> list[dict[str, Any]]:
    """Leads handed out on the previous working day still without a contact result, from
    `deadline_warn_minutes` before node 3's deadline (and after it, as an alarm)."""
    if missing <= 0 or now < deadline - timedelta(minutes=cfg.deadline_warn_minutes):
        return []
    left = int((deadline - now).total_seconds() // 60)
    return [
        _alert(
            "deadline",
            "alarm" if left <= 0 else "warn",
            "deadline",
            leads=missing,
            minutes_left=max(0, left),
            due_at=deadline.isoformat(),
        )
    ]


def outbox_alert(
    pending: int, oldest: datetime | None, now: datetime, cfg: BoardSettings
) -> list[dict[str, Any]]:
    if not pending or oldest is None:
        return []
    age = now - oldest
    if age < timedelta(minutes=cfg.outbox_age_minutes):
        return []
    return [
        _alert(
            "outbox_old",
            "warn",
            "outbox_old",
            messages=pending,
            minutes=int(age.total_seconds() // 60),
        )
    ]


def stale_owners(
    processes: Iterable[Mapping[str, Any]], now: datetime, cfg: BoardSettings
) -> list[str]:
    """Processes whose heartbeat is older than `stale_after_seconds`."""
    limit = timedelta(seconds=cfg.stale_after_seconds)
    return sorted(p["owner"] for p in processes if now - datetime.fromisoformat(p["at"]) > limit)
