"""A lean, pipelined Redis connection for the hot path: one socket, commands written as they
come, replies matched to callers in order.

Why not redis-py here: on a rate-limited request its asyncio client cost ~140 µs of CPU per
command on the benchmark machine (argument encoding, the connection pool, per-call timeouts),
more than the rest of the gateway's work on the request; this costs a few µs. Only what the
limiter needs is spoken: RESP2 requests, and simple, error, integer, bulk and array replies.
``bench/redis_clients.py`` measures the two side by side (``[redis] client = "redis-py"``
runs the limiter on redis-py: ``redispy.py``).

``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` (TLS) and ``unix:///path?db=N``;
a password may also come as ``?password=``. A dropped connection fails the calls waiting on it
(``ConnectionError``) and the next call connects again.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

Arg = bytes | str | int
Reply = Any  # bytes | str | int | list[Reply] | None


class RespError(Exception):
    """An error reply (``-ERR …``, ``-NOSCRIPT …``)."""


def _bulk(arg: Arg) -> bytes:
    if isinstance(arg, int):
        data = b"%d" % arg
    elif isinstance(arg, str):
        data = arg.encode()
    else:
        data = arg
    return b"$%d\r\n%b\r\n" % (len(data), data)


def encode(args: tuple[Arg, ...]) -> bytes:
    return b"*%d\r\n%b" % (len(args), b"".join(map(_bulk, args)))


class Prepared:
    """A command whose arguments are the same every time but for ``middle`` of them, between
    ``head`` and ``tail``: both encoded once, so sending it encodes only the middle (the
    limiter's EVALSHA per set of limits: script, key names and limits never change, the ticket,
    tokens and time do). ``args`` gives the whole command, for a client that encodes itself."""

    __slots__ = ("after", "before", "encoded_head", "encoded_tail", "middle")

    def __init__(self, head: tuple[Arg, ...], middle: int, tail: tuple[Arg, ...]) -> None:
        self.before, self.after, self.middle = head, tail, middle
        count = b"*%d\r\n" % (len(head) + middle + len(tail))
        self.encoded_head = count + b"".join(map(_bulk, head))
        self.encoded_tail = b"".join(map(_bulk, tail))

    def encode(self, middle: tuple[Arg, ...]) -> bytes:
        if len(middle) != self.middle:
            raise ValueError(f"{self.middle} arguments expected, not {len(middle)}")
        return b"".join((self.encoded_head, *map(_bulk, middle), self.encoded_tail))

    def args(self, middle: tuple[Arg, ...]) -> tuple[Arg, ...]:
        if len(middle) != self.middle:
            raise ValueError(f"{self.middle} arguments expected, not {len(middle)}")
        return (*self.before, *middle, *self.after)


class _Incomplete(Exception):
    pass


def _parse(buf: bytes, pos: int) -> tuple[Reply, int]:
    """One reply from ``buf`` at ``pos``: (value, position after it); ``_Incomplete`` when the
    buffer ends first."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise _Incomplete
    kind = buf[pos]
    if kind == 0x3A:  # ':'
        return int(buf[pos + 1 : end]), end + 2
    if kind == 0x2A:  # '*'
        return _parse_array(buf, int(buf[pos + 1 : end]), end + 2)
    line = buf[pos + 1 : end]
    pos = end + 2
    if kind == 0x24:  # '$'
        size = int(line)
        if size < 0:
            return None, pos
        if len(buf) < pos + size + 2:
            raise _Incomplete
        return buf[pos : pos + size], pos + size + 2
    if kind == 0x2B:  # '+'
        return line.decode(), pos
    if kind == 0x2D:  # '-'
        return RespError(line.decode(errors="replace")), pos
    raise ValueError(f"not a RESP reply: {bytes((kind,))!r}")


def _parse_array(buf: bytes, count: int, pos: int) -> tuple[Reply, int]:
    """The ``count`` items from ``pos``; an integer (all of an admission's answer) without a
    call of ``_parse``."""
    if count < 0:
        return None, pos
    items: list[Reply] = []
    size = len(buf)
    for _ in range(count):
        if pos >= size:
            raise _Incomplete
        if buf[pos] == 0x3A:  # ':'
            end = buf.find(b"\r\n", pos)
            if end < 0:
                raise _Incomplete
            items.append(int(buf[pos + 1 : end]))
            pos = end + 2
        else:
            item, pos = _parse(buf, pos)
            items.append(item)
    return items, pos


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        # in order: the caller awaiting each reply (None: a reply nobody awaits)
        self.waiting: deque[asyncio.Future[Reply] | None] = deque()
        self.ignored_errors: list[RespError] = []  # error replies to commands not awaited
        self.buffer = b""
        self.lost: Exception | None = None
        self.outgoing: list[bytes] = []  # written once per turn of the loop, together
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        buf = self.buffer + data if self.buffer else data
        pos = 0
        try:
            while pos < len(buf):
                reply, pos = _parse(buf, pos)
                waiter = self.waiting.popleft()  # a caller that timed out still owns its reply
                if waiter is None:
                    if isinstance(reply, RespError):
                        self.ignored_errors.append(reply)
                elif not waiter.done():
                    if isinstance(reply, RespError):
                        waiter.set_exception(reply)
                    else:
                        waiter.set_result(reply)
        except _Incomplete:
            pass
        except (ValueError, IndexError) as exc:  # out of step with the server: start again
            self._fail(ConnectionError(f"bad reply from Redis: {exc}"))
            if self.transport is not None:
                self.transport.abort()
            return
        self.buffer = buf[pos:]

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionError(f"connection to Redis lost: {exc or 'closed'}"))
        if not self.closed.done():
            self.closed.set_result(None)

    def _fail(self, error: Exception) -> None:
        self.lost = error
        while self.waiting:
            waiter = self.waiting.popleft()
            if waiter is not None and not waiter.done():
                waiter.set_exception(error)

    @property
    def usable(self) -> bool:
        return self.lost is None and self.transport is not None and not self.transport.is_closing()

    def send(self, payload: bytes) -> asyncio.Future[Reply]:
        if not self.usable:
            raise ConnectionError("connection to Redis is closed")
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Reply] = loop.create_future()
        self._queue(payload, waiter)
        return waiter

    def _queue(self, payload: bytes, waiter: asyncio.Future[Reply] | None) -> None:
        self.waiting.append(waiter)
        if not self.outgoing:
            asyncio.get_running_loop().call_soon(self._flush)
        self.outgoing.append(payload)

    def _flush(self) -> None:
        """The commands of every caller in this turn of the loop, in one write (one syscall
        under load instead of one per command)."""
        payload, self.outgoing = b"".join(self.outgoing), []
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(payload)


