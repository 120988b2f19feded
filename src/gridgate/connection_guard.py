"""The connection guard: how long a client may take to send its request, and how many
connections one process holds, so that slow clients (slowloris) cannot exhaust its file
descriptors and starve everyone else.

aiohttp bounds neither, so the guard is the listening socket's protocol factory and makes each
connection a ``GuardedHandler``: aiohttp's own handler with one timer handle that follows the
connection through four phases.

- **headers**: from accept, or from the first byte of a request on a kept-alive connection, to the
  end of the request's headers. Past ``header_timeout_seconds`` the client gets 408 (when part
  of a request came; an idle connection is just closed) and the connection closes.
- **body**: the body is arriving. A pause of ``body_idle_timeout_seconds``, or
  ``body_timeout_seconds`` in all, makes the handler's read fail with ``RequestTimeout``: the
  error boundary answers 408 in the surface's envelope, and the connection closes after it.
- **busy**: the request is whole; its handler runs and its answer streams. Nothing is bounded
  here: a long stream or a slow upstream is not the client being slow.
- **idle**: between requests on a kept-alive connection, closed after
  ``keepalive_timeout_seconds`` of silence.

At ``max_connections`` a new connection closes the oldest one that has not sent a whole request
(idle or in its headers) and takes its place; when every connection is serving a request the new
one gets 503 with ``Retry-After`` and is closed. The cost on the request path is a few attribute
reads per packet: the timer is only moved when a deadline comes nearer (a body that did not come
with its headers, the first byte after an idle spell that outlived it).

It reads a few of aiohttp's handler internals (``_request_count``, ``_messages``, the reading
pause flags, the server's handler arguments), as of aiohttp 3.14; the slow-client tests
(``tests/e2e/test_slow_clients.py``) fail if they change.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.web_request import BaseRequest

from gridgate.api.refusals import EnvelopedRequestHandler, GatewayServer
from gridgate.errors import GridgateError, Overloaded, RequestTimeout
from gridgate.settings import Settings

log = logging.getLogger("gridgate.server")

HEADERS, BODY, BUSY, IDLE = 0, 1, 2, 3
MAX_AUTO_CONNECTIONS = 10_000
RESERVED_FDS = 128  # the database, Redis, log files, the listening socket…
REFUSAL_RETRY_SECONDS = 1
REPORT_EVERY_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    header_seconds: float
    body_idle_seconds: float
    body_seconds: float
    idle_seconds: float
    max_connections: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        server = settings.server
        return cls(
            header_seconds=server.header_timeout_seconds,
            body_idle_seconds=server.body_idle_timeout_seconds,
            body_seconds=server.body_timeout_seconds,
            idle_seconds=server.keepalive_timeout_seconds,
            max_connections=server.max_connections or automatic_cap(settings.upstream.pool_size),
        )


def automatic_cap(upstream_pool: int) -> int:
    """Below this process's file-descriptor limit: each served connection may hold an upstream
    one too (up to the pool's size), and a few more are the process's own."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    return max(64, min(MAX_AUTO_CONNECTIONS, soft - upstream_pool - RESERVED_FDS))


class BodyTimedOut(RequestTimeout, TimeoutError):
    """Set on a request's body: the handler reading it answers 408. It is a ``TimeoutError``
    too because that is what aiohttp's own read of a body nobody wanted (after the answer)
    expects, and it then closes the connection quietly."""


def raw_answer(status: int, reason: str, error: GridgateError, extra: str = "") -> bytes:
    """A whole HTTP answer written straight to a connection that has no request to answer (the
    error envelope of the OpenAI surface: the path, if any came, is not known)."""
    body = error.render()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n"
    )
    return head.encode() + body


class ConnectionGuard:
    """One per process: the protocol factory of the listening socket, the count of connections
    and, oldest first, those that have not sent a whole request (which may be evicted)."""

    def __init__(self, server: GatewayServer, limits: ConnectionLimits) -> None:
        self.server = server
        self.limits = limits
        self.loop = asyncio.get_running_loop()
        self.open = 0
        self.waiting: dict[GuardedHandler, None] = {}
        self.header_timeout = raw_answer(
            408,
            "Request Timeout",
            RequestTimeout(f"request headers not received within {limits.header_seconds:g} s"),
        )
        self.refusal = raw_answer(
            503,
            "Service Unavailable",
            Overloaded("the server is at its connection limit; retry shortly"),
            f"Retry-After: {REFUSAL_RETRY_SECONDS}\r\n",
        )
        self._evicted = 0
        self._refused = 0
        self._reported = 0.0

    def __call__(self) -> GuardedHandler:
        # the handler arguments the application gave its server (access log, debug…)
        kwargs: dict[str, Any] = self.server._kwargs
        return GuardedHandler(self, self.server, loop=self.loop, **kwargs)

    def admit(self) -> bool:
        """Room for one more connection: below the cap, or once the oldest connection that has
        not sent a whole request is closed for it."""
        if self.open < self.limits.max_connections:
            return True
        oldest = next(iter(self.waiting), None)
        if oldest is None:
            self._refused += 1
            self._report()
            return False
        del self.waiting[oldest]
        oldest.force_close()
        self._evicted += 1
        self._report()
        return True

    def _report(self) -> None:
        now = self.loop.time()
        if now - self._reported < REPORT_EVERY_SECONDS:
            return
        self._reported = now
        log.warning(
            "at the connection limit (%d): %d idle or slow connections closed for new ones, "
            "%d new connections refused since the last report",
            self.limits.max_connections,
            self._evicted,
            self._refused,
        )
        self._evicted = self._refused = 0


