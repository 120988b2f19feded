"""The rate-limit contract (``storage/limiter/port.py``), run against every backend.

Time is driven through ``now_ms`` so nothing sleeps. The Redis backend needs Redis at
``$GRIDGATE_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``); when it is unreachable its
tests are skipped loudly, and on CI they fail. Each test works under its own key prefix and
deletes its keys afterwards.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
import redis
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridgate.storage.limiter.memory import MemoryLimiter
from gridgate.storage.limiter.port import (
    SLOT_WAIT_CAP_MS,
    Decision,
    Limit,
    LimiterUnavailable,
    LimitKind,
    RateLimiter,
    Ticket,
)
from gridgate.storage.limiter.redis import KEY_MARGIN_MS, ClientName, RedisLimiter
from tests.tcp_proxy import CuttableProxy

REDIS_URL = os.environ.get("GRIDGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
T0 = 1_000_000  # the tests' clock starts here (ms)
WINDOW = 60_000
TTL = 30_000


def require_redis() -> str:
    """The Redis URL once Redis answers; otherwise skip loudly, or fail on CI."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        reason = (
            f"Redis at {REDIS_URL} is unreachable ({type(exc).__name__}: {exc}); "
            "the Redis rate-limit tests did NOT run"
        )
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    finally:
        client.close()
    return REDIS_URL


async def delete_keys(prefix: str) -> int:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=prefix + "*", count=1000)]
        if keys:
            await client.delete(*keys)
        return len(keys)
    finally:
        await client.aclose()


CLIENTS: list[ClientName] = ["resp", "redis-py"]  # the Redis clients, both run every test


@dataclass
class Backend:
    """Makes limiters of one kind ("memory", or Redis through one of ``CLIENTS``); a test's
    Redis limiters share one fresh key prefix."""

    name: str
    prefix: str = field(default_factory=lambda: f"ggtest:{uuid.uuid4().hex}:")
    made: list[RateLimiter] = field(default_factory=list)

    def make(self, window_ms: int = WINDOW, slot_ttl_ms: int = TTL) -> RateLimiter:
        limiter: RateLimiter
        if self.name == "memory":
            limiter = MemoryLimiter(window_ms, slot_ttl_ms)
        else:
            limiter = RedisLimiter(
                REDIS_URL,
                window_ms=window_ms,
                slot_ttl_ms=slot_ttl_ms,
                prefix=self.prefix,
                client="redis-py" if self.name == "redis-py" else "resp",
            )
        self.made.append(limiter)
        return limiter

    async def close(self) -> None:
        for limiter in self.made:
            await limiter.close()
        if self.name != "memory":
            await delete_keys(self.prefix)


@pytest.fixture(params=["memory", *CLIENTS])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if request.param != "memory":
        request.getfixturevalue("redis_url")  # skips loudly (fails on CI) when Redis is down
    b = Backend(request.param)
    try:
        yield b
    finally:
        await b.close()


@pytest.fixture
async def limiter(backend: Backend) -> RateLimiter:
    return backend.make()


def lim(kind: LimitKind, limit: int, subject: str = "k1") -> Limit:
    return Limit("key", subject, kind, limit)


def ids(prefix: str = "t") -> Callable[[], str]:
    counter = iter(range(1_000_000))
    return lambda: f"{prefix}{next(counter)}"


async def admitted(d: Awaitable[Decision]) -> Ticket:
    decision = await d
    assert decision.admitted, decision
    assert decision.ticket is not None
    return decision.ticket


def remaining(decision: Decision) -> list[int]:
    return [s.remaining for s in decision.standings]


# -- requests ---------------------------------------------------------------------------


async def test_a_burst_of_5r_admits_exactly_r(limiter: RateLimiter) -> None:
    limits = [lim("requests", 10)]
    decisions = [await limiter.admit(f"t{i}", limits, 0, now_ms=T0) for i in range(50)]
    assert sum(d.admitted for d in decisions) == 10
    assert all(d.admitted for d in decisions[:10])
    refused = decisions[10:]
    assert all(d.blocked == limits[0] and not d.never for d in refused)
    assert {d.retry_after_ms for d in refused} == {WINDOW}
    assert [d.standings[0].remaining for d in decisions[:10]] == list(range(9, -1, -1))


async def test_a_concurrent_burst_of_5r_admits_exactly_r(limiter: RateLimiter) -> None:
    limits = [lim("requests", 20), lim("tokens", 10_000), lim("concurrent", 100)]
    decisions = await asyncio.gather(
        *(limiter.admit(f"t{i}", limits, 7, now_ms=T0 + i % 3) for i in range(100))
    )
    assert sum(d.admitted for d in decisions) == 20
    # the counters agree with the decisions: 20 reservations of 7 tokens, 20 slots held
    probe = await limiter.admit(
        "probe", [lim("tokens", 10_000), lim("concurrent", 100)], 0, now_ms=T0 + 3
    )
    assert remaining(probe) == [10_000 - 140, 100 - 21]


