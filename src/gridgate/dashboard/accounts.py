"""Operators' accounts: the list with balances, a form to create one, and each account's page —
balance, credit and adjust (each form with its own idempotency key, so a double submit applies
once), rate limits, keys and people."""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp import web

from gridgate.core.access import require_operator
from gridgate.core.limits.overrides import FIELDS, parse_value
from gridgate.dashboard.pages import done, guarded, render
from gridgate.dashboard.session import Viewer, posted_form, viewer
from gridgate.errors import ValidationFailed
from gridgate.state import STATE
from gridgate.storage.limiter.port import LimitKind


async def _list(request: web.Request, who: Viewer, *, error: str | None = None) -> web.Response:
    services = request.app[STATE].services
    require_operator(who.actor)
    rows = [
        (a, await services.accounts.balance(who.actor, a.id))
        for a in await services.accounts.list(who.actor)
    ]
    return render(
        request,
        who,
        "accounts.html",
        active="accounts",
        rows=rows,
        error=error,
        status=422 if error else 200,
    )


@guarded
async def accounts_page(request: web.Request) -> web.StreamResponse:
    return await _list(request, await viewer(request))


@guarded
async def create_account(request: web.Request) -> web.StreamResponse:
    who, form = await posted_form(request)
    try:
        account = await request.app[STATE].services.accounts.create(who.actor, form.get("name", ""))
    except ValidationFailed as exc:
        return await _list(request, who, error=exc.message)
    raise done(f"/accounts/{account.id}", "account-created")


async def _account(
    request: web.Request, who: Viewer, *, error: str | None = None, status: int = 200
) -> web.Response:
    services = request.app[STATE].services
    require_operator(who.actor)
    account_id = request.match_info["account_id"]
    account = await services.accounts.get(who.actor, account_id)
    context: dict[str, Any] = {
        "account": account,
        "balance": await services.accounts.balance(who.actor, account_id),
        "keys": await services.api_keys.list(who.actor, account_id),
        "users": await services.users.list(who.actor, account_id),
        "limits": await services.limits.show(who.actor, "account", account_id),
        "now": request.app[STATE].clock.now_us(),
        "credit_key": secrets.token_urlsafe(16),
        "adjust_key": secrets.token_urlsafe(16),
    }
    return render(
        request, who, "account.html", active="accounts", error=error, status=status, **context
    )


@guarded
async def account_page(request: web.Request) -> web.StreamResponse:
    return await _account(request, await viewer(request))


@guarded
async def move_money(request: web.Request) -> web.StreamResponse:
    """The credit and adjust forms (``kind``)."""
    who, form = await posted_form(request)
    account_id = request.match_info["account_id"]
    accounts = request.app[STATE].services.accounts
    kind = form.get("kind")
    try:
        if kind == "adjust":
            await accounts.adjust(
                who.actor,
                account_id,
                form.get("amount_usd", ""),
                idempotency_key=form.get("idempotency_key", ""),
                memo=form.get("memo") or None,
            )
        else:
            await accounts.credit(
                who.actor,
                account_id,
                form.get("amount_usd", ""),
                idempotency_key=form.get("idempotency_key") or None,
                memo=form.get("memo") or None,
            )
    except ValidationFailed as exc:
        return await _account(request, who, error=exc.message, status=422)
    raise done(f"/accounts/{account_id}", "adjusted" if kind == "adjust" else "credited")


@guarded
async def set_limits(request: web.Request) -> web.StreamResponse:
    who, form = await posted_form(request)
    account_id = request.match_info["account_id"]
    try:
        changes: dict[LimitKind, int | None] = {
            kind: parse_value(form.get(field) or "default", param=field)
            for kind, field in FIELDS.items()
        }
        await request.app[STATE].services.limits.set(who.actor, "account", account_id, changes)
    except ValidationFailed as exc:
        return await _account(request, who, error=exc.message, status=422)
    raise done(f"/accounts/{account_id}", "limits-saved")


@guarded
async def create_user(request: web.Request) -> web.StreamResponse:
    who, form = await posted_form(request)
    account_id = request.match_info["account_id"]
    try:
        await request.app[STATE].services.users.create(
            who.actor,
            email=form.get("email", ""),
            name=form.get("name", ""),
            role=form.get("role", "member"),
            account_id=account_id,
            password=form.get("password", ""),
        )
    except ValidationFailed as exc:
        return await _account(request, who, error=exc.message, status=422)
    raise done(f"/accounts/{account_id}", "user-created")


@guarded
async def set_user_active(request: web.Request) -> web.StreamResponse:
    who, form = await posted_form(request)
    account_id = request.match_info["account_id"]
    user = await request.app[STATE].services.users.get(who.actor, form.get("user_id", ""))
    try:
        await request.app[STATE].services.users.set_disabled(
            who.actor, user.id, form.get("active") != "yes"
        )
    except ValidationFailed as exc:
        return await _account(request, who, error=exc.message, status=422)
    raise done(f"/accounts/{account_id}", "user-updated")
