"""The session cookie, set by signing in through the management API (``POST /api/v1/session``)
or the dashboard's form, and read by both.

It is ``HttpOnly`` (no script reads it), ``SameSite=Strict`` (no other site's request carries
it), ``Secure`` (browsers treat http://127.0.0.1 and localhost as secure, so it works locally
too) and ``Path=/``. It has no ``Max-Age``: it ends with the browser, and the server ends it
sooner (12 hours idle, 7 days at most).
"""

from __future__ import annotations

from aiohttp import web

SESSION_COOKIE = "gridgate_session"


def set_session_cookie(response: web.StreamResponse, secret: str) -> None:
    response.set_cookie(
        SESSION_COOKIE, secret, httponly=True, samesite="Strict", secure=True, path="/"
    )


def clear_session_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="Strict")