async def test_an_entry_leaves_the_window_exactly_after_window_ms(limiter: RateLimiter) -> None:
    limits = [lim("requests", 2)]
    await admitted(limiter.admit("a", limits, 0, now_ms=T0))
    await admitted(limiter.admit("b", limits, 0, now_ms=T0 + 400))
    late = await limiter.admit("c", limits, 0, now_ms=T0 + WINDOW - 1)
    assert not late.admitted
    assert late.retry_after_ms == 1
    await admitted(limiter.admit("c", limits, 0, now_ms=T0 + WINDOW))
    # "b" is still in the window until T0 + 400 + WINDOW
    d = await limiter.admit("d", limits, 0, now_ms=T0 + WINDOW + 399)
    assert not d.admitted
    assert d.retry_after_ms == 1
    await admitted(limiter.admit("d", limits, 0, now_ms=T0 + WINDOW + 400))


async def test_retry_after_for_requests_is_when_the_oldest_entry_leaves(
    limiter: RateLimiter,
) -> None:
    limits = [lim("requests", 3)]
    for i, at in enumerate((0, 100, 200)):
        await admitted(limiter.admit(f"t{i}", limits, 0, now_ms=T0 + at))
    d = await limiter.admit("x", limits, 0, now_ms=T0 + 300)
    assert (d.admitted, d.blocked, d.never) == (False, limits[0], False)
    assert d.retry_after_ms == WINDOW - 300
    # and it is exact: one ms earlier refused, at that moment admitted
    assert not (await limiter.admit("x", limits, 0, now_ms=T0 + WINDOW - 1)).admitted
    await admitted(limiter.admit("x", limits, 0, now_ms=T0 + WINDOW))


# -- all or nothing ------------------------------------------------------------------------


async def test_a_refusal_changes_no_other_limit(limiter: RateLimiter) -> None:
    requests, tokens, slots = lim("requests", 10), lim("tokens", 100), lim("concurrent", 1)
    limits = [requests, tokens, slots]
    await admitted(limiter.admit("a", limits, 10, now_ms=T0))
    refused = await limiter.admit("b", limits, 10, now_ms=T0 + 1)
    assert (refused.admitted, refused.blocked) == (False, slots)
    assert refused.ticket is None
    assert remaining(refused) == [9, 90, 0]
    # neither the request nor its tokens were counted by the limits that would have admitted it
    assert remaining(await limiter.admit("c", [requests], 0, now_ms=T0 + 2)) == [8]
    assert remaining(await limiter.admit("d", [tokens], 90, now_ms=T0 + 3)) == [0]
    # a refusal by the tokens limit leaves the requests and concurrency counters alone
    over = await limiter.admit(
        "e", [requests, lim("concurrent", 5, "k2"), tokens], 1, now_ms=T0 + 4
    )
    assert (over.admitted, over.blocked) == (False, tokens)
    assert remaining(over) == [8, 5, 0]


async def test_the_limit_that_holds_a_request_back_longest_is_reported(
    limiter: RateLimiter,
) -> None:
    requests, tokens = lim("requests", 1), lim("tokens", 100)
    await admitted(limiter.admit("a", [requests], 0, now_ms=T0))
    await admitted(limiter.admit("b", [tokens], 100, now_ms=T0 + 5_000))
    d = await limiter.admit("c", [requests, tokens], 10, now_ms=T0 + 6_000)
    assert (d.blocked, d.retry_after_ms, d.never) == (tokens, WINDOW - 1_000, False)
    # a limit the request alone exceeds takes precedence over any wait
    d = await limiter.admit("c", [requests, tokens], 101, now_ms=T0 + 6_000)
    assert (d.blocked, d.retry_after_ms, d.never) == (tokens, WINDOW, True)
    # equal waits: the first given
    slots, more = lim("concurrent", 1), lim("requests", 1, "k2")
    await admitted(limiter.admit("d", [more], 0, now_ms=T0 + 10_000))
    now = T0 + 10_000 + WINDOW - SLOT_WAIT_CAP_MS  # "d" leaves in SLOT_WAIT_CAP_MS
    await admitted(limiter.admit("e", [slots], 0, now_ms=now - 100))
    for first, second in ((slots, more), (more, slots)):
        d = await limiter.admit("f", [first, second], 0, now_ms=now)
        assert (d.blocked, d.retry_after_ms) == (first, SLOT_WAIT_CAP_MS)


# -- tokens --------------------------------------------------------------------------------


