"""Login throttling over real limiters (in process, and Redis shared by every process):
failures count per email and address and per client address, an email under attack holds
each address to a few guesses and never locks its owner out; a success does not count; the limit refuses
with Retry-After; an unreachable Redis refuses sign-in (503) unless told to fail open."""

from __future__ import annotations

import socket

import pytest

from gridgate.core.limits.login_throttle import LoginThrottle
from gridgate.errors import NoCapacity, RateLimited
from gridgate.storage.limiter.memory import MemoryLimiter
from gridgate.storage.limiter.redis import RedisLimiter
from tests.redis_server import gridgate_namespace, require_redis

WINDOW_MS = 15 * 60 * 1000


class Clock:
    def __init__(self) -> None:
        self.ms = 1_000_000

    def __call__(self) -> int:
        return self.ms


async def test_ten_failures_per_email_from_one_address_then_429_until_the_window_passes() -> None:
    clock = Clock()
    throttle = LoginThrottle(MemoryLimiter(window_ms=WINDOW_MS, clock=clock))
    for _ in range(10):
        await throttle.attempt("A@example.com", "10.0.0.66")  # failures: never settled
    with pytest.raises(RateLimited) as refused:
        await throttle.attempt(" a@example.com", "10.0.0.66")
    assert refused.value.status == 429
    assert int(refused.value.headers["Retry-After"]) == WINDOW_MS // 1000
    await throttle.attempt("b@example.com", "10.0.0.66")  # another email is not held back
    clock.ms += WINDOW_MS
    await throttle.attempt("a@example.com", "10.0.0.66")


async def test_failures_from_elsewhere_never_lock_the_owner_out() -> None:
    """Ten, or a hundred, wrong passwords for an email from other addresses: its owner, from
    an address of their own, still gets to try (and a success does not count)."""
    throttle = LoginThrottle(MemoryLimiter(window_ms=WINDOW_MS))
    for i in range(100):
        await throttle.attempt("owner@example.com", f"10.0.{i // 3}.{i % 3}")
    for _ in range(5):
        await throttle.succeeded(await throttle.attempt("owner@example.com", "192.168.1.7"))
    # a mistyped password or two of the owner's own still leaves the right one through
    await throttle.attempt("owner@example.com", "192.168.1.7")
    await throttle.attempt("owner@example.com", "192.168.1.7")
    await throttle.succeeded(await throttle.attempt("owner@example.com", "192.168.1.7"))


async def test_an_email_under_attack_allows_each_address_only_a_few_guesses() -> None:
    throttle = LoginThrottle(MemoryLimiter(window_ms=WINDOW_MS))
    for i in range(10):  # ten failures spread over addresses: the email is now under attack
        await throttle.attempt("a@example.com", f"10.0.0.{i}")
    for _ in range(3):
        await throttle.attempt("a@example.com", "10.9.9.9")
    with pytest.raises(RateLimited) as refused:
        await throttle.attempt("a@example.com", "10.9.9.9")
    assert int(refused.value.headers["Retry-After"]) > 0
    await throttle.attempt("b@example.com", "10.9.9.9")  # other emails: the usual allowance


async def test_successes_do_not_count() -> None:
    throttle = LoginThrottle(MemoryLimiter(window_ms=WINDOW_MS))
    for _ in range(30):
        await throttle.succeeded(await throttle.attempt("a@example.com", "10.0.0.1"))


async def test_fifty_failures_per_address() -> None:
    throttle = LoginThrottle(MemoryLimiter(window_ms=WINDOW_MS))
    for i in range(50):
        await throttle.attempt(f"user{i}@example.com", "10.0.0.1")
    with pytest.raises(RateLimited):
        await throttle.attempt("fresh@example.com", "10.0.0.1")
    await throttle.attempt("fresh@example.com", "10.0.0.2")


async def test_on_redis_every_process_counts_the_same_failures() -> None:
    """Two throttles (two processes) over one Redis: ten failures between them from one
    address, then 429 for that address; the owner from another address still gets through."""
    url = require_redis()
    prefix = f"{gridgate_namespace()}:v1:login:"
    limiters = [RedisLimiter(url, window_ms=WINDOW_MS, prefix=prefix) for _ in range(2)]
    throttles = [LoginThrottle(limiter) for limiter in limiters]
    try:
        for i in range(10):
            await throttles[i % 2].attempt("a@example.com", "10.0.0.66")
        for throttle in throttles:
            with pytest.raises(RateLimited):
                await throttle.attempt("a@example.com", "10.0.0.66")
        await throttles[1].succeeded(await throttles[0].attempt("a@example.com", "10.0.0.7"))
    finally:
        for limiter in limiters:
            await limiter.close()


@pytest.mark.parametrize("fail_open", [False, True])
async def test_an_unreachable_redis_refuses_sign_in_unless_told_to_fail_open(
    fail_open: bool,
) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = f"redis://127.0.0.1:{s.getsockname()[1]}/0"
    limiter = RedisLimiter(dead, window_ms=WINDOW_MS, prefix="x:", connect_timeout=0.2)
    throttle = LoginThrottle(limiter, fail_open=fail_open)
    try:
        if fail_open:
            ticket = await throttle.attempt("a@example.com", "10.0.0.1")
            assert ticket is None
            await throttle.succeeded(ticket)
        else:
            with pytest.raises(NoCapacity) as refused:
                await throttle.attempt("a@example.com", "10.0.0.1")
            assert refused.value.status == 503
            assert refused.value.headers["Retry-After"] == "1"
            assert "127.0.0.1" not in refused.value.message
    finally:
        await limiter.close()
