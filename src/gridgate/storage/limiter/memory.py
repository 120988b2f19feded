"""The in-process rate limiter: exact sliding-window logs for one process.

Keeps the contract of ``storage/limiter/port.py``. Per limit name:

- ``requests``: a deque of admission times;
- ``tokens``: the entries' times and ticket ids (two aligned deques), a map ticket id → tokens
  counted and their running total, so ``settle`` corrects an entry still in the window in O(1);
- ``concurrent``: a dict ticket id → expiry, and a lower bound of the earliest expiry, so
  nothing is scanned until a slot may have expired.

Expired entries are dropped when a limit is touched. Limits nobody touches are dropped
wholesale: the state lives in two generations of ``max(window_ms, slot_ttl_ms)`` each; touching
a limit moves it to the current one, and a rotation discards the older one, whose every entry
has expired by then. A million one-off keys therefore cost memory for two windows at most.

Every method runs without awaiting, so under asyncio each call is atomic. Time never goes
backwards: a ``now_ms`` earlier than one already seen counts as the latest seen.
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from collections.abc import Callable, Sequence

from gridgate.storage.limiter.port import (
    SLOT_WAIT_CAP_MS,
    Decision,
    Limit,
    LimitKind,
    Standing,
    Ticket,
)

NEVER = -1  # a wait: the request alone exceeds the limit
_FOREVER = 2**63


def _monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


class _Requests:
    """Admission times in the window, oldest first."""

    __slots__ = ("last", "times", "window")

    def __init__(self, window: int) -> None:
        self.window = window
        self.times: deque[int] = deque()
        self.last = ""  # the ticket counted last (a limit named twice in one call counts once)

    def wait(self, now: int, limit: int, tokens: int) -> int:
        times = self.times
        cutoff = now - self.window
        while times and times[0] <= cutoff:
            times.popleft()
        count = len(times)
        if count < limit:
            return 0
        if limit < 1:
            return NEVER
        return times[count - limit] + self.window - now

    def commit(self, now: int, ticket: str, tokens: int, ttl: int, limit: Limit) -> Standing:
        times = self.times
        if self.last != ticket:
            self.last = ticket
            times.append(now)
        return Standing(limit, max(0, limit.limit - len(times)), self.window)

    def standing(self, now: int, limit: Limit) -> Standing:
        times = self.times
        reset = times[-1] + self.window - now if times else 0
        return Standing(limit, max(0, limit.limit - len(times)), reset)

    def empty(self) -> bool:
        return not self.times


class _Tokens:
    """Token entries in the window, oldest first, as two aligned deques (their times, their
    tickets: a tuple per entry would cost 64 bytes more per request, and a log holds every
    request of a whole window); each ticket's tokens; their total."""

    __slots__ = ("tickets", "times", "tokens", "total", "window")

    def __init__(self, window: int) -> None:
        self.window = window
        self.times: deque[int] = deque()
        self.tickets: deque[str] = deque()
        self.tokens: dict[str, int] = {}
        self.total = 0

    def prune(self, now: int) -> None:
        times = self.times
        cutoff = now - self.window
        while times and times[0] <= cutoff:
            times.popleft()
            self.total -= self.tokens.pop(self.tickets.popleft(), 0)

    def wait(self, now: int, limit: int, tokens: int) -> int:
        self.prune(now)
        if limit < 1 or tokens > limit:
            return NEVER
        needed = self.total + tokens - limit
        if needed <= 0:
            return 0
        counted = self.tokens
        freed = 0
        for at, ticket in zip(self.times, self.tickets, strict=True):
            freed += counted.get(ticket, 0)
            if freed >= needed:
                return at + self.window - now
        return self.window  # unreachable while the total is the sum of the entries

    def commit(self, now: int, ticket: str, tokens: int, ttl: int, limit: Limit) -> Standing:
        counted = self.tokens
        old = counted.get(ticket)
        if old is None:
            self.times.append(now)
            self.tickets.append(ticket)
            old = 0
        counted[ticket] = tokens
        self.total += tokens - old
        return Standing(limit, max(0, limit.limit - self.total), self.window)

    def correct(self, now: int, ticket: str, tokens: int) -> None:
        self.prune(now)
        old = self.tokens.get(ticket)
        if old is not None:
            self.tokens[ticket] = tokens
            self.total += tokens - old

    def standing(self, now: int, limit: Limit) -> Standing:
        times = self.times
        reset = times[-1] + self.window - now if times else 0
        return Standing(limit, max(0, limit.limit - self.total), reset)

    def empty(self) -> bool:
        return not self.times


class _Slots:
    """Held concurrency slots: ticket id → expiry."""

    __slots__ = ("expiry", "soonest")

    def __init__(self) -> None:
        self.expiry: dict[str, int] = {}
        self.soonest = _FOREVER  # no slot expires before this (a lower bound)

    def prune(self, now: int) -> None:
        if now < self.soonest:
            return
        expiry = self.expiry
        for ticket in [t for t, until in expiry.items() if until <= now]:
            del expiry[ticket]
        self.soonest = min(expiry.values(), default=_FOREVER)

    def _wait(self, now: int, count: int, limit: int) -> int:
        """ms until one more slot is free (0: one is); for limit 0, until all are."""
        if count == 0 or count < limit:
            return 0
        nth = min(count - limit, count - 1)
        values = self.expiry.values()
        held_until = min(values) if nth == 0 else heapq.nsmallest(nth + 1, values)[-1]
        return min(SLOT_WAIT_CAP_MS, held_until - now)

    def wait(self, now: int, limit: int, tokens: int) -> int:
        self.prune(now)
        if limit < 1:
            return NEVER
        return self._wait(now, len(self.expiry), limit)

    def commit(self, now: int, ticket: str, tokens: int, ttl: int, limit: Limit) -> Standing:
        until = now + ttl
        expiry = self.expiry
        expiry[ticket] = until
        if until < self.soonest:
            self.soonest = until
        count = len(expiry)
        return Standing(limit, max(0, limit.limit - count), self._wait(now, count, limit.limit))

    def release(self, ticket: str) -> None:
        self.expiry.pop(ticket, None)

    def renew(self, now: int, ticket: str, ttl: int) -> None:
        self.prune(now)
        if ticket in self.expiry:
            self.expiry[ticket] = now + ttl  # later than before: `soonest` stays a lower bound

    def standing(self, now: int, limit: Limit) -> Standing:
        count = len(self.expiry)
        return Standing(limit, max(0, limit.limit - count), self._wait(now, count, limit.limit))

    def empty(self) -> bool:
        return not self.expiry