async def test_tokens_are_reserved_at_worst_case_and_corrected_at_settle(
    limiter: RateLimiter,
) -> None:
    tokens = lim("tokens", 1000)
    first = await admitted(limiter.admit("a", [tokens], 600, now_ms=T0))
    refused = await limiter.admit("b", [tokens], 600, now_ms=T0 + 10)
    assert (refused.admitted, refused.never, refused.retry_after_ms) == (False, False, WINDOW - 10)
    await limiter.settle(first, 100, now_ms=T0 + 20)
    d = await limiter.admit("b", [tokens], 600, now_ms=T0 + 30)
    assert d.admitted
    assert remaining(d) == [300]
    # a settle that used more than it reserved counts what it used
    second = d.ticket
    assert second is not None
    await limiter.settle(second, 850, now_ms=T0 + 40)
    assert remaining(await limiter.admit("c", [tokens], 50, now_ms=T0 + 50)) == [0]


async def test_a_request_larger_than_the_tokens_limit_is_never_admitted(
    limiter: RateLimiter,
) -> None:
    tokens = lim("tokens", 1000)
    d = await limiter.admit("a", [lim("requests", 5), tokens], 1001, now_ms=T0)
    assert (d.admitted, d.blocked, d.never, d.retry_after_ms) == (False, tokens, True, WINDOW)
    assert remaining(d) == [5, 1000]
    await admitted(limiter.admit("b", [tokens], 1000, now_ms=T0))


async def test_retry_after_for_tokens_is_when_enough_entries_leave(limiter: RateLimiter) -> None:
    tokens = lim("tokens", 1000)
    for i, at in enumerate((0, 100, 200)):
        await admitted(limiter.admit(f"t{i}", [tokens], 300, now_ms=T0 + at))
    # 900 held; 400 more needs exactly the first entry (T0) to leave
    d = await limiter.admit("x", [tokens], 400, now_ms=T0 + 300)
    assert (d.admitted, d.retry_after_ms) == (False, WINDOW - 300)
    # 500 more needs 400 freed: the first two entries (T0, T0 + 100) must leave
    d = await limiter.admit("x", [tokens], 500, now_ms=T0 + 300)
    assert (d.admitted, d.retry_after_ms) == (False, WINDOW - 200)
    assert not (await limiter.admit("x", [tokens], 500, now_ms=T0 + WINDOW + 99)).admitted
    await admitted(limiter.admit("x", [tokens], 500, now_ms=T0 + WINDOW + 100))


async def test_a_settle_after_the_entry_left_the_window_changes_nothing(
    limiter: RateLimiter,
) -> None:
    tokens = lim("tokens", 1000)
    old = await admitted(limiter.admit("a", [tokens], 600, now_ms=T0))
    await admitted(limiter.admit("b", [tokens], 1000, now_ms=T0 + WINDOW))
    await limiter.settle(old, 0, now_ms=T0 + WINDOW + 1)
    d = await limiter.admit("c", [tokens], 1, now_ms=T0 + WINDOW + 2)
    assert (d.admitted, remaining(d)) == (False, [0])


# -- concurrency ---------------------------------------------------------------------------


async def test_slots_are_freed_at_settle(limiter: RateLimiter) -> None:
    slots = lim("concurrent", 2)
    a = await admitted(limiter.admit("a", [slots], 0, now_ms=T0))
    await admitted(limiter.admit("b", [slots], 0, now_ms=T0))
    full = await limiter.admit("c", [slots], 0, now_ms=T0 + 1)
    assert (full.admitted, full.blocked, full.never) == (False, slots, False)
    assert full.retry_after_ms == SLOT_WAIT_CAP_MS  # the slots expire in 30 s; capped
    await limiter.settle(a, 0, now_ms=T0 + 2)
    d = await limiter.admit("c", [slots], 0, now_ms=T0 + 3)
    assert d.admitted
    assert d.standings[0].remaining == 0


async def test_slots_expire_after_slot_ttl_unless_renewed(backend: Backend) -> None:
    limiter = backend.make(slot_ttl_ms=500)
    slots = lim("concurrent", 1)
    held = await admitted(limiter.admit("a", [slots], 0, now_ms=T0))
    d = await limiter.admit("b", [slots], 0, now_ms=T0 + 200)
    assert (d.admitted, d.retry_after_ms) == (False, 300)
    assert not (await limiter.admit("b", [slots], 0, now_ms=T0 + 499)).admitted
    await admitted(limiter.admit("b", [slots], 0, now_ms=T0 + 500))
    # a renewal of a slot that already expired does not take it back
    await limiter.renew([held], now_ms=T0 + 600)
    assert not (await limiter.admit("c", [slots], 0, now_ms=T0 + 600)).admitted


async def test_renewed_slots_are_kept(backend: Backend) -> None:
    limiter = backend.make(slot_ttl_ms=500)
    slots = lim("concurrent", 1)
    held = await admitted(limiter.admit("a", [slots], 0, now_ms=T0))
    for at in (400, 800, 1200):
        await limiter.renew([held], now_ms=T0 + at)
    assert not (await limiter.admit("b", [slots], 0, now_ms=T0 + 1699)).admitted
    await admitted(limiter.admit("b", [slots], 0, now_ms=T0 + 1700))


