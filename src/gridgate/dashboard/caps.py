"""Spend caps: an account's caps and its keys', each with what its window has spent, what is
left and when it resets; a form to set one (the account's owner, or an operator) and a button to
remove one. Operators choose the account (``?account_id=``)."""

from __future__ import annotations

from aiohttp import web

from gridgate.core.billing.cap_windows import PERIODS
from gridgate.core.billing.spend_caps import parse_limit, parse_period
from gridgate.dashboard.pages import done, guarded, render
from gridgate.dashboard.session import Viewer, posted_form, viewer
from gridgate.errors import ValidationFailed
from gridgate.shapes import SpendCapView
from gridgate.state import STATE
from gridgate.storage.records import CapScope, KeyRecord


async def _page(
    request: web.Request,
    who: Viewer,
    account_id: str | None,
    *,
    error: str | None = None,
    status: int = 200,
) -> web.Response:
    services = request.app[STATE].services
    accounts = await services.accounts.list(who.actor) if who.is_operator else []
    if account_id is None:
        account_id = who.user.account_id or (accounts[0].id if accounts else None)
    caps: list[SpendCapView] = []
    keys: list[KeyRecord] = []
    if account_id is not None:
        uses = await services.spend_caps.of_account(who.actor, account_id)
        caps = [SpendCapView.of(use) for use in uses]
        keys = await services.api_keys.list(who.actor, account_id)
    return render(
        request,
        who,
        "caps.html",
        active="caps",
        account_id=account_id,
        accounts=accounts,
        caps=caps,
        keys=[k for k in keys if k.revoked_us is None],
        names={k.id: k.name for k in keys},
        periods=PERIODS,
        may_set=who.is_operator or who.user.role == "owner",
        error=error,
        status=status,
    )


@guarded
async def caps_page(request: web.Request) -> web.StreamResponse:
    who = await viewer(request)
    return await _page(request, who, request.query.get("account_id") or None)


@guarded
async def set_cap(request: web.Request) -> web.StreamResponse:
    who, form = await posted_form(request)
    account_id = form.get("account_id") or who.user.account_id
    subject = form.get("subject", "")
    scope: CapScope = "account" if subject in ("", "account") else "key"
    try:
        await request.app[STATE].services.spend_caps.set(
            who.actor,
            scope=scope,
            subject=(account_id or "") if scope == "account" else subject,
            period=parse_period(form.get("period", "")),
            limit=parse_limit(form.get("limit_usd", "").strip()),
        )
    except ValidationFailed as exc:
        return await _page(request, who, account_id, error=exc.message, status=422)
    raise done(_back(who, account_id), "cap-saved")


@guarded
async def remove_cap(request: web.Request) -> web.StreamResponse:
    who, _ = await posted_form(request)
    removed = await request.app[STATE].services.spend_caps.remove(
        who.actor, request.match_info["cap_id"]
    )
    raise done(_back(who, removed.account_id), "cap-removed")


def _back(who: Viewer, account_id: str | None) -> str:
    return f"/caps?account_id={account_id}" if who.is_operator and account_id else "/caps"
