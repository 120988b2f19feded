"""Rate limits: the contract every limiter backend keeps.

A request is admitted against a set of limits at once, all or nothing, in one atomic step:

- ``requests``: at most ``limit`` admissions in any sliding window of ``window_ms`` (60 s by
  default: requests per minute);
- ``tokens``: the tokens of the admissions in the sliding window, each counted at what it
  reserved (its worst case) until it settles and then at what it used, stay within ``limit``;
- ``concurrent``: at most ``limit`` admitted requests not yet settled. A slot whose process died
  frees itself ``slot_ttl_ms`` after it was last renewed.

Time is integer milliseconds. An entry admitted at ``t`` counts while ``now < t + window_ms``
and leaves the window exactly at ``t + window_ms``; a slot last renewed at ``t`` is held while
``now < t + slot_ttl_ms``. Admitting a request is its slots' first renewal.

When a request is refused, nothing changes (apart from expired entries being dropped), and:

- ``never``: a limit the request alone exceeds (``limit`` 0, or ``tokens > limit``); it is the
  ``blocked`` limit in preference to any other and ``retry_after_ms`` is ``window_ms``;
- otherwise ``blocked`` is the refusing limit that holds the request back longest (ties: the
  first given) and ``retry_after_ms`` is when it could admit: ``requests`` — when enough of the
  oldest entries leave; ``tokens`` — when enough of the oldest entries leave for the request to
  fit; ``concurrent`` — when the earliest slot expires, but at most ``SLOT_WAIT_CAP_MS`` (slots
  usually free much sooner, when their requests settle).

Standings: ``remaining`` is ``limit`` minus what is used (after this admission, when admitted),
never below 0. ``reset_ms`` for ``requests`` and ``tokens`` is the time until the window is empty
(its newest entry leaves); for ``concurrent`` it is 0 while a slot is free, otherwise the time
until the next slot expires, capped like ``retry_after_ms``.

``ticket_id`` must be unique per request; a counter named twice in one call counts the admission
once. Backends: ``MemoryLimiter`` (``storage/limiter/memory.py``: one process) and ``RedisLimiter``
(``storage/limiter/redis.py``: any number of processes and hosts, one versioned Lua script per
atomic step). Both pass one contract suite (``tests/storage/limiter/test_contract.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Literal, Protocol

import msgspec

LimitKind = Literal["requests", "tokens", "concurrent"]
LimitScope = Literal["key", "account", "instrument"]
LIMIT_KINDS: tuple[LimitKind, ...] = ("requests", "tokens", "concurrent")
LIMIT_SCOPES: tuple[LimitScope, ...] = ("key", "account", "instrument")
# a refusal by a full ``concurrent`` limit never asks to wait longer than this
SLOT_WAIT_CAP_MS = 1000


class LimiterUnavailable(Exception):
    """The limiter's backend could not be reached (its message names no secret)."""


class Limit(msgspec.Struct, frozen=True, dict=True):
    scope: LimitScope
    subject: str  # the key id, account id or instrument id
    kind: LimitKind
    limit: int  # >= 0; 0 admits nothing

    # computed once per Limit: the rules hand out the same Limit objects to every request of
    # a key, so a request's admission formats no names (``dict=True`` gives it a place)
    @functools.cached_property
    def name(self) -> str:
        """Stable identity of the counter, e.g. ``key:k_123:requests``."""
        return f"{self.scope}:{self.subject}:{self.kind}"


class Standing(msgspec.Struct, frozen=True):
    """Where one limit stands after a decision (for the ``X-RateLimit-*`` headers)."""

    limit: Limit
    remaining: int  # what is left of the limit (requests, tokens or slots), never below 0
    reset_ms: int  # ms until the limit is wholly free again (0: it already is)


class Ticket(msgspec.Struct, frozen=True):
    """An admission: what ``settle`` needs to correct and release it."""

    id: str
    limits: tuple[Limit, ...]
    tokens: int  # what the admission reserved on every ``tokens`` limit


class Decision(msgspec.Struct, frozen=True):
    admitted: bool
    ticket: Ticket | None  # set when admitted
    standings: tuple[Standing, ...]  # one per limit, in the order given
    # when refused: the limit that holds the request back longest (see the module docstring)
    blocked: Limit | None = None
    retry_after_ms: int = 0  # when refused: ms until the blocking limit could admit
    never: bool = False  # when refused: the request alone exceeds the blocking limit


class RateLimiter(Protocol):
    async def admit(
        self,
        ticket_id: str,
        limits: Sequence[Limit],
        tokens: int,
        *,
        now_ms: int | None = None,
    ) -> Decision:
        """Admit against every limit or none. ``ticket_id`` is unique per request. ``now_ms``
        is for tests; by default the backend's own clock (Redis's for Redis, so every host
        agrees). Unreachable backend → ``LimiterUnavailable``."""
        ...

    async def settle(self, ticket: Ticket, tokens: int, *, now_ms: int | None = None) -> None:
        """The request is over: its ``tokens`` entries now count ``tokens`` (what it used), its
        ``concurrent`` slots are freed. Idempotent."""
        ...

    def settle_nowait(self, ticket: Ticket, tokens: int) -> bool:
        """``settle`` without waiting for it: done (memory) or sent (Redis: its answer is not
        awaited, a failure only logged). False when it cannot be (then await ``settle``)."""
        ...

    async def sent(self) -> None:
        """Return once what ``settle_nowait`` sent in this turn of the event loop has left this
        process (memory: at once; Redis: written to its connection, where such commands are
        batched per turn). Awaited before a request's answer ends, so that a client that has
        read its answer finds its concurrency slot free at its next request, in any process."""
        ...

    async def renew(self, tickets: Sequence[Ticket], *, now_ms: int | None = None) -> None:
        """Keep the concurrency slots of requests still in flight from expiring."""
        ...

    async def ping(self) -> None:
        """Raise ``LimiterUnavailable`` when the backend cannot be reached."""
        ...

    async def close(self) -> None: ...
