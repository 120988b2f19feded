"""The management API's OpenAPI 3.1 document, built once at start from ``routes.py``'s table,
the table ``app.py`` serves (``document.py`` serves it at ``GET /api/v1/openapi.json``). Request bodies and answers are described
by the very msgspec structs that decode and encode them (``msgspec.json.schema_components``); only
the ``{"data": …}`` envelope and the error are written here. Schemathesis checks the answers
against the document."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import msgspec

from gridgate.api.manage.routes import ANYONE, Op, operations

Schema = dict[str, Any]
COMPONENTS = "#/components/schemas/"

ERRORS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "400": ("BadRequest", "Malformed JSON, or a body not sent as application/json"),
        "401": ("Unauthorized", "Not signed in, or wrong credentials (code not_authenticated)"),
        "402": ("InsufficientBalance", "The change would take the balance below zero"),
        "403": (
            "Forbidden",
            "A cookie call without the session's X-CSRF-Token (code csrf_failed), or an operator's "
            "operation by someone else (code forbidden)",
        ),
        "404": ("NotFound", "No such object, or one of another account"),
        "413": ("PayloadTooLarge", "The body is too large (as sent, or once decompressed)"),
        "415": (
            "UnsupportedMediaType",
            "A Content-Encoding other than identity, gzip or deflate "
            "(code unsupported_content_encoding)",
        ),
        "422": ("ValidationFailed", "A value is wrong or out of range; error.param names it"),
        "429": (
            "RateLimited",
            "Too many failed sign-ins from this address (for this email, or in all); see "
            "Retry-After",
        ),
        "503": ("Unavailable", "The sign-in throttle's store is unreachable (fails closed)"),
    }
)


def ref(name: str) -> Schema:
    return {"$ref": f"{COMPONENTS}{name}"}


def obj(properties: dict[str, Schema]) -> Schema:
    """An object with exactly ``properties``, all of them always present."""
    return {
        "type": "object",
        "required": list(properties),
        "properties": properties,
        "additionalProperties": False,
    }


def _data(schema: Schema, *, paged: bool) -> Schema:
    """The envelope of every JSON answer: ``{"data": …}``, a page's with its cursor."""
    properties: dict[str, Schema] = {"data": schema}
    if paged:
        properties["next_cursor"] = {
            "type": ["string", "null"],
            "description": "Pass as cursor for the next page; null on the last",
        }
    return obj(properties)


def _error() -> Schema:
    nullable_string = {"type": ["string", "null"]}
    detail = {
        "type": "object",
        "properties": {"detail": {"type": "string"}},
        "required": ["detail"],
    }
    error = {
        "type": "object",
        "required": ["message", "type"],
        "properties": {
            "message": {"type": "string"},
            "type": {"type": "string"},
            "param": nullable_string,
            "code": nullable_string,
        },
    }
    return {
        "type": "object",
        "required": ["errors", "error"],
        "properties": {"errors": detail, "error": error},
        "description": "The reference exchange's envelope (`errors.detail`) with OpenAI's "
        "(`error`); `error.param` names the offending parameter.",
    }


def _documented_path(path: str) -> str:
    """A routed path without its parameters' patterns: ``{offer_id:.+}`` → ``{offer_id}``."""
    return re.sub(r"\{(\w+):[^}]*\}", r"{\1}", path)


def _security(op: Op) -> list[dict[str, list[str]]]:
    if op.who == ANYONE:
        return []
    cookie: dict[str, list[str]] = {"sessionCookie": []}
    if op.method != "get":
        cookie["csrfToken"] = []
    return [{"managementToken": []}, cookie]


def _path_params(path: str) -> list[dict[str, Any]]:
    names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
    return [
        {"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names
    ]


def _error_codes(op: Op) -> list[str]:
    codes = set(op.errors)
    if op.who != ANYONE:
        codes |= {"401", "403", "404", "422"}
    if op.body is not None:
        codes |= {"400", "413", "415", "422"}
    if op.params:
        codes.add("422")
    return sorted(codes)


def _operation(op: Op, schemas: dict[Any, Schema]) -> dict[str, Any]:
    success: dict[str, Any] = {"description": op.summary.split(";")[0]}
    if op.answer is not None:
        answer = schemas[op.answer]
        if not op.raw:
            answer = _data(answer, paged=op.paged)
        success["content"] = {op.media: {"schema": answer}}
    responses: dict[str, Any] = {str(op.status): success}
    for code in _error_codes(op):
        responses[code] = {"$ref": f"#/components/responses/{ERRORS[code][0]}"}
    out: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "security": _security(op),
        "responses": responses,
    }
    parameters = _path_params(_documented_path(op.path)) + op.params
    if parameters:
        out["parameters"] = parameters
    if op.body is not None:
        out["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schemas[op.body]}},
        }
    return out


def _responses() -> dict[str, Any]:
    error = {"application/json": {"schema": ref("Error")}}
    out: dict[str, Any] = {}
    for code, (name, description) in ERRORS.items():
        out[name] = {"description": description, "content": error}
        if code == "429":
            out[name]["headers"] = {"Retry-After": {"schema": {"type": "string"}}}
    return out


def _without_view(name: str) -> str:
    return name.removesuffix("View")


def _public_names(node: Any) -> Any:
    """A shape ``<Name>View`` is documented as ``<Name>``: its ``$ref`` and its ``title``."""
    if isinstance(node, dict):
        return {
            k: _without_view(v)
            if k in ("$ref", "title") and isinstance(v, str)
            else _public_names(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_public_names(v) for v in node]
    return node


def _schemas(ops: Sequence[Op]) -> tuple[dict[Any, Schema], dict[str, Schema]]:
    """The schema of every request body and answer type in ``ops``, and the components they
    refer to, derived by msgspec in one pass (so that one name means one type)."""
    kinds = list(dict.fromkeys(k for op in ops for k in (op.body, op.answer) if k is not None))
    found, components = msgspec.json.schema_components(kinds, ref_template=COMPONENTS + "{name}")
    named = {_without_view(name): _public_names(schema) for name, schema in components.items()}
    if len(named) != len(components) or "Error" in named:
        raise ValueError(f"two schemas would share a name: {sorted(components)}")
    return dict(zip(kinds, _public_names(list(found)), strict=True)), named


def build_document(ops: Sequence[Op]) -> dict[str, Any]:
    schemas, components = _schemas(ops)
    paths: dict[str, dict[str, Any]] = {}
    for op in ops:
        paths.setdefault(_documented_path(op.path), {})[op.method] = _operation(op, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "gridgate management API",
            "version": "1.0.0",
            "description": "Sessions for people and management tokens for scripts; an "
            "account's API keys, balance and usage; the operator's accounts, limits, people, "
            "catalog, offer health and audit log. Authenticate with `Authorization: Bearer "
            "ggm_…` or the `gridgate_session` cookie; with the cookie, every "
            "POST/PUT/PATCH/DELETE carries the session's CSRF token in `X-CSRF-Token`. Answers "
            'are `{"data": …}`. Operators act on any account; an account\'s owner and members '
            "on their own only (another account's objects answer 404).",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": {"Error": _error(), **components},
            "responses": _responses(),
            "securitySchemes": {
                "managementToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A management token, ggm_…",
                },
                "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "gridgate_session"},
                "csrfToken": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-CSRF-Token",
                    "description": "The session's CSRF token (from POST /api/v1/session); "
                    "required with the cookie on unsafe methods",
                },
            },
        },
    }


def load_document() -> bytes:
    return msgspec.json.encode(build_document(operations()))