async def test_a_settled_slot_is_not_renewed(limiter: RateLimiter) -> None:
    slots = lim("concurrent", 1)
    a = await admitted(limiter.admit("a", [slots], 0, now_ms=T0))
    await limiter.settle(a, 0, now_ms=T0 + 1)
    await limiter.renew([a], now_ms=T0 + 2)
    await admitted(limiter.admit("b", [slots], 0, now_ms=T0 + 3))


# -- settle --------------------------------------------------------------------------------


async def test_settle_nowait_takes_effect_before_the_next_admission(
    limiter: RateLimiter,
) -> None:
    """On the backend's own clock: a release not awaited (Redis: sent on the connection the
    next admission follows) frees the slot and corrects the tokens for that admission."""
    tokens, slots = lim("tokens", 1000), lim("concurrent", 1)
    a = await admitted(limiter.admit("a", [tokens, slots], 900))
    assert not (await limiter.admit("b", [tokens, slots], 900)).admitted
    assert limiter.settle_nowait(a, 100)
    d = await limiter.admit("c", [tokens, slots], 900)
    assert d.admitted and remaining(d) == [0, 0]


async def test_settle_is_idempotent(limiter: RateLimiter) -> None:
    tokens, slots = lim("tokens", 1000), lim("concurrent", 2)
    a = await admitted(limiter.admit("a", [tokens, slots], 500, now_ms=T0))
    await admitted(limiter.admit("b", [tokens, slots], 300, now_ms=T0))
    for at in (1, 2, 3):
        await limiter.settle(a, 100, now_ms=T0 + at)
    # "b" still holds its slot and its 300 tokens; "a" holds 100 tokens and no slot
    d = await limiter.admit("c", [tokens, slots], 0, now_ms=T0 + 4)
    assert remaining(d) == [600, 0]
    refused = await limiter.admit("d", [tokens, slots], 0, now_ms=T0 + 5)
    assert (refused.admitted, refused.blocked) == (False, slots)


async def test_a_ticket_with_only_a_requests_limit_settles_and_renews(
    limiter: RateLimiter,
) -> None:
    a = await admitted(limiter.admit("a", [lim("requests", 1)], 0, now_ms=T0))
    await limiter.settle(a, 0, now_ms=T0)
    await limiter.renew([a], now_ms=T0)
    await limiter.renew([], now_ms=T0)
    assert not (await limiter.admit("b", [lim("requests", 1)], 0, now_ms=T0)).admitted


# -- standings -----------------------------------------------------------------------------


async def test_standings_report_remaining_and_reset(limiter: RateLimiter) -> None:
    requests, tokens, slots = lim("requests", 5), lim("tokens", 1000), lim("concurrent", 2)
    limits = [requests, tokens, slots]
    d = await limiter.admit("a", limits, 400, now_ms=T0)
    assert [(s.remaining, s.reset_ms) for s in d.standings] == [(4, WINDOW), (600, WINDOW), (1, 0)]
    assert [s.limit for s in d.standings] == limits
    d = await limiter.admit("b", limits, 400, now_ms=T0 + 1000)
    assert [(s.remaining, s.reset_ms) for s in d.standings] == [
        (3, WINDOW),
        (200, WINDOW),
        (0, SLOT_WAIT_CAP_MS),
    ]
    # a refusal reports where the limits stand without it
    d = await limiter.admit("c", limits, 400, now_ms=T0 + 5000)
    assert not d.admitted
    assert [(s.remaining, s.reset_ms) for s in d.standings] == [
        (3, WINDOW - 4000),
        (200, WINDOW - 4000),
        (0, SLOT_WAIT_CAP_MS),
    ]
    # the window empties: everything is free again (the slots are still held until settled)
    d = await limiter.admit("c", [requests, tokens], 0, now_ms=T0 + 1000 + WINDOW)
    assert [(s.remaining, s.reset_ms) for s in d.standings] == [(4, WINDOW), (1000, WINDOW)]


async def test_a_full_concurrency_limit_resets_when_its_earliest_slot_expires(
    backend: Backend,
) -> None:
    limiter = backend.make(slot_ttl_ms=800)
    slots = lim("concurrent", 2)
    await admitted(limiter.admit("a", [slots], 0, now_ms=T0))
    d = await limiter.admit("b", [slots], 0, now_ms=T0 + 100)
    assert (d.standings[0].remaining, d.standings[0].reset_ms) == (0, 700)


