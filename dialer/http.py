"""The seat and supervisor API of the dialer. Thin: validate → service → serialise.

A specialist acts on their own seat (the token says who they are); supervisors see every
seat, the live calls and the campaigns. Each route declares its models (crm_sync.api):
the request is checked against them before the handler runs, and they are the OpenAPI
document. Errors are JSON with a reason (see callcenter.web).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import BeforeValidator, Field

from common.principal import Principal
from common.web import ApiError, principal
from crm_sync.api import (
    ONE_LINE,
    Body,
    Code,
    Id,
    Name,
    Note,
    PathParams,
    Timestamp,
    View,
    When,
    endpoint,
    refused,
)
from crm_sync.dialplan import CallerId, SeatDevice, SoundName
from crm_sync.phones import MAX_WRITTEN_LENGTH
from dialer.exceptions import NotAPhoneNumber
from dialer.models import DialMode, Pacing, PoolShare, SeatState
from dialer.services import DO_NOT_CALL_EXAMPLE, DialerService

DIALER = web.AppKey("dialer", DialerService)
routes = web.RouteTableDef()


def _not_too_long(value: object) -> object:
    # The service's words for a novel-length number (and the schema's maxLength says the same):
    # one refusal, whichever layer meets it first.
    if isinstance(value, str) and len(value) > MAX_WRITTEN_LENGTH:
        raise ValueError(
            f"the number is longer than {MAX_WRITTEN_LENGTH} characters; {DO_NOT_CALL_EXAMPLE}"
        )
    return value


WrittenNumber = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_WRITTEN_LENGTH,
        pattern=ONE_LINE,
        description=(
            "one phone number in any form the import reads (+86 138-0013-8000, "
            "138 0013 8000, 0311-85551234); the service stores its E.164 form"
        ),
        examples=["+8613800138000"],
    ),
    # After the Field, so it wraps the constrained string: it runs first, and the schema
    # keeps the pattern.
    BeforeValidator(_not_too_long),
]


# -- models ------------------------------------------------------------------------------------


class SignIn(Body):
    seat: SeatDevice | None = Field(
        default=None, description="the specialist's own device; default: the configured one"
    )
    ready: bool = False


class Pause(Body):
    reason: Name = Field(examples=["break"])


class Disposition(Body):
    result: Code = Field(description="a standard contact result code (GET /api/contact-results)")
    callback_at: When | None = Field(
        default=None, description="a callback appointment; default: the next calling window"
    )
    note: Note | None = None


class CampaignChange(Body):
    mode: DialMode | None = None
    concurrency: Annotated[int, Field(ge=0, le=1000)] | None = None
    trunk: Code | None = None
    trunk_max_calls: Annotated[int, Field(ge=0, le=10_000)] | None = None
    trunk_max_cps: Annotated[float, Field(gt=0, le=1000)] | None = None
    caller_id: CallerId | None = None
    message: SoundName | None = None
    pooled: bool | None = Field(
        default=None, description="answered calls go to any free specialist of the pool"
    )
    pacing: Pacing | None = Field(
        default=None, description="predictive: calls ahead of free specialists (pooled only)"
    )
    pacing_ratio_cap: Annotated[float, Field(ge=1, le=20)] | None = Field(
        default=None, description="the most calls in flight per available specialist"
    )
    target_abandon: Annotated[float, Field(ge=0, le=0.5)] | None = Field(
        default=None, description="the abandon rate the pacer aims at (at most the cap)"
    )
    abandon_cap: Annotated[float, Field(ge=0, le=0.5)] | None = Field(
        default=None, description="hard cap, per day and 30 days (at most the legal maximum)"
    )


class PoolMemberItem(Body):
    specialist_id: Id
    share: PoolShare = PoolShare.AFTER_OWN_QUEUE


class PoolChange(Body):
    members: Annotated[list[PoolMemberItem], Field(max_length=1000)]


class DoNotCallAdd(Body):
    number: WrittenNumber
    reason: Name | None = None


class LeadPath(PathParams):
    lead_id: Id


class AttemptPath(PathParams):
    attempt_id: Code


class CampaignPath(PathParams):
    name: Code


class NumberPath(PathParams):
    number: WrittenNumber


class SeatView(View):
    specialist_id: int
    seat: str
    state: SeatState
    since: Timestamp | None
    pause_reason: str | None
    attempt_id: str | None
    preview: bool
    wrap_up_until: Timestamp | None


class PreviewDialled(SeatView):
    pass


class CallView(View):
    seat: SeatView
    attempt: dict[str, Any]
    lead: dict[str, Any]
    customer: dict[str, Any]
    policy: dict[str, Any]


class DispositionView(View):
    lead_id: int
    status: str
    contact_result: str | None
    callback_at: Timestamp | None
    next_attempt_at: Timestamp | None


class LiveCall(View):
    attempt_id: str
    lead_id: int
    specialist_id: int | None
    seat: str | None
    number: str
    mode: str
    campaign_kind: str
    ami_server: str
    state: str


class HangUpView(View):
    attempt_id: str
    hung_up: bool


class CampaignView(View):
    id: int
    name: str
    kind: str
    mode: str
    running: bool
    concurrency: int
    trunk: str
    trunk_max_calls: int
    trunk_max_cps: float
    caller_id: str | None
    message: str | None
    pooled: bool
    pacing: str
    pacing_ratio_cap: float
    target_abandon: float
    abandon_cap: float


class AbandonView(View):
    campaign: str
    day: str = Field(description="the desk's calling day the live figures count")
    pooled: bool
    pacing: str
    pacing_ratio_cap: float
    target_abandon: float
    abandon_cap: float
    legal_max_abandon: float
    answered_today: int
    abandoned_today: int
    abandon_rate_today: float
    answered_30d: int
    abandoned_30d: int
    abandon_rate_30d: float


class PoolMemberView(View):
    specialist_id: int
    share: str


class PoolView(View):
    campaign: str
    members: list[PoolMemberView]


class CampaignStatus(CampaignView):
    calls_in_flight: int


class DoNotCallView(View):
    number: str = Field(description="the E.164 form stored")
    do_not_call: bool


class AmiLinkHealth(View):
    server: str
    connected: bool
    warnings: list[str] = Field(description="what the AMI user lacks, each naming the fix")


class Health(View):
    ok: bool = Field(description="false while a link is down or a warning holds")
    ami: list[AmiLinkHealth]


# -- handlers ----------------------------------------------------------------------------------


def _svc(request: web.Request) -> DialerService:
    return request.app[DIALER]


async def _number(where: Literal["path", "body"], coro: Awaitable[str]) -> str:
    """The service's refusal of a text that is not one phone number, as a field problem."""
    try:
        return await coro
    except NotAPhoneNumber as exc:
        raise refused(where, "number", "phone_number", exc.reason) from None


