"""A streamed answer read to its end gives its upstream connection back to the pool: the next
request reuses it instead of opening a new one (a connect per stream costs the supplier and
gridgate alike). A stream abandoned midway closes its connection (the supplier sees it go)."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gridgate.errors import SupplierTimeout
from gridgate.protocol.openai_chat import decode_chat_request
from gridgate.providers.base import UpstreamCall
from gridgate.providers.openai import OpenAIAdapter
from gridgate.settings import UpstreamSettings
from gridgate.storage.records import OfferRecord, SupplierRecord

EVENTS = [
    {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}}]},
    {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}},
]


def _sse() -> list[bytes]:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    return [f"data: {json.dumps({**base, **e})}\n\n".encode() for e in EVENTS] + [
        b"data: [DONE]\n\n"
    ]


async def _upstream(peers: list[object], pause: asyncio.Event | None = None) -> TestServer:
    """``pause``: after the first event, wait for it (a supplier still generating)."""

    async def chat(request: web.Request) -> web.StreamResponse:
        peers.append(request.transport.get_extra_info("peername") if request.transport else None)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)  # chunked: the body's end is its own, last chunk
        for i, event in enumerate(_sse()):
            if i == 1 and pause is not None:
                await pause.wait()
            await response.write(event)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


def _call(base_url: str) -> UpstreamCall:
    request = decode_chat_request(
        b'{"model": "text-prime", "messages": [{"role": "user", "content": "hi"}], "stream": true}'
    )
    supplier = SupplierRecord(name="s", wire="openai", base_url=base_url)
    offer = OfferRecord(
        id="s/text-prime/m",
        supplier="s",
        instrument="text-prime",
        model="m",
        input_per_m=1,
        output_per_m=1,
        quality=40,
        context=8000,
        max_output=100,
    )
    return UpstreamCall(
        supplier=supplier,
        offer=offer,
        request=request,
        max_output_tokens=100,
        stream=True,
        prompt_estimate=5,
    )


async def test_streams_read_to_their_end_share_one_upstream_connection() -> None:
    peers: list[object] = []
    server = await _upstream(peers)
    try:
        async with aiohttp.ClientSession() as session:
            adapter = OpenAIAdapter(session, UpstreamSettings(), environ={})
            call = _call(str(server.make_url("/v1")))
            for _ in range(3):
                chunks = adapter.stream(call)
                async for batch in chunks:  # as the exchange reads it: up to the last batch
                    if batch[-1].done:
                        break
                await chunks.aclose()  # type: ignore[attr-defined]
    finally:
        await server.close()
    assert len(peers) == 3
    assert len(set(peers)) == 1, peers


async def test_a_stream_left_midway_closes_its_connection() -> None:
    peers: list[object] = []
    pause = asyncio.Event()
    server = await _upstream(peers, pause)
    try:
        async with aiohttp.ClientSession() as session:
            adapter = OpenAIAdapter(session, UpstreamSettings(), environ={})
            call = _call(str(server.make_url("/v1")))
            for _ in range(2):
                chunks = adapter.stream(call)
                await anext(aiter(chunks))
                await chunks.aclose()  # type: ignore[attr-defined]
    finally:
        pause.set()
        await server.close()
    assert len(peers) == 2
    assert len(set(peers)) == 2, peers


async def test_a_whole_answer_whose_body_stalls_after_its_headers_times_out() -> None:
    """``upstream.total_timeout_seconds`` bounds the whole answer, its body included."""
    stalled = asyncio.Event()

    async def chat(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = 1000
        await response.prepare(request)
        await response.write(b'{"id": "chatcmpl-1", ')
        await stalled.wait()  # the rest never comes (until the test ends)
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            settings = UpstreamSettings(total_timeout_seconds=0.2)
            adapter = OpenAIAdapter(session, settings, environ={})
            call = _call(str(server.make_url("/v1")))
            whole = UpstreamCall(
                supplier=call.supplier,
                offer=call.offer,
                request=call.request,
                max_output_tokens=100,
                stream=False,
                prompt_estimate=5,
            )
            with pytest.raises(SupplierTimeout):
                await adapter.complete(whole)
    finally:
        stalled.set()
        await server.close()