def _time_out(waiter: asyncio.Future[Reply]) -> None:
    if not waiter.done():  # its reply, when it comes, is dropped (see ``data_received``)
        waiter.set_exception(TimeoutError("no answer from Redis in time"))


class RespClient:
    def __init__(self, url: str, *, connect_timeout: float = 1.0, timeout: float = 0.5) -> None:
        self._url = urlsplit(url)
        if self._url.scheme not in ("redis", "rediss", "unix"):
            raise ValueError("a Redis URL starts with redis://, rediss:// or unix://")
        self._connect_timeout = connect_timeout
        self._timeout = timeout
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None

    async def call(self, *args: Arg) -> Reply:
        """Send one command and await its reply (within ``timeout``): an error reply raises
        ``RespError``; a lost connection ``ConnectionError``; no reply in time ``TimeoutError``."""
        return await self._call(encode(args))

    async def call_prepared(self, command: Prepared, *middle: Arg) -> Reply:
        """``call`` of ``command`` with ``middle`` (only those are encoded)."""
        return await self._call(command.encode(middle))

    async def _call(self, payload: bytes) -> Reply:
        protocol = self._protocol
        if protocol is None or protocol.lost is not None:
            protocol = await self._connect()
        waiter = protocol.send(payload)
        # a plain timer, not asyncio.timeout (~3 µs of CPU a call on uvloop, against ~0.5)
        timer = asyncio.get_running_loop().call_later(self._timeout, _time_out, waiter)
        try:
            return await waiter
        finally:
            timer.cancel()

    def send_nowait(self, *args: Arg) -> bool:
        """Send one command whose reply nobody awaits (its error replies are kept for
        ``take_ignored_errors``); False when there is no open connection to send it on.
        Written with the other commands of this turn of the loop: ``sent`` waits for that."""
        return self._send_nowait(encode(args))

    def send_prepared(self, command: Prepared, *middle: Arg) -> bool:
        """``send_nowait`` of ``command`` with ``middle`` (only those are encoded)."""
        return self._send_nowait(command.encode(middle))

    def _send_nowait(self, payload: bytes) -> bool:
        protocol = self._protocol
        if protocol is None or not protocol.usable:
            return False
        protocol._queue(payload, None)
        return True

    async def sent(self) -> None:
        """The write of this turn's commands was scheduled (``call_soon``) when the first of
        them was queued: yielding once lets it run before the caller goes on."""
        protocol = self._protocol
        if protocol is not None and protocol.outgoing:
            await asyncio.sleep(0)

    def take_ignored_errors(self) -> list[RespError]:
        """The error replies to ``send_nowait`` commands since the last call."""
        protocol = self._protocol
        if protocol is None or not protocol.ignored_errors:
            return []
        errors, protocol.ignored_errors = protocol.ignored_errors, []
        return errors

    async def close(self) -> None:
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._connect_timeout):
                    await protocol.closed

    async def _connect(self) -> _Protocol:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._protocol is not None and self._protocol.lost is None:
                return self._protocol
            async with asyncio.timeout(self._connect_timeout):
                protocol = await self._open()
                query = parse_qs(self._url.query)
                password = self._url.password or next(iter(query.get("password", [])), "")
                if password:
                    user = self._url.username
                    auth = (
                        ("AUTH", unquote(user), unquote(password))
                        if user
                        else ("AUTH", unquote(password))
                    )
                    await protocol.send(encode(auth))
                db = (self._url.path or "/").strip("/") if self._url.scheme != "unix" else ""
                db = db or (query.get("db") or ["0"])[0]
                if db not in ("", "0"):
                    await protocol.send(encode(("SELECT", db)))
            self._protocol = protocol
            return protocol

    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        url = self._url
        if url.scheme == "unix":
            _, protocol = await loop.create_unix_connection(_Protocol, url.path)
        else:
            context = ssl.create_default_context() if url.scheme == "rediss" else None
            _, protocol = await loop.create_connection(
                _Protocol, url.hostname or "127.0.0.1", url.port or 6379, ssl=context
            )
        return protocol