def _me(request: web.Request) -> Principal:
    return principal(request)


SEAT_ERRORS = (403, 409)


@routes.post("/api/seat/sign-in")
@endpoint(body=SignIn, body_required=False, response=SeatView, errors=SEAT_ERRORS, tags=("seat",))
async def sign_in(request: web.Request, body: SignIn) -> dict[str, Any]:
    """Sign in to a seat (default: the specialist's configured device); paused unless ready."""
    return await _svc(request).sign_in(_me(request).user_id, body.seat, body.ready)


@routes.post("/api/seat/sign-out")
@endpoint(response=SeatView, errors=(409,), tags=("seat",))
async def sign_out(request: web.Request) -> dict[str, Any]:
    """Sign out of the seat."""
    return await _svc(request).sign_out(_me(request).user_id)


@routes.post("/api/seat/ready")
@endpoint(response=SeatView, errors=(409,), tags=("seat",))
async def ready(request: web.Request) -> dict[str, Any]:
    """Ready for the next call."""
    return await _svc(request).ready(_me(request).user_id)


@routes.post("/api/seat/pause")
@endpoint(body=Pause, response=SeatView, errors=(409,), tags=("seat",))
async def pause(request: web.Request, body: Pause) -> dict[str, Any]:
    """Pause with a reason (break, training, …)."""
    reason = body.reason.strip()
    if not reason:
        raise ApiError(400, 'a pause needs a reason, e.g. {"reason": "break"}')
    return await _svc(request).pause(_me(request).user_id, reason)


