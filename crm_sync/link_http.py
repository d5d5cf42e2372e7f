"""HTTP of the CRM link: the outbox numbers for supervisors (`GET /api/outbox`, one message
with its tries at `GET /api/outbox/{id}`) and the CRM's signed inbound changes
(`POST /api/crm/changes`). Thin handlers: validate → service → serialise; the models below
check every request and describe the routes in the OpenAPI document (docs/api.md)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from aiohttp import web
from pydantic import BeforeValidator, ConfigDict, Field, RootModel

from crm_sync import outbox as ops
from crm_sync import signing
from crm_sync.api import (
    ONE_LINE,
    Body,
    Code,
    Id,
    Limit,
    Name,
    Note,
    PathParams,
    Query,
    Timestamp,
    View,
    When,
    endpoint,
    refused,
)
from crm_sync.auth import ApiError, principal, require_supervisor
from crm_sync.change_parsing import ChangeError, ChangeKind, Outcome, parse_changes
from crm_sync.changes import apply_changes
from crm_sync.config import CrmSettings
from crm_sync.exceptions import NotFound
from crm_sync.http import CRM_SESSIONS
from crm_sync.models import OutboxState
from crm_sync.phones import MAX_WRITTEN_LENGTH
from schedules.clock import Clock

CRM_LINK_SETTINGS = web.AppKey("crm_link_settings", CrmSettings)
CRM_LINK_CLOCK = web.AppKey("crm_link_clock", Clock)
CRM_LINK_TIMEZONE = web.AppKey("crm_link_timezone", str)
routes = web.RouteTableDef()
# More changes than this in one request: send them in several.
MAX_CHANGES = 1000

# -- the outbox ----------------------------------------------------------------------------


class OutboxQuery(Query):
    """With `state`, `topic` or `key` the answer lists the matching messages too."""

    # Unlike other queries, an unknown parameter is refused: a misspelt filter (`?stat=parked`)
    # would otherwise answer the counts without a list, as if nothing matched.
    model_config = ConfigDict(extra="forbid")

    state: OutboxState | None = None
    topic: Code | None = Field(default=None, description="e.g. attempt.result")
    key: Annotated[str, Field(min_length=1, max_length=128, pattern=ONE_LINE)] | None = Field(
        default=None, description="a message's aggregate, e.g. lead:42"
    )
    limit: Limit = 50

    @property
    def filters(self) -> bool:
        return self.state is not None or self.topic is not None or self.key is not None


class OutboxPath(PathParams):
    id: Id


class OutboxMessageView(View):
    id: int
    topic: str
    key: str
    state: OutboxState
    created_at: Timestamp
    delivered_at: Timestamp | None
    sink: str | None
    attempts: int
    next_try_at: Timestamp | None
    lease_owner: str | None
    last_error: str | None
    parked_reason: str | None
    history: list[dict[str, Any]] = Field(description="the failed tries, oldest first")


class OutboxStatusView(View):
    counts: dict[str, dict[str, int]] = Field(description="topic -> state -> messages")
    pending: int
    parked: int
    oldest_undelivered_at: Timestamp | None
    oldest_undelivered_age_seconds: float | None
    alarm: str | None = Field(description="set when the oldest undelivered message is too old")
    messages: list[OutboxMessageView] | None = Field(
        default=None, description="with state, topic or key: the matching messages, oldest first"
    )


@routes.get("/api/outbox")
@endpoint(supervisor=True, query=OutboxQuery, response=OutboxStatusView, tags=("outbox",))
async def outbox_status(request: web.Request, query: OutboxQuery) -> dict[str, Any]:
    """Counts by topic and state, the oldest undelivered message's age, and (with `state`,
    `topic` or `key`) the matching messages. Supervisors only."""
    clock = request.app[CRM_LINK_CLOCK]
    settings = request.app[CRM_LINK_SETTINGS]
    async with request.app[CRM_SESSIONS]() as s:
        st = await ops.status(s, clock.now())
        body = st.as_dict() | {"alarm": ops.alarm_text(st, settings.alarm_age)}
        if query.filters:
            rows = await ops.list_messages(
                s,
                state=query.state.value if query.state else None,
                topic=query.topic,
                key=query.key,
                limit=query.limit,
            )
            body["messages"] = [ops.message_view(m) for m in rows]
    return body


@routes.get("/api/outbox/{id}")
@endpoint(
    supervisor=True,
    path=OutboxPath,
    response=OutboxMessageView,
    errors=(404,),
    tags=("outbox",),
)
async def outbox_message(request: web.Request, path: OutboxPath) -> dict[str, Any]:
    """One message with its history of tries. Supervisors only."""
    async with request.app[CRM_SESSIONS]() as s:
        try:
            return ops.message_view(await ops.get(s, path.id))
        except NotFound as exc:
            raise ApiError(404, str(exc)) from None


# -- the CRM's changes ---------------------------------------------------------------------

PhoneText = Annotated[
    str,
    Field(min_length=1, max_length=MAX_WRITTEN_LENGTH, pattern=ONE_LINE, examples=["13912345678"]),
]


class ChangeData(Body):
    """What a change is about. Which fields each kind needs: docs/crm.md#inbound-changes."""

    policy_number: Name | None = Field(default=None, description="renewed_elsewhere, corrected")
    phone: PhoneText | None = Field(default=None, description="phone.corrected, do_not_call")
    do_not_call: bool | None = Field(default=None, description="customer.do_not_call (true)")
    specialist_id: Id | None = Field(default=None, description="specialist.leave (or seat)")
    seat: Name | None = Field(default=None, description="specialist.leave (or specialist_id)")
    on_leave: bool | None = Field(default=None, description="specialist.leave")
    note: Note | None = Field(default=None, description="kept in the audit (300 characters)")


