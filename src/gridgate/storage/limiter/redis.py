"""The Redis rate limiter: the contract of ``storage/limiter/port.py`` across processes and hosts.

Each of ``admit``, ``settle`` and ``renew`` is one round trip running one Lua script
(``storage/limiter/lua/rate_*.v1.lua``, EVALSHA, loaded again after a ``NOSCRIPT``), so each step is
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
holds), so a call is retried once after a dropped connection; a timeout is not retried. Calls
share one pipelined connection (``storage/limiter/resp.py``) and never wait longer than ``timeout`` for
an answer; every failure is ``LimiterUnavailable``, translated in ``_connection`` alone.
``client = "redis-py"`` runs the same calls on redis-py's asyncio client instead
(``storage/limiter/redispy.py``, the A/B of issue 17; needs ``redis[hiredis]``).

Not Redis Cluster aware: the keys of one call may live in different hash slots, so point it at
a single Redis (or a primary with replicas).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib.resources import files
from typing import Literal, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from gridgate.storage.limiter.port import (
    SLOT_WAIT_CAP_MS,
    Decision,
    Limit,
    LimiterUnavailable,
    Standing,
    Ticket,
)
from gridgate.storage.limiter.resp import Arg, Reply, RespClient, RespError

log = logging.getLogger("gridgate.limits")

KEY_MARGIN_MS = 1000  # keys outlive their last entry by this much
ClientName = Literal["resp", "redis-py"]


class Wire(Protocol):
    """What the limiter needs of a Redis client: ``RespClient`` (``resp.py``) or
    ``RedisPyClient`` (``redispy.py``). Errors: ``RespError`` for an error reply,
    ``ConnectionError`` for a lost connection, ``TimeoutError`` for no answer in time."""

    async def call(self, *args: Arg) -> Reply: ...

    def send_nowait(self, *args: Arg) -> bool: ...

    def take_ignored_errors(self) -> list[RespError]: ...

    async def close(self) -> None: ...


def _wire(
    client: ClientName, url: str, connect_timeout: float, timeout: float, max_connections: int
) -> Wire:
    if client == "resp":  # one pipelined connection serves every call
        return RespClient(url, connect_timeout=connect_timeout, timeout=timeout)
    if client == "redis-py":
        # imported here: only a process configured for it loads redis-py
        from gridgate.storage.limiter.redispy import RedisPyClient

        return RedisPyClient(
            url,
            connect_timeout=connect_timeout,
            timeout=timeout,
            max_connections=max_connections,
        )
    raise ValueError(f"unknown Redis client {client!r}: 'resp' or 'redis-py'")


class _Script:
    """A Lua script run by its SHA1 (EVALSHA), loaded again when Redis has forgotten it."""

    def __init__(self, name: str) -> None:
        self.source = files("gridgate.storage.limiter").joinpath("lua", name).read_bytes()
        self.sha = hashlib.sha1(self.source).hexdigest().encode()

    async def run(self, client: Wire, keys: Sequence[str], args: Sequence[Arg]) -> Reply:
        try:
            return await client.call(b"EVALSHA", self.sha, len(keys), *keys, *args)
        except RespError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        await client.call(b"SCRIPT", b"LOAD", self.source)
        return await client.call(b"EVALSHA", self.sha, len(keys), *keys, *args)


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
        client: ClientName = "resp",
    ) -> None:
        if window_ms < 1 or slot_ttl_ms < 1:
            raise ValueError("window_ms and slot_ttl_ms must be at least 1")
        self._window = window_ms
        self._ttl = slot_ttl_ms
        self._prefix = prefix
        self._where, self._secrets = _redacted(url)
        self._timeout = timeout
        self._client = _wire(client, url, connect_timeout, timeout, max_connections)
        self._admit = _Script("rate_admit.v1.lua")
        self._settle = _Script("rate_settle.v1.lua")
        self._renew = _Script("rate_renew.v1.lua")

    async def _run(self, script: _Script, keys: Sequence[str], args: Sequence[Arg]) -> Reply:
        """Run ``script``, once more after a dropped connection (every script is idempotent
        per ticket); every failure becomes ``LimiterUnavailable``."""
        with self._connection():
            try:
                return await script.run(self._client, keys, args)
            except ConnectionError:
                return await script.run(self._client, keys, args)

    @contextmanager
    def _connection(self) -> Iterator[None]:
        """The one place Redis failures become ``LimiterUnavailable`` (naming no secret)."""
        try:
            yield
        except TimeoutError as exc:
            raise LimiterUnavailable(
                f"rate-limit Redis at {self._where}: no answer within {self._timeout} s"
            ) from exc
        except (RespError, OSError) as exc:
            detail = str(exc)
            for secret in self._secrets:
                detail = detail.replace(secret, "***")
            raise LimiterUnavailable(
                f"rate-limit Redis at {self._where} failed: {type(exc).__name__}: {detail}"
            ) from exc

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
        out: list[int] = await self._run(self._admit, keys, args)
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

    def _settle_call(
        self, ticket: Ticket, tokens: int, now_ms: int | None
    ) -> tuple[list[str], list[Arg]]:
        if tokens < 0:
            raise ValueError("tokens must be >= 0")
        keys: list[str] = []
        args: list[Arg] = [-1 if now_ms is None else now_ms, self._window, ticket.id, tokens]
        for limit in ticket.limits:
            if limit.kind != "requests":
                self._keys(limit, keys)
                args.append(limit.kind[0])
        return keys, args

    async def settle(self, ticket: Ticket, tokens: int, *, now_ms: int | None = None) -> None:
        keys, args = self._settle_call(ticket, tokens, now_ms)
        if keys:
            await self._run(self._settle, keys, args)

    def settle_nowait(self, ticket: Ticket, tokens: int) -> bool:
        """Sent on the open connection without awaiting the answer (a request's release need
        not wait for Redis). An error answer is logged and makes the next settle an awaited
        one, which loads the script again if Redis lost it."""
        keys, args = self._settle_call(ticket, tokens, None)
        if not keys:
            return True
        errors = self._client.take_ignored_errors()
        if errors:
            log.warning("a rate-limit release failed in Redis: %s", errors[-1])
            return False
        return self._client.send_nowait(b"EVALSHA", self._settle.sha, len(keys), *keys, *args)

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
        await self._run(self._renew, keys, args)

    async def ping(self) -> None:
        with self._connection():
            await self._client.call(b"PING")

    async def close(self) -> None:
        await self._client.close()
