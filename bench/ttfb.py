"""Streaming time to first byte at one connection: sequential streamed requests over one
kept-alive connection, timing from sending the request to the first body chunk.

    python -m bench.ttfb URL [--auth KEY] [--count 500] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from bench.bodies import chat_request, encode


@dataclass(frozen=True)
class TtfbResult:
    url: str
    samples_us: list[float]
    errors: int
    ok_total: int  # 200 answers including the warm-up ones (each makes a usage record)

    def summary(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "requests": len(self.samples_us) + self.errors,
            "ok_total": self.ok_total,
            "errors": self.errors,
            "p50_us": percentile(self.samples_us, 50),
            "p90_us": percentile(self.samples_us, 90),
            "p99_us": percentile(self.samples_us, 99),
        }


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return round(ordered[int(rank) - 1], 1)


async def measure(
    url: str, body: bytes, *, auth: str | None, count: int, seconds: float, warmup: int = 20
) -> TtfbResult:
    """Up to ``count`` requests or ``seconds`` of them, whichever ends first (after ``warmup``
    unrecorded ones). Each body is read to its end before the next request."""
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = f"Bearer {auth}"
    samples: list[float] = []
    errors = ok = 0
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        deadline = time.monotonic() + seconds
        for i in range(warmup + count):
            if i >= warmup and time.monotonic() > deadline:
                break
            started = time.perf_counter()
            elapsed = 0.0
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    first = await response.content.readany()
                    elapsed = time.perf_counter() - started
                    while await response.content.readany():
                        pass
                    # the first event: an OpenAI chunk, or the Messages surface's message_start
                    good = response.status == 200 and first.startswith((b"data: ", b"event: "))
            except (aiohttp.ClientError, TimeoutError):
                good = False
            ok += good
            if i < warmup:
                continue
            if good:
                samples.append(elapsed * 1e6)
            else:
                errors += 1
    return TtfbResult(url=url, samples_us=samples, errors=errors, ok_total=ok)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--auth", default=None)
    parser.add_argument("--model", default="bench-stream")
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    body = encode(chat_request(args.model, stream=True))
    result = asyncio.run(
        measure(args.url, body, auth=args.auth, count=args.count, seconds=args.seconds)
    )
    print(json.dumps(result.summary()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
