"""The dialer's service API, for the HTTP layer (seats and supervisors) and the composition root.

Wiring (callcenter/bootstrap.py)::

    engine = DialerEngine(sessions, clock, [AmiServerSpec("pbx1", AmiConfig(...), DialPlan(...))],
                          plan=calling_plan, retry=RetryConfig(), config=DialerConfig(...),
                          on_attempt_ended=hook)      # optional, in memory: see AttemptEnded
    service = DialerService(engine)

    async def dialer_ctx(app):                        # aiohttp cleanup_ctx: one owner
        await engine.start()
        yield
        await engine.stop()

Methods (all `async` unless noted; each returns plain JSON-able dicts; errors are
`dialer.exceptions.DialerError` subclasses with `.reason` and an HTTP `.status` hint):

Seats (a specialist acts on their own seat; the HTTP layer passes the principal's id):
* `sign_in(specialist_id, seat=None, ready=False)` — sign in at the specialist's configured
  device (e.g. `PJSIP/8001`); any other `seat` is refused (NotYourSeat, 403); starts paused
  unless `ready`.
* `sign_out(specialist_id)`, `ready(specialist_id)`, `pause(specialist_id, reason)`.
* `seat(specialist_id)` — state, since, pause reason, current attempt.
* `seats()` — every signed-in seat (supervisor view).
* `current_call(specialist_id)` — the screen pop: the call (or preview offer, or the call
  just finished during wrap-up) with its customer, phone, lead and policy; None if idle.
* `confirm_preview(specialist_id)` / `skip_preview(specialist_id)` — preview mode.
* `dispose(lead_id, specialist_id, result_code, callback_at=None, note=None)` — the
  specialist's conversational contact result; only on their own leads (NotYourLead);
  `callback` without a time books the next calling window; a time outside the windows
  moves to the next window's start. Ends the wrap-up early.

Supervisors:
* `campaigns()` / `campaign_status()`, `start_campaign(name)`, `stop_campaign(name)`,
  `update_campaign(name, mode=…, concurrency=…, trunk_max_calls=…, trunk_max_cps=…)`.
* `live_calls()` (sync) — every call in flight on this process.
* `health()` (sync) — each AMI link's state and what its manager.conf user lacks
  (`dialer.readcheck`), for `GET /api/health` (any signed-in role).
* `hang_up(attempt_id)` — end a call of this process (AMI Hangup; outcome
  `hung_up_by_action`); `hung_up` is false if the call has no channel up.
* `add_do_not_call(number, reason)`, `remove_do_not_call(number)`.

Reports:
* `inaccurate_numbers_by_branch(session, day)` (module function, from dialer.results) — for
  the daily branch e-mail.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select

from crm_sync.dialplan import caller_id_problem, sound_problem
from crm_sync.models import Customer, Lead, Phone, Policy, Specialist
from crm_sync.phones import normalise_number
from dialer.campaigns import SPECIALIST_MODES, CampaignInfo
from dialer.engine import DialerEngine
from dialer.exceptions import DialerError, NotAPhoneNumber, UnknownCampaign
from dialer.models import (
    CallAttempt,
    Campaign,
    CampaignKind,
    DialMode,
    DoNotCall,
    Pacing,
    SeatState,
)
from dialer.pool import (
    PacingSettings,
    abandon_rates,
    pacing_limits,
    pool_members,
    set_pool_members,
)
from dialer.results import dispose as _dispose
from dialer.results import inaccurate_numbers_by_branch
from dialer.seats import iso, seat_view

_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_AUTOMATIC_KINDS = frozenset({CampaignKind.CALLBACK.value, CampaignKind.REMINDER.value})


def _int(field: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise DialerError(f"{field} must be a whole number from {low} to {high}")
    return value


def modes_for(kind: str) -> frozenset[str]:
    """The dial modes a campaign of `kind` may use: automatic kinds have no specialist."""
    if kind in _AUTOMATIC_KINDS:
        return frozenset({DialMode.AUTOMATIC.value})
    return frozenset(m.value for m in SPECIALIST_MODES)


PACING_FIELDS = ("pooled", "pacing", "pacing_ratio_cap", "target_abandon", "abandon_cap")


def campaign_changes(kind: str, changes: dict[str, Any]) -> dict[str, Any]:
    """Validated settings for a campaign of `kind`; None means "leave as is". The values go
    into Originate headers and the pacing, so only known fields with sane values pass."""
    out: dict[str, Any] = {}
    for field_, value in changes.items():
        if value is None:
            continue
        if field_ == "mode":
            allowed = modes_for(kind)
            if value not in allowed:
                raise DialerError(
                    f"mode of a {kind} campaign must be one of {', '.join(sorted(allowed))}"
                )
        elif field_ == "concurrency":
            value = _int(field_, value, 0, 1000)
        elif field_ == "trunk_max_calls":
            value = _int(field_, value, 0, 10_000)
        elif field_ == "trunk_max_cps":
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not 0 < value <= 1000
            ):
                raise DialerError("trunk_max_cps must be a number above 0 and at most 1000")
            value = float(value)
        elif field_ == "trunk":
            if not isinstance(value, str) or not _NAME.fullmatch(value):
                raise DialerError("trunk must be an endpoint name (letters, digits, _ . -)")
        elif field_ == "caller_id":
            problem = (
                caller_id_problem(value) if isinstance(value, str) else "caller_id must be text"
            )
            if problem:
                raise DialerError(f"caller_id: {problem}")
        elif field_ == "pooled":
            if not isinstance(value, bool):
                raise DialerError("pooled must be true or false")
            if value and kind == CampaignKind.REMINDER.value:
                raise DialerError("a reminder campaign has no specialists: it cannot be pooled")
        elif field_ == "pacing":
            if value not in {p.value for p in Pacing}:
                raise DialerError(f"pacing must be one of {', '.join(p.value for p in Pacing)}")
        elif field_ in ("pacing_ratio_cap", "target_abandon", "abandon_cap"):
            low, high = (1.0, 20.0) if field_ == "pacing_ratio_cap" else (0.0, 0.5)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not low <= value <= high
            ):
                raise DialerError(f"{field_} must be a number from {low} to {high}")
            value = float(value)
        elif field_ == "message":
            problem = sound_problem(value) if isinstance(value, str) else "message must be text"
            if problem:
                raise DialerError(f"message: {problem}")
        else:
            raise DialerError(f"cannot change {field_!r} of a campaign")
        out[field_] = value
    return out


class DialerService:
    def __init__(self, engine: DialerEngine) -> None:
        self.engine = engine
        self.sessions = engine.sessions
        self.clock = engine.clock

    # -- seats ----------------------------------------------------------------------------------

    async def sign_in(
        self, specialist_id: int, seat: str | None = None, ready: bool = False
    ) -> dict[str, Any]:
        return seat_view(await self.engine.sign_in(specialist_id, seat, ready=ready))

    async def sign_out(self, specialist_id: int) -> dict[str, Any]:
        return seat_view(await self.engine.sign_out(specialist_id))

    async def ready(self, specialist_id: int) -> dict[str, Any]:
        return seat_view(await self.engine.set_ready(specialist_id))

    async def pause(self, specialist_id: int, reason: str) -> dict[str, Any]:
        return seat_view(await self.engine.pause(specialist_id, reason))

    async def seat(self, specialist_id: int) -> dict[str, Any]:
        return seat_view(self.engine.seat_of(specialist_id))

    async def seats(self) -> list[dict[str, Any]]:
        return [seat_view(s) for s in self.engine.signed_in_seats()]

    async def current_call(self, specialist_id: int) -> dict[str, Any] | None:
        seat = self.engine.seat_of(specialist_id)
        async with self.sessions() as s:
            attempt: CallAttempt | None = None
            if seat.attempt_id is not None:
                attempt = (
                    await s.scalars(
                        select(CallAttempt).where(CallAttempt.attempt_id == seat.attempt_id)
                    )
                ).one_or_none()
            elif seat.state is SeatState.WRAP_UP:
                attempt = (
                    await s.scalars(
                        select(CallAttempt)
                        .where(
                            CallAttempt.specialist_id == specialist_id,
                            # the call just over, not the next lead claimed meanwhile
                            CallAttempt.ended_at.is_not(None),
                        )
                        .order_by(CallAttempt.created_at.desc(), CallAttempt.id.desc())
                        .limit(1)
                    )
                ).first()
            if attempt is None:
                return None
            lead = await s.get(Lead, attempt.lead_id)
            assert lead is not None
            policy = await s.get(Policy, lead.policy_id)
            assert policy is not None
            customer = await s.get(Customer, policy.policyholder_id)
            phone = await s.get(Phone, attempt.phone_id) if attempt.phone_id else None
            return {
                "seat": seat_view(seat),
                "attempt": {
                    "attempt_id": attempt.attempt_id,
                    "state": attempt.state,
                    "mode": attempt.mode,
                    "number": attempt.number,
                    "outcome": attempt.outcome,
                    "created_at": iso(attempt.created_at),
                    "answered_at": iso(attempt.answered_at),
                },
                "lead": {
                    "id": lead.id,
                    "kind": lead.kind,
                    "status": lead.status,
                    "contact_result": lead.contact_result,
                    "callback_at": iso(lead.callback_at),
                    "attempt_count": lead.attempt_count,
                },
                "customer": {
                    "id": customer.id if customer else None,
                    "name": customer.name if customer else None,
                    "address": customer.address if customer else None,
                    "phone": phone.e164 if phone else attempt.number,
                    "phone_accuracy": phone.accuracy if phone else None,
                },
                "policy": {
                    "id": policy.id,
                    "policy_number": policy.policy_number,
                    "plate_number": policy.plate_number,
                    "make_model": policy.make_model,
                    "expiry_date": policy.expiry_date.isoformat(),
                    "premium": str(policy.premium) if policy.premium is not None else None,
                },
            }

    async def confirm_preview(self, specialist_id: int) -> dict[str, Any]:
        attempt_id = await self.engine.confirm_preview(specialist_id)
        return {"attempt_id": attempt_id, **seat_view(self.engine.seat_of(specialist_id))}

    async def skip_preview(self, specialist_id: int) -> dict[str, Any]:
        await self.engine.skip_preview(specialist_id)
        return seat_view(self.engine.seat_of(specialist_id))

    # -- results --------------------------------------------------------------------------------

    async def dispose(
        self,
        lead_id: int,
        specialist_id: int,
        result_code: str,
        callback_at: datetime | None = None,
        note: str | None = None,
    ) -> dict[str, Any]:
        async with self.sessions() as s:
            lead = await _dispose(
                s,
                lead_id,
                specialist_id,
                result_code,
                callback_at=callback_at,
                note=note,
                now=self.clock.now(),
                hours_for=self.engine.hours_for,
            )
            view = {
                "lead_id": lead.id,
                "status": lead.status,
                "contact_result": lead.contact_result,
                "callback_at": iso(lead.callback_at),
                "next_attempt_at": iso(lead.next_attempt_at),
            }
            await s.commit()
        self.engine.after_dispose(specialist_id, lead_id)
        return view

    # -- campaigns ------------------------------------------------------------------------------

    async def campaigns(self) -> list[dict[str, Any]]:
        return [asdict(c) for c in self.engine.campaigns()]

    async def campaign_status(self) -> list[dict[str, Any]]:
        live = self.engine.live_calls()
        out = []
        for c in self.engine.campaigns():
            d = asdict(c)
            d["calls_in_flight"] = sum(1 for x in live if x["campaign_kind"] == c.kind)
            out.append(d)
        return out

    async def start_campaign(self, name: str) -> dict[str, Any]:
        return asdict(await self.engine.set_campaign(name, running=True))

    async def stop_campaign(self, name: str) -> dict[str, Any]:
        return asdict(await self.engine.set_campaign(name, running=False))

    async def update_campaign(self, name: str, **changes: Any) -> dict[str, Any]:
        """Change a campaign's settings; every value is checked first (DialerError, 400)."""
        async with self.sessions() as s:
            camp = await s.scalar(select(Campaign).where(Campaign.name == name))
        if camp is None:
            raise UnknownCampaign(f"no campaign {name!r}")
        clean = campaign_changes(camp.kind, changes)
        # The pacing settings together: the target within the cap, the cap within the law.
        merged = {f: clean.get(f, getattr(camp, f)) for f in PACING_FIELDS}
        pacing_limits(PacingSettings(**merged), self.engine.config.legal_max_abandon)
        return asdict(await self.engine.set_campaign(name, **clean))

    async def abandon_rates(self, name: str) -> dict[str, Any]:
        """A pooled campaign's live (today) and rolling 30-day abandon rates, with its caps."""
        info = self._campaign(name)
        today = self.engine.windows.plan.default.local_date(self.clock.now())
        async with self.sessions() as s:
            rates = await abandon_rates(s, info.id, today)
        return {
            "campaign": info.name,
            "day": today.isoformat(),
            "pooled": info.pooled,
            "pacing": info.pacing,
            "pacing_ratio_cap": info.pacing_ratio_cap,
            "target_abandon": info.target_abandon,
            "abandon_cap": info.abandon_cap,
            "legal_max_abandon": self.engine.config.legal_max_abandon,
            **rates,
        }

    async def pool(self, name: str) -> dict[str, Any]:
        info = self._campaign(name)
        async with self.sessions() as s:
            members = await pool_members(s, info.id)
        return {
            "campaign": info.name,
            "members": [{"specialist_id": k, "share": v} for k, v in sorted(members.items())],
        }

    async def set_pool(self, name: str, members: dict[int, str]) -> dict[str, Any]:
        """Replace a pooled campaign's members (specialist id -> share)."""
        info = self._campaign(name)
        async with self.sessions() as s:
            known = set(
                await s.scalars(select(Specialist.id).where(Specialist.id.in_(list(members))))
            )
            unknown = sorted(set(members) - known)
            if unknown:
                raise DialerError(f"no specialist {unknown}: list them with GET /api/specialists")
            await set_pool_members(s, info.id, members)
            await s.commit()
        return await self.pool(name)

    def _campaign(self, name: str) -> CampaignInfo:
        for c in self.engine.campaigns():
            if c.name == name:
                return c
        raise UnknownCampaign(f"no campaign {name!r}: see GET /api/campaigns")

    def health(self) -> dict[str, Any]:
        """The AMI links and the configuration warnings (sync). `ok` is false while a link is
        down or a warning holds."""
        links = self.engine.health()
        ok = all(link["connected"] and not link["warnings"] for link in links)
        return {"ok": ok, "ami": links}

    def live_calls(self) -> list[dict[str, Any]]:
        return self.engine.live_calls()

    async def hang_up(self, attempt_id: str) -> dict[str, Any]:
        return {"attempt_id": attempt_id, "hung_up": await self.engine.hang_up(attempt_id)}

    # -- do not call ----------------------------------------------------------------------------

    async def add_do_not_call(self, number: str, reason: str | None = None) -> str:
        """Block `number` in whatever form it is written; returns the E.164 form stored.

        The claim query compares E.164 strings, so a number stored as written ("+86 138…",
        full-width digits) would block nothing: it is normalised by the import's rules, and
        what is not one phone number is refused."""
        e164 = do_not_call_number(number)
        async with self.sessions() as s:
            if await s.get(DoNotCall, e164) is None:
                s.add(DoNotCall(number=e164, reason=reason, added_at=self.clock.now()))
                await s.commit()
        return e164

    async def remove_do_not_call(self, number: str) -> str:
        e164 = do_not_call_number(number)
        async with self.sessions() as s:
            await s.execute(delete(DoNotCall).where(DoNotCall.number == e164))
            await s.commit()
        return e164


DO_NOT_CALL_EXAMPLE = "write one number, e.g. +8613800138000, 138 0013 8000 or 0311-85551234"


def do_not_call_number(number: str) -> str:
    try:
        return normalise_number(number)
    except ValueError as exc:
        raise NotAPhoneNumber(
            f"not a phone number for the do-not-call list ({exc}); {DO_NOT_CALL_EXAMPLE}"
        ) from None


__all__ = ["DialerService", "inaccurate_numbers_by_branch", "seat_view"]
