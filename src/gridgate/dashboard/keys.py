"""API keys: the list (prefix, created, last used, expiry, state), a form to create one — its
secret shown once, with a copy button — and revoking, after a confirmation page."""

from __future__ import annotations

from aiohttp import web

from gridgate.dashboard.pages import done, guarded, render
from gridgate.dashboard.session import Viewer, posted_form, viewer
from gridgate.errors import ValidationFailed
from gridgate.state import STATE


async def _list_page(
    request: web.Request,
    who: Viewer,
    *,
    created: object = None,
    error: str | None = None,
    status: int = 200,
) -> web.Response:
    services = request.app[STATE].services
    keys = await services.api_keys.list(who.actor)
    accounts = await services.accounts.list(who.actor) if who.is_operator else []
    return render(
        request,
        who,
        "keys.html",
        active="keys",
        keys=keys,
        now=request.app[STATE].clock.now_us(),
        created=created,
        error=error,
        accounts=accounts,
        status=status,
    )


@guarded
async def keys_page(request: web.Request) -> web.StreamResponse:
    return await _list_page(request, await viewer(request))


@guarded
async def create_key(request: web.Request) -> web.StreamResponse:
    who, form = await posted_form(request)
    expires = form.get("expires_at") or None
    try:
        new = await request.app[STATE].services.api_keys.create(
            who.actor,
            form.get("account_id") or None,
            form.get("name", ""),
            expires_at=None if expires is None else f"{expires}T23:59:59Z",
            own_usage_only=form.get("own_usage_only") == "1",
        )
    except ValidationFailed as exc:
        return await _list_page(request, who, error=exc.message, status=422)
    return await _list_page(request, who, created=new)


@guarded
async def confirm_revoke(request: web.Request) -> web.StreamResponse:
    who = await viewer(request)
    key = await request.app[STATE].services.api_keys.get(who.actor, request.match_info["key_id"])
    return render(request, who, "revoke.html", active="keys", key=key)


@guarded
async def revoke_key(request: web.Request) -> web.StreamResponse:
    who, _ = await posted_form(request)
    await request.app[STATE].services.api_keys.revoke(who.actor, request.match_info["key_id"])
    raise done("/keys", "key-revoked")
