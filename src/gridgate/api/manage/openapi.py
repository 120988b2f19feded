"""``GET /api/v1/openapi.json``: the management API's OpenAPI 3.1 document, built once at start
from a table of its operations. Request bodies are described by the very msgspec structs that
decode them (``msgspec.json.schema_components``), answers by ``openapi_schemas``; a test checks
that the document names exactly the routes the app serves, and schemathesis checks the answers
against it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import msgspec
from aiohttp import web

from gridgate.api.manage import accounts, api_keys, catalog, limits, sessions, tokens, users
from gridgate.api.manage.openapi_schemas import Schema, array, obj, ref, response_schemas, string
from gridgate.core.accounts.usage_pages import MAX_PAGE as USAGE_PAGE
from gridgate.core.audit_log import MAX_PAGE as AUDIT_PAGE
from gridgate.state import STATE

V1 = "/api/v1"
ANYONE = "anyone"  # no credentials
PERSON = "person"  # a signed-in person or a token
OPERATOR = "operator"  # an operator's session or token

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


def query(name: str, description: str, schema: Schema | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string", "maxLength": 256},
    }


def limit_q(maximum: int) -> dict[str, Any]:
    return query(
        "limit", f"Records per page (default {maximum})", {"type": "integer", "minimum": 1}
    )


@dataclass(frozen=True)
class Op:
    method: str
    path: str
    operation_id: str
    summary: str
    who: str = PERSON
    body: type | None = None
    status: int = 200
    answer: Schema | None = None  # the success body's schema; None: no body
    params: list[dict[str, Any]] = field(default_factory=list)
    errors: tuple[str, ...] = ()
    media: str = "application/json"
    paged: bool = False


def _data(schema: Schema, *, paged: bool) -> Schema:
    properties: dict[str, Schema] = {"data": schema}
    if paged:
        properties["next_cursor"] = {
            "type": ["string", "null"],
            "description": "Pass as cursor for the next page; null on the last",
        }
    return obj(properties)


def operations() -> list[Op]:
    account_q = query("account_id", "An operator's choice of account (others: only their own)")
    since = query("since", "From this time on (ISO 8601, or Unix seconds)")
    until = query("until", "Before this time (ISO 8601, or Unix seconds)")
    cursor = query("cursor", "The next_cursor of the previous page")
    usage_filters = [
        account_q,
        since,
        until,
        query("key_id", "Only this API key's requests"),
        query("instrument", "Only this instrument's requests"),
    ]
    keys = f"{V1}/api-keys/{{key_id}}"
    account = f"{V1}/accounts/{{account_id}}"
    instrument = f"{V1}/instruments/{{instrument_id}}"
    ops = [
        Op("get", f"{V1}/openapi.json", "getOpenApi", "This document", ANYONE, answer={}),
        Op(
            "post",
            f"{V1}/session",
            "login",
            "Sign in: sets the session cookie (HttpOnly, SameSite=Strict, Secure, Path=/) and "
            "returns the CSRF token that unsafe cookie calls send as X-CSRF-Token",
            ANYONE,
            sessions.Credentials,
            answer=_data(
                obj({"user": ref("User"), "csrf_token": string()}),
                paged=False,
            ),
            errors=("401", "429", "503"),
        ),
        Op("delete", f"{V1}/session", "logout", "Sign out", status=204),
        Op("get", f"{V1}/me", "getMe", "The calling person", answer=_single("User", "user")),
        Op(
            "put",
            f"{V1}/me/password",
            "changePassword",
            "Change the calling person's password",
            body=sessions.PasswordChange,
            status=204,
        ),
        Op(
            "get",
            f"{V1}/tokens",
            "listTokens",
            "The calling person's management tokens",
            answer=_list("Token"),
        ),
        Op(
            "post",
            f"{V1}/tokens",
            "createToken",
            "Create a management token; its secret is in `token`, this once (a token cannot "
            "create another)",
            body=tokens.CreateToken,
            status=201,
            answer=_one("Token"),
        ),
        Op(
            "delete",
            f"{V1}/tokens/{{token_id}}",
            "revokeToken",
            "Revoke a management token",
            status=204,
        ),
        Op(
            "get",
            f"{V1}/api-keys",
            "listApiKeys",
            "An account's API keys, oldest first",
            params=[account_q],
            answer=_list("ApiKey"),
        ),
        Op(
            "post",
            f"{V1}/api-keys",
            "createApiKey",
            "Create an API key; its secret is in `key`, this once",
            body=api_keys.CreateApiKey,
            status=201,
            answer=_one("ApiKey"),
        ),
        Op("get", keys, "getApiKey", "An API key", answer=_one("ApiKey")),
        Op(
            "put",
            keys,
            "updateApiKey",
            "Rename an API key; `is_active: false` revokes it",
            body=api_keys.UpdateApiKey,
            status=204,
        ),
        Op(
            "delete",
            keys,
            "revokeApiKey",
            "Revoke an API key (at once, in every process)",
            status=204,
        ),
        Op(
            "get",
            f"{V1}/balance",
            "getBalance",
            "What the account has left",
            params=[account_q],
            answer=_one("Balance"),
        ),
        Op(
            "get",
            f"{V1}/usage",
            "listUsage",
            "Usage records, newest first, a page at a time",
            params=[*usage_filters, limit_q(USAGE_PAGE), cursor],
            answer=_list("UsageRecord", True),
            paged=True,
        ),
        Op(
            "get",
            f"{V1}/usage/daily",
            "dailyUsage",
            "Usage summed per UTC day and instrument",
            params=usage_filters,
            answer=_list("DailyUsage"),
        ),
        Op(
            "get",
            f"{V1}/usage.csv",
            "exportUsage",
            "Every matching usage record as CSV (a download; one column per UsageRecord field)",
            params=usage_filters,
            answer={"type": "string"},
            media="text/csv",
        ),
        Op(
            "get",
            f"{V1}/accounts",
            "listAccounts",
            "Accounts with their balances (an account's people: their own)",
            answer=_list("Account"),
        ),
        Op(
            "post",
            f"{V1}/accounts",
            "createAccount",
            "Create an account",
            OPERATOR,
            accounts.CreateAccount,
            201,
            _one("Account"),
        ),
        Op("get", account, "getAccount", "An account with its balance", answer=_one("Account")),
        Op(
            "post",
            f"{account}/credits",
            "creditAccount",
            "Add prepaid funds; applied once per idempotency key (the body's or the "
            "Idempotency-Key header)",
            OPERATOR,
            accounts.Money,
            201,
            _one("MoneyMoved"),
            params=[_idempotency_header()],
        ),
        Op(
            "post",
            f"{account}/adjustments",
            "adjustAccount",
            "Correct a balance up or down (never below zero); applied once per idempotency key",
            OPERATOR,
            accounts.Money,
            201,
            _one("MoneyMoved"),
            params=[_idempotency_header()],
            errors=("402",),
        ),
    ]
    for subject, scope, noun in (
        (account, "an account", "Account"),
        (keys, "an API key", "ApiKey"),
        (instrument, "an instrument", "Instrument"),
    ):
        ops += [
            Op(
                "get",
                f"{subject}/limits",
                f"get{noun}Limits",
                f"The rate limits of {scope}: overrides and what is in effect",
                answer=_one("Limits"),
            ),
            Op(
                "put",
                f"{subject}/limits",
                f"set{noun}Limits",
                f'Set the rate limits of {scope} (a number, "unlimited" or "default")',
                OPERATOR,
                limits.SetLimits,
                answer=_one("Limits"),
            ),
        ]
    ops += [
        Op(
            "get",
            f"{V1}/users",
            "listUsers",
            "People (an account's people: their account's)",
            params=[account_q],
            answer=_list("User"),
        ),
        Op(
            "post",
            f"{V1}/users",
            "createUser",
            "Add a person (an owner: to their own account)",
            body=users.CreateUser,
            status=201,
            answer=_one("User"),
        ),
        Op(
            "patch",
            f"{V1}/users/{{user_id}}",
            "updateUser",
            "Enable or disable a person",
            body=users.UpdateUser,
            answer=_one("User"),
        ),
        Op(
            "get",
            f"{V1}/instruments",
            "listInstruments",
            "Instruments: spec, limits, best price now, 30 days of prices",
            answer=_list("Instrument"),
        ),
        Op(
            "post",
            f"{V1}/instruments",
            "createInstrument",
            "Create an instrument",
            OPERATOR,
            catalog.InstrumentBody,
            201,
            _one("Instrument"),
        ),
        Op("get", instrument, "getInstrument", "An instrument", answer=_one("Instrument")),
        Op(
            "patch",
            instrument,
            "updateInstrument",
            "Edit an instrument",
            OPERATOR,
            catalog.InstrumentBody,
            answer=_one("Instrument"),
        ),
        Op(
            "get",
            f"{V1}/suppliers",
            "listSuppliers",
            "Suppliers",
            OPERATOR,
            answer=_list("Supplier"),
        ),
        Op(
            "post",
            f"{V1}/suppliers",
            "createSupplier",
            "Add a supplier",
            OPERATOR,
            catalog.SupplierBody,
            201,
            _one("Supplier"),
        ),
        Op(
            "get",
            f"{V1}/suppliers/{{name}}",
            "getSupplier",
            "A supplier",
            OPERATOR,
            answer=_one("Supplier"),
        ),
        Op(
            "patch",
            f"{V1}/suppliers/{{name}}",
            "updateSupplier",
            "Edit a supplier (`enabled: false` takes it out of routing)",
            OPERATOR,
            catalog.SupplierBody,
            answer=_one("Supplier"),
        ),
        Op(
            "get",
            f"{V1}/offers",
            "listOffers",
            "Offers",
            OPERATOR,
            params=[
                query("instrument", "Only this instrument's"),
                query("supplier", "Only this supplier's"),
            ],
            answer=_list("Offer"),
        ),
        Op(
            "post",
            f"{V1}/offers",
            "createOffer",
            "Add an offer",
            OPERATOR,
            catalog.OfferBody,
            201,
            _one("Offer"),
        ),
        Op(
            "get",
            f"{V1}/offers/{{offer_id}}",
            "getOffer",
            "An offer",
            OPERATOR,
            answer=_one("Offer"),
        ),
        Op(
            "patch",
            f"{V1}/offers/{{offer_id}}",
            "updateOffer",
            "Edit an offer's prices and declarations (`enabled: false` disables it); routing "
            "follows at once in every process",
            OPERATOR,
            catalog.OfferBody,
            answer=_one("Offer"),
        ),
        Op(
            "get",
            f"{V1}/offer-health",
            "offerHealth",
            "Every offer's measured figures against its instrument's spec",
            OPERATOR,
            params=[
                query(
                    "window_seconds",
                    "The window, 1 to 86400 seconds",
                    {"type": "integer", "minimum": 1, "maximum": 86400},
                )
            ],
            answer=_list("OfferStatus"),
        ),
        Op(
            "get",
            f"{V1}/audit-log",
            "auditLog",
            "Who changed what, when: newest first",
            OPERATOR,
            params=[
                limit_q(AUDIT_PAGE),
                cursor,
                since,
                until,
                query("actor", "Only this actor's"),
                query("action", "Only this action, e.g. api_key.create"),
                query("subject", "Only changes of this object"),
            ],
            answer=_list("AuditEntry", True),
            paged=True,
        ),
    ]
    return ops


def _one(name: str) -> Schema:
    return _data(ref(name), paged=False)


def _single(name: str, key: str) -> Schema:
    return _data(obj({key: ref(name)}), paged=False)


def _list(name: str, paged: bool = False) -> Schema:
    return _data(array(ref(name)), paged=paged)


def _idempotency_header() -> dict[str, Any]:
    return {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": "The idempotency key, if the body does not carry one",
        "schema": {"type": "string", "maxLength": 256},
    }


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


def _operation(op: Op, bodies: dict[type, Schema]) -> dict[str, Any]:
    success: dict[str, Any] = {"description": op.summary.split(";")[0]}
    if op.answer is not None:
        success["content"] = {op.media: {"schema": op.answer}}
    responses: dict[str, Any] = {str(op.status): success}
    for code in _error_codes(op):
        responses[code] = {"$ref": f"#/components/responses/{ERRORS[code][0]}"}
    out: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "security": _security(op),
        "responses": responses,
    }
    parameters = _path_params(op.path) + op.params
    if parameters:
        out["parameters"] = parameters
    if op.body is not None:
        out["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": bodies[op.body]}},
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


def build_document() -> dict[str, Any]:
    ops = operations()
    kinds = list(dict.fromkeys(op.body for op in ops if op.body is not None))
    body_schemas, body_components = msgspec.json.schema_components(
        kinds, ref_template="#/components/schemas/{name}"
    )
    bodies = dict(zip(kinds, body_schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for op in ops:
        paths.setdefault(op.path, {})[op.method] = _operation(op, bodies)
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
            "schemas": {**response_schemas(), **body_components},
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
    return msgspec.json.encode(build_document())


async def openapi_document(request: web.Request) -> web.Response:
    return web.Response(body=request.app[STATE].openapi, content_type="application/json")
