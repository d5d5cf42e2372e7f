"""The API's contract: every route declares its path, query, body and response models here,
and the same declaration both checks each request and describes the route in the OpenAPI
document (callcenter.web builds the document; see docs/api.md).

A handler stays validate → service → serialise::

    @routes.post("/api/leads/{lead_id}/disposition")
    @endpoint(path=LeadPath, body=Disposition, response=DispositionView, errors=(403, 404))
    async def dispose(request, path: LeadPath, body: Disposition) -> dict[str, Any]:
        return await service.dispose(path.lead_id, ..., body.result)

The decorator parses and validates before the handler runs (a 400 that names each field and
the rule it broke), and checks what the handler returns against the response model before
sending it, so the document never promises a shape the service does not keep. A handler may
still return a `web.StreamResponse` (audio, HTML) as is.
"""

from __future__ import annotations

import functools
import re
import types
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from aiohttp import web
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    RootModel,
    TypeAdapter,
    ValidationError,
)
from pydantic_core import ErrorDetails

from common.web import ApiError, json_response, principal, require_supervisor

# Primary keys are INTEGER columns: on PostgreSQL a larger number is an error, not "no row".
MAX_ID = 2**31 - 1
# Dates far outside the desk's working life only overflow date arithmetic (a day before
# 0001-01-01); the API takes these years and says so.
MIN_YEAR, MAX_YEAR = 2000, 2100
# What a pattern means, for the error message (a person should not have to read a regex).
_PATTERNS: dict[str, str] = {}


def pattern(regex: str, meaning: str) -> str:
    """A JSON Schema pattern (so the document says what is refused) with the words an error
    shows when a value does not match it."""
    _PATTERNS[regex] = meaning
    return regex


_TEXT = pattern(
    r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u2028\u2029]*$",
    "must not contain control characters (line breaks and tabs are fine)",
)
ONE_LINE = pattern(
    r"^[^\x00-\x1f\x7f\u2028\u2029]*$", "must be one line without control characters"
)
_ASCII_DIGITS = re.compile(r"[0-9]{1,10}")


class RequestInvalid(ApiError):
    """A request that does not match its route's declared models: 400 (404 for a path that
    names no resource), every problem named."""


def _ascii_id(value: object) -> object:
    # int() and pydantic accept "+5", " 5" and "١٢٣"; an id in a path is ASCII digits only.
    if isinstance(value, str) and not _ASCII_DIGITS.fullmatch(value):
        raise ValueError("must be a whole number written with the digits 0-9")
    return value


def _in_years(value: date) -> date:
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise ValueError(f"must be a date in the years {MIN_YEAR}-{MAX_YEAR}")
    return value


def _aware_in_years(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("needs a time zone offset, e.g. 2026-12-01T10:00:00+08:00")
    # The year as written: converting 9999-12-31T23:59-23:59 to UTC would itself overflow.
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise ValueError(f"must be a time in the years {MIN_YEAR}-{MAX_YEAR}")
    return value


# -- field types shared by the packages' models -----------------------------------------------

Id = Annotated[int, Field(ge=1, le=MAX_ID, examples=[1]), BeforeValidator(_ascii_id)]
"""A row id: 1..2^31-1, ASCII digits when it comes as text."""

Name = Annotated[str, Field(min_length=1, max_length=100, pattern=ONE_LINE)]
"""A short label on one line (a pause reason, a do-not-call reason)."""

Note = Annotated[str, Field(max_length=2000, pattern=_TEXT)]
"""Free text a person typed (a note, a comment): line breaks allowed, control characters not."""

Code = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=pattern(r"^[A-Za-z0-9_.-]+$", "must be letters, digits, _ . - only"),
    ),
]
"""A code or name the service gave out itself: a contact result, a campaign, an attempt id."""

Day = Annotated[date, AfterValidator(_in_years)]
"""A calendar date, YYYY-MM-DD, in the years MIN_YEAR..MAX_YEAR."""

When = Annotated[datetime, AfterValidator(_aware_in_years)]
"""An ISO 8601 time with a zone offset, in the years MIN_YEAR..MAX_YEAR."""

Timestamp = Annotated[str, Field(description="ISO 8601 time, e.g. 2026-12-01T10:00:00+08:00")]
"""A time in a response, as the service wrote it (ISO 8601)."""

Limit = Annotated[int, Field(ge=1, le=500)]
Offset = Annotated[int, Field(ge=0, le=10_000_000)]


