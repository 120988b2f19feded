"""Login throttling over a real in-process limiter: failures count per email and per client
address; a success does not count; the limit refuses with Retry-After."""

from __future__ import annotations

import pytest

from gridgate.core.login_throttle import LoginThrottle
from gridgate.core.memory_limiter import MemoryLimiter
from gridgate.errors import RateLimited

WINDOW_MS = 15 * 60 * 1000


class Clock:
    def __init__(self) -> None:
        self.ms = 1_000_000

    def __call__(self) -> int:
        return self.ms


async def test_ten_failures_per_email_then_429_until_the_window_passes() -> None:
    clock = Clock()
    throttle = LoginThrottle(MemoryLimiter(window_ms=WINDOW_MS, clock=clock))
    for i in range(10):
        await throttle.attempt("A@example.com", f"10.0.0.{i}")  # failures: never settled
    with pytest.raises(RateLimited) as refused:
        await throttle.attempt(" a@example.com", "10.0.0.99")
    assert refused.value.status == 429
    assert int(refused.value.headers["Retry-After"]) == WINDOW_MS // 1000
    await throttle.attempt("b@example.com", "10.0.0.99")  # another email is not held back
    clock.ms += WINDOW_MS
    await throttle.attempt("a@example.com", "10.0.0.1")


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