@routes.get("/api/seat")
@endpoint(response=SeatView, errors=(409,), tags=("seat",))
async def my_seat(request: web.Request) -> dict[str, Any]:
    """The caller's seat: state, since, pause reason, current attempt."""
    return await _svc(request).seat(_me(request).user_id)


@routes.get("/api/seat/call")
@endpoint(response=CallView, errors=(404, 409), tags=("seat",))
async def current_call(request: web.Request) -> dict[str, Any]:
    """The screen pop: the current (or just finished) call with its customer and policy."""
    call = await _svc(request).current_call(_me(request).user_id)
    if call is None:
        raise ApiError(404, "no call on this seat right now")
    return call


@routes.post("/api/seat/preview/confirm")
@endpoint(response=PreviewDialled, errors=(409,), tags=("seat",))
async def confirm_preview(request: web.Request) -> dict[str, Any]:
    """Preview mode: dial the offered lead."""
    return await _svc(request).confirm_preview(_me(request).user_id)


@routes.post("/api/seat/preview/skip")
@endpoint(response=SeatView, errors=(409,), tags=("seat",))
async def skip_preview(request: web.Request) -> dict[str, Any]:
    """Preview mode: skip the offered lead."""
    return await _svc(request).skip_preview(_me(request).user_id)


@routes.post("/api/leads/{lead_id}/disposition")
@endpoint(
    path=LeadPath,
    body=Disposition,
    response=DispositionView,
    errors=(404, 409),
    tags=("leads",),
)
async def dispose(request: web.Request, path: LeadPath, body: Disposition) -> dict[str, Any]:
    """Set the contact result of one's own lead, optionally with a callback appointment.

    A callback without a time is booked into the next calling window; a time outside the
    windows moves to the next window.
    """
    return await _svc(request).dispose(
        path.lead_id, _me(request).user_id, body.result, body.callback_at, body.note
    )


@routes.get("/api/seats")
@endpoint(supervisor=True, response=list[SeatView], tags=("supervisor",))
async def seats(request: web.Request) -> list[dict[str, Any]]:
    """Supervisor: every signed-in seat."""
    return await _svc(request).seats()


@routes.get("/api/calls")
@endpoint(supervisor=True, response=list[LiveCall], tags=("supervisor",))
async def live_calls(request: web.Request) -> list[dict[str, Any]]:
    """Supervisor: the calls in flight on this process."""
    return _svc(request).live_calls()


@routes.get("/api/health")
@endpoint(response=Health, tags=("supervisor",))
async def health(request: web.Request) -> dict[str, Any]:
    """Any signed-in role: the AMI links and what their manager.conf users lack."""
    _me(request)  # the middleware has checked the token; any role may look
    return _svc(request).health()


@routes.post("/api/calls/{attempt_id}/hangup")
@endpoint(
    supervisor=True, path=AttemptPath, response=HangUpView, errors=(409,), tags=("supervisor",)
)
async def hang_up(request: web.Request, path: AttemptPath) -> dict[str, Any]:
    """Supervisor: end a call in flight on this process (outcome `hung_up_by_action`)."""
    result = await _svc(request).hang_up(path.attempt_id)
    if not result["hung_up"]:
        raise ApiError(
            409,
            f"call {path.attempt_id} has no channel up on this process (not dialled yet, already "
            "over, or placed by another process): nothing was hung up; see GET /api/calls",
        )
    return result


@routes.get("/api/campaigns")
@endpoint(supervisor=True, response=list[CampaignStatus], tags=("supervisor",))
async def campaigns(request: web.Request) -> list[dict[str, Any]]:
    """Supervisor: campaigns with their state and calls in flight."""
    return await _svc(request).campaign_status()