async def test_a_lowered_limit_waits_for_enough_entries_to_leave(backend: Backend) -> None:
    limiter = backend.make(slot_ttl_ms=800)
    wide = [lim("requests", 3), lim("tokens", 100), lim("concurrent", 3)]
    for i, at in enumerate((0, 100, 200)):
        await admitted(limiter.admit(f"t{i}", wide, 30, now_ms=T0 + at))
    now = T0 + 300
    d = await limiter.admit("x", [lim("requests", 1)], 0, now_ms=now)
    assert (d.retry_after_ms, remaining(d)) == (WINDOW - 100, [0])  # all three must leave
    d = await limiter.admit("x", [lim("tokens", 50)], 10, now_ms=now)
    assert (d.retry_after_ms, remaining(d)) == (WINDOW - 200, [0])  # 90 + 10 - 50: two leave
    d = await limiter.admit("x", [lim("concurrent", 2)], 0, now_ms=now)
    assert (d.retry_after_ms, d.standings[0].reset_ms) == (600, 600)  # two slots must expire
    d = await limiter.admit("x", [lim("concurrent", 0)], 0, now_ms=now)
    assert (d.never, d.standings[0].reset_ms) == (True, 700)  # for limit 0: until all expire


# -- limit 0 and independence -------------------------------------------------------------


@pytest.mark.parametrize("kind", ["requests", "tokens", "concurrent"])
async def test_limit_zero_admits_nothing(limiter: RateLimiter, kind: LimitKind) -> None:
    zero = lim(kind, 0)
    for tokens in (0, 1):
        d = await limiter.admit("a", [lim("requests", 10, "other"), zero], tokens, now_ms=T0)
        assert (d.admitted, d.blocked, d.never, d.retry_after_ms) == (False, zero, True, WINDOW)
        assert d.standings[1].remaining == 0


async def test_subjects_and_scopes_do_not_interact(limiter: RateLimiter) -> None:
    for i in range(3):
        await admitted(limiter.admit(f"a{i}", [lim("requests", 3, "k1")], 0, now_ms=T0))
    assert not (await limiter.admit("x", [lim("requests", 3, "k1")], 0, now_ms=T0)).admitted
    await admitted(limiter.admit("b", [lim("requests", 3, "k2")], 0, now_ms=T0))
    other_scope = Limit("account", "k1", "requests", 3)
    await admitted(limiter.admit("c", [other_scope], 0, now_ms=T0))
    # the same subject's other kinds are their own counters
    await admitted(limiter.admit("d", [lim("tokens", 3, "k1"), lim("concurrent", 1)], 3, now_ms=T0))


async def test_a_limit_named_twice_counts_once(limiter: RateLimiter) -> None:
    requests, tokens = lim("requests", 5), lim("tokens", 100)
    d = await limiter.admit("a", [requests, tokens, requests, tokens], 30, now_ms=T0)
    assert remaining(d) == [4, 70, 4, 70]


async def test_the_backends_own_clock_is_used_without_now_ms(limiter: RateLimiter) -> None:
    await limiter.ping()
    limits = [lim("requests", 2), lim("tokens", 100), lim("concurrent", 5)]
    a = await admitted(limiter.admit("a", limits, 10))
    await admitted(limiter.admit("b", limits, 10))
    d = await limiter.admit("c", limits, 10)
    assert (d.admitted, d.blocked) == (False, limits[0])
    assert 0 < d.retry_after_ms <= WINDOW
    await limiter.renew([a])
    await limiter.settle(a, 1)
    # "a" counts the 1 token it used and holds no slot; "b" holds 10 tokens and a slot
    assert remaining(await limiter.admit("d", limits[1:], 0)) == [89, 3]


async def test_negative_tokens_are_refused(limiter: RateLimiter) -> None:
    with pytest.raises(ValueError, match="tokens"):
        await limiter.admit("a", [lim("tokens", 10)], -1, now_ms=T0)


# -- both backends decide alike ------------------------------------------------------------

PROPERTY_WINDOW = 1_000
PROPERTY_TTL = 400
LIMIT_POOL = [
    lim("requests", 3, "a"),
    lim("tokens", 100, "a"),
    lim("concurrent", 2, "a"),
    lim("requests", 2, "b"),
    lim("tokens", 40, "b"),
    lim("concurrent", 1, "b"),
    Limit("account", "a", "tokens", 150),
    # the same counters with a lower limit (a limit lowered while entries are counted)
    lim("requests", 1, "a"),
    lim("tokens", 30, "a"),
    lim("concurrent", 1, "a"),
    lim("concurrent", 0, "a"),
    Limit("instrument", "i", "requests", 0),
]
PROBE = [*LIMIT_POOL, Limit("instrument", "probe", "requests", 0)]
# round amounts make ties (a wait that frees exactly enough) likely
token_amounts = st.one_of(st.sampled_from([0, 10, 20, 30, 40, 50]), st.integers(0, 120))
operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("admit"),
            st.lists(st.sampled_from(range(len(LIMIT_POOL))), min_size=1, max_size=4),
            token_amounts,
        ),
        st.tuples(st.just("settle"), st.integers(0, 30), token_amounts),
        st.tuples(st.just("renew"), st.integers(0, 30), st.just(0)),
        st.tuples(
            st.just("advance"),
            # round steps land exactly on window and slot-TTL boundaries, and just off them
            st.sampled_from([1, 50, 100, 200, 300, 400, 600, 999, 1000]),
            st.just(0),
        ),
    ),
    min_size=5,
    max_size=40,
)


