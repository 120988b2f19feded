"""The Redis rate limiter: the contract of ``storage/limiter/port.py`` across processes and hosts.

Each of ``admit``, ``settle`` and ``renew`` is one round trip running one Lua script
(``storage/limiter/lua/rate_*.v2.lua``, ``rate_renew.v1.lua``; EVALSHA, loaded again after a
``NOSCRIPT``), so each step is atomic whatever the number of gateway processes. Time is Redis's own
(``TIME``) unless the caller passes ``now_ms``, so every host agrees on it. The v2 scripts keep
v1's layout and invariants with fewer calls, so processes of either version can share a Redis.

A request's admission and settle differ from the last one of the same key only in the ticket,
the tokens and the time: the rules hand out one tuple of limits per key, account and
instrument, and for each tuple (held, and compared with ``is``) the key names and the rest of
both EVALSHA commands are built and encoded once (``resp.Prepared``; redis-py encodes the
whole command each time).

Layout, under ``prefix`` (``gg:v1:rl:``, the layout's version: v2 scripts keep v1's layout) +
the limit's name:

- ``requests``: a ZSET ticket id → admission ms;
- ``tokens``: a ZSET ticket id → admission ms, a HASH ``…:n`` ticket id → tokens counted, and a
  STRING ``…:sum`` holding their total; entries that left the window are removed, and their
  tokens subtracted, whenever the limit is touched;
- ``concurrent``: a ZSET ticket id → slot expiry ms.

Every key carries a TTL of its window (or slot TTL) plus a margin, so idle limits vanish.

Every script is idempotent per ticket id (an admission leaves out what its own ticket already
holds), so a call is retried once after a dropped connection; a timeout is not retried. Calls
share one pipelined connection (``storage/limiter/resp.py``) and never wait longer than ``timeout`` for
an answer; every failure is ``LimiterUnavailable``, translated in ``_unavailable`` alone.
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
from gridgate.storage.limiter.resp import Arg, Prepared, Reply, RespClient, RespError

log = logging.getLogger("gridgate.limits")

KEY_MARGIN_MS = 1000  # keys outlive their last entry by this much
PREPARED_MAX = 4096  # tuples of limits whose commands are kept encoded (all dropped beyond)
ClientName = Literal["resp", "redis-py"]


class Wire(Protocol):
    """What the limiter needs of a Redis client: ``RespClient`` (``resp.py``) or
    ``RedisPyClient`` (``redispy.py``). Errors: ``RespError`` for an error reply,
    ``ConnectionError`` for a lost connection, ``TimeoutError`` for no answer in time."""

    async def call(self, *args: Arg) -> Reply: ...

    async def call_prepared(self, command: Prepared, *middle: Arg) -> Reply: ...

    def send_nowait(self, *args: Arg) -> bool: ...

    def send_prepared(self, command: Prepared, *middle: Arg) -> bool: ...

    def take_ignored_errors(self) -> list[RespError]: ...

    async def sent(self) -> None:
        """Return once the commands sent without awaiting in this turn have been written."""

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

    def prepare(self, keys: Sequence[str], middle: int, tail: Sequence[Arg]) -> Prepared:
        """EVALSHA of ``keys``, then ``middle`` arguments given per call, then ``tail``."""
        return Prepared((b"EVALSHA", self.sha, len(keys), *keys), middle, tuple(tail))

    async def run(
        self,
        client: Wire,
        command: Prepared,
        middle: tuple[Arg, ...],
        *,
        with_it: Sequence[_Script] = (),
    ) -> Reply:
        """``with_it``: scripts loaded too when Redis has forgotten this one (a new or flushed
        Redis has forgotten them all): the releases a request sends without awaiting them must
        find theirs, or they are lost."""
        try:
            return await client.call_prepared(command, *middle)
        except RespError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        for script in (self, *with_it):
            await client.call(b"SCRIPT", b"LOAD", script.source)
        return await client.call_prepared(command, *middle)


class _Calls:
    """The admission and settle commands of one tuple of limits (``settle`` None when no
    limit needs settling), held with the tuple itself."""

    __slots__ = ("admit", "limits", "settle")

    def __init__(self, limits: Sequence[Limit], admit: Prepared, settle: Prepared | None) -> None:
        self.limits, self.admit, self.settle = limits, admit, settle


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
        self._admit = _Script("rate_admit.v2.lua")
        self._settle = _Script("rate_settle.v2.lua")
        self._renew = _Script("rate_renew.v1.lua")
        self._prepared: dict[int, _Calls] = {}  # id(tuple of limits) -> its commands

    async def _run(self, script: _Script, command: Prepared, middle: tuple[Arg, ...]) -> Reply:
        """Run ``script``, once more after a dropped connection (every script is idempotent
        per ticket); every failure becomes ``LimiterUnavailable``. Where Redis has forgotten
        the admission's script, it has forgotten the others too: all are loaded again."""
        with_it = (self._settle, self._renew) if script is self._admit else ()
        try:  # what ``_connection`` does, without a generator per call
            try:
                return await script.run(self._client, command, middle, with_it=with_it)
            except ConnectionError:
                return await script.run(self._client, command, middle, with_it=with_it)
        except (TimeoutError, RespError, OSError) as exc:
            raise self._unavailable(exc) from exc

    @contextmanager
    def _connection(self) -> Iterator[None]:
        """Redis failures become ``LimiterUnavailable`` (``_unavailable``), as in ``_run``."""
        try:
            yield
        except (TimeoutError, RespError, OSError) as exc:
            raise self._unavailable(exc) from exc

    def _unavailable(self, exc: Exception) -> LimiterUnavailable:
        """The one place a Redis failure becomes ``LimiterUnavailable`` (naming no secret)."""
        if isinstance(exc, TimeoutError):
            return LimiterUnavailable(
                f"rate-limit Redis at {self._where}: no answer within {self._timeout} s"
            )
        detail = str(exc)
        for secret in self._secrets:
            detail = detail.replace(secret, "***")
        return LimiterUnavailable(
            f"rate-limit Redis at {self._where} failed: {type(exc).__name__}: {detail}"
        )

    def _keys(self, limit: Limit, keys: list[str]) -> None:
        base = self._prefix + limit.name
        keys.append(base)
        if limit.kind == "tokens":
            keys.append(base + ":n")
            keys.append(base + ":sum")

    def _calls(self, limits: Sequence[Limit]) -> _Calls:
        """The commands of ``limits``: kept per tuple (a list could change under the cache)."""
        calls = self._prepared.get(id(limits))
        if calls is not None and calls.limits is limits:
            return calls
        calls = self._prepare(limits)
        if type(limits) is tuple:
            if len(self._prepared) >= PREPARED_MAX:
                self._prepared.clear()
            self._prepared[id(limits)] = calls  # the entry holds the tuple: its id stays its own
        return calls

    def _prepare(self, limits: Sequence[Limit]) -> _Calls:
        keys: list[str] = []
        tail: list[Arg] = [self._window, self._ttl, KEY_MARGIN_MS, SLOT_WAIT_CAP_MS]
        settle_keys: list[str] = []
        settle_tail: list[Arg] = [self._window]
        for limit in limits:
            self._keys(limit, keys)
            tail.append(limit.kind[0])  # 'r', 't' or 'c'
            tail.append(limit.limit)
            if limit.kind != "requests":
                self._keys(limit, settle_keys)
                settle_tail.append(limit.kind[0])
        # the middle of both: ticket, tokens, now_ms
        settle = self._settle.prepare(settle_keys, 3, settle_tail) if settle_keys else None
        return _Calls(limits, self._admit.prepare(keys, 3, tail), settle)

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
        command = self._calls(limits).admit
        middle = (ticket_id, tokens, -1 if now_ms is None else now_ms)
        out: list[int] = await self._run(self._admit, command, middle)
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
        command = self._calls(ticket.limits).settle
        if command is not None:
            middle = (ticket.id, tokens, -1 if now_ms is None else now_ms)
            await self._run(self._settle, command, middle)

    def settle_nowait(self, ticket: Ticket, tokens: int) -> bool:
        """Sent on the open connection without awaiting the answer (a request's release need
        not wait for Redis). An error answer is logged and makes the next settle an awaited
        one, which loads the script again if Redis lost it."""
        if tokens < 0:
            raise ValueError("tokens must be >= 0")
        command = self._calls(ticket.limits).settle
        if command is None:
            return True
        errors = self._client.take_ignored_errors()
        if errors:
            log.warning("a rate-limit release failed in Redis: %s", errors[-1])
            return False
        return self._client.send_prepared(command, ticket.id, tokens, -1)

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
        await self._run(self._renew, self._renew.prepare(keys, 0, args), ())

    async def ping(self) -> None:
        with self._connection():
            await self._client.call(b"PING")

    async def sent(self) -> None:
        await self._client.sent()

    async def close(self) -> None:
        await self._client.close()
