"""``Idempotency-Key`` on POST /v1/chat/completions, /v1/messages and /v1/responses: a request
served once, its answer kept for its retries (``core/idempotency/``).

A handler that finds the header hands its work here (``served_once``): a ``Whole`` answer to
build, or a ``Streamed`` one to open and relay. The first request with the key (in any
process) claims it and serves; its work runs in a task of its own, detached from the client's
connection, so that a client who goes away (mid-stream, or before a whole answer) does not
cancel it: the answer is completed, charged once and kept. What is kept, and replayed with
``Idempotent-Replayed: true``:

- an answer that was served: a whole answer's status, body and headers (``_KEPT``: the
  content type, the supplier, the dropped tools; the request ids are the retry's own, as it is
  a request of its own, and its usage record is the first's); a stream's every SSE byte as
  relayed once its session opened, whatever its end (an error event after content is part of
  the answer, and was charged for what it delivered);
- nothing for a request that failed before an answer (402, 429, no capacity, a supplier
  failing before its first byte, a refused upstream request): its key is released, so a retry
  runs again. Refusals decided before the claim (a malformed body, an unknown model, a bad
  key) never claim.

A duplicate in this process while the first runs follows it: a stream gets the bytes so far,
then the live ones; a whole answer, the answer when it is ready. One running in another
process is waited for (``IdempotencyKeys.settled``: 30 s, then 409
``idempotency_key_in_use``). Without the header a handler never comes here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from gridgate.api.consumption.streaming import KEEPALIVE, SSE_HEADERS, Encoder
from gridgate.api.errors import is_anthropic_surface, request_id_headers
from gridgate.core.exchange.session import StreamSession
from gridgate.core.exchange.tab import Served
from gridgate.core.idempotency.flights import Answer, Flight
from gridgate.core.idempotency.keys import (
    Claim,
    IdempotencyKeyInUse,
    IdempotencyKeys,
    check_key,
    check_same,
    request_hash,
)
from gridgate.errors import GridgateError
from gridgate.storage.records import KeyRecord

log = logging.getLogger("gridgate.api")

IDEMPOTENCY_KEY: Final = "Idempotency-Key"
REPLAYED: Final = "Idempotent-Replayed"
# replayed as first answered; the request ids are the retry's own (it is another request)
_KEPT: Final = frozenset(
    ("content-type", "cache-control", "x-gridgate-supplier", "x-gridgate-dropped-tools")
)
_ROUNDS: Final = 5  # claims tried before a key released over and over is "in use"


@dataclass(frozen=True, slots=True)
class Whole:
    """A whole answer: ``serve`` builds it (the exchange's ``complete`` and the surface's
    shape)."""

    serve: Callable[[], Awaitable[web.Response]]


@dataclass(frozen=True, slots=True)
class Streamed:
    """A streamed answer, as ``streaming.relay`` takes it; ``opening`` is called by the request
    that serves it only."""

    opening: Callable[[], Coroutine[Any, Any, StreamSession]]
    headers: Callable[[Served | None], dict[str, str]]
    encoder: Callable[[StreamSession], Encoder] | None
    error_event: Callable[[GridgateError], bytes]
    keepalive_seconds: float
    finish: Callable[[], Awaitable[None]] | None = None


def _kept(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items() if name.lower() in _KEPT}


def _replayed(request: web.Request) -> dict[str, str]:
    anthropic = is_anthropic_surface(request.path)
    return {**request_id_headers(request, anthropic=anthropic), REPLAYED: "true"}


def replay(request: web.Request, answer: Answer) -> web.Response:
    """A kept answer, as it was first answered (with this request's ids)."""
    headers = {**answer.headers, **_replayed(request)}
    return web.Response(status=answer.status, body=answer.body, headers=headers)


async def served_once(
    request: web.Request,
    keys: IdempotencyKeys,
    caller: KeyRecord,
    given: str,
    body: bytes,
    work: Whole | Streamed,
) -> web.StreamResponse:
    """Serve ``work`` once for the key ``given`` (the header's value), or replay its answer."""
    key = check_key(given)
    account, endpoint = caller.account_id, request.path
    digest = request_hash(endpoint, body)
    stream = isinstance(work, Streamed)
    for _ in range(_ROUNDS):
        flight = keys.flights.get(account, key)
        if flight is not None:  # running here: follow it
            check_same(endpoint, flight.digest, endpoint, digest)
            followed = await _follow(request, flight, work)
            if followed is not None:
                return followed
            continue  # it kept no answer (its key is released): claim the key
        early = work.headers(None) if isinstance(work, Streamed) else {}
        flight = keys.flights.start(account, key, digest, stream=stream, early=early)
        claiming = asyncio.ensure_future(keys.claim(account, key, endpoint, digest, stream=stream))
        try:
            held = await asyncio.shield(claiming)  # a client leaving now leaves no claim behind
        except BaseException as exc:
            claiming.add_done_callback(lambda done: _give_back(keys, done))
            keys.flights.land(account, key, flight, None, exc)
            raise
        if isinstance(held, Claim):
            return await _lead(request, keys, held, flight, work)
        keys.flights.land(account, key, flight, None)  # not ours: its followers claim again
        answer = await keys.settled(held, endpoint, digest)
        if answer is not None:
            return replay(request, answer)
    raise IdempotencyKeyInUse("this Idempotency-Key is being claimed by other requests")


def _give_back(keys: IdempotencyKeys, claiming: asyncio.Future[Claim | Any]) -> None:
    """Release a claim whose request went away while it was being made."""
    if not claiming.cancelled() and claiming.exception() is None:
        claimed = claiming.result()
        if isinstance(claimed, Claim):
            keys.flights.keep(asyncio.ensure_future(keys.release(claimed)))


async def _follow(
    request: web.Request, flight: Flight, work: Whole | Streamed
) -> web.StreamResponse | None:
    """A duplicate of a flight running here: its answer (a stream's bytes so far, then the
    live ones); None when it ended without one."""
    if flight.stream:
        seconds = work.keepalive_seconds if isinstance(work, Streamed) else 0.0
        return await _write(request, flight, seconds, lead=False)
    while not flight.ended:
        await flight.changed()
    return replay(request, flight.answer) if flight.answer is not None else None


async def _lead(
    request: web.Request,
    keys: IdempotencyKeys,
    claim: Claim,
    flight: Flight,
    work: Whole | Streamed,
) -> web.StreamResponse:
    """Serve the claimed request in a task of its own, which the client leaving does not
    cancel."""
    if isinstance(work, Whole):
        task = asyncio.ensure_future(_serve_whole(keys, claim, flight, work))
        flight.task = task
        task.add_done_callback(_retrieved)  # its client may have gone: nobody awaits it then
        return await asyncio.shield(task)
    flight.task = asyncio.ensure_future(_serve_stream(keys, claim, flight, work))
    flight.task.add_done_callback(_retrieved)
    response = await _write(request, flight, work.keepalive_seconds, lead=True)
    assert response is not None  # the lead raises what its flight failed with
    return response


def _retrieved(task: asyncio.Future[Any]) -> None:
    """A detached task's failure has been answered (or its client had gone): not logged as
    never retrieved."""
    if not task.cancelled():
        task.exception()


async def _serve_whole(
    keys: IdempotencyKeys, claim: Claim, flight: Flight, work: Whole
) -> web.Response:
    try:
        response = await work.serve()
    except BaseException as exc:
        await keys.release(claim)
        keys.flights.land(claim.account_id, claim.key, flight, None, exc)
        raise
    body = response.body if isinstance(response.body, bytes) else b""
    answer = Answer(response.status, _kept(response.headers), body, stream=False)
    await keys.finish(claim, answer)
    keys.flights.land(claim.account_id, claim.key, flight, answer)
    return response


async def _serve_stream(
    keys: IdempotencyKeys, claim: Claim, flight: Flight, work: Streamed
) -> None:
    """Open the session and relay it into ``flight`` to its end, whoever is listening; keep
    the answer before its last piece goes out (a client that has seen the end finds it kept),
    or release the key when no session opened."""
    try:
        session = await work.opening()
    except BaseException as exc:
        await keys.release(claim)
        event = work.error_event(exc) if isinstance(exc, GridgateError) else b""
        keys.flights.land(claim.account_id, claim.key, flight, None, exc, event)
        if not isinstance(exc, Exception):
            raise
        return
    answer: Answer | None = None
    try:
        headers = {**SSE_HEADERS, **work.headers(session.served)}
        flight.open(headers)
        last = await _relay(session, flight, work)
        answer = Answer(200, _kept(headers), b"".join(flight.pieces) + last, stream=True)
        await keys.finish(claim, answer)
        flight.append(last)
    finally:
        await session.close()  # settled already, unless the relay failed or was cancelled
        keys.flights.land(claim.account_id, claim.key, flight, answer)


async def _relay(session: StreamSession, flight: Flight, work: Streamed) -> bytes:
    """Relay the session's pieces into ``flight``, all but the last, which is returned (the
    finish hook awaited before it)."""
    encode = work.encoder(session) if work.encoder is not None else None
    chunks = session.chunks()
    try:
        async for piece in chunks:
            out = piece
            if encode is not None:
                try:
                    out = encode(piece)
                except GridgateError as exc:  # an answer gridgate cannot re-encode: say so
                    log.exception("cannot encode a stream event")
                    return work.error_event(exc)
            if session.ended:
                if work.finish is not None:
                    await work.finish()
                return out
            flight.append(out)
    finally:
        await chunks.aclose()
    return b""


async def _write(
    request: web.Request, flight: Flight, keepalive_seconds: float, *, lead: bool
) -> web.StreamResponse | None:
    """Write a stream flight to this client: keep-alives while no session has opened, then
    every piece, to the end. A failure before any answer is raised by the lead (the error
    middleware's JSON with its real status), or the error event once a 200 has gone; a
    follower then gets None (it claims the key itself)."""
    extra = {} if lead else _replayed(request)
    response: web.StreamResponse | None = None
    sent = 0
    try:
        while True:
            if response is None and flight.headers is not None:
                response = web.StreamResponse(headers={**flight.headers, **extra})
                await response.prepare(request)
            if response is not None and sent < len(flight.pieces):
                pieces, sent = flight.pieces[sent:], len(flight.pieces)
                await response.write(b"".join(pieces))
            if flight.ended and sent == len(flight.pieces):
                if response is None and flight.failure is None:
                    return None
                if response is None:
                    if lead:
                        raise flight.failure  # type: ignore[misc]
                    return None
                await response.write_eof(flight.failure_event if flight.headers is None else b"")
                return response
            waiting = response is None or flight.headers is None
            timeout = keepalive_seconds if waiting and keepalive_seconds > 0 else None
            if not await flight.changed(timeout):
                if response is None:
                    response = web.StreamResponse(headers={**SSE_HEADERS, **flight.early, **extra})
                    await response.prepare(request)
                await response.write(KEEPALIVE)
    except ConnectionError:
        if response is None:
            raise
        return response
