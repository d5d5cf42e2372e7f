"""The desk's users: specialists (dial their own leads), supervisors and maintainers.

Added, found, listed, deactivated and put on leave by `callcenter specialists …` and the desk
page; a seat is checked against the configured Asterisk technologies before it is stored.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crm_sync.dialplan import TECHNOLOGY, seat_problem
from crm_sync.exceptions import NotFound, SpecialistError
from crm_sync.models import Branch, Specialist

ROLES = ("specialist", "supervisor", "maintainer")


async def add_specialist(
    session: AsyncSession,
    name: str,
    seat: str,
    branch_code: str | None = None,
    role: str = "specialist",
    technologies: Iterable[str] = TECHNOLOGY.values(),
) -> Specialist:
    """A user of the desk: a specialist (dials their own leads) or a supervisor/maintainer
    (reviews recordings, runs the distribution, sees every lead). `technologies`: the seat
    technologies of the configured Asterisk servers (PJSIP, Local)."""
    if role not in ROLES:
        raise SpecialistError(f"role {role!r} is not one of {', '.join(ROLES)}")
    name = name.strip()
    if not name:
        raise SpecialistError("a specialist needs a name")
    problem = seat_problem(seat, technologies)
    if problem:
        raise SpecialistError(f"seat {seat!r} refused: {problem}")
    branch_id: int | None = None
    if branch_code:
        branch_id = await session.scalar(select(Branch.id).where(Branch.code == branch_code))
        if branch_id is None:
            known = (await session.scalars(select(Branch.code).order_by(Branch.code))).all()
            raise SpecialistError(
                f"no branch with code {branch_code!r}"
                + (f"; known: {', '.join(known)}" if known else "; import a list first")
            )
    if await session.scalar(select(Specialist.id).where(Specialist.seat == seat)) is not None:
        raise SpecialistError(f"seat {seat} already belongs to another specialist")
    specialist = Specialist(name=name, seat=seat, branch_id=branch_id, role=role)
    session.add(specialist)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise SpecialistError(f"seat {seat} already belongs to another specialist") from exc
    return specialist


async def find_specialist(session: AsyncSession, ident: str) -> Specialist:
    """By id (digits) or by seat (PJSIP/8001)."""
    where = Specialist.id == int(ident) if ident.isdigit() else Specialist.seat == ident
    specialist = await session.scalar(select(Specialist).where(where))
    if specialist is None:
        raise NotFound(f"no specialist with {'id' if ident.isdigit() else 'seat'} {ident}")
    return specialist


async def list_specialists(
    session: AsyncSession, include_inactive: bool = True
) -> list[dict[str, Any]]:
    stmt = select(Specialist, Branch.code).outerjoin(Branch, Specialist.branch_id == Branch.id)
    if not include_inactive:
        stmt = stmt.where(Specialist.active.is_(True))
    rows = await session.execute(stmt.order_by(Specialist.id))
    return [
        {
            "id": s.id,
            "name": s.name,
            "seat": s.seat,
            "branch": code,
            "active": s.active,
            "on_leave": s.on_leave,
            "role": s.role,
        }
        for s, code in rows
    ]


async def set_specialist_state(
    session: AsyncSession, ident: str, *, active: bool | None = None, on_leave: bool | None = None
) -> Specialist:
    specialist = await find_specialist(session, ident)
    if active is not None:
        specialist.active = active
    if on_leave is not None:
        specialist.on_leave = on_leave
    await session.flush()
    return specialist
