"""Signing in and out: a throttled password check that opens a session, and its closing; both
written to the audit log with the user as actor."""

from __future__ import annotations

from gridgate.core.limits.login_throttle import LoginThrottle
from gridgate.core.people.directory import NewSession, People
from gridgate.storage.records import SessionRecord, UserRecord


class SignIn:
    def __init__(self, people: People, throttle: LoginThrottle) -> None:
        self._people = people
        self._throttle = throttle

    async def login(self, email: str, password: str, client: str) -> tuple[UserRecord, NewSession]:
        """``RateLimited`` when ``email`` or ``client`` has failed too often; ``Unauthorized``
        (one message for every cause) when the credentials are wrong."""
        ticket = await self._throttle.attempt(email, client)
        user = await self._people.authenticate(email, password)
        await self._throttle.succeeded(ticket)
        opened = await self._people.open_session(user)
        await self._people.audit(user.id, "session.login", user.id, client=client)
        return user, opened

    async def logout(
        self, user: UserRecord, session: SessionRecord | None, secret: str | None
    ) -> None:
        """Close the session of ``secret`` (a token-authenticated caller has none to close)."""
        if session is None:
            return
        await self._people.close_session(secret)
        await self._people.audit(user.id, "session.logout", user.id)
