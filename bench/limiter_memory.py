"""What the in-process rate limiter costs per request: bytes held and CPU per admit + settle.

The benchmark's limit mix (key requests/min, key tokens/min, key concurrent, account tokens/min,
none of them reached) at one worker's share of the load (``--rate`` requests/s on the limiter's
clock, driven through ``now_ms``), with ids like the gateway's (``req_`` + 22 hex characters).
Each request reserves ``--reserve`` tokens and settles with what it "used" (varied, so the
counts are not Python's cached small ints). Reports the bytes tracemalloc sees the limiter hold
per request of a full window (steady state: entries leave as fast as they come) and, in a
separate run without tracemalloc, the µs per admit + settle.

    .venv/bin/python bench/limiter_memory.py [--rate 2600] [--seconds 150] [--reserve 4096]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
import tracemalloc

from gridgate.storage.limiter.memory import MemoryLimiter
from gridgate.storage.limiter.port import Limit

WINDOW_MS = 60_000
LIMITS = (
    Limit("key", "key_bench", "requests", 10**9),
    Limit("key", "key_bench", "tokens", 10**15),
    Limit("key", "key_bench", "concurrent", 10**6),
    Limit("account", "acct_bench", "tokens", 10**15),
)


async def drive(limiter: MemoryLimiter, start: int, count: int, rate: int, reserve: int) -> None:
    """``count`` requests from number ``start`` on, each admitted and settled at once."""
    prefix = "req_3f9a61c0d2e4"
    admit, settle = limiter.admit, limiter.settle_nowait
    for n in range(start, start + count):
        now = n * 1000 // rate
        decision = await admit(f"{prefix}{n:010x}", LIMITS, reserve, now_ms=now)
        ticket = decision.ticket
        assert ticket is not None
        settle(ticket, 300 + n % 700)


async def held_bytes(rate: int, seconds: int, reserve: int) -> tuple[float, int]:
    """Bytes per request in the window once the window is full, and the requests it holds."""
    limiter = MemoryLimiter(WINDOW_MS, WINDOW_MS, clock=lambda: 0)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    total = rate * seconds
    await drive(limiter, 0, total, rate, reserve)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    in_window = rate * WINDOW_MS // 1000
    return held / in_window, in_window


async def cpu_us(rate: int, count: int, reserve: int) -> float:
    """µs per admit + settle, the window already full."""
    limiter = MemoryLimiter(WINDOW_MS, WINDOW_MS, clock=lambda: 0)
    warm = rate * WINDOW_MS // 1000
    await drive(limiter, 0, warm, rate, reserve)
    started = time.perf_counter()
    await drive(limiter, warm, count, rate, reserve)
    return (time.perf_counter() - started) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=int, default=2600, help="requests/s (limiter clock)")
    parser.add_argument("--seconds", type=int, default=150, help="of load on the limiter clock")
    parser.add_argument("--reserve", type=int, default=4096, help="tokens reserved per request")
    parser.add_argument("--rounds", type=int, default=3, help="CPU rounds (the best is shown)")
    args = parser.parse_args()
    per_request, in_window = asyncio.run(held_bytes(args.rate, args.seconds, args.reserve))
    print(
        f"held: {per_request:.0f} bytes per request in the window "
        f"({in_window} requests, {per_request * in_window / 1e6:.1f} MB)"
    )
    rounds = [asyncio.run(cpu_us(args.rate, 200_000, args.reserve)) for _ in range(args.rounds)]
    print(f"cpu: {min(rounds):.2f} µs per admit + settle (rounds: {rounds})")


if __name__ == "__main__":
    main()