async def run_both(ops: list[tuple[str, object, int]], wire: ClientName) -> None:
    memory = MemoryLimiter(PROPERTY_WINDOW, PROPERTY_TTL)
    prefix = f"ggtest:{uuid.uuid4().hex}:"
    shared = RedisLimiter(
        REDIS_URL,
        window_ms=PROPERTY_WINDOW,
        slot_ttl_ms=PROPERTY_TTL,
        prefix=prefix,
        client=wire,
    )
    try:
        now = T0
        tickets: list[Ticket] = []
        for n, (op, arg, tokens) in enumerate(ops):
            if op == "admit":
                assert isinstance(arg, list)
                limits = [LIMIT_POOL[i] for i in arg]
                expected = await memory.admit(f"t{n}", limits, tokens, now_ms=now)
                got = await shared.admit(f"t{n}", limits, tokens, now_ms=now)
                assert got == expected, (n, op, limits, tokens)
                if expected.ticket is not None:
                    tickets.append(expected.ticket)
            elif op == "settle" and tickets:
                assert isinstance(arg, int)
                ticket = tickets[arg % len(tickets)]
                await memory.settle(ticket, tokens, now_ms=now)
                await shared.settle(ticket, tokens, now_ms=now)
            elif op == "renew" and tickets:
                assert isinstance(arg, int)
                chosen = tickets[arg % len(tickets) :]
                await memory.renew(chosen, now_ms=now)
                await shared.renew(chosen, now_ms=now)
            elif op == "advance":
                assert isinstance(arg, int)
                now += arg
            # after every step, every limit stands alike (the probe's limit 0 refuses it, so it
            # changes nothing but reports every standing)
            expected = await memory.admit("probe", PROBE, 0, now_ms=now)
            got = await shared.admit("probe", PROBE, 0, now_ms=now)
            assert got == expected, (n, op, arg, tokens)
    finally:
        await memory.close()
        await shared.close()
        await delete_keys(prefix)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(ops=operations)
def test_memory_and_redis_decide_alike(
    redis_url: str, wire: ClientName, ops: list[tuple[str, object, int]]
) -> None:
    asyncio.run(run_both(ops, wire))


# -- memory only -------------------------------------------------------------------------------


async def test_memory_forgets_idle_limits() -> None:
    limiter = MemoryLimiter(window_ms=1_000, slot_ttl_ms=500)
    for i in range(10_000):
        limits = [lim("requests", 5, f"k{i}"), lim("tokens", 50, f"k{i}")]
        await admitted(limiter.admit(f"t{i}", limits, 10, now_ms=T0))
    assert len(limiter) == 20_000
    slot = lim("concurrent", 1, "busy")
    held = await admitted(limiter.admit("held", [slot], 0, now_ms=T0))
    for at in range(400, 3_000, 400):  # two generations pass; the one busy limit stays
        await limiter.renew([held], now_ms=T0 + at)
    assert len(limiter) == 1
    assert not (await limiter.admit("x", [slot], 0, now_ms=T0 + 3_000)).admitted
    await limiter.settle(held, 0, now_ms=T0 + 3_000)
    assert len(limiter) == 0


async def test_memory_time_never_goes_backwards() -> None:
    limiter = MemoryLimiter(window_ms=1_000)
    await admitted(limiter.admit("a", [lim("requests", 1)], 0, now_ms=T0 + 500))
    d = await limiter.admit("b", [lim("requests", 1)], 0, now_ms=T0)
    assert (d.admitted, d.retry_after_ms) == (False, 1_000)


# -- Redis only ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_url() -> str:
    return require_redis()


@pytest.fixture(params=CLIENTS)
def wire(request: pytest.FixtureRequest) -> ClientName:
    """The Redis client a Redis-only test runs on (each runs on both)."""
    name: ClientName = request.param
    return name


async def test_unreachable_redis_is_limiter_unavailable_without_the_password(
    wire: ClientName,
) -> None:
    limiter = RedisLimiter("redis://:s3cret-Pa55@127.0.0.1:1/0", connect_timeout=0.5, client=wire)
    try:
        for call in (
            lambda: limiter.admit("a", [lim("requests", 1), lim("tokens", 5)], 1, now_ms=T0),
            lambda: limiter.settle(Ticket("a", (lim("concurrent", 1),), 1), 0),
            lambda: limiter.renew([Ticket("a", (lim("concurrent", 1),), 1)]),
            limiter.ping,
        ):
            with pytest.raises(LimiterUnavailable) as caught:
                await call()
            message = str(caught.value)
            assert "s3cret-Pa55" not in message
            assert "127.0.0.1:1" in message
            assert caught.value.__cause__ is not None
    finally:
        await limiter.close()


