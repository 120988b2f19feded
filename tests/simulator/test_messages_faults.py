"""Fault injection on the Anthropic wire (and the mid-stream ``error`` fault on both wires)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import openai
import pytest

from gridgate.simulator import RunningSimulator
from tests.openai_spec import OpenAISpec
from tests.simulator.facts import MODEL
from tests.simulator.helpers import eventually, post, post_messages, stats
from tests.simulator.sse import assemble, sse_data, sse_events


def ask(directive: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": 1024,
        "messages": [
            {"role": "user", "content": "earlier turn [[sim:mode=status,status=500]]"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": f"Hello {directive} there"}]},
        ],
        **extra,
    }


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (500, "api_error"),
        (503, "api_error"),
        (529, "overloaded_error"),
    ],
)
async def test_status(
    sim: RunningSimulator, http: aiohttp.ClientSession, status: int, kind: str
) -> None:
    code, headers, raw = await post_messages(http, sim, ask(f"[[sim:mode=status,status={status}]]"))
    assert code == status
    body = json.loads(raw)
    assert body == {
        "type": "error",
        "error": {"type": kind, "message": body["error"]["message"]},
        "request_id": headers["request-id"],
    }
    assert body["error"]["message"]
    assert "retry-after" not in headers
    assert (await stats(http, sim))["by_status"] == {str(status): 1}


async def test_rate_limit_retry_after_message_and_type(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    code, headers, raw = await post_messages(http, sim, ask("[[sim:mode=status,status=429]]"))
    assert (code, headers["retry-after"]) == (429, "1")
    assert json.loads(raw)["error"]["type"] == "rate_limit_error"
    directive = (
        "[[sim:mode=status,status=400,retry_after=2.5,message=no credit,code=billing_error]]"
    )
    code, headers, raw = await post_messages(http, sim, ask(directive))
    assert (code, headers["retry-after"]) == (400, "2.5")
    assert json.loads(raw)["error"] == {"type": "billing_error", "message": "no credit"}


async def test_standing_faults_hit_the_messages_wire(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        f"{sim.root_url}/sim/faults", json={"mode": "status", "status": 529, "count": 2}
    ) as resp:
        assert resp.status == 201
    plain = ask("")
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    assert (await post_messages(http, sim, plain))[0] == 529
    assert (await post(http, sim, chat))[0] == 529  # one board for both wires
    assert (await post_messages(http, sim, plain))[0] == 200


async def test_hang_until_the_client_gives_up(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    with pytest.raises(asyncio.TimeoutError):
        async with http.post(
            f"{sim.base_url}/messages",
            json=ask("[[sim:hang]]"),
            timeout=aiohttp.ClientTimeout(total=0.3),
        ) as resp:
            await resp.read()

    async def gone() -> bool:
        return bool((await stats(http, sim))["client_disconnects"] == 1)

    await eventually(gone)


async def test_stream_stalls_after_events(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        f"{sim.base_url}/messages",
        json=ask("[[sim:mode=hang,after=3,seconds=0.3]]", stream=True, max_tokens=4),
    ) as resp:
        head = b""
        while head.count(b"\n\n") < 3:
            head += await resp.content.readline()
        stalled_at = time.monotonic()
        rest = await resp.read()
        assert time.monotonic() - stalled_at >= 0.25
    events = sse_events(head + rest)
    assert [name for name, _ in events[:3]] == ["message_start", "ping", "content_block_start"]
    assert assemble(events)["stop_reason"] == "max_tokens"


async def test_drop(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await post_messages(http, sim, ask("[[sim:drop]]"))
    received: list[bytes] = []

    async def read_all() -> None:
        url = f"{sim.base_url}/messages"
        async with http.post(url, json=ask("[[sim:mode=drop,after=3]]", stream=True)) as resp:
            assert resp.status == 200
            async for line in resp.content:
                received.append(line)

    with pytest.raises(aiohttp.ClientPayloadError):
        await read_all()
    events = sse_events(b"".join(received))
    assert [name for name, _ in events] == ["message_start", "ping", "content_block_start"]
    seen = await stats(http, sim)
    assert seen["by_status"] == {"dropped": 1, "200": 1}
    assert (seen["streams_started"], seen["streams_completed"]) == (1, 0)


async def test_malformed(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    code, headers, raw = await post_messages(http, sim, ask("[[sim:malformed]]"))
    assert code == 200
    assert headers["Content-Type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)
    _, _, raw = await post_messages(http, sim, ask("[[sim:mode=malformed,after=2]]", stream=True))
    events = raw.decode()[:-2].split("\n\n")
    assert events[2].startswith("event: content_block_delta\ndata: ")
    with pytest.raises(json.JSONDecodeError):
        json.loads(events[2].split("\n")[1][len("data: ") :])
    sse_events(("\n\n".join(events[:2] + events[3:]) + "\n\n").encode())  # the rest is intact


async def test_slow(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    started = time.monotonic()
    await post_messages(http, sim, ask("[[sim:mode=slow,ttft_ms=150,tps=100]]", max_tokens=6))
    assert time.monotonic() - started >= 0.15 + 6 / 100 - 0.01
    started = time.monotonic()
    async with http.post(
        f"{sim.base_url}/messages", json=ask("[[sim:mode=slow,ttft_ms=200]]", stream=True)
    ) as resp:
        await resp.content.readline()
        assert time.monotonic() - started >= 0.2
        await resp.read()


async def test_no_usage_reports_zeros(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    _, _, raw = await post_messages(http, sim, ask("[[sim:no_usage]]", max_tokens=5))
    body = json.loads(raw)
    assert body["usage"]["input_tokens"] == body["usage"]["output_tokens"] == 0
    assert len(body["content"][0]["text"].split()) == 5
    _, _, raw = await post_messages(http, sim, ask("[[sim:no_usage]]", max_tokens=5, stream=True))
    events = sse_events(raw)
    assert events[0][1]["message"]["usage"]["output_tokens"] == 0
    assert events[-2][1]["usage"] == {
        "input_tokens": 0,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 0,
    }


async def test_overrun_ignores_max_tokens(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    for stream in (False, True):
        body = ask("[[sim:mode=overrun,length=30]]", max_tokens=5, stream=stream)
        _, _, raw = await post_messages(http, sim, body)
        message = assemble(sse_events(raw)) if stream else json.loads(raw)
        assert message["usage"]["output_tokens"] == 30
        assert message["stop_reason"] == "end_turn"


async def test_error_mid_stream(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    status, headers, raw = await post_messages(
        http, sim, ask("[[sim:mode=error,after=4,status=529]]", stream=True)
    )
    assert status == 200
    events = sse_events(raw)
    assert [name for name, _ in events] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "error",
    ]
    assert events[-1][1] == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
        "request_id": headers["request-id"],
    }
    seen = await stats(http, sim)
    assert (seen["streams_started"], seen["streams_completed"]) == (1, 0)
    # not streamed: the same fault is an error answer
    status, _, raw = await post_messages(http, sim, ask("[[sim:mode=error,status=529]]"))
    assert status == 529
    assert json.loads(raw)["error"]["type"] == "overloaded_error"


async def test_error_mid_stream_on_the_openai_wire(
    sim: RunningSimulator, http: aiohttp.ClientSession, spec: OpenAISpec
) -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Hi [[sim:mode=error,after=3,status=503]]"}],
        "stream": True,
    }
    status, _, raw = await post(http, sim, body)
    assert status == 200
    events = sse_data(raw)
    assert len(events) == 4
    for event in events[:3]:
        spec.chunk(json.loads(event))
    error = json.loads(events[3])
    spec.error(error)
    assert error["error"]["type"] == "server_error"
    client = openai.AsyncOpenAI(base_url=sim.base_url, api_key="k", max_retries=0)
    stream = await client.chat.completions.create(
        model=MODEL, messages=body["messages"], stream=True
    )
    with pytest.raises(openai.APIError, match="overloaded"):
        async for _ in stream:
            pass
    await client.close()
