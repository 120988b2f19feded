"""The Redis rate limiter: the contract of ``core/rate_limits.py`` across processes and hosts.

Each of ``admit``, ``settle`` and ``renew`` is one round trip running one Lua script
(``storage/lua/rate_*.v1.lua``, EVALSHA, loaded again after a ``NOSCRIPT``), so each step is
atomic whatever the number of gateway processes. Time is Redis's own (``TIME``) unless the
caller passes ``now_ms``, so every host agrees on it.

Layout, under ``prefix`` (``gg:v1:rl:``, versioned like the scripts) + the limit's name:

- ``requests``: a ZSET ticket id → admission ms;
- ``tokens``: a ZSET ticket id → admission ms, a HASH ``…:n`` ticket id → tokens counted, and a
  STRING ``…:sum`` holding their total; entries that left the window are removed, and their
  tokens subtracted, whenever the limit is touched;
- ``concurrent``: a ZSET ticket id → slot expiry ms.

Every key carries a TTL of its window (or slot TTL) plus a margin, so idle limits vanish.

Every script is idempotent per ticket id (an admission leaves out what its own ticket already
holds), so redis-py may retry a call once after a dropped connection; a timeout is not retried.
A call never waits longer than ``timeout`` for a connection or an answer; every failure is
``LimiterUnavailable``, translated in ``_connection`` alone.

Not Redis Cluster aware: the keys of one call may live in different hash slots, so point it at
a single Redis (or a primary with replicas).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from importlib.resources import files
from urllib.parse import parse_qs, unquote, urlsplit

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from gridgate.core.rate_limits import (
    SLOT_WAIT_CAP_MS,
    Decision,
    Limit,
    LimiterUnavailable,
    Standing,
    Ticket,
)

KEY_MARGIN_MS = 1000  # keys outlive their last entry by this much


def _script(name: str) -> str:
    return files("gridgate.storage").joinpath("lua", name).read_text(encoding="utf-8")


def _redacted(url: str) -> tuple[str, list[str]]:
    """Where the URL points, without credentials or query, and the secrets to scrub."""
    parts = urlsplit(url)
    passwords = [parts.password or "", *parse_qs(parts.query).get("password", [])]
    secrets = sorted({s for p in passwords for s in (p, unquote(p)) if s}, key=len, reverse=True)
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}", secrets


class RedisLimiter:
    """Rate limits kept in Redis (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        window_ms: int = 60_000,
        slot_ttl_ms: int = 60_000,
        prefix: str = "gg:v1:rl:",
        connect_timeout: float = 1.0,
        timeout: float = 0.5,
        max_connections: int = 64,
    ) -> None:
        if window_ms < 1 or slot_ttl_ms < 1:
            raise ValueError("window_ms and slot_ttl_ms must be at least 1")
        self._window = window_ms
        self._ttl = slot_ttl_ms
        self._prefix = prefix
        self._where, self._secrets = _redacted(url)
        self._timeout = timeout
        # One pool of at most `max_connections`; a call waits at most `timeout` for one of them
        # (a semaphore: redis-py's BlockingConnectionPool costs ~60 µs per call here). One
        # immediate retry on a dropped connection (every script is idempotent), none on a timeout.
        self._connections = asyncio.Semaphore(max_connections)
        pool = ConnectionPool.from_url(
            url,
            max_connections=max_connections,
            socket_connect_timeout=connect_timeout,
            socket_timeout=timeout,
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        )
        self._redis = Redis.from_pool(pool)
        self._admit = self._redis.register_script(_script("rate_admit.v1.lua"))
        self._settle = self._redis.register_script(_script("rate_settle.v1.lua"))
        self._renew = self._redis.register_script(_script("rate_renew.v1.lua"))

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[None]:
        """A turn at the pool, and the one place Redis failures become ``LimiterUnavailable``
        (the message names no secret)."""
        connections = self._connections
        try:
            if connections.locked():
                async with asyncio.timeout(self._timeout):
                    await connections.acquire()
            else:
                await connections.acquire()  # free: does not suspend
        except TimeoutError as exc:
            raise LimiterUnavailable(
                f"rate-limit Redis at {self._where}: no connection free within {self._timeout} s"
            ) from exc
        try:
            yield
        except (RedisError, OSError, TimeoutError) as exc:
            detail = str(exc)
            for secret in self._secrets:
                detail = detail.replace(secret, "***")
            raise LimiterUnavailable(
                f"rate-limit Redis at {self._where} failed: {type(exc).__name__}: {detail}"
            ) from exc
        finally:
            connections.release()

    def _keys(self, limit: Limit, keys: list[str]) -> None:
        base = self._prefix + limit.name
        keys.append(base)
        if limit.kind == "tokens":
            keys.append(base + ":n")
            keys.append(base + ":sum")

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
        keys: list[str] = []
        args: list[str | int] = [
            -1 if now_ms is None else now_ms,
            self._window,
            self._ttl,
            KEY_MARGIN_MS,
            SLOT_WAIT_CAP_MS,
            ticket_id,
            tokens,
        ]
        for limit in limits:
            self._keys(limit, keys)
            args.append(limit.kind[0])  # 'r', 't' or 'c'
            args.append(limit.limit)
        async with self._connection():
            out: list[int] = await self._admit(keys=keys, args=args)
        standings = tuple(
            Standing(limit, out[4 + 2 * i], out[5 + 2 * i]) for i, limit in enumerate(limits)
        )
        if out[0] == 1:
            return Decision(True, Ticket(ticket_id, tuple(limits), tokens), standings)
        return Decision(
            admitted=False,
            ticket=None,
            standings=standings,
            blocked=limits[out[1] - 1],
            retry_after_ms=out[2],
            never=out[3] == 1,
        )

    async def settle(self, ticket: Ticket, tokens: int, *, now_ms: int | None = None) -> None:
        if tokens < 0:
            raise ValueError("tokens must be >= 0")
        keys: list[str] = []
        args: list[str | int] = [-1 if now_ms is None else now_ms, self._window, ticket.id, tokens]
        for limit in ticket.limits:
            if limit.kind != "requests":
                self._keys(limit, keys)
                args.append(limit.kind[0])
        if not keys:
            return
        async with self._connection():
            await self._settle(keys=keys, args=args)

    async def renew(self, tickets: Sequence[Ticket], *, now_ms: int | None = None) -> None:
        keys: list[str] = []
        args: list[str | int] = [-1 if now_ms is None else now_ms, self._ttl, KEY_MARGIN_MS]
        for ticket in tickets:
            for limit in ticket.limits:
                if limit.kind == "concurrent":
                    keys.append(self._prefix + limit.name)
                    args.append(ticket.id)
        if not keys:
            return
        async with self._connection():
            await self._renew(keys=keys, args=args)

    async def ping(self) -> None:
        async with self._connection():
            await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()
