"""What a supervisor can do about each alert of the board (issue 15: "act on every alert").

Each alert carries its `actions` (`alert_actions`, pure): a POST the board sends from the
alert itself, or a link to the page where it is dealt with:

| alert | on the board | link |
|---|---|---|
| seat paused too long | end the pause (`Supervising.end_pause`) | – |
| abandon rate near the cap | stop the campaign (`POST /api/campaigns/{name}/stop`) | the campaigns page (mode, concurrency) |
| leads without a result near node 3's deadline | release them to the pool (`release_missing`) | the distribution page (who is left out) |
| AMI link down, a process silent | – | the links' health |
| old undelivered CRM messages | retry now (`retry_outbox`) | the outbox's pending messages |

The two database remedies here are audited in `supervisor_actions` like the actions on calls
(`release`, `outbox_retry`), done at once by the process asked (no AMI involved).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import time
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callcenter.board.models import SupervisorAction
from callcenter.pages.services import previous_working_day
from common.clock import Clock
from common.principal import Principal
from crm_sync.models import Lead, LeadStatus, OutboxMessage, OutboxState
from crm_sync.relay import CHANNEL as OUTBOX_CHANNEL
from dialer.models import CallAttempt, CampaignKind
from schedules.windows import CallingHours

log = logging.getLogger(__name__)


def _post(do: str, url: str, *, confirm: bool = False) -> dict[str, Any]:
    return {"do": do, "method": "POST", "url": url, "confirm": confirm}


def _link(do: str, url: str) -> dict[str, Any]:
    return {"do": do, "method": "GET", "url": url, "confirm": False}


def alert_actions(
    alert: Mapping[str, Any], campaign_names: Mapping[str, str]
) -> list[dict[str, Any]]:
    """The actions of one alert (`campaign_names`: kind -> campaign name)."""
    code, p = alert["code"], alert.get("params", {})
    if code == "seat_paused":
        return [_post("unpause", f"/api/board/seats/{p['specialist_id']}/unpause")]
    if code == "abandon_rate":
        out = [_link("campaigns", "/desk/campaigns")]
        name = campaign_names.get(p.get("kind", ""))
        if name:
            out.insert(0, _post("stop_campaign", f"/api/campaigns/{name}/stop", confirm=True))
        return out
    if code == "deadline":
        return [
            _post("release", "/api/board/deadline/release", confirm=True),
            _link("distribution", "/desk/distribution"),
        ]
    if code in ("link_down", "process_silent"):
        return [_link("health", "/api/health")]
    if code == "outbox_old":
        return [
            _post("retry_outbox", "/api/board/outbox/retry"),
            _link("outbox", "/api/outbox?state=pending"),
        ]
    return []


def with_actions(
    alerts: Iterable[dict[str, Any]], campaigns: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    names = {c["kind"]: c["name"] for c in campaigns}
    return [{**a, "actions": alert_actions(a, names)} for a in alerts]


class Remedies:
    """Releasing the leads that miss node 3's deadline, and retrying the CRM outbox now."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        hours_for: Callable[[str], CallingHours],
        tz: str,
        owner: str,
        result_deadline: time = time(17, 0),
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.hours_for = hours_for
        self.tz = tz
        self.owner = owner
        self.result_deadline = result_deadline

    def _audit(
        self, s: AsyncSession, who: Principal, action: str, whom: int | None, message: str
    ) -> SupervisorAction:
        now = self.clock.now()
        row = SupervisorAction(
            supervisor_id=who.user_id,
            action=action,
            attempt_id="",
            specialist_id=whom,
            owner=self.owner,
            status="done",
            message=message,
            requested_at=now,
            done_at=now,
        )
        s.add(row)
        return row

    async def release_missing(self, who: Principal) -> dict[str, Any]:
        """Node 3: the leads handed out on the previous working day that still carry no
        contact result go back to the pool (no owner, due: the next distribution deals them
        again), except those on a call right now. One audit row per specialist who had them."""
        now = self.clock.now()
        hours = self.hours_for(CampaignKind.RENEWAL.value)
        handed_on = previous_working_day(hours, hours.local_date(now, self.tz))
        on_a_call = select(CallAttempt.lead_id).where(CallAttempt.ended_at.is_(None))
        async with self.sessions() as s:
            leads = (
                await s.scalars(
                    select(Lead)
                    .where(
                        Lead.distributed_on == handed_on,
                        Lead.contact_result.is_(None),
                        Lead.status != LeadStatus.CLOSED.value,
                        Lead.id.not_in(on_a_call),
                    )
                    .order_by(Lead.id)
                    .with_for_update()
                )
            ).all()
            by_owner: dict[int | None, list[int]] = {}
            for lead in leads:
                by_owner.setdefault(lead.owner_id, []).append(lead.id)
                lead.owner_id = lead.distributed_on = None  # both or neither (a check)
                lead.status = LeadStatus.DUE.value
                lead.next_attempt_at = None
                lead.updated_at = now
            for owner_id, ids in by_owner.items():
                self._audit(
                    s,
                    who,
                    "release",
                    owner_id,
                    f"{len(ids)} leads handed out {handed_on.isoformat()} without a contact "
                    f"result released to the pool: {', '.join(map(str, ids))}",
                )
            await s.commit()
        log.info("supervisor %s released %d leads to the pool", who.user_id, len(leads))
        return {
            "released": len(leads),
            "handed_out_on": handed_on.isoformat(),
            "by_specialist": {str(k): len(v) for k, v in by_owner.items()},
        }

    async def retry_outbox(self, who: Principal) -> dict[str, Any]:
        """Undelivered CRM messages waiting out a backoff are due now; the relays are woken
        (NOTIFY on PostgreSQL; SQLite's relays poll)."""
        now = self.clock.now()
        o = OutboxMessage
        async with self.sessions() as s:
            done = await s.execute(
                update(o)
                .where(
                    o.state == OutboxState.PENDING.value,
                    o.delivered_at.is_(None),
                    o.next_try_at.is_not(None),
                    o.next_try_at > now,
                )
                .values(next_try_at=now)
            )
            n = int(done.rowcount or 0)  # type: ignore[attr-defined]
            self._audit(s, who, "outbox_retry", None, f"{n} CRM messages due again now")
            if s.get_bind().dialect.name == "postgresql":
                await s.execute(text("SELECT pg_notify(:c, '')"), {"c": OUTBOX_CHANNEL})
            await s.commit()
        log.info("supervisor %s: %d outbox messages due now", who.user_id, n)
        return {"due_now": n}


__all__ = ["Remedies", "alert_actions", "with_actions"]
