"""How an upstream's event stream is relayed (every wire): one batch of chunks per read.

The wire's adapter opens the response; the relay reads it under the first-byte timeout, then
the idle timeout between reads, and hands the events of each read to the wire's ``translate``
(events → the batch, and the failure that ended it early). A batch ending with ``[DONE]`` ends
the relay; a stream that ends before the wire's ``finished`` said a batch completed the answer
is the supplier's failure. The response is released when the answer was read whole, and closed
otherwise (an error status, a failure, or the caller closing the iterator early): the upstream
sees the connection go.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp

from gridgate.errors import SupplierFailed, SupplierTimeout, UpstreamRejected
from gridgate.protocol.sse import SSEEvent, SSEParser
from gridgate.providers.base import Chunk
from gridgate.providers.failures import translate_errors

# the events of one read → (their chunks, the failure that ended them early, if one did)
Translate = Callable[[list[SSEEvent]], tuple[list[Chunk], SupplierFailed | None]]


async def relay(
    open_response: Callable[[], Awaitable[aiohttp.ClientResponse]],
    *,
    first_byte_timeout: float,
    idle_timeout: float,
    reject: Callable[[int, bytes], SupplierFailed | UpstreamRejected],
    translate: Translate,
    finished: Callable[[list[Chunk]], bool],
) -> AsyncIterator[list[Chunk]]:
    """The answer as batches of chunks, one per read. ``open_response`` sends the request (its
    own timeout and error translation included); it is called on the first ``anext``, so
    nothing is sent before. ``reject`` translates a non-200 status and its body."""
    response = await open_response()
    completed = False
    try:
        if response.status != 200:
            with translate_errors():
                async with asyncio.timeout(first_byte_timeout):
                    body = await response.read()
            raise reject(response.status, body)
        parser = SSEParser()
        pieces = response.content.iter_any().__aiter__()
        wait = first_byte_timeout
        answered = False
        while True:
            try:
                async with asyncio.timeout(wait):
                    piece = await anext(pieces)
            except StopAsyncIteration:
                break
            except TimeoutError as exc:
                raise SupplierTimeout("the supplier went silent mid-answer") from exc
            except (aiohttp.ClientError, OSError) as exc:
                raise SupplierFailed("the supplier connection failed mid-answer") from exc
            wait = idle_timeout
            batch, error = translate(parser.feed(piece))
            if batch:
                answered = answered or finished(batch)
                yield batch
                if batch[-1].done:
                    completed = True
                    return
            if error is not None:
                raise error
        batch, error = translate(parser.flush())
        if batch:
            answered = answered or finished(batch)
            yield batch
        if error is not None:
            raise error
        if not answered:
            raise SupplierFailed("the supplier's stream ended before the answer did")
        completed = True
    finally:
        if completed:
            response.release()
        else:
            response.close()  # stop the upstream: it sees the connection go
