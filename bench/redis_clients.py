"""The rate limiter's two Redis clients side by side in one process: ``resp`` (gridgate's own,
``storage/limiter/resp.py``) and ``redis-py`` (redis-py's asyncio client with hiredis,
``storage/limiter/redispy.py``), for issue 17's A/B.

What a rate-limited request does to the limiter, as ``core/limits/guard.py`` does it: one
``admit`` against the limits ``bench/gateway.py`` configures (key requests, tokens and
concurrency, account tokens; never reached), then a release not awaited (``settle_nowait``,
``settle`` when that cannot be). ``--requests`` of them at each concurrency, each client in
turn, the order alternating per round. Reported per run: admissions per second, and CPU per
admission of this Python process (``time.process_time``) and of Redis (``INFO cpu``).

    .venv/bin/python bench/redis_clients.py                # 20,000 requests, @1 and @64, 3 rounds
    .venv/bin/python bench/redis_clients.py --requests 5000 --rounds 1 --json out.json

Needs Redis at ``--redis`` (default redis://127.0.0.1:6379/0) and ``redis[hiredis]``
(``pip install -e '.[redis-py]'``). Its keys (``gg-bench-<hex>:…``) carry the limiter's TTLs and
vanish about a minute after the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

from gridgate.storage.limiter.port import Limit, LimiterUnavailable
from gridgate.storage.limiter.redis import ClientName, RedisLimiter
from gridgate.storage.limiter.resp import RespClient

CLIENTS: tuple[ClientName, ...] = ("resp", "redis-py")
WARMUP = 500  # untimed admissions first: connections made, scripts loaded


@dataclass
class Run:
    round: int
    client: str
    concurrency: int
    requests: int
    seconds: float
    rps: float
    cpu_us_per_admission: float  # this process
    redis_cpu_us_per_admission: float
    errors: int  # LimiterUnavailable (another client's SCRIPT FLUSH on a shared Redis, say)


def _limits(subject: str) -> tuple[Limit, ...]:
    return (
        Limit("key", subject, "requests", 1_000_000_000),
        Limit("key", subject, "tokens", 1_000_000_000_000),
        Limit("key", subject, "concurrent", 1_000_000),
        Limit("account", subject, "tokens", 1_000_000_000_000),
    )


async def _redis_cpu(info: RespClient) -> float:
    """Redis's CPU seconds so far (user + system, main thread and the rest)."""
    text = (await info.call("INFO", "cpu")).decode()
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return float(fields["used_cpu_user"]) + float(fields["used_cpu_sys"])


async def _requests(limiter: RedisLimiter, limits: tuple[Limit, ...], ids: list[str]) -> int:
    errors = 0
    for ticket_id in ids:
        try:
            decision = await limiter.admit(ticket_id, limits, 4_160)
        except LimiterUnavailable:
            errors += 1
            continue
        ticket = decision.ticket
        if ticket is None:
            raise RuntimeError(f"refused: {decision}")
        if not limiter.settle_nowait(ticket, 96):
            await limiter.settle(ticket, 96)
    return errors


async def _load(limiter: RedisLimiter, subject: str, requests: int, concurrency: int) -> int:
    limits = _limits(subject)
    ids = [f"{subject}-{i}" for i in range(requests)]
    errors = await asyncio.gather(
        *(_requests(limiter, limits, ids[i::concurrency]) for i in range(concurrency))
    )
    await limiter.ping()  # every release not awaited has reached Redis by its answer
    return sum(errors)


async def one_run(
    url: str, client: ClientName, requests: int, concurrency: int, round_: int
) -> Run:
    prefix = f"gg-bench-{secrets.token_hex(4)}:"
    limiter = RedisLimiter(url, prefix=prefix, client=client)
    info = RespClient(url)
    try:
        await _load(limiter, "warm", WARMUP, concurrency)
        redis_before = await _redis_cpu(info)
        cpu, wall = time.process_time(), time.perf_counter()
        errors = await _load(limiter, "k", requests, concurrency)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        redis_cpu = await _redis_cpu(info) - redis_before
    finally:
        await limiter.close()
        await info.close()
    return Run(
        round=round_,
        client=client,
        concurrency=concurrency,
        requests=requests,
        seconds=round(wall, 3),
        rps=round(requests / wall),
        cpu_us_per_admission=round(cpu / requests * 1e6, 1),
        redis_cpu_us_per_admission=round(redis_cpu / requests * 1e6, 1),
        errors=errors,
    )


async def bench(url: str, requests: int, concurrencies: list[int], rounds: int) -> list[Run]:
    runs: list[Run] = []
    for round_ in range(1, rounds + 1):
        order = CLIENTS if round_ % 2 else CLIENTS[::-1]
        for concurrency in concurrencies:
            for client in order:
                run = await one_run(url, client, requests, concurrency, round_)
                print(
                    f"round {run.round}  {run.client:8}  @{run.concurrency:<3} "
                    f"{run.rps:>7,} admissions/s  {run.cpu_us_per_admission:>6.1f} µs CPU here  "
                    f"{run.redis_cpu_us_per_admission:>5.1f} µs CPU in Redis  "
                    f"{run.errors} errors",
                    flush=True,
                )
                runs.append(run)
    return runs


def summary(runs: list[Run]) -> str:
    lines = [
        "| client | concurrency | admissions/s (each round) | median | CPU µs/admission here "
        "(each round) | median | Redis CPU µs/admission (median) |",
        "|---|---|---|---|---|---|---|",
    ]
    for concurrency in sorted({r.concurrency for r in runs}):
        for client in CLIENTS:
            mine = [r for r in runs if r.client == client and r.concurrency == concurrency]
            rps = [r.rps for r in mine]
            cpu = [r.cpu_us_per_admission for r in mine]
            redis_cpu = statistics.median(r.redis_cpu_us_per_admission for r in mine)
            lines.append(
                f"| {client} | {concurrency} | {' / '.join(f'{x:,}' for x in rps)} | "
                f"{statistics.median(rps):,.0f} | {' / '.join(f'{x:.1f}' for x in cpu)} | "
                f"{statistics.median(cpu):.1f} | {redis_cpu:.1f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", default="1,64", help="comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="also write every run here")
    parser.add_argument("--no-uvloop", action="store_true", help="asyncio's own loop")
    args = parser.parse_args()
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    runner: Any = asyncio.run
    if not args.no_uvloop:
        import uvloop

        runner = uvloop.run
    try:
        runs = runner(bench(args.redis, args.requests, concurrencies, args.rounds))
    except LimiterUnavailable as exc:
        raise SystemExit(f"Redis: {exc}") from exc
    print()
    print(summary(runs))
    if args.json:
        with open(args.json, "w") as out:
            json.dump([asdict(r) for r in runs], out, indent=1)


if __name__ == "__main__":
    main()