_State = _Requests | _Tokens | _Slots


def _new_state(kind: LimitKind, window: int) -> _State:
    match kind:
        case "requests":
            return _Requests(window)
        case "tokens":
            return _Tokens(window)
        case "concurrent":
            return _Slots()


class MemoryLimiter:
    """Exact sliding-window rate limits within one process (see the module docstring)."""

    def __init__(
        self,
        window_ms: int = 60_000,
        slot_ttl_ms: int = 60_000,
        clock: Callable[[], int] | None = None,
    ) -> None:
        if window_ms < 1 or slot_ttl_ms < 1:
            raise ValueError("window_ms and slot_ttl_ms must be at least 1")
        self._window = window_ms
        self._ttl = slot_ttl_ms
        self._clock = clock or _monotonic_ms
        self._latest = -(2**62)
        # two generations of state; a generation lasts at least as long as any entry
        self._period = max(window_ms, slot_ttl_ms)
        self._current: dict[str, _State] = {}
        self._previous: dict[str, _State] = {}
        self._rotate_at: int | None = None

    def __len__(self) -> int:
        """How many limits hold state (for tests and metrics)."""
        return len(self._current) + len(self._previous)

    def _now(self, now_ms: int | None) -> int:
        now = self._clock() if now_ms is None else now_ms
        if now < self._latest:
            return self._latest
        self._latest = now
        rotate_at = self._rotate_at
        if rotate_at is None:
            self._rotate_at = now + self._period
        elif now >= rotate_at:
            # state untouched for a whole generation holds nothing that still counts
            self._previous = self._current
            self._current = {}
            self._rotate_at = now + self._period
        return now

    def _state(self, limit: Limit) -> _State:
        name = limit.name
        state = self._current.get(name)
        if state is None:
            state = self._previous.pop(name, None)
            if state is None:
                state = _new_state(limit.kind, self._window)
            self._current[name] = state
        return state

    def _existing(self, name: str) -> _State | None:
        state = self._current.get(name)
        if state is None:
            state = self._previous.pop(name, None)
            if state is not None:
                self._current[name] = state
        return state

    def _forget_if_empty(self, name: str, state: _State) -> None:
        if state.empty():
            self._current.pop(name, None)

    async def admit(
        self,
        ticket_id: str,
        limits: Sequence[Limit],
        tokens: int,
        *,
        now_ms: int | None = None,
    ) -> Decision:
        if tokens < 0:
            raise ValueError("tokens must be >= 0")
        now = self._now(now_ms)
        current = self._current
        # the fast path finds the state in the current generation
        states = [current.get(limit.name) or self._state(limit) for limit in limits]
        blocked = -1
        longest = 0
        for i, state in enumerate(states):
            wait = state.wait(now, limits[i].limit, tokens)
            if wait:
                if wait == NEVER:
                    if longest != NEVER:
                        blocked, longest = i, NEVER
                elif longest != NEVER and wait > longest:
                    blocked, longest = i, wait
        if blocked >= 0:
            never = longest == NEVER
            return Decision(
                False,
                None,
                tuple([s.standing(now, limit) for s, limit in zip(states, limits, strict=True)]),
                limits[blocked],
                self._window if never else longest,
                never,
            )
        ttl = self._ttl
        # commit returns the standing; a counter named twice commits nothing the second time,
        # so every standing is final
        standings = [
            s.commit(now, ticket_id, tokens, ttl, limit)
            for s, limit in zip(states, limits, strict=True)
        ]
        return Decision(True, Ticket(ticket_id, tuple(limits), tokens), tuple(standings))

    async def settle(self, ticket: Ticket, tokens: int, *, now_ms: int | None = None) -> None:
        self._settle(ticket, tokens, now_ms)

    def settle_nowait(self, ticket: Ticket, tokens: int) -> bool:
        self._settle(ticket, tokens, None)
        return True

    def _settle(self, ticket: Ticket, tokens: int, now_ms: int | None) -> None:
        if tokens < 0:
            raise ValueError("tokens must be >= 0")
        now = self._now(now_ms)
        for limit in ticket.limits:
            if limit.kind == "requests":
                continue
            name = limit.name
            state = self._existing(name)
            if isinstance(state, _Tokens):
                state.correct(now, ticket.id, tokens)
            elif isinstance(state, _Slots):
                state.release(ticket.id)
            else:
                continue
            self._forget_if_empty(name, state)

    async def renew(self, tickets: Sequence[Ticket], *, now_ms: int | None = None) -> None:
        now = self._now(now_ms)
        for ticket in tickets:
            for limit in ticket.limits:
                if limit.kind != "concurrent":
                    continue
                name = limit.name
                state = self._existing(name)
                if isinstance(state, _Slots):
                    state.renew(now, ticket.id, self._ttl)
                    self._forget_if_empty(name, state)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._current.clear()
        self._previous.clear()
