"""The rate-limit gate: 429 with Retry-After and X-RateLimit-*, release, renew, backend failure."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pytest

from gridgate.core.limits.guard import RateGuard
from gridgate.core.limits.rules import LimitRules
from gridgate.errors import NoCapacity, RateLimited
from gridgate.settings import LimitSettings, LimitsSettings
from gridgate.storage.limiter.memory import MemoryLimiter
from gridgate.storage.limiter.port import Decision, Limit, LimiterUnavailable, Ticket
from gridgate.storage.records import KeyRecord

KEY = KeyRecord(
    id="key_1", account_id="acct_1", name="k", prefix="gg_x", secret_hash="h", created_us=0
)
NOW_US = 1_800_000_000_000_000


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def now_us(self) -> int:
        return NOW_US + int(self.t * 1_000_000)

    def monotonic(self) -> float:
        return self.t


class Broken:
    """A limiter whose backend is down."""

    async def admit(
        self, ticket_id: str, limits: Sequence[Limit], tokens: int, *, now_ms: int | None = None
    ) -> Decision:
        raise LimiterUnavailable("redis at 127.0.0.1:1 is unreachable")

    async def settle(self, ticket: Ticket, tokens: int, *, now_ms: int | None = None) -> None:
        raise LimiterUnavailable("down")

    def settle_nowait(self, ticket: Ticket, tokens: int) -> bool:
        return False

    async def renew(self, tickets: Sequence[Ticket], *, now_ms: int | None = None) -> None:
        raise LimiterUnavailable("down")

    async def ping(self) -> None:
        raise LimiterUnavailable("down")

    async def sent(self) -> None:
        return None

    async def close(self) -> None:
        return None


def guard(limits: LimitsSettings, **options: object) -> tuple[RateGuard, Clock, list[Limit]]:
    clock = Clock()
    refused: list[Limit] = []
    rules = LimitRules(limits)
    made = RateGuard(
        MemoryLimiter(clock=lambda: int(clock.t * 1000)),
        rules,
        clock,
        on_refused=refused.append,
        **options,  # type: ignore[arg-type]
    )
    return made, clock, refused


async def test_no_limit_no_admission_and_no_headers() -> None:
    gate, _, _ = guard(LimitsSettings())
    assert await gate.admit("r1", KEY, "text-prime", 100) is None
    gate.release(None, 0)


async def test_the_rth_plus_one_request_is_refused_with_retry_after() -> None:
    gate, clock, refused = guard(LimitsSettings(key=LimitSettings(requests_per_minute=2)))
    first = await gate.admit("r1", KEY, "text-prime", 10)
    assert first is not None
    assert first.headers["X-RateLimit-Limit"] == "2"
    assert first.headers["X-RateLimit-Remaining"] == "1"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    clock.t = 15.0
    second = await gate.admit("r2", KEY, "text-prime", 10)
    assert second is not None and second.headers["X-RateLimit-Remaining"] == "0"
    # the window is wholly free again 60 s after the second admission
    assert int(second.headers["X-RateLimit-Reset"]) == NOW_US // 1_000_000 + 75
    with pytest.raises(RateLimited) as caught:
        await gate.admit("r3", KEY, "text-prime", 10)
    error = caught.value
    assert error.status == 429 and error.code == "rate_limit_exceeded"
    assert error.headers["Retry-After"] == "45"  # when the first admission leaves the window
    assert error.headers["retry-after-ms"] == "45000"
    assert error.headers["X-RateLimit-Remaining"] == "0"
    assert "key 'key_1' allows 2 requests per minute" in error.message
    assert refused == [Limit("key", "key_1", "requests", 2)]


async def test_a_request_larger_than_the_token_limit_is_told_to_lower_max_tokens() -> None:
    gate, _, _ = guard(LimitsSettings(account=LimitSettings(tokens_per_minute=1000)))
    with pytest.raises(RateLimited) as caught:
        await gate.admit("r1", KEY, "text-prime", 5000)
    assert "up to 5000 tokens" in caught.value.message
    assert "lower max_tokens" in caught.value.message


async def test_headers_name_the_limit_closest_to_refusing() -> None:
    gate, _, _ = guard(
        LimitsSettings(
            key=LimitSettings(requests_per_minute=100),
            instrument=LimitSettings(tokens_per_minute=1000),
        )
    )
    admitted = await gate.admit("r1", KEY, "text-prime", 900)
    assert admitted is not None
    assert admitted.headers["X-RateLimit-Limit"] == "1000"  # 10% left, against 99%
    assert admitted.headers["X-RateLimit-Remaining"] == "100"
    assert admitted.headers["x-ratelimit-limit-requests"] == "100"
    assert admitted.headers["x-ratelimit-remaining-tokens"] == "100"


async def test_release_frees_the_slot_and_corrects_the_tokens() -> None:
    gate, _, _ = guard(LimitsSettings(key=LimitSettings(concurrent=1, tokens_per_minute=1000)))
    admitted = await gate.admit("r1", KEY, "text-prime", 900)
    with pytest.raises(RateLimited):
        await gate.admit("r2", KEY, "text-prime", 50)  # the one slot is taken
    gate.release(admitted, 40)
    await gate.drain()  # the release runs as a task of its own
    again = await gate.admit("r3", KEY, "text-prime", 900)  # 40 + 900 fit in 1000
    assert again is not None


async def test_an_unreachable_backend_fails_closed_by_default() -> None:
    rules = LimitRules(LimitsSettings(key=LimitSettings(requests_per_minute=1)))
    errors: list[int] = []
    gate = RateGuard(Broken(), rules, Clock(), on_backend_error=lambda: errors.append(1))
    with pytest.raises(NoCapacity) as caught:
        await gate.admit("r1", KEY, "text-prime", 1)
    assert caught.value.status == 503 and caught.value.headers["Retry-After"] == "1"
    assert "127.0.0.1" not in caught.value.message
    assert errors == [1]


async def test_fail_open_serves_and_logs_loudly_but_not_every_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rules = LimitRules(LimitsSettings(key=LimitSettings(requests_per_minute=1)))
    clock = Clock()
    gate = RateGuard(Broken(), rules, clock, fail_open=True)
    with caplog.at_level(logging.ERROR, logger="gridgate.limits"):
        for _ in range(5):
            admitted = await gate.admit("r", KEY, "text-prime", 1)
            assert admitted is not None and admitted.ticket is None and not admitted.headers
        clock.t = 11.0
        await gate.admit("r", KEY, "text-prime", 1)
    lines = [r for r in caplog.records if "WITHOUT rate limits" in r.getMessage()]
    assert len(lines) == 2