async def test_a_wrong_key_type_is_limiter_unavailable(
    backend_prefix: str, wire: ClientName
) -> None:
    client = aioredis.Redis.from_url(REDIS_URL)
    limiter = RedisLimiter(REDIS_URL, prefix=backend_prefix, client=wire)
    try:
        await client.set(backend_prefix + "key:k1:requests", "not a zset", px=60_000)
        with pytest.raises(LimiterUnavailable, match="WRONGTYPE"):
            await limiter.admit("a", [lim("requests", 1)], 0, now_ms=T0)
    finally:
        await client.aclose()
        await limiter.close()


@pytest.fixture
async def backend_prefix(redis_url: str) -> AsyncIterator[str]:
    prefix = f"ggtest:{uuid.uuid4().hex}:"
    yield prefix
    await delete_keys(prefix)


async def test_scripts_are_reloaded_after_script_flush(
    backend_prefix: str, wire: ClientName
) -> None:
    client = aioredis.Redis.from_url(REDIS_URL)
    limiter = RedisLimiter(REDIS_URL, prefix=backend_prefix, client=wire)
    limits = [lim("requests", 2), lim("tokens", 100), lim("concurrent", 2)]
    try:
        a = await admitted(limiter.admit("a", limits, 10, now_ms=T0))
        await client.script_flush()
        b = await admitted(limiter.admit("b", limits, 10, now_ms=T0))
        await client.script_flush()
        await limiter.settle(b, 1, now_ms=T0)
        await client.script_flush()
        await limiter.renew([a], now_ms=T0)
        d = await limiter.admit("c", limits, 10, now_ms=T0)
        assert (d.admitted, d.blocked, remaining(d)) == (False, limits[0], [0, 89, 1])
    finally:
        await client.aclose()
        await limiter.close()


async def test_a_release_not_awaited_right_after_redis_forgot_its_scripts_is_not_lost(
    backend_prefix: str, wire: ClientName
) -> None:
    """A new or flushed Redis has forgotten every script: the first admission loads the
    release's script too, so the releases sent after it without awaiting take effect."""
    client = aioredis.Redis.from_url(REDIS_URL)
    limiter = RedisLimiter(REDIS_URL, prefix=backend_prefix, client=wire)
    limits = [lim("tokens", 100), lim("concurrent", 1)]
    try:
        await client.script_flush()
        a = await admitted(limiter.admit("a", limits, 90))
        assert limiter.settle_nowait(a, 10)
        await limiter.ping()  # its answer has come back by the time PING's has
        d = await limiter.admit("b", limits, 90)
        assert d.admitted and remaining(d) == [0, 0]
    finally:
        await client.aclose()
        await limiter.close()


async def test_a_release_not_awaited_that_redis_refuses_makes_the_next_one_awaited(
    backend_prefix: str, wire: ClientName
) -> None:
    client = aioredis.Redis.from_url(REDIS_URL)
    limiter = RedisLimiter(REDIS_URL, prefix=backend_prefix, client=wire)
    limits = [lim("tokens", 100), lim("concurrent", 1)]
    try:
        a = await admitted(limiter.admit("a", limits, 90))
        await client.script_flush()
        assert limiter.settle_nowait(a, 10)  # sent; Redis answers NOSCRIPT
        await limiter.ping()  # its answer has come back by the time PING's has
        assert not limiter.settle_nowait(a, 10)  # so the caller awaits settle instead
        await limiter.settle(a, 10)  # which loads the script again
        d = await limiter.admit("b", limits, 90)
        assert d.admitted and remaining(d) == [0, 0]
    finally:
        await client.aclose()
        await limiter.close()


async def test_every_key_gets_a_ttl(backend_prefix: str, wire: ClientName) -> None:
    client = aioredis.Redis.from_url(REDIS_URL)
    limiter = RedisLimiter(
        REDIS_URL, window_ms=5_000, slot_ttl_ms=3_000, prefix=backend_prefix, client=wire
    )
    limits = [lim("requests", 2), lim("tokens", 100), lim("concurrent", 2)]
    try:
        a = await admitted(limiter.admit("a", limits, 10))
        await limiter.settle(a, 3)
        await admitted(limiter.admit("b", limits, 10))
        keys = sorted([key async for key in client.scan_iter(match=backend_prefix + "*")])
        names = [key.decode().removeprefix(backend_prefix) for key in keys]
        assert names == [
            "key:k1:concurrent",
            "key:k1:requests",
            "key:k1:tokens",
            "key:k1:tokens:n",
            "key:k1:tokens:sum",
        ]
        for key, name in zip(keys, names, strict=True):
            longest = (3_000 if name.endswith("concurrent") else 5_000) + KEY_MARGIN_MS
            assert 0 < await client.pttl(key) <= longest, name
        assert int(await client.get(backend_prefix + "key:k1:tokens:sum")) == 13
    finally:
        await client.aclose()
        await limiter.close()