def _iso_text(value: object) -> object:
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 time with its offset, e.g. 2026-01-05T10:00:00+08:00")
    return value


class ChangeIn(Body):
    change_id: Annotated[str, Field(min_length=1, max_length=128, pattern=ONE_LINE)] = Field(
        description="the CRM's own id: a change sent again is applied once"
    )
    kind: ChangeKind
    # Not strict: the forms are unwrapped before this model reads them (ChangesIn), so the
    # time arrives as Python text, which strict mode refuses; _iso_text keeps it text-only.
    changed_at: Annotated[When, BeforeValidator(_iso_text)] = Field(
        strict=False, description="by the CRM's clock: of two changes, the later wins"
    )
    data: ChangeData


class ChangeBatch(Body):
    changes: list[ChangeIn]


def _as_list(value: object) -> object:
    # The three forms the CRM may send, read as one list (error places are list indexes).
    if isinstance(value, dict) and "changes" in value:
        unknown = sorted(set(value) - {"changes"})
        if unknown:
            raise ValueError(f"unknown field {unknown[0]!r} beside changes; send only changes")
        return value["changes"]
    return [value] if isinstance(value, dict) else value


class ChangesIn(RootModel[list[ChangeIn]]):
    """One change, a list of them, or `{"changes": [...]}`; every one is checked before any
    is applied."""

    model_config = ConfigDict(strict=True)
    root: Annotated[
        list[ChangeIn],
        Field(min_length=1, max_length=MAX_CHANGES),
        BeforeValidator(_as_list, json_schema_input_type=ChangeIn | list[ChangeIn] | ChangeBatch),
    ]


class ChangeResultView(View):
    change_id: str
    outcome: Outcome
    detail: str
    lead_ids: list[int] = Field(description="the leads the change moved")


class ChangeResults(View):
    results: list[ChangeResultView]


def _signed_by_the_crm(request: web.Request, raw: bytes) -> None:
    """Who may send (a supervisor's or maintainer's token) and that the CRM signed these
    exact bytes within the tolerance: both before anything in the body is read."""
    require_supervisor(principal(request))
    settings = request.app[CRM_LINK_SETTINGS]
    try:
        signing.verify(
            request.headers.get(signing.HEADER),
            raw,
            settings.inbound_secrets,
            request.app[CRM_LINK_CLOCK].now().timestamp(),
            settings.inbound_tolerance,
        )
    except signing.SignatureError as exc:
        # SignatureError's words are written for the caller and never hold a secret.
        raise ApiError(401, f"signature refused: {exc}") from None


@routes.post("/api/crm/changes")
@endpoint(
    body=ChangesIn,
    check_raw=_signed_by_the_crm,
    response=ChangeResults,
    errors=(403,),
    tags=("crm",),
)
async def crm_changes(request: web.Request, body: ChangesIn) -> dict[str, Any]:
    """The CRM's changes: a maintainer's or supervisor's token AND the body signed with a
    `crm.inbound_secrets` secret (`Callcenter-Signature: t=…,v1=…`, as the webhook), within
    `crm.inbound_tolerance` of now (401 otherwise). One change, a list, or
    `{"changes": [...]}`; a change that cannot be applied as sent is a 400 and nothing is
    applied."""
    try:
        parsed = parse_changes([c.model_dump(mode="json", exclude_unset=True) for c in body.root])
    except ChangeError as exc:
        where = str(exc.index) if exc.index is not None else ""
        raise refused("body", where, "change", str(exc)) from None
    clock = request.app[CRM_LINK_CLOCK]
    results = await apply_changes(
        request.app[CRM_SESSIONS], parsed, clock.now(), "http", today=_today(request)
    )
    return {"results": [r.as_dict() for r in results]}


def _today(request: web.Request) -> date:
    clock = request.app[CRM_LINK_CLOCK]
    return clock.now().astimezone(ZoneInfo(request.app[CRM_LINK_TIMEZONE])).date()
