"""The in-process rate limiter: exact sliding-window logs for one process.

Keeps the contract of ``storage/limiter/port.py``. A worker holds a whole window of every
request it admitted (at a few thousand requests a second, hundreds of thousands of entries), so
the logs keep machine integers in ``array('q')``s where they can rather than int objects (32
bytes each, and 8 more for the slot pointing at one), and each ticket id once:

- the ledger, one per limiter: each admission counted by ``tokens`` limits gets a serial number
  (admissions are numbered in time order) under which its time and ticket id are logged, and a
  map ticket id → serial, so ``settle`` finds the entry with one lookup however many ``tokens``
  limits count it. The ledger drops an entry (and lets its ticket id go) as soon as its time
  leaves the window, so an entry is in the ledger exactly while it counts;
- ``requests``: the admission times in the window;
- ``tokens``: the serials of the entries it counts (a list: its ints are the map's own) and the
  tokens each counts (an array), and their running total. An entry older than the ledger's
  oldest has left the window, so a limit touched late drops its expired entries by comparing
  serials, subtracting the tokens it holds itself (the ledger may have forgotten them);
- ``concurrent``: a dict ticket id → expiry, and a lower bound of the earliest expiry, so
  nothing is scanned until a slot may have expired.

A log is an array (or list) and the index of its oldest live entry (``start``, ``head``): the
entries that leave are stepped over (a few at a time; a bisection would make an int object per
probe) and the log is cut once its dead prefix is an eighth of it. The oldest live value is
also kept in an attribute (``first``, ``oldest``), so a log with nothing to drop costs one
comparison.

Expired entries are dropped when a limit is touched. Limits nobody touches are dropped
wholesale: the state lives in two generations of ``max(window_ms, slot_ttl_ms)`` each; touching
a limit moves it to the current one, and a rotation discards the older one, whose every entry
has expired by then. A million one-off keys therefore cost memory for two windows at most.

Ticket ids are unique (the contract). One admitted again while its earlier admission is still in
the window counts again, as a new entry, and ``settle`` corrects the newest.

Every method runs without awaiting, so under asyncio each call is atomic. Time never goes
backwards: a ``now_ms`` earlier than one already seen counts as the latest seen.
"""

from __future__ import annotations

import heapq
import time
from array import array
from bisect import bisect_left
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


class _Ledger:
    """The admissions counted by ``tokens`` limits, by serial: their times and ticket ids
    (``None`` once the id was admitted again), and the serial of each ticket id in the window."""

    __slots__ = ("base", "entered", "head", "ids", "oldest", "serial_of", "times")

    def __init__(self) -> None:
        self.times: array[int] = array("q")
        self.ids: list[str | None] = []
        self.base = 0  # the serial of times[0] and ids[0]
        self.head = 0  # the oldest serial in the window
        self.oldest = _FOREVER  # its time (none: _FOREVER)
        self.serial_of: dict[str, int] = {}
        self.entered = -1  # the serial of the admission under way, once entered

    def prune(self, cutoff: int) -> None:
        """Drop the entries admitted at ``cutoff`` or before (call it once ``oldest`` is)."""
        base, times, ids, serial_of = self.base, self.times, self.ids, self.serial_of
        end = self.head - base
        size = len(times)
        oldest = _FOREVER
        while end < size:
            oldest = times[end]
            if oldest > cutoff:
                break
            ticket = ids[end]
            if ticket is not None:
                del serial_of[ticket]
                ids[end] = None  # the id is not kept until the log is cut
            end += 1
        else:
            oldest = _FOREVER
        self.oldest = oldest
        self.head = base + end
        if end * 8 >= size:  # a dead eighth: cut it off
            del times[:end]
            del ids[:end]
            self.base = base + end

    def enter(self, ticket: str, now: int) -> int:
        """A new entry for ``ticket`` at ``now``; its serial (also in ``entered``)."""
        base = self.base
        serial = self.entered = base + len(self.times)
        earlier = self.serial_of.setdefault(ticket, serial)
        if earlier != serial:  # admitted again: this entry is the one settle corrects
            self.ids[earlier - base] = None
            self.serial_of[ticket] = serial
        elif self.oldest == _FOREVER:
            self.oldest = now
        self.times.append(now)
        self.ids.append(ticket)
        return serial

    def time_of(self, serial: int) -> int:
        return self.times[serial - self.base]

    def clear(self) -> None:
        self.times = array("q")
        self.ids = []
        self.base = self.head = 0
        self.oldest = _FOREVER
        self.serial_of = {}


class _Requests:
    """Admission times in the window, oldest first (from ``start`` on)."""

    __slots__ = ("first", "last", "start", "times", "window")

    def __init__(self, window: int) -> None:
        self.window = window
        self.times: array[int] = array("q")
        self.start = 0
        self.first = _FOREVER  # times[start] (none: _FOREVER)
        self.last = ""  # the ticket counted last (a limit named twice in one call counts once)

    def wait(self, now: int, limit: int, tokens: int) -> int:
        times = self.times
        cutoff = now - self.window
        if self.first <= cutoff:
            self.prune(cutoff)
        start = self.start
        count = len(times) - start
        if count < limit:
            return 0
        if limit < 1:
            return NEVER
        return times[start + count - limit] + self.window - now

    def prune(self, cutoff: int) -> None:
        """Drop the entries admitted at ``cutoff`` or before (call it once ``first`` is)."""
        times = self.times
        end = self.start + 1
        size = len(times)
        first = _FOREVER
        while end < size:
            first = times[end]
            if first > cutoff:
                break
            end += 1
        else:
            first = _FOREVER
        self.first = first
        if end * 8 >= size:  # a dead eighth: cut it off
            del times[:end]
            end = 0
        self.start = end

    def commit(self, now: int, ticket: str, tokens: int, ttl: int, limit: Limit) -> Standing:
        times = self.times
        if self.last != ticket:
            self.last = ticket
            if self.first == _FOREVER:
                self.first = now
            times.append(now)
        return Standing(limit, max(0, limit.limit - len(times) + self.start), self.window)

    def standing(self, now: int, limit: Limit) -> Standing:
        times = self.times
        count = len(times) - self.start
        reset = times[-1] + self.window - now if count else 0
        return Standing(limit, max(0, limit.limit - count), reset)

    def empty(self) -> bool:
        return self.first == _FOREVER


