"""Login throttling: the guesser's address is held back, the email's owner is not locked out.

Failed logins are counted in a sliding window (15 minutes): per client address (at most
``per_ip``, 50, whatever the emails), per email *and* address (at most ``per_email``, 10), and
per email across every address. The per-email count never refuses on its own — ten wrong
passwords from somewhere must not lock the owner (the operator included) out. Once an email has
had more than ``per_email`` failures in the window it is under attack, and each address then
gets only ``per_address_under_attack`` (3) failures on it: a distributed guesser is slowed to a
few guesses per address, while the owner, from any address that has not itself failed that
often, still signs in with the right password.

Counted with a rate limiter of its own (the contract of ``storage/limiter/port.py``) as ``tokens``
limits: an attempt counts 1 against every counter when it starts (so concurrent guesses cannot
slip past the limit) and is corrected to 0 when it succeeds; a failure keeps its 1. An attempt
over a limit is refused before any password is checked: ``RateLimited`` (429) with
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
from typing import NoReturn

from gridgate.errors import NoCapacity, RateLimited
from gridgate.storage.limiter.port import Limit, LimiterUnavailable, RateLimiter, Ticket

log = logging.getLogger("gridgate.login")

LOGIN_WINDOW_MS = 15 * 60 * 1000
FAILURES_PER_EMAIL = 10
FAILURES_PER_IP = 50
FAILURES_PER_ADDRESS_UNDER_ATTACK = 3
_UNCAPPED = 2**40  # the per-email count only measures: it never refuses on its own
_MAX_SUBJECT = 256


class LoginThrottle:
    def __init__(
        self,
        limiter: RateLimiter,
        *,
        per_email: int = FAILURES_PER_EMAIL,
        per_ip: int = FAILURES_PER_IP,
        per_address_under_attack: int = FAILURES_PER_ADDRESS_UNDER_ATTACK,
        fail_open: bool = False,
    ) -> None:
        self._limiter = limiter
        self._fail_open = fail_open
        self._per_email = per_email
        self._per_ip = per_ip
        self._per_address_under_attack = per_address_under_attack
        self._prefix = "login_" + secrets.token_hex(6)
        self._counter = itertools.count(1)

    def _ticket_id(self) -> str:
        return f"{self._prefix}_{next(self._counter)}"

    def _limits(self, email: str, ip: str) -> list[Limit]:
        email = email.strip().lower()[:_MAX_SUBJECT]
        ip = ip[:_MAX_SUBJECT]
        return [
            Limit("account", f"login-email-ip:{email}|{ip}", "tokens", self._per_email),
            Limit("account", f"login-ip:{ip}", "tokens", self._per_ip),
            Limit("account", f"login-email:{email}", "tokens", _UNCAPPED),
        ]

    async def attempt(self, email: str, ip: str) -> Ticket | None:
        """Count a login attempt, or refuse it with ``RateLimited`` when its address has failed
        too often (on this email, or on any). None: the limiter is unreachable and the throttle
        fails open."""
        try:
            decision = await self._limiter.admit(self._ticket_id(), self._limits(email, ip), 1)
            if decision.admitted and decision.ticket is not None:
                pair, _, on_email = decision.standings
                failures_here = self._per_email - pair.remaining  # this attempt included
                under_attack = _UNCAPPED - on_email.remaining > self._per_email
                if under_attack and failures_here > self._per_address_under_attack:
                    await self._limiter.settle(decision.ticket, 0)  # refused: not an attempt
                    self._refuse(pair.reset_ms)
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
            self._refuse(decision.retry_after_ms)
        return decision.ticket

    @staticmethod
    def _refuse(retry_after_ms: int) -> NoReturn:
        seconds = max(1, math.ceil(retry_after_ms / 1000))
        raise RateLimited(
            "too many failed logins from this address; try again later",
            code="login_rate_limited",
            headers={"Retry-After": str(seconds)},
        )

    async def succeeded(self, ticket: Ticket | None) -> None:
        """A successful login does not count as a failure."""
        if ticket is None:
            return
        try:
            await self._limiter.settle(ticket, 0)
        except LimiterUnavailable:
            log.warning("could not uncount a successful login; it counts until the window ends")