@routes.post("/api/campaigns/{name}/start")
@endpoint(
    supervisor=True,
    path=CampaignPath,
    response=CampaignView,
    errors=(404,),
    tags=("supervisor",),
)
async def start_campaign(request: web.Request, path: CampaignPath) -> dict[str, Any]:
    """Supervisor: start a campaign."""
    return await _svc(request).start_campaign(path.name)


@routes.post("/api/campaigns/{name}/stop")
@endpoint(
    supervisor=True,
    path=CampaignPath,
    response=CampaignView,
    errors=(404,),
    tags=("supervisor",),
)
async def stop_campaign(request: web.Request, path: CampaignPath) -> dict[str, Any]:
    """Supervisor: stop a campaign (calls in flight finish)."""
    return await _svc(request).stop_campaign(path.name)


@routes.patch("/api/campaigns/{name}")
@endpoint(
    supervisor=True,
    path=CampaignPath,
    body=CampaignChange,
    response=CampaignView,
    errors=(404,),
    tags=("supervisor",),
)
async def update_campaign(
    request: web.Request, path: CampaignPath, body: CampaignChange
) -> dict[str, Any]:
    """Supervisor: change mode, concurrency, trunk limits, caller id or message; pooled,
    pacing (progressive/predictive), the pacing-ratio cap, the target abandon rate and the
    abandon cap (never above the legal maximum)."""
    changes = body.model_dump(exclude_none=True, mode="json")
    return await _svc(request).update_campaign(path.name, **changes)


@routes.get("/api/campaigns/{name}/abandon")
@endpoint(
    supervisor=True,
    path=CampaignPath,
    response=AbandonView,
    errors=(404,),
    tags=("supervisor",),
)
async def campaign_abandon(request: web.Request, path: CampaignPath) -> dict[str, Any]:
    """Supervisor: a campaign's live (today) and rolling 30-day abandon rates and its caps."""
    return await _svc(request).abandon_rates(path.name)


@routes.get("/api/campaigns/{name}/pool")
@endpoint(
    supervisor=True, path=CampaignPath, response=PoolView, errors=(404,), tags=("supervisor",)
)
async def campaign_pool(request: web.Request, path: CampaignPath) -> dict[str, Any]:
    """Supervisor: the specialists of a pooled campaign and their share."""
    return await _svc(request).pool(path.name)


@routes.put("/api/campaigns/{name}/pool")
@endpoint(
    supervisor=True,
    path=CampaignPath,
    body=PoolChange,
    response=PoolView,
    errors=(404,),
    tags=("supervisor",),
)
async def set_campaign_pool(
    request: web.Request, path: CampaignPath, body: PoolChange
) -> dict[str, Any]:
    """Supervisor: replace a pooled campaign's specialists (share `after_own_queue`: pool
    calls only once their own queue has nothing to call in the window; `always`)."""
    members = {m.specialist_id: m.share.value for m in body.members}
    return await _svc(request).set_pool(path.name, members)


@routes.post("/api/do-not-call")
@endpoint(
    supervisor=True,
    body=DoNotCallAdd,
    response=DoNotCallView,
    status=201,
    tags=("supervisor",),
)
async def add_dnc(request: web.Request, body: DoNotCallAdd) -> dict[str, Any]:
    """Supervisor: put a number on the do-not-call list, written in any form the import
    accepts (+86 138-0013-8000, 138 0013 8000, …); the answer gives the E.164 form stored."""
    stored = await _number("body", _svc(request).add_do_not_call(body.number, body.reason))
    return {"number": stored, "do_not_call": True}


@routes.delete("/api/do-not-call/{number}")
@endpoint(supervisor=True, path=NumberPath, response=DoNotCallView, tags=("supervisor",))
async def remove_dnc(request: web.Request, path: NumberPath) -> dict[str, Any]:
    """Supervisor: take a number off the do-not-call list."""
    removed = await _number("path", _svc(request).remove_do_not_call(path.number))
    return {"number": removed, "do_not_call": False}
