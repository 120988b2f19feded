"""Login throttling: at most ``per_email`` failed logins per email and ``per_ip`` per client
address in any sliding window (by default 10 and 50 in 15 minutes).

Counted with a rate limiter of its own (the contract of ``core/rate_limits.py``) as ``tokens``
limits: an attempt counts 1 against both counters when it starts (so concurrent guesses cannot
slip past the limit) and is corrected to 0 when it succeeds; a failure keeps its 1. An attempt
over either limit is refused before any password is checked: ``RateLimited`` (429) with
``Retry-After``.

With Redis configured the counts are shared by every process (the same limiter as the API keys',
under a prefix of its own); when Redis cannot be reached, ``fail_open`` (the config's
``limits.on_backend_failure = "open"``) lets the attempt through unthrottled, else it is refused
with 503 — password guessing is never left uncounted by default.
"""

from __future__ import annotations

import itertools
import logging
import math
import secrets

from gridgate.core.rate_limits import Limit, LimiterUnavailable, RateLimiter, Ticket
from gridgate.errors import NoCapacity, RateLimited

log = logging.getLogger("gridgate.login")

LOGIN_WINDOW_MS = 15 * 60 * 1000
FAILURES_PER_EMAIL = 10
FAILURES_PER_IP = 50
_MAX_SUBJECT = 256


class LoginThrottle:
    def __init__(
        self,
        limiter: RateLimiter,
        *,
        per_email: int = FAILURES_PER_EMAIL,
        per_ip: int = FAILURES_PER_IP,
        fail_open: bool = False,
    ) -> None:
        self._limiter = limiter
        self._fail_open = fail_open
        self._per_email = per_email
        self._per_ip = per_ip
        self._prefix = "login_" + secrets.token_hex(6)
        self._counter = itertools.count(1)

    def _ticket_id(self) -> str:
        return f"{self._prefix}_{next(self._counter)}"

    def _limits(self, email: str, ip: str) -> list[Limit]:
        email = email.strip().lower()[:_MAX_SUBJECT]
        return [
            Limit("account", f"login-email:{email}", "tokens", self._per_email),
            Limit("account", f"login-ip:{ip[:_MAX_SUBJECT]}", "tokens", self._per_ip),
        ]

    async def attempt(self, email: str, ip: str) -> Ticket | None:
        """Count a login attempt, or refuse it with ``RateLimited`` when either limit is full.
        None: the limiter is unreachable and the throttle fails open."""
        try:
            decision = await self._limiter.admit(self._ticket_id(), self._limits(email, ip), 1)
        except LimiterUnavailable as exc:
            if self._fail_open:
                log.error("login throttling is off: its limiter is unreachable (%s)", exc)
                return None
            raise NoCapacity(
                "sign-in is unavailable right now (its rate limiter cannot be reached); retry "
                "shortly",
                code="login_throttle_unavailable",
                headers={"Retry-After": "1"},
            ) from exc
        if not decision.admitted or decision.ticket is None:
            seconds = max(1, math.ceil(decision.retry_after_ms / 1000))
            raise RateLimited(
                "too many failed logins; try again later",
                code="login_rate_limited",
                headers={"Retry-After": str(seconds)},
            )
        return decision.ticket

    async def succeeded(self, ticket: Ticket | None) -> None:
        """A successful login does not count as a failure."""
        if ticket is None:
            return
        try:
            await self._limiter.settle(ticket, 0)
        except LimiterUnavailable:
            log.warning("could not uncount a successful login; it counts until the window ends")
