"""Slow clients (slowloris) against a real ``gridgate serve``: a request's headers and body are
read within their timeouts (408, then the connection closes), the connection cap closes the
oldest connections that sent no whole request for new ones and refuses new ones (503 with
Retry-After) only when every connection is serving, and /healthz, chat completions, a long
stream and a request waiting on a slow upstream are served throughout."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from tests.harness import (
    BackgroundLoop,
    GatewayProcess,
    Offer,
    simulators,
    start_gateway,
    stop_gateway,
    wait_until,
)

OFFERS = [Offer("sim-a", "text-prime", "sim/a", "0.10", "0.40", 40, 196_608, 131_072)]
HEADER_S, BODY_IDLE_S, BODY_S, KEEPALIVE_S = 1.0, 1.0, 2.5, 3.0
MARGIN_S = 2.0  # a loaded 2-core machine: the check runs within this of the deadline
LIMITS = f"""header_timeout_seconds = {HEADER_S}
body_idle_timeout_seconds = {BODY_IDLE_S}
body_timeout_seconds = {BODY_S}
keepalive_timeout_seconds = {KEEPALIVE_S}
"""
SLOW_HEADERS = 300
CAP = 200
QUICK = {
    "model": "text-prime",
    "max_tokens": 4,
    "messages": [{"role": "user", "content": "hi [[sim:mode=slow,tokens_per_second=100000]]"}],
}
# ~4 s of stream at 20 tokens/s: longer than every timeout of the request's reading
LONG_STREAM = {
    "model": "text-prime",
    "max_tokens": 80,
    "stream": True,
    "messages": [{"role": "user", "content": "go [[sim:mode=slow,tokens_per_second=20]]"}],
}
# the upstream's first token after 3 s: the caller waits longer than the body timeouts
SLOW_UPSTREAM = {
    "model": "text-prime",
    "max_tokens": 4,
    "messages": [{"role": "user", "content": "hi [[sim:mode=slow,ttft_ms=3000]]"}],
}


@dataclass
class Slow:
    """One slow connection: when it opened and closed, and what the server sent on it."""

    opened: float
    closed: float
    answer: bytes

    @property
    def lasted(self) -> float:
        return self.closed - self.opened

    def json(self) -> Any:
        return json.loads(self.answer.partition(b"\r\n\r\n")[2])


async def slow_client(
    port: int,
    head: bytes,
    *,
    trickle: bytes,
    until: float,
    past_headers: asyncio.Event | None = None,
) -> Slow:
    """Send ``head``, then ``trickle`` every 0.3 s (nothing if empty), reading whatever the
    server sends, until it closes the connection (or ``until``, to bound the test). With
    ``past_headers``, ``head`` asks for ``100 Continue`` and the event is set once it comes:
    the server has the request's headers and is reading its body."""
    opened = time.monotonic()  # before the server can have accepted it
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)
    answer = b""
    try:
        if past_headers is not None:
            answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert answer.startswith(b"HTTP/1.1 100"), answer
            answer = b""
            past_headers.set()
        while time.monotonic() < until:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), 0.3)
            except TimeoutError:
                if trickle and not writer.is_closing():
                    writer.write(trickle)
                continue
            if not chunk:
                break
            answer += chunk
    except ConnectionError:
        pass
    closed = time.monotonic()
    writer.close()
    return Slow(opened, closed, answer)


def body_head(path: str, auth: str) -> bytes:
    """A request's headers (asking for ``100 Continue``) and the start of a body that would
    take 100,000 bytes."""
    return (
        f"POST {path} HTTP/1.1\r\nHost: gw\r\n{auth}\r\nContent-Type: application/json\r\n"
        "Content-Length: 100000\r\nExpect: 100-continue\r\n\r\n"
    ).encode()


async def past_headers(
    port: int, heads: list[bytes], *, trickle: bytes, until: float
) -> list[asyncio.Task[Slow]]:
    """Slow-body connections, once the server is reading the body of every one."""
    events = [asyncio.Event() for _ in heads]
    tasks = [
        asyncio.create_task(
            slow_client(port, head, trickle=trickle, until=until, past_headers=event)
        )
        for head, event in zip(heads, events, strict=True)
    ]
    await asyncio.wait_for(asyncio.gather(*(event.wait() for event in events)), 10)
    return tasks