class _Tokens:
    """The entries in the window, oldest first (from ``start`` on): their serials in the ledger
    and the tokens each counts (two aligned arrays), and their total."""

    __slots__ = ("first", "last", "ledger", "serials", "spent", "start", "total", "window")

    def __init__(self, window: int, ledger: _Ledger) -> None:
        self.window = window
        self.ledger = ledger
        # a list: its ints are the ledger map's own, and it is appended to faster than an array
        self.serials: list[int] = []
        self.spent: array[int] = array("q")
        self.start = 0
        self.first = _FOREVER  # serials[start] (none: _FOREVER)
        self.last = -1  # the serial counted last (a limit named twice in one call counts once)
        self.total = 0

    def prune(self) -> None:
        """Drop the entries older than the ledger's oldest: they left the window (call it once
        ``first`` is older)."""
        serials, spent, head = self.serials, self.spent, self.ledger.head
        end = self.start
        size = len(serials)
        freed = spent[end]
        end += 1
        first = _FOREVER
        while end < size:
            first = serials[end]
            if first >= head:
                break
            freed += spent[end]
            end += 1
        else:
            first = _FOREVER
        self.first = first
        self.total -= freed
        if end * 8 >= size:  # a dead eighth: cut it off
            del serials[:end]
            del spent[:end]
            end = 0
        self.start = end

    def wait(self, now: int, limit: int, tokens: int) -> int:
        if self.first < self.ledger.head:
            self.prune()
        if limit < 1 or tokens > limit:
            return NEVER
        needed = self.total + tokens - limit
        if needed <= 0:
            return 0
        spent = self.spent
        freed = 0
        for i in range(self.start, len(spent)):
            freed += spent[i]
            if freed >= needed:
                return self.ledger.time_of(self.serials[i]) + self.window - now
        return self.window  # unreachable while the total is the sum of the entries

    def commit(self, now: int, ticket: str, tokens: int, ttl: int, limit: Limit) -> Standing:
        ledger = self.ledger
        serial = ledger.entered  # the admission's entry, made by its first tokens limit
        if serial < 0:
            serial = ledger.enter(ticket, now)
        if self.last != serial:
            self.last = serial
            if self.first == _FOREVER:
                self.first = serial
            self.serials.append(serial)
            self.spent.append(tokens)
            self.total += tokens
        return Standing(limit, max(0, limit.limit - self.total), self.window)

    def correct(self, serial: int | None, tokens: int) -> None:
        """The entry ``serial`` counts ``tokens`` from now on, if it is still counted."""
        if self.first < self.ledger.head:
            self.prune()
        if serial is None or serial < self.first:
            return
        serials = self.serials
        i = len(serials) - 1
        if serials[i] != serial:  # not the newest (usually it is: a request settles soon)
            i = bisect_left(serials, serial, self.start, i)
            if serials[i] != serial:
                return
        spent = self.spent
        self.total += tokens - spent[i]
        spent[i] = tokens

    def standing(self, now: int, limit: Limit) -> Standing:
        serials = self.serials
        reset = 0
        if len(serials) > self.start:
            reset = self.ledger.time_of(serials[-1]) + self.window - now
        return Standing(limit, max(0, limit.limit - self.total), reset)

    def empty(self) -> bool:
        return self.first == _FOREVER


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


def _new_state(kind: LimitKind, window: int, ledger: _Ledger) -> _State:
    match kind:
        case "requests":
            return _Requests(window)
        case "tokens":
            return _Tokens(window, ledger)
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
        self._ledger = _Ledger()

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
                state = _new_state(limit.kind, self._window, self._ledger)
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
        ledger = self._ledger
        cutoff = now - self._window
        if cutoff >= ledger.oldest:
            ledger.prune(cutoff)
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
        ledger.entered = -1  # the first tokens limit enters the admission in the ledger
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
        current = self._current
        serial: int | None = -1  # the ticket's entry in the ledger (None: it left the window)
        for limit in ticket.limits:
            if limit.kind == "requests":
                continue
            name = limit.name
            state = current.get(name) or self._existing(name)
            if isinstance(state, _Slots):
                state.expiry.pop(ticket.id, None)
            elif isinstance(state, _Tokens):
                if serial == -1:  # pruned first: only an entry still counted is found
                    ledger, cutoff = self._ledger, now - self._window
                    if cutoff >= ledger.oldest:
                        ledger.prune(cutoff)
                    serial = ledger.serial_of.get(ticket.id)
                state.correct(serial, tokens)
            else:
                continue
            if state.empty():
                del current[name]

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

    async def sent(self) -> None:
        return None  # settled in place

    async def close(self) -> None:
        self._current.clear()
        self._previous.clear()
        self._ledger.clear()
