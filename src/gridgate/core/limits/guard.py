"""The rate-limit gate of a request: admit or refuse with 429, and give the admission back.

Before anything is held or sent, a request is admitted against every limit that applies to it
(``core/limits/rules.py``) in one atomic step of the limiter (``storage/limiter/port.py``), its tokens
counted at the worst case: the prompt's upper bound plus ``n`` × the max output it may be given.
A refused request raises ``RateLimited`` (429, ``Retry-After``): it is not charged, holds no
money and leaves no usage record. An admitted one is released when it ends, its tokens corrected
to what it used (0 when it failed), its concurrency slot freed.

Every answer of a limited request carries ``X-RateLimit-Limit/Remaining/Reset`` (the limit
closest to refusing: the smallest share remaining; ``Reset`` in unix seconds, when that limit is
wholly free again), and OpenAI's ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``.

When the limiter's backend cannot be reached, ``limits.on_backend_failure`` decides: ``closed``
(the default) answers 503; ``open`` serves without limits and logs an error every 10 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gridgate.core.clock import Clock
from gridgate.core.limits.rules import LimitRules
from gridgate.errors import NoCapacity, RateLimited
from gridgate.storage.limiter.port import (
    Decision,
    Limit,
    LimiterUnavailable,
    RateLimiter,
    Standing,
    Ticket,
)
from gridgate.storage.records import KeyRecord

log = logging.getLogger("gridgate.limits")

FAIL_OPEN_LOG_SECONDS = 10.0
_UNIT = {
    "requests": "requests per minute",
    "tokens": "tokens per minute",
    "concurrent": "requests at once",
}


@dataclass(frozen=True, slots=True)
class Pass:
    """An admitted request: its ticket (None when the limiter was bypassed) and headers."""

    ticket: Ticket | None
    headers: Mapping[str, str]


class RateGuard:
    def __init__(
        self,
        limiter: RateLimiter,
        rules: LimitRules,
        clock: Clock,
        *,
        fail_open: bool = False,
        slot_ttl_seconds: float = 60.0,
        on_refused: Callable[[Limit], None] | None = None,
        on_backend_error: Callable[[], None] | None = None,
    ) -> None:
        self.limiter = limiter
        self.rules = rules
        self._clock = clock
        self._fail_open = fail_open
        self._renew_every = slot_ttl_seconds / 3
        self._next_renew = 0.0
        self._on_refused = on_refused
        self._on_backend_error = on_backend_error
        self._last_open_log = -math.inf
        self._live: dict[str, Ticket] = {}  # admitted, holding a concurrency slot
        self._settling: set[asyncio.Task[None]] = set()

    def limits(self, caller: KeyRecord, instrument_id: str) -> tuple[Limit, ...]:
        """The limits a request of ``caller`` for ``instrument_id`` is admitted against."""
        return self.rules.for_request(caller.id, caller.account_id, instrument_id)

    async def admit(
        self,
        request_id: str,
        caller: KeyRecord,
        instrument_id: str,
        tokens: int,
        limits: tuple[Limit, ...] | None = None,
    ) -> Pass | None:
        """Admit the request or raise ``RateLimited``; None when no limit applies to it.
        ``limits``: what ``limits()`` gave, when the caller asked already."""
        if limits is None:
            limits = self.limits(caller, instrument_id)
        if not limits:
            return None
        try:
            decision = await self.limiter.admit(request_id, limits, tokens)
        except LimiterUnavailable as exc:
            return self._unavailable(exc)
        headers = self._headers(decision.standings, decision.blocked)
        if not decision.admitted:
            assert decision.blocked is not None
            if self._on_refused is not None:
                self._on_refused(decision.blocked)
            raise _refusal(decision, tokens, headers)
        ticket = decision.ticket
        assert ticket is not None
        if any(limit.kind == "concurrent" for limit in ticket.limits):
            self._live[ticket.id] = ticket
        return Pass(ticket, headers)

    def release(self, admitted: Pass | None, tokens: int) -> None:
        """The request is over, having used ``tokens`` (input + output; 0 when it failed)."""
        if admitted is None or admitted.ticket is None:
            return
        ticket = admitted.ticket
        self._live.pop(ticket.id, None)
        if self.limiter.settle_nowait(ticket, tokens):
            return
        task = asyncio.ensure_future(self._settle(ticket, tokens))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def sent(self) -> None:
        """Return once the releases made in this turn of the loop have left this process (see
        the limiter's ``sent``): awaited before a request's answer ends."""
        await self.limiter.sent()

    async def _settle(self, ticket: Ticket, tokens: int) -> None:
        try:
            await self.limiter.settle(ticket, tokens)
        except LimiterUnavailable:
            # its tokens stay counted at the worst case and its slot frees itself at expiry
            log.warning("could not release a rate-limit admission; it will expire")

    async def tick(self) -> None:
        """Keep the concurrency slots of requests in flight (call it often; it renews when due)."""
        now = self._clock.monotonic()
        if now < self._next_renew:
            return
        self._next_renew = now + self._renew_every
        if self._live:
            try:
                await self.limiter.renew(list(self._live.values()))
            except LimiterUnavailable:
                log.warning("could not renew rate-limit slots of requests in flight")

    async def drain(self) -> None:
        """Wait for the releases under way to reach the limiter."""
        if self._settling:
            await asyncio.gather(*self._settling, return_exceptions=True)

    async def close(self) -> None:
        """Finish the releases under way (at shutdown), then close the limiter."""
        await self.drain()
        with contextlib.suppress(LimiterUnavailable):
            await self.limiter.close()

    def _unavailable(self, exc: LimiterUnavailable) -> Pass | None:
        if self._on_backend_error is not None:
            self._on_backend_error()
        if not self._fail_open:
            raise NoCapacity(
                "rate limits cannot be checked right now; retry shortly",
                code="rate_limiter_unavailable",
                headers={"Retry-After": "1"},
            ) from exc
        now = self._clock.monotonic()
        if now - self._last_open_log >= FAIL_OPEN_LOG_SECONDS:
            self._last_open_log = now
            log.error(
                "rate limiter unreachable: serving WITHOUT rate limits "
                "(limits.on_backend_failure = open): %s",
                exc,
            )
        return Pass(None, {})

    def _headers(self, standings: tuple[Standing, ...], blocked: Limit | None) -> dict[str, str]:
        """The limit closest to refusing (on a refusal: the one that refused), and the tightest
        of each of requests and tokens (the first of equals, in the order of the limits). One
        pass: it runs for every admitted request."""
        tightest: Standing | None = None
        tightest_share = math.inf
        least: dict[str, tuple[float, Standing]] = {}
        refused = False
        for standing in standings:
            share = _share_left(standing)
            if not refused:
                if blocked is not None and standing.limit == blocked:
                    tightest, refused = standing, True
                elif share < tightest_share:
                    tightest, tightest_share = standing, share
            kind = standing.limit.kind
            if kind != "concurrent":
                known = least.get(kind)
                if known is None or share < known[0]:
                    least[kind] = (share, standing)
        assert tightest is not None
        now_s = self._clock.now_us() / 1_000_000
        headers = {
            "X-RateLimit-Limit": str(tightest.limit.limit),
            "X-RateLimit-Remaining": str(tightest.remaining),
            "X-RateLimit-Reset": str(math.ceil(now_s + tightest.reset_ms / 1000)),
        }
        for kind in ("requests", "tokens"):
            found = least.get(kind)
            if found is not None:
                standing = found[1]
                headers[f"x-ratelimit-limit-{kind}"] = str(standing.limit.limit)
                headers[f"x-ratelimit-remaining-{kind}"] = str(standing.remaining)
                headers[f"x-ratelimit-reset-{kind}"] = f"{standing.reset_ms / 1000:g}s"
        return headers


def _share_left(standing: Standing) -> float:
    limit = standing.limit.limit
    return standing.remaining / limit if limit > 0 else 0.0


def _refusal(decision: Decision, tokens: int, headers: dict[str, str]) -> RateLimited:
    blocked = decision.blocked
    assert blocked is not None
    seconds = max(1, math.ceil(decision.retry_after_ms / 1000))
    who = f"{blocked.scope} {blocked.subject!r}"
    if decision.never:
        message = (
            f"this request may use up to {tokens} tokens (its prompt and max output), more than "
            f"the {blocked.limit} {_UNIT[blocked.kind]} {who} allows: lower max_tokens"
        )
    else:
        message = (
            f"rate limit exceeded: {who} allows {blocked.limit} {_UNIT[blocked.kind]}; "
            f"retry in {seconds} s"
        )
    return RateLimited(
        message,
        headers={
            **headers,
            "Retry-After": str(seconds),
            "retry-after-ms": str(max(decision.retry_after_ms, 1)),
        },
    )