@pytest.fixture
def gateway(bg: BackgroundLoop, tmp_path: Path) -> Iterator[GatewayProcess]:
    with simulators(bg, ["sim-a"]) as sims:
        gw = start_gateway(
            tmp_path,
            bg,
            {"sim-a": sims["sim-a"].base_url},
            OFFERS,
            server=LIMITS + f"max_connections = {CAP}\n",
        )
        try:
            yield gw
        finally:
            assert stop_gateway(gw) == 0, gw.log_path.read_text()


def port_of(gw: GatewayProcess) -> int:
    return int(gw.base_url.removesuffix("/v1").rsplit(":", 1)[1])


def test_slowloris_is_cut_and_everyone_else_is_served(
    bg: BackgroundLoop, gateway: GatewayProcess
) -> None:
    gw = gateway
    port = port_of(gw)
    _, secret = gw.new_account("5")
    bearer, x_api_key = f"Authorization: Bearer {secret}", f"x-api-key: {secret}"

    async def attack() -> tuple[list[Slow], list[Slow], list[Slow], list[Slow]]:
        until = time.monotonic() + 8
        # slow bodies first: past their headers, they are never closed to make room
        chat_head = body_head("/v1/chat/completions", bearer)
        messages_head = body_head("/v1/messages", x_api_key)
        trickled = await past_headers(
            port, [chat_head, messages_head] * 10, trickle=b" ", until=until
        )
        stalled = await past_headers(port, [chat_head] * 10, trickle=b"", until=until)
        # more slow-header connections than the cap: a header line every 0.3 s, never the end
        headers = await asyncio.gather(
            *(
                slow_client(
                    port,
                    b"GET /healthz HTTP/1.1\r\nHost: gw\r\n",
                    trickle=b"X-a: b\r\n",
                    until=until,
                )
                for _ in range(SLOW_HEADERS)
            )
        )
        bodies = await asyncio.gather(*trickled)
        return headers, bodies[::2], bodies[1::2], await asyncio.gather(*stalled)

    async def long_stream() -> tuple[int, bool, float]:
        started = time.monotonic()
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{gw.base_url}/chat/completions",
                json=LONG_STREAM,
                headers={"Authorization": f"Bearer {secret}"},
            ) as response,
        ):
            lines = [line async for line in response.content]
            done = lines[-2:] == [b"data: [DONE]\n", b"\n"]
            return response.status, done, time.monotonic() - started

    async def slow_upstream() -> tuple[int, float]:
        started = time.monotonic()
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{gw.base_url}/chat/completions",
                json=SLOW_UPSTREAM,
                headers={"Authorization": f"Bearer {secret}"},
            ) as response,
        ):
            await response.read()
            return response.status, time.monotonic() - started

    attacked = asyncio.run_coroutine_threadsafe(attack(), bg.loop)
    streamed = asyncio.run_coroutine_threadsafe(long_stream(), bg.loop)
    waited = asyncio.run_coroutine_threadsafe(slow_upstream(), bg.loop)
    probes = 0
    deadline = time.monotonic() + 30
    while not attacked.done():  # each probe on a new connection, as a new client comes
        assert time.monotonic() < deadline
        health = httpx.get(f"{gw.base_url.removesuffix('/v1')}/healthz", timeout=5)
        assert health.status_code == 200, health.text
        chat = httpx.post(
            f"{gw.base_url}/chat/completions",
            json=QUICK,
            headers={"Authorization": f"Bearer {secret}"},
            timeout=5,
        )
        assert chat.status_code == 200, chat.text
        probes += 1
    headers, trickled_chat, trickled_messages, stalled = attacked.result(30)
    assert probes >= 5

    # every slow-header connection was closed within the header timeout: answered 408 when
    # its turn came, or closed earlier to make room for newer ones (the cap)
    assert all(s.lasted < HEADER_S + MARGIN_S for s in headers), max(s.lasted for s in headers)
    timed_out = [s for s in headers if s.answer]
    evicted = [s for s in headers if not s.answer]
    assert len(timed_out) >= 100 and len(evicted) >= 50, (len(timed_out), len(evicted))
    for s in timed_out:
        assert s.answer.startswith(b"HTTP/1.1 408 "), s.answer
        assert s.json()["error"]["code"] == "request_timeout"
        assert s.lasted >= HEADER_S - 0.1
    # a body that trickles is cut at the total bound, one that stalls at the idle bound, with
    # a 408 in the surface's envelope
    for s in trickled_chat + trickled_messages:
        assert BODY_S - 0.1 <= s.lasted < BODY_S + MARGIN_S, s.lasted
        assert s.answer.startswith(b"HTTP/1.1 408 "), s.answer
    for s in stalled:
        assert BODY_IDLE_S - 0.1 <= s.lasted < BODY_IDLE_S + MARGIN_S, s.lasted
        assert s.answer.startswith(b"HTTP/1.1 408 "), s.answer
    assert {s.json()["error"]["code"] for s in trickled_chat + stalled} == {"request_timeout"}
    assert {s.json()["error"]["type"] for s in trickled_messages} == {"invalid_request_error"}
    assert {s.json()["type"] for s in trickled_messages} == {"error"}

    # an answer is never cut by the bounds on reading requests
    status, done, seconds = streamed.result(30)
    assert status == 200 and done and seconds > BODY_S
    status, seconds = waited.result(30)
    assert status == 200 and seconds > BODY_S