async def test_a_tokens_limit_leaves_no_keys_once_its_window_is_empty(
    backend_prefix: str, wire: ClientName
) -> None:
    client = aioredis.Redis.from_url(REDIS_URL)
    limiter = RedisLimiter(REDIS_URL, prefix=backend_prefix, client=wire)
    tokens, slots = lim("tokens", 100), lim("concurrent", 1)
    try:
        a = await admitted(limiter.admit("a", [tokens, slots], 10, now_ms=T0))
        await limiter.settle(a, 5, now_ms=T0 + WINDOW)
        assert [key async for key in client.scan_iter(match=backend_prefix + "*")] == []
    finally:
        await client.aclose()
        await limiter.close()


async def test_a_replayed_admission_decides_alike_and_counts_once(
    backend_prefix: str, wire: ClientName
) -> None:
    """What the retry after a dropped connection does: the same script, again."""
    limiter = RedisLimiter(REDIS_URL, prefix=backend_prefix, client=wire)
    limits = [lim("requests", 1), lim("tokens", 100), lim("concurrent", 1)]
    try:
        first = await limiter.admit("a", limits, 60, now_ms=T0)
        assert await limiter.admit("a", limits, 60, now_ms=T0) == first
        assert remaining(first) == [0, 40, 0]
        assert not (await limiter.admit("b", limits[1:2], 41, now_ms=T0)).admitted
    finally:
        await limiter.close()


async def test_a_silent_redis_costs_at_most_the_timeout(wire: ClientName) -> None:
    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # reads until the client gives up; never answers
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    limiter = RedisLimiter(
        f"redis://127.0.0.1:{port}/0", timeout=0.2, max_connections=1, client=wire
    )
    try:
        started = asyncio.get_running_loop().time()
        outcomes = await asyncio.gather(
            limiter.admit("a", [lim("requests", 1)], 0),
            limiter.admit("b", [lim("requests", 1)], 0),
            return_exceptions=True,
        )
        assert asyncio.get_running_loop().time() - started < 1.0
        assert all(isinstance(o, LimiterUnavailable) for o in outcomes), outcomes
        assert all("no answer within 0.2 s" in str(o) for o in outcomes)
    finally:
        await limiter.close()
        server.close()
        await server.wait_closed()


async def test_processes_sharing_one_redis_admit_exactly_r(
    backend_prefix: str, wire: ClientName
) -> None:
    """Four limiters, as four gateway processes would hold, on Redis's clock."""
    processes = [RedisLimiter(REDIS_URL, prefix=backend_prefix, client=wire) for _ in range(4)]
    limits = [lim("requests", 25), lim("tokens", 1_000_000), lim("concurrent", 1_000)]
    try:
        decisions = await asyncio.gather(
            *(processes[i % 4].admit(f"t{i}", limits, 3) for i in range(125))
        )
        assert sum(d.admitted for d in decisions) == 25
        tickets = [d.ticket for d in decisions if d.ticket is not None]
        await asyncio.gather(*(processes[i % 4].settle(t, 1) for i, t in enumerate(tickets)))
        probe = await processes[1].admit("probe", limits[1:], 0)
        assert remaining(probe) == [1_000_000 - 25, 999]
    finally:
        for process in processes:
            await process.close()


async def test_redis_going_away_is_limiter_unavailable_at_once_and_its_return_is_used(
    backend_prefix: str, wire: ClientName
) -> None:
    """Redis down (its connections cut, new ones refused): every call fails quickly with
    ``LimiterUnavailable``; once it is back the next call connects again and counts as before."""
    proxy = CuttableProxy("127.0.0.1", int(REDIS_URL.rsplit(":", 1)[1].split("/", 1)[0]))
    port = await proxy.start()
    limiter = RedisLimiter(
        f"redis://127.0.0.1:{port}/0", prefix=backend_prefix, connect_timeout=0.5, client=wire
    )
    limits = [lim("requests", 3)]
    loop = asyncio.get_running_loop()
    try:
        await admitted(limiter.admit("a", limits, 0, now_ms=T0))
        await proxy.cut()
        for call in (
            lambda: limiter.admit("b", limits, 0, now_ms=T0),
            limiter.ping,
            lambda: limiter.admit("b", limits, 0, now_ms=T0),
        ):
            started = loop.time()
            with pytest.raises(LimiterUnavailable):
                await call()
            assert loop.time() - started < 0.5
        await proxy.restore()
        d = await limiter.admit("c", limits, 0, now_ms=T0)
        assert (d.admitted, remaining(d)) == (True, [1])  # "b" was never counted
        await limiter.ping()
    finally:
        await limiter.close()
        await proxy.cut()
