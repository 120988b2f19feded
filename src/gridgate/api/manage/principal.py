"""Who is calling the management API (``/api/v1``).

Either a script with a management token (``Authorization: Bearer ggm_…``; no CSRF token, since
a browser never adds that header by itself), or a person with the session cookie — then every
unsafe method (POST, PUT, PATCH, DELETE) must carry the session's CSRF token in ``X-CSRF-Token``
(403 ``csrf_failed`` otherwise). An ``Authorization`` header, when sent, is the credential: a bad
one is 401 whatever cookie comes with it. Neither → 401.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from gridgate.core.access import Actor
from gridgate.core.accounts.auth import bearer_token
from gridgate.core.people.directory import csrf_ok
from gridgate.errors import PermissionDenied, Unauthorized
from gridgate.state import STATE
from gridgate.storage.records import SessionRecord, UserRecord
from gridgate.web.session_cookie import SESSION_COOKIE

CSRF_HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True, slots=True)
class Principal:
    user: UserRecord
    session: SessionRecord | None  # None: acting through a management token

    @property
    def actor(self) -> Actor:
        return Actor.of(self.user)

    @property
    def by_token(self) -> bool:
        return self.session is None


async def actor(request: web.Request) -> Actor:
    """Who is calling (``principal``), as the services take them."""
    return (await principal(request)).actor


async def principal(request: web.Request) -> Principal:
    people = request.app[STATE].services.people
    header = request.headers.get("Authorization")
    if header is not None:
        return Principal(await people.token_user(bearer_token(header)), None)
    active = await people.resolve_session(request.cookies.get(SESSION_COOKIE))
    if active is None:
        raise Unauthorized(
            "not signed in: send the session cookie, or 'Authorization: Bearer <management token>'",
            code="not_authenticated",
        )
    if request.method in UNSAFE_METHODS and not csrf_ok(
        active.record, request.headers.get(CSRF_HEADER)
    ):
        raise PermissionDenied(
            f"missing or wrong {CSRF_HEADER} header (the session's CSRF token)", code="csrf_failed"
        )
    return Principal(active.user, active.record)