def test_at_the_cap_with_every_connection_serving_new_ones_get_503(
    bg: BackgroundLoop, tmp_path: Path
) -> None:
    with simulators(bg, ["sim-a"]) as sims:
        gw = start_gateway(
            tmp_path,
            bg,
            {"sim-a": sims["sim-a"].base_url},
            OFFERS,
            server=LIMITS + "max_connections = 8\n",
        )
        try:
            port = port_of(gw)
            _, secret = gw.new_account("5")
            head = body_head("/v1/chat/completions", f"Authorization: Bearer {secret}")

            async def fill_then_knock() -> tuple[list[Slow], Slow]:
                until = time.monotonic() + 8
                # 8 connections, every one past its headers: none may be closed to make room
                bodies = await past_headers(port, [head] * 8, trickle=b" ", until=until)
                knock = await slow_client(port, b"", trickle=b"", until=until)
                return await asyncio.gather(*bodies), knock

            bodies, knock = bg.run(fill_then_knock(), timeout=30)
            head_part, _, body = knock.answer.partition(b"\r\n\r\n")
            assert b"\r\nRetry-After: 1\r\n" in head_part, (knock, bodies)
            assert json.loads(body)["error"]["code"] == "server_busy"
            assert knock.lasted < 1.0  # answered and closed at once
            for s in bodies:  # these were cut at the total bound on a body, not by the cap
                assert s.answer.startswith(b"HTTP/1.1 408 "), s.answer
            # room again: new connections are served
            wait_until(
                lambda: (
                    httpx.get(f"{gw.base_url.removesuffix('/v1')}/healthz", timeout=5).status_code
                    == 200
                ),
                timeout=10,
            )
        finally:
            assert stop_gateway(gw) == 0, gw.log_path.read_text()


def test_kept_alive_connections_idle_then_slow(bg: BackgroundLoop, gateway: GatewayProcess) -> None:
    """Between requests a connection may idle for the keep-alive timeout (then it is closed
    without a word); the next request's headers are bounded from its first byte."""
    port = port_of(gateway)
    request = b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n"

    async def idle() -> Slow:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        await reader.readuntil(b'"ok"}')
        served = time.monotonic()
        rest = await asyncio.wait_for(reader.read(), 10)  # until the server closes it
        writer.close()
        return Slow(served, time.monotonic(), rest)

    async def slow_second() -> Slow:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        await reader.readuntil(b'"ok"}')
        started = time.monotonic()
        writer.write(b"GET /healthz HTTP/1.1\r\n")  # and nothing more
        rest = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        return Slow(started, time.monotonic(), rest)

    async def both() -> list[Slow]:
        return list(await asyncio.gather(idle(), slow_second()))

    idled, slow = bg.run(both())
    assert idled.answer == b""
    assert KEEPALIVE_S - 0.1 <= idled.lasted < KEEPALIVE_S + MARGIN_S, idled.lasted
    assert slow.answer.startswith(b"HTTP/1.1 408 "), slow.answer
    assert HEADER_S - 0.1 <= slow.lasted < HEADER_S + MARGIN_S, slow.lasted


def test_a_large_body_sent_briskly_is_read_whole(gateway: GatewayProcess) -> None:
    """Many packets of body, read as they come: no timeout of the body's reading trips."""
    _, secret = gateway.new_account("5")
    text = "hi " * 2_000_000  # 6 MB
    response = httpx.post(
        f"{gateway.base_url}/messages/count_tokens",
        json={"model": "text-prime", "messages": [{"role": "user", "content": text}]},
        headers={"x-api-key": secret},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.json()["input_tokens"] > 100_000
