"""Signing in and out of the dashboard: the same throttled password check and session as the
management API's ``POST /api/v1/session``, through a form with a login CSRF token."""

from __future__ import annotations

from aiohttp import web

from gridgate.dashboard.pages import guarded, render, url
from gridgate.dashboard.session import (
    LOGIN_COOKIE,
    PREFIX,
    local_path,
    login_token_ok,
    new_login_token,
    posted_form,
    read_form,
    set_login_cookie,
)
from gridgate.errors import GridgateError, http_status
from gridgate.state import STATE
from gridgate.web.session_cookie import SESSION_COOKIE, clear_session_cookie, set_session_cookie


def _form(
    request: web.Request, *, error: str | None, email: str, status: int, next_path: str | None
) -> web.Response:
    nonce, token = new_login_token()
    page = render(
        request,
        None,
        "login.html",
        status=status,
        error=error,
        email=email,
        next=local_path(next_path),
        login_token=token,
    )
    set_login_cookie(page, nonce)
    return page


async def login_page(request: web.Request) -> web.StreamResponse:
    secret = request.cookies.get(SESSION_COOKIE)
    if await request.app[STATE].services.people.resolve_session(secret) is not None:
        raise web.HTTPSeeOther(local_path(request.query.get("next")))
    return _form(request, error=None, email="", status=200, next_path=request.query.get("next"))


async def login(request: web.Request) -> web.StreamResponse:
    form = await read_form(request)
    email = form.get("email", "")[:254]
    if not login_token_ok(request, form.get("login_token")):
        return _form(
            request,
            error="This sign-in form has expired; please try again.",
            email=email,
            status=403,
            next_path=form.get("next"),
        )
    try:
        _, opened = await request.app[STATE].sign_in.login(
            email, form.get("password", ""), request.remote or "unknown"
        )
    except GridgateError as exc:
        return _form(
            request,
            error=exc.message,
            email=email,
            status=http_status(exc),
            next_path=form.get("next"),
        )
    response = web.HTTPSeeOther(local_path(form.get("next")))
    set_session_cookie(response, opened.secret)
    response.del_cookie(LOGIN_COOKIE, path=PREFIX)
    raise response


@guarded
async def logout(request: web.Request) -> web.StreamResponse:
    who, _ = await posted_form(request)
    await request.app[STATE].sign_in.logout(
        who.user, who.session, request.cookies.get(SESSION_COOKIE)
    )
    response = web.HTTPSeeOther(url("/login"))
    clear_session_cookie(response)
    raise response