class GuardedHandler(EnvelopedRequestHandler):
    """aiohttp's connection handler (with the parser's refusals in the envelope,
    ``api/refusals.py``), with the deadlines of the guard's phases."""

    __slots__ = (
        "_body",
        "_body_ends",
        "_guard",
        "_phase",
        "_received",
        "_refused",
        "_since",
        "_timer",
    )

    def __init__(self, guard: ConnectionGuard, manager: GatewayServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = guard
        self._phase = HEADERS
        self._since = 0.0  # when the phase began (the body: when its last bytes came, too)
        self._received = False  # part of a request came in the headers phase
        self._body: StreamReader | None = None
        self._body_ends = 0.0  # when the body must be whole
        self._timer: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        guard = self._guard
        if not guard.admit():
            self._refused = True
            refused = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
            refused.write(guard.refusal)
            refused.close()
            return
        guard.open += 1
        super().connection_made(transport)
        now = self._loop.time()
        self._since = now
        guard.waiting[self] = None
        self._timer = self._loop.call_at(now + guard.limits.header_seconds, self._check)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._refused:
            return
        guard = self._guard
        guard.open -= 1
        guard.waiting.pop(self, None)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._body = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        count = self._request_count
        super().data_received(data)
        if self._request_count != count:  # one request's headers (or more) came whole
            self._parsed()
            return
        phase = self._phase
        if phase == BODY:
            body = self._body
            if body is None or body.is_eof():
                self._phase = BUSY
                self._body = None
            else:
                self._since = self._loop.time()
        elif phase == IDLE:  # the first bytes of the next request
            now = self._loop.time()
            self._phase = HEADERS
            self._since = now
            self._received = True
            self._arm(now + self._guard.limits.header_seconds)
        elif phase == HEADERS:
            self._received = True

    def _parsed(self) -> None:
        """The newest request's headers are in: its body, if still coming, is bounded next."""
        self._guard.waiting.pop(self, None)
        body = self._messages[-1][1] if self._messages else None
        if body is None or body.is_eof():
            self._phase = BUSY
            self._body = None
            return
        limits = self._guard.limits
        now = self._loop.time()
        self._phase = BODY
        self._body = body
        self._since = now
        self._body_ends = now + limits.body_seconds
        self._arm(now + min(limits.body_idle_seconds, limits.body_seconds))

    async def finish_response(
        self, request: BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        answered = await super().finish_response(request, resp, start_time)
        if self._phase == BUSY and not self._messages and self.transport is not None:
            now = self._loop.time()
            self._phase = IDLE
            self._since = now
            self._received = False
            self._guard.waiting[self] = None
            self._arm(now + self._guard.limits.idle_seconds)
        return answered

    def _arm(self, when: float) -> None:
        """Make the timer fire by ``when`` (a later deadline is found when it fires)."""
        timer = self._timer
        if timer is not None:
            if timer.when() <= when:
                return
            timer.cancel()
        self._timer = self._loop.call_at(when, self._check)

    def _check(self) -> None:
        self._timer = None
        phase = self._phase
        if phase == BUSY or self.transport is None:
            return
        limits = self._guard.limits
        if phase == HEADERS:
            deadline = self._since + limits.header_seconds
        elif phase == BODY:
            if self._reading_paused or getattr(self, "_buffer_paused", False):  # 3.14+
                # gridgate stopped reading (its handler has not taken what came yet): the wait
                # is not the client's, its clocks start again once reading resumes
                now = self._loop.time()
                self._since = now
                self._body_ends = max(self._body_ends, now + limits.body_idle_seconds)
            deadline = min(self._since + limits.body_idle_seconds, self._body_ends)
        else:
            deadline = self._since + limits.idle_seconds
        if self._loop.time() < deadline:
            self._timer = self._loop.call_at(deadline, self._check)
            return
        if phase == BODY:
            self._body_timed_out()
            return
        self._guard.waiting.pop(self, None)
        if phase == HEADERS and self._received and self.transport is not None:
            self.transport.write(self._guard.header_timeout)
        self.force_close()

    def _body_timed_out(self) -> None:
        """The handler reading the body answers 408; nothing more is read on this connection,
        which closes after that answer."""
        body, self._body = self._body, None
        self._phase = BUSY
        self.close()
        if body is not None:
            limits = self._guard.limits
            body.set_exception(
                BodyTimedOut(
                    "request body not received in time (a pause over "
                    f"{limits.body_idle_seconds:g} s, or over {limits.body_seconds:g} s in all)",
                    headers={"Connection": "close"},
                )
            )