class Body(BaseModel):
    """A JSON request body: unknown keys are refused (they would be silently ignored or, worse,
    passed on as keyword arguments). Strict: JSON has types, so "7" is not a number and "yes"
    not a boolean."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Query(BaseModel):
    """Query parameters. Unknown ones are ignored, as browsers and proxies add their own."""

    model_config = ConfigDict(extra="ignore")


class PathParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


class View(BaseModel):
    """A response. Fields the model does not name still go out (and the schema allows them),
    so a field a service adds is never dropped on the way."""

    model_config = ConfigDict(extra="allow")


class FieldProblem(BaseModel):
    where: Literal["path", "query", "body"]
    field: str = Field(description="dotted path of the field; empty for the whole body")
    rule: str = Field(description="the rule broken, e.g. extra_forbidden, less_than_equal")
    message: str


class Problem(View):
    """Every error answer: a reason a person can act on, the status, and for invalid input
    one entry per field."""

    error: str
    status: int
    errors: list[FieldProblem] | None = None


# -- the declaration ---------------------------------------------------------------------------


RawCheck = Callable[[web.Request, bytes], None]
"""Checks a request's raw body bytes; raises ApiError (401 for a bad signature) to refuse."""


@dataclass(frozen=True)
class Endpoint:
    """What a route takes and gives; callcenter.openapi writes the document from it."""

    path: type[PathParams] | None = None
    query: type[Query] | None = None
    # A Body, or a RootModel for a body of several forms (one item, a list of them …).
    body: type[BaseModel] | None = None
    body_required: bool = True
    # Sees the exact bytes received before the body model reads them (a signature).
    check_raw: RawCheck | None = None
    response: Any = None
    status: int = 200
    errors: tuple[int, ...] = ()
    # Error statuses whose answer carries more than a Problem (a 409 with what a run would do).
    problems: Mapping[int, type[Problem]] = field(default_factory=dict)
    public: bool = False
    # Supervisors and maintainers only: refused (403) before any input is read, and marked
    # `x-supervisor-only` in the OpenAPI document.
    supervisor: bool = False
    # A web page or one of its own actions (cookie session + CSRF): checked like any route,
    # but not part of the OpenAPI document (docs/web.md lists them).
    page: bool = False
    # Non-JSON answers: media type -> description (audio, HTML, a static file).
    media: Mapping[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    adapter: TypeAdapter[Any] | None = None


ENDPOINT = "__api_endpoint__"
M = TypeVar("M", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def endpoint_of(handler: object) -> Endpoint | None:
    return getattr(handler, ENDPOINT, None)


def is_public(handler: object) -> bool:
    ep = endpoint_of(handler)
    return ep is not None and ep.public


def endpoint(
    *,
    path: type[PathParams] | None = None,
    query: type[Query] | None = None,
    body: type[BaseModel] | None = None,
    body_required: bool = True,
    check_raw: RawCheck | None = None,
    response: Any = None,
    status: int = 200,
    errors: tuple[int, ...] = (),
    problems: Mapping[int, type[Problem]] | None = None,
    public: bool = False,
    supervisor: bool = False,
    page: bool = False,
    media: Mapping[str, str] | None = None,
    tags: tuple[str, ...] = (),
) -> Callable[[Callable[..., Awaitable[Any]]], Handler]:
    """Declare a route's models; the handler gets `path=`, `query=`, `body=` validated.

    `body_required=False`: an empty body counts as `{}` (every field then needs a default).
    `check_raw`: called with the request and the exact bytes received, before the body model
    reads them: a signature over the raw body is checked on what was signed, and an unsigned
    body is refused (401) before anything in it is looked at.
    `errors`: the statuses besides 400/401 the route can answer (403, 404, 409, 416 …).
    `problems`: a status whose error answer has more fields, with its `Problem` subclass.
    `public`: no token needed (the API's own description only).
    `supervisor`: a supervisor's or maintainer's only; anyone else gets 403 whatever they
    send (the role is checked first, so a specialist learns nothing of the input rules).
    `page`: a web page or a page's own action, left out of the OpenAPI document.
    """
    if supervisor and public:
        raise ValueError("a public route has no principal to check")
    if supervisor and 403 not in errors:
        errors = (*errors, 403)
    if check_raw is not None and body is None:
        raise ValueError("check_raw needs a body model: it checks the body's bytes")
    ep = Endpoint(
        path=path,
        query=query,
        body=body,
        body_required=body_required,
        check_raw=check_raw,
        response=response,
        status=status,
        errors=errors,
        problems=dict(problems or {}),
        public=public,
        supervisor=supervisor,
        page=page,
        media=dict(media or {}),
        tags=tags,
        adapter=TypeAdapter(response) if response is not None else None,
    )

    def decorate(handler: Callable[..., Awaitable[Any]]) -> Handler:
        @functools.wraps(handler)
        async def wrapper(request: web.Request) -> web.StreamResponse:
            if ep.supervisor:
                require_supervisor(principal(request))
            result = await handler(request, **await _arguments(request, ep))
            return _answer(ep, result)

        setattr(wrapper, ENDPOINT, ep)
        return wrapper

    return decorate


async def _arguments(request: web.Request, ep: Endpoint) -> dict[str, Any]:
    """The handler's `path=`, `query=` and `body=`, each validated by its model."""
    kwargs: dict[str, Any] = {}
    if ep.path is not None:
        kwargs["path"] = _check(ep.path, "path", dict(request.match_info))
    if ep.query is not None:
        q = request.query
        kwargs["query"] = _check(ep.query, "query", {k: q.get(k) for k in q})
    if ep.body is not None:
        kwargs["body"] = await _read_body(request, ep.body, ep)
    return kwargs


def _answer(ep: Endpoint, result: Any) -> web.StreamResponse:
    """The handler's result as the declared response (a response it built passes as is)."""
    if isinstance(result, web.StreamResponse):
        return result
    if ep.adapter is not None:
        # A mismatch here is the service's bug: a ValidationError, so a 500 that is
        # logged, never a 400 blaming the caller.
        result = ep.adapter.dump_python(ep.adapter.validate_python(result), mode="json")
    return json_response(result, status=ep.status)


async def _read_body(request: web.Request, model: type[BaseModel], ep: Endpoint) -> BaseModel:
    raw = await request.read() if request.can_read_body else b""
    if ep.check_raw is not None:
        ep.check_raw(request, raw)
    if not raw.strip():
        if ep.body_required:
            raise RequestInvalid(
                400,
                "the request needs a JSON object body",
                errors=[_problem("body", "", "missing", "send a JSON object")],
            )
        raw = b"{}"
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise _invalid("body", exc, model) from None


def _check(model: type[M], where: Literal["path", "query"], data: object) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _invalid(where, exc, model) from None


def _problem(where: str, field_: str, rule: str, message: str) -> dict[str, str]:
    return {"where": where, "field": field_, "rule": rule, "message": message}


def refused(
    where: Literal["path", "query", "body"], field_: str, rule: str, message: str
) -> RequestInvalid:
    """A 400 for a value its model lets through but the service cannot take (a text that is
    not one phone number), in the same shape as the models' own refusals."""
    return RequestInvalid(
        400,
        f"invalid {where}: {field_}: {message}",
        errors=[_problem(where, field_, rule, message)],
    )


def _unwrap(tp: Any) -> Any:
    """The type under `Annotated[...]` and `X | None`; a RootModel's root type."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        elif isinstance(tp, type) and issubclass(tp, RootModel):
            tp = tp.model_fields["root"].annotation
        else:
            return tp


def _model_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model the value at `loc` was read into (a nested one too), if one model."""
    tp: Any = model
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(part, int):
            args = get_args(tp)
            tp = args[0] if get_origin(tp) is list and args else None
        elif isinstance(tp, type) and issubclass(tp, BaseModel) and part in tp.model_fields:
            tp = tp.model_fields[part].annotation
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _message(err: ErrorDetails, model: type[BaseModel]) -> str:
    if err["type"] == "extra_forbidden":
        # The fields of the object the unknown key was found in, not always the top one.
        holder = _model_at(model, tuple(err["loc"][:-1]))
        fields = holder.model_fields.items() if holder is not None else ()
        allowed = ", ".join(f.alias or n for n, f in fields) or "none"
        return f"unknown field; the fields are: {allowed}"
    if err["type"] == "string_pattern_mismatch":
        meaning = _PATTERNS.get(str(err.get("ctx", {}).get("pattern", "")))
        if meaning:
            return meaning
    msg = err["msg"]
    # Our own validators raise ValueError("must be …"): drop pydantic's "Value error, ".
    return msg.removeprefix("Value error, ")


def _invalid(
    where: Literal["path", "query", "body"], exc: ValidationError, model: type[BaseModel]
) -> RequestInvalid:
    problems = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in err["loc"])
        problems.append(_problem(where, loc, err["type"], _message(err, model)))
    first = problems[0]
    named = f"{first['field']}: " if first["field"] else ""
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    if where == "path":
        # A path that does not name a resource is not found (as the router answers), with why.
        return RequestInvalid(404, f"not found: {named}{first['message']}", errors=problems)
    return RequestInvalid(400, f"invalid {where}: {named}{first['message']}{more}", errors=problems)
