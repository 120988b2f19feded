"""Your profile: change your password, and your management tokens for scripts (create — the
secret shown once — and revoke)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gridgate.dashboard.pages import done, guarded, render
from gridgate.dashboard.session import Viewer, posted_form, viewer
from gridgate.errors import ValidationFailed
from gridgate.state import STATE


async def _page(
    request: web.Request, who: Viewer, status: int = 200, **context: Any
) -> web.Response:
    tokens = await request.app[STATE].services.tokens.list(who.actor)
    context.setdefault("error", None)
    context.setdefault("created", None)
    return render(
        request,
        who,
        "profile.html",
        active="profile",
        status=status,
        tokens=tokens,
        now=request.app[STATE].clock.now_us(),
        **context,
    )


@guarded
async def profile_page(request: web.Request) -> web.StreamResponse:
    return await _page(request, await viewer(request))


@guarded
async def change_password(request: web.Request) -> web.StreamResponse:
    who, form = await posted_form(request)
    if form.get("new_password", "") != form.get("confirm_password", ""):
        return await _page(request, who, 422, error="The two new passwords differ.")
    try:
        await request.app[STATE].services.users.change_password(
            who.actor, form.get("current_password", ""), form.get("new_password", "")
        )
    except ValidationFailed as exc:
        return await _page(request, who, 422, error=exc.message)
    raise done("/profile", "password-changed")


@guarded
async def create_token(request: web.Request) -> web.StreamResponse:
    who, form = await posted_form(request)
    try:
        new = await request.app[STATE].services.tokens.create(who.actor, form.get("name", ""))
    except ValidationFailed as exc:
        return await _page(request, who, 422, error=exc.message)
    return await _page(request, who, created=new)


@guarded
async def revoke_token(request: web.Request) -> web.StreamResponse:
    who, _ = await posted_form(request)
    await request.app[STATE].services.tokens.revoke(who.actor, request.match_info["token_id"])
    raise done("/profile", "token-revoked")
