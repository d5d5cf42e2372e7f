"""What the desk pages ask for, over the services the JSON API already uses (recordings,
the daily distribution, the dialer's campaigns and seats, logins): names for ids, the next
recording of a list, the distribution's audit over past days, and the people on the desk
with where they are signed in. The only new action is adding a person with a seat and a
login in one step (the API has the two halves)."""

from __future__ import annotations

import dataclasses
import logging
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callcenter.pages.accounts import Accounts, check_password_rules
from callcenter.pages.models import WebLogin, WebSession
from callcenter.pages.services import contact_results
from common.clock import Clock
from common.principal import Principal
from common.web import require_supervisor
from crm_sync.exceptions import SpecialistError
from crm_sync.models import Specialist as _S
from crm_sync.specialists import add_specialist, list_specialists, set_specialist_state
from dialer.services import DialerService
from recordings.listing import RecordingFilter
from recordings.services import RecordingsService
from schedules.services import DeskService

log = logging.getLogger(__name__)

AUDIT_DAYS = 7  # the distribution page shows the runs of this many past days
NEXT_WINDOW = 500  # the "next recording" key looks this far down the filtered list


class DeskPages:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        tz: str,
        *,
        accounts: Accounts,
        dialer: DialerService,
        recordings: RecordingsService,
        distribution: DeskService,
        technologies: tuple[str, ...],
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.tz = tz
        self.accounts = accounts
        self.dialer = dialer
        self.recordings = recordings
        self.distribution = distribution
        self.technologies = technologies

    def today(self) -> date:
        return self.clock.now().astimezone(ZoneInfo(self.tz)).date()

    # -- names ---------------------------------------------------------------------------
    async def names(self) -> dict[int, str]:
        async with self.sessions() as s:
            rows = await s.execute(select(_S.id, _S.name).order_by(_S.id))
            return {r.id: r.name for r in rows}

    async def specialists(self) -> list[dict[str, Any]]:
        """The people whose recordings a supervisor may filter on (role specialist)."""
        async with self.sessions() as s:
            people = await list_specialists(s)
        return [p for p in people if p["role"] == "specialist"]

    async def results(self, lang: str) -> dict[str, str]:
        """The standard contact results' labels in `lang`, by code."""
        async with self.sessions() as s:
            rows = await contact_results(s)
        return {r["code"]: r["label_zh"] if lang == "zh_CN" else r["label_en"] for r in rows}

    # -- recordings ----------------------------------------------------------------------
    async def recordings_page(self, viewer: Principal, f: RecordingFilter) -> dict[str, Any]:
        page = await self.recordings.list(viewer, f)
        names = await self.names()
        for item in page["items"]:
            item["specialist"] = names.get(item["specialist_id"] or 0)
        return page

    async def next_recording(
        self, viewer: Principal, f: RecordingFilter, current: int
    ) -> int | None:
        """The recording after `current` in the list `f` gives (None: the last one)."""
        window = dataclasses.replace(f, limit=NEXT_WINDOW, offset=0)
        ids = [item["id"] for item in (await self.recordings.list(viewer, window))["items"]]
        if current in ids:
            at = ids.index(current)
            return ids[at + 1] if at + 1 < len(ids) else None
        return ids[0] if ids else None

    def next_slot(self, kind: str) -> str:
        """The next calling slot's start for `kind`, as the desk's wall clock for a
        datetime-local field: a failed review's callback is offered there by default."""
        hours = self.distribution.desk.hours(kind)
        start = hours.next_slots(self.clock.now(), 1)[0].start
        return start.astimezone(ZoneInfo(self.tz)).strftime("%Y-%m-%dT%H:%M")

    # -- distribution --------------------------------------------------------------------
    async def audit(self, days: int = AUDIT_DAYS) -> list[dict[str, Any]]:
        """The recorded distribution runs of the last `days` days, newest first, with names."""
        names = await self.names()
        today = self.today()
        out: list[dict[str, Any]] = []
        for back in range(days):
            for run in reversed(await self.distribution.runs(today - timedelta(days=back))):
                run["shares"] = [
                    {"id": int(k), "name": names.get(int(k), k), **v}
                    for k, v in sorted((run["counts"] or {}).items(), key=lambda kv: int(kv[0]))
                ]
                out.append(run)
        return out

    # -- people and seats ----------------------------------------------------------------
    async def people(self) -> list[dict[str, Any]]:
        """Everyone on the desk: role, seat, active, on leave, their login, the dialer seat
        they are signed in to (device, state, since) and their open web sessions."""
        now = self.clock.now()
        async with self.sessions() as s:
            people = await list_specialists(s)
            web: dict[int, tuple[int, datetime, str | None]] = {}
            for r in await s.execute(
                select(WebSession.specialist_id, WebSession.created_at, WebSession.address)
                .where(WebSession.expires_at > now)
                .order_by(WebSession.created_at, WebSession.id)
            ):
                count = web.get(r.specialist_id, (0, r.created_at, None))[0]
                web[r.specialist_id] = (count + 1, r.created_at, r.address)
        logins = {u["id"]: u for u in await self.accounts.list()}
        seats = {v["specialist_id"]: v for v in await self.dialer.seats()}
        zone = ZoneInfo(self.tz)
        for p in people:
            login = logins.get(p["id"], {})
            p["username"] = login.get("username")
            p["login_disabled"] = bool(login.get("disabled"))
            p["locked"] = bool(login.get("locked"))
            p["seat_now"] = seats.get(p["id"])
            sessions, last, address = web.get(p["id"], (0, None, None))
            p["web_sessions"] = sessions
            p["web_since"] = last.astimezone(zone).strftime("%m-%d %H:%M") if last else None
            p["web_from"] = address  # the latest sign-in's address
        return people

    async def add_person(
        self,
        who: Principal,
        *,
        name: str,
        seat: str,
        role: str,
        username: str,
        password: str,
        branch: str | None = None,
    ) -> dict[str, Any]:
        """A new specialist (or supervisor) with their seat and web login, in one step.
        Everything is checked before anything is written: a refused name, seat, user name
        or password leaves no half-made person behind."""
        require_supervisor(who)
        check_password_rules(password)
        username = username.strip()
        async with self.sessions() as s:
            taken = await s.scalar(select(WebLogin.username).where(WebLogin.username == username))
            if taken is not None:
                raise SpecialistError(f"user name {username!r} is taken; choose another")
            person = await add_specialist(s, name, seat, branch, role, self.technologies)
            await s.commit()
            pid = person.id
        try:
            await self.accounts.add(pid, username, password)
        except Exception:
            # The login was refused after all (a name taken meanwhile): no person without one.
            async with self.sessions() as s:
                await s.execute(delete(_S).where(_S.id == pid))
                await s.commit()
            raise
        log.info("specialist %s (%s, %s) added by %s", pid, seat, role, who.user_id)
        return {"id": pid, "name": name, "seat": seat, "role": role, "username": username}

    async def set_state(
        self, who: Principal, pid: int, *, active: bool | None, on_leave: bool | None
    ) -> dict[str, Any]:
        """On leave or back; disabled (no sign-ins, tokens revoked, no more leads) or active
        again (the login works again; revoked tokens stay revoked)."""
        require_supervisor(who)
        async with self.sessions() as s:
            person = await set_specialist_state(s, str(pid), active=active, on_leave=on_leave)
            if active:
                await s.execute(
                    update(WebLogin).where(WebLogin.specialist_id == pid).values(disabled_at=None)
                )
            await s.commit()
            view = {"id": person.id, "active": person.active, "on_leave": person.on_leave}
        if active is False:
            await self.accounts.disable(pid)
        return view
