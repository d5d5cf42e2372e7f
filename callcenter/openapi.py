"""The OpenAPI 3.1 document, built from the routes' declared models (crm_sync.api.endpoint):
pydantic writes the JSON Schemas, openapi-pydantic types the document around them. Nothing
here is written by hand per route; a route without a declaration is still listed, with its
docstring and the common error answers only.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from openapi_pydantic import (
    Components,
    Info,
    MediaType,
    OpenAPI,
    Operation,
    Parameter,
    PathItem,
    Reference,
    RequestBody,
    Response,
    Schema,
    SecurityScheme,
)
from pydantic import TypeAdapter
from pydantic.json_schema import JsonSchemaMode

from crm_sync.api import Endpoint, Problem, endpoint_of

REF = "#/components/schemas/{model}"
TITLE = "Renewal desk call center API"
SUPERVISOR_ONLY = "x-supervisor-only"  # on an operation a specialist is always refused (403)
STATUS_TEXT = {
    200: "OK",
    201: "created",
    206: "part of the content (HTTP Range)",
    400: "invalid input: `errors` names each field and the rule it broke",
    401: "missing, unknown or revoked token",
    403: "not allowed for this role",
    404: "not found (or not yours)",
    405: "method not allowed (the Allow header lists the allowed ones)",
    409: "not possible in the current state",
    410: "gone: the stored file is missing or damaged",
    413: "the body is too large",
    416: "range not satisfiable",
    503: "a store or service behind this one cannot be reached now; try again later",
}


def _schema(value: dict[str, Any]) -> Schema:
    return Schema.model_validate(value)


class _Schemas:
    """Collects every model of every route, then has pydantic write them in one pass, so a
    model used by several routes is one component."""

    def __init__(self) -> None:
        self.inputs: list[tuple[tuple[str, JsonSchemaMode], JsonSchemaMode, TypeAdapter[Any]]] = []
        self._seen: dict[tuple[str, JsonSchemaMode], int] = {}
        self.result: dict[tuple[str, JsonSchemaMode], dict[str, Any]] = {}
        self.definitions: dict[str, Any] = {}

    def add(self, tp: Any, mode: JsonSchemaMode) -> tuple[str, JsonSchemaMode]:
        key = (repr(tp), mode)
        if key not in self._seen:
            self._seen[key] = len(self.inputs)
            self.inputs.append((key, mode, TypeAdapter(tp)))
        return key

    def build(self) -> None:
        result, defs = TypeAdapter.json_schemas(self.inputs, ref_template=REF)
        self.result = {k[0]: v for k, v in result.items()}
        self.definitions = defs.get("$defs", {})

    def of(self, key: tuple[str, JsonSchemaMode]) -> dict[str, Any]:
        return self.result[key]

    def properties(self, key: tuple[str, JsonSchemaMode]) -> tuple[dict[str, Any], set[str]]:
        """The fields of a parameters model (path or query) and which are required."""
        schema = self.result[key]
        if "$ref" in schema:
            schema = self.definitions[schema["$ref"].rsplit("/", 1)[1]]
        return schema.get("properties", {}), set(schema.get("required", []))


def _media(schema: dict[str, Any]) -> MediaType:
    return MediaType.model_validate({"schema": schema})


def _error_response(status: int, schema: dict[str, Any] | None = None) -> Response:
    return Response(
        description=STATUS_TEXT.get(status, "error"),
        content={
            "application/json": _media(schema or {"$ref": REF.format(model=Problem.__name__)})
        },
    )


def _parameters(
    schemas: _Schemas, key: tuple[str, JsonSchemaMode] | None, where: str
) -> list[Parameter]:
    if key is None:
        return []
    props, required = schemas.properties(key)
    out = []
    for name, prop in props.items():
        prop = dict(prop)
        description = prop.pop("description", None)
        prop.pop("title", None)
        out.append(
            Parameter.model_validate(
                {
                    "name": name,
                    "in": where,
                    "required": where == "path" or name in required,
                    "description": description,
                    "schema": prop,
                }
            )
        )
    return out


def _path_names(path: str) -> list[str]:
    return [seg[1:-1].split(":")[0] for seg in path.split("/") if seg.startswith("{")]


def openapi_document(app: web.Application) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `app`'s routes."""
    routes: list[tuple[str, str, Any, Endpoint | None]] = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if not path or route.method in ("HEAD", "*"):
            continue
        ep = endpoint_of(route.handler)
        if (ep is not None and ep.page) or (ep is None and not path.startswith("/api/")):
            continue  # the web pages (/login, /seat, …) and their own actions are not the API
        routes.append((path, route.method.lower(), route.handler, ep))

    schemas = _Schemas()
    schemas.add(Problem, "serialization")
    keys: dict[tuple[str, str], dict[str, Any]] = {}
    for path, method, _handler, ep in routes:
        if ep is None:
            continue
        keys[(path, method)] = {
            "path": schemas.add(ep.path, "validation") if ep.path else None,
            "query": schemas.add(ep.query, "validation") if ep.query else None,
            "body": schemas.add(ep.body, "validation") if ep.body else None,
            "response": schemas.add(ep.response, "serialization") if ep.response else None,
            "problems": {st: schemas.add(m, "serialization") for st, m in ep.problems.items()},
        }
    schemas.build()

    paths: dict[str, PathItem] = {}
    for path, method, handler, ep in routes:
        doc = (getattr(handler, "__doc__", None) or "").strip()
        summary, _, description = doc.partition("\n")
        ep = ep or Endpoint()
        k = keys.get((path, method), {})
        params: list[Parameter | Reference] = []
        params += _parameters(schemas, k.get("path"), "path") + _parameters(
            schemas, k.get("query"), "query"
        )
        declared = {p.name for p in params if isinstance(p, Parameter) and p.param_in == "path"}
        for name in _path_names(path):
            if name not in declared:  # a route without a path model
                params.append(
                    Parameter.model_validate(
                        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                    )
                )
        responses: dict[str, Response | Reference] = {}
        ok_content: dict[str, MediaType] = {}
        if k.get("response"):
            ok_content["application/json"] = _media(schemas.of(k["response"]))
        for media, what in ep.media.items():
            ok_content[media] = _media({"type": "string", "description": what})
        responses[str(ep.status)] = Response(
            description=STATUS_TEXT.get(ep.status, "OK"), content=ok_content or None
        )
        if 206 in ep.errors:
            responses["206"] = Response(description=STATUS_TEXT[206], content=ok_content or None)
        errors = {400, 405, 413, *ep.errors, *ep.problems} - {206}
        if ep.path is not None:
            errors.add(404)
        if not ep.public:
            errors.add(401)
        problems = k.get("problems", {})
        for status in sorted(errors):
            responses[str(status)] = _error_response(
                status, schemas.of(problems[status]) if status in problems else None
            )
        if ep.supervisor:
            description = f"{description.strip()}\n\nSupervisors and maintainers only.".strip()
        op = Operation(
            summary=summary or handler.__name__,
            description=description.strip() or None,
            operationId=f"{method}_{handler.__name__}",
            tags=list(ep.tags) or None,
            parameters=params or None,
            requestBody=RequestBody(
                required=ep.body_required,
                content={"application/json": _media(schemas.of(k["body"]))},
            )
            if k.get("body")
            else None,
            responses=responses,
            security=[] if ep.public else [{"bearer": []}],
        )
        if ep.supervisor:  # an extension: tools (and the fuzzer) can leave these out
            op = Operation.model_validate({**op.model_dump(by_alias=True), SUPERVISOR_ONLY: True})
        item = paths.setdefault(path, PathItem())
        setattr(item, method, op)

    document = OpenAPI(
        openapi="3.1.0",
        info=Info(
            title=TITLE,
            version="1",
            description=(
                "Send `Authorization: Bearer <token>` (`callcenter tokens create`). Errors are "
                "JSON: `error` (what went wrong and what to do), `status`, and for invalid "
                "input `errors`, one entry per field. The document and /api/docs need no token."
            ),
        ),
        paths=dict(sorted(paths.items())),
        components=Components(
            schemas={name: _schema(s) for name, s in sorted(schemas.definitions.items())},
            securitySchemes={"bearer": SecurityScheme(type="http", scheme="bearer")},
        ),
    )
    return document.model_dump(mode="json", by_alias=True, exclude_none=True)
