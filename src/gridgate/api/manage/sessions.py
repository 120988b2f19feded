"""``/api/v1/session`` (sign in, sign out), ``/api/v1/me`` and ``/api/v1/me/password``.

The session cookie they set and clear is described in ``web/session_cookie.py``.
"""

from __future__ import annotations

import msgspec
from aiohttp import web

from gridgate.api.manage.answers import data, no_content
from gridgate.api.manage.json_body import decode_json
from gridgate.api.manage.principal import principal
from gridgate.shapes import UserView, View
from gridgate.state import STATE
from gridgate.web.session_cookie import SESSION_COOKIE, clear_session_cookie, set_session_cookie


class Credentials(msgspec.Struct, forbid_unknown_fields=True):
    email: str
    password: str


class PasswordChange(msgspec.Struct, forbid_unknown_fields=True):
    current_password: str
    new_password: str


class SessionView(View):
    """Who signed in, and the CSRF token their unsafe cookie calls send as X-CSRF-Token."""

    user: UserView
    csrf_token: str


class MeView(View):
    user: UserView


async def login(request: web.Request) -> web.Response:
    body = await decode_json(request, Credentials)
    user, opened = await request.app[STATE].sign_in.login(
        body.email, body.password, request.remote or "unknown"
    )
    response = data(SessionView(user=UserView.of(user), csrf_token=opened.csrf_token))
    set_session_cookie(response, opened.secret)
    return response


async def logout(request: web.Request) -> web.Response:
    who = await principal(request)
    secret = request.cookies.get(SESSION_COOKIE)
    await request.app[STATE].sign_in.logout(who.user, who.session, secret)
    response = no_content()
    clear_session_cookie(response)
    return response


async def me(request: web.Request) -> web.Response:
    who = await principal(request)
    return data(MeView(user=UserView.of(who.user)))


async def change_password(request: web.Request) -> web.Response:
    who = await principal(request)
    body = await decode_json(request, PasswordChange)
    await request.app[STATE].services.users.change_password(
        who.actor, body.current_password, body.new_password
    )
    return no_content()
