"""Who is looking at a dashboard page, and the CSRF check of every form they post.

A page needs the session cookie (else: to the sign-in page, and back after). Every form carries
the session's CSRF token in a hidden ``csrf_token`` field; a post without it, or with another,
changes nothing and answers 403. The token is derived from the session's secret
(``people.csrf_token_for``), so the server renders it into each form without storing it. The
sign-in form has a token of its own, tied to a short-lived ``gridgate_login`` cookie, so another
site cannot sign a browser in as someone else (login CSRF). A post whose ``Origin`` names another
site is refused as well.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from aiohttp import web
from multidict import MultiDict, MultiDictProxy

from gridgate.core.access import Actor
from gridgate.core.people.directory import csrf_ok, csrf_token_for
from gridgate.errors import PermissionDenied
from gridgate.state import STATE
from gridgate.storage.records import SessionRecord, UserRecord
from gridgate.web.request_body import refuse_encoded
from gridgate.web.session_cookie import SESSION_COOKIE

LOGIN_COOKIE = "gridgate_login"
PREFIX = "/dashboard"
MAX_FORM_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Viewer:
    user: UserRecord
    session: SessionRecord
    csrf_token: str

    @property
    def actor(self) -> Actor:
        return Actor.of(self.user)

    @property
    def is_operator(self) -> bool:
        return self.user.role == "operator"


def local_path(target: str | None) -> str:
    """``target`` if it is a dashboard path on this site (where to go after signing in)."""
    if not target:
        return PREFIX + "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith(PREFIX) or "\\" in target:
        return PREFIX + "/"
    return target


async def viewer(request: web.Request) -> Viewer:
    """The signed-in person, or a redirect (303) to the sign-in page."""
    secret = request.cookies.get(SESSION_COOKIE)
    active = await request.app[STATE].services.people.resolve_session(secret)
    if active is None or secret is None:
        raise web.HTTPSeeOther(f"{PREFIX}/login?next={quote(request.path_qs, safe='')}")
    return Viewer(active.user, active.record, csrf_token_for(secret))


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:  # not every browser sends it; the CSRF token still must match
        return True
    return urlsplit(origin).netloc == request.host


async def read_form(request: web.Request) -> MultiDictProxy[str]:
    """The posted form (a form only, of a bounded size)."""
    if request.content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        raise PermissionDenied("expected a form", code="csrf_failed")
    if (request.content_length or 0) > MAX_FORM_BYTES:
        raise PermissionDenied("form too large", code="csrf_failed")
    refuse_encoded(request)
    form = await request.post()
    return MultiDictProxy(MultiDict((k, v) for k, v in form.items() if isinstance(v, str)))


async def posted_form(request: web.Request) -> tuple[Viewer, MultiDictProxy[str]]:
    """The signed-in person and their form, once its CSRF token and origin check out."""
    who = await viewer(request)
    form = await read_form(request)
    if not _same_origin(request) or not csrf_ok(who.session, form.get("csrf_token")):
        raise PermissionDenied(
            "this form has expired or did not come from this dashboard; reload and try again",
            code="csrf_failed",
        )
    return who, form


def new_login_token() -> tuple[str, str]:
    """A fresh sign-in nonce (for the ``gridgate_login`` cookie) and the token its form carries."""
    nonce = secrets.token_urlsafe(32)
    return nonce, csrf_token_for(nonce)


def set_login_cookie(response: web.StreamResponse, nonce: str) -> None:
    response.set_cookie(
        LOGIN_COOKIE, nonce, httponly=True, samesite="Strict", secure=True, path=PREFIX,
        max_age=3600,
    )  # fmt: skip


def login_token_ok(request: web.Request, token: str | None) -> bool:
    nonce = request.cookies.get(LOGIN_COOKIE)
    if not nonce or not token or len(nonce) > 128 or not _same_origin(request):
        return False
    return secrets.compare_digest(csrf_token_for(nonce), token)
