"""The bare reference proxy: gridgate's web stack with none of its work.

aiohttp server + one shared aiohttp ClientSession per process, uvloop, N worker processes
sharing the port (SO_REUSEPORT), access log off. Each request's JSON body is decoded with
msgspec, its ``model`` swapped, re-encoded and forwarded; the answer is relayed whole (plain)
or chunk by chunk as received (``"stream": true``). No auth, no billing, no usage.

    python bench/bare_proxy.py --port 8081 --upstream http://127.0.0.1:8082 --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import signal
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import msgspec
from aiohttp import web

UPSTREAM_MODEL = "bench-model"
PLAIN_PATH = "/plain/v1/chat/completions"
STREAM_PATH = "/stream/v1/chat/completions"
SESSION = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM = web.AppKey("upstream", str)
_decoder = msgspec.json.Decoder(dict[str, Any])
_encoder = msgspec.json.Encoder()
_JSON = {"Content-Type": "application/json"}
_SSE = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}


async def chat(request: web.Request) -> web.StreamResponse:
    try:
        payload = _decoder.decode(await request.read())
    except msgspec.DecodeError as exc:
        return web.json_response({"error": {"message": str(exc)}}, status=400)
    payload["model"] = UPSTREAM_MODEL
    stream = payload.get("stream") is True
    url = request.app[UPSTREAM] + (STREAM_PATH if stream else PLAIN_PATH)
    session = request.app[SESSION]
    async with session.post(url, data=_encoder.encode(payload), headers=_JSON) as upstream:
        if not stream or upstream.status != 200:
            body = await upstream.read()
            return web.Response(
                body=body,
                status=upstream.status,
                headers={"Content-Type": upstream.headers.get("Content-Type", "application/json")},
            )
        response = web.StreamResponse(status=200, headers=_SSE)
        try:
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
        except ConnectionResetError:
            pass  # the caller left (a load run ending): nothing to relay to
        return response


def build_app(upstream: str, pool_size: int) -> web.Application:
    app = web.Application()
    app[UPSTREAM] = upstream.rstrip("/")

    async def session(app: web.Application) -> AsyncIterator[None]:
        # as gridgate's lifespan: one pool per process, sized, no per-host limit
        connector = aiohttp.TCPConnector(limit=pool_size, limit_per_host=0, ttl_dns_cache=300)
        app[SESSION] = aiohttp.ClientSession(connector=connector)
        yield
        await app[SESSION].close()

    app.cleanup_ctx.append(session)
    app.router.add_post("/v1/chat/completions", chat)
    return app


async def serve(host: str, port: int, upstream: str, pool_size: int) -> None:
    runner = web.AppRunner(
        build_app(upstream, pool_size), access_log=None, handler_cancellation=True
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_port=True, backlog=2048)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await site.start()
        await stop.wait()
    finally:
        await runner.cleanup()


def worker(host: str, port: int, upstream: str, pool_size: int) -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(serve(host, port, upstream, pool_size))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="http://host:port of the fake upstream")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pool-size", type=int, default=512)
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(
            target=worker,
            args=(args.host, args.port, args.upstream, args.pool_size),
            name=f"bare-proxy-{i}",
        )
        for i in range(args.workers)
    ]
    for process in processes:
        process.start()
    print(f"bare proxy serving on http://{args.host}:{args.port} with {args.workers} workers")

    def forward(signum: int, _frame: object) -> None:
        for process in processes:
            if process.pid is not None and process.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    for process in processes:
        process.join()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
