"""Fault injection: directive parsing, standing faults, and each mode over real HTTP."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest

from gridgate.simulator import RunningSimulator
from gridgate.simulator.errors import SimulatorError
from gridgate.simulator.faults import Fault, FaultBoard, combine, parse_directives
from tests.openai_spec import OpenAISpec
from tests.simulator.conftest import StartSim
from tests.simulator.helpers import eventually, post, stats
from tests.simulator.sse import DONE, sse_chunks, sse_data


def ask(directive: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": "m",
        "messages": [
            {"role": "user", "content": "earlier turn [[sim:mode=status,status=500]]"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": f"Hello {directive} there"},
        ],
        **extra,
    }


# -- parsing --------------------------------------------------------------------------------


def test_parse_directives() -> None:
    assert parse_directives("no directive here") == []
    (fault,) = parse_directives("x [[sim:mode=status, status=429 ,retry_after=2.5]] y")
    assert fault == Fault(mode="status", status=429, retry_after=2.5)
    faults = parse_directives("[[sim:hang,seconds=1]] and [[sim:no_usage]] [[sim:slow,tps=5]]")
    assert [f.mode for f in faults] == ["hang", "no_usage", "slow"]
    assert faults[0].seconds == 1
    assert faults[2].tokens_per_second == 5
    plan = combine(faults)
    assert plan.failure == faults[0]
    assert plan.no_usage
    assert plan.tokens_per_second == 5


@pytest.mark.parametrize(
    "text",
    [
        "[[sim:mode=explode]]",
        "[[sim:]]",
        "[[sim:mode=status,status=200]]",
        "[[sim:mode=drop,after=-1]]",
        "[[sim:mode=status,colour=red]]",
        "[[sim:mode=slow,ttft_ms=soon]]",
    ],
)
def test_bad_directives(text: str) -> None:
    with pytest.raises(SimulatorError) as caught:
        parse_directives(text)
    assert caught.value.status == 400
    assert "simulator fault" in caught.value.message


def test_fault_board_counts_and_filters() -> None:
    board = FaultBoard()
    board.add(Fault(mode="status", count=2))
    board.add(Fault(mode="slow", ttft_ms=5, model="b"))
    assert [f.mode for f in board.take("a")] == ["status"]
    assert [f.mode for f in board.take("b")] == ["status", "slow"]
    assert [f.mode for f in board.take("b")] == ["slow"]
    assert board.take("a") == []
    assert board.snapshot()[0]["remaining"] is None
    board.clear()
    assert board.take("b") == []


# -- status ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind"),
    [(400, "invalid_request_error"), (500, "server_error"), (503, "server_error")],
)
async def test_status_directive(
    sim: RunningSimulator, http: aiohttp.ClientSession, spec: OpenAISpec, status: int, kind: str
) -> None:
    code, headers, raw = await post(http, sim, ask(f"[[sim:mode=status,status={status}]]"))
    assert code == status
    body = json.loads(raw)
    spec.error(body)
    assert body["error"]["type"] == kind
    assert "retry-after" not in {k.lower() for k in headers}
    assert (await stats(http, sim))["by_status"] == {str(status): 1}


async def test_rate_limit_has_retry_after(
    sim: RunningSimulator, http: aiohttp.ClientSession, spec: OpenAISpec
) -> None:
    code, headers, raw = await post(http, sim, ask("[[sim:mode=status,status=429]]"))
    assert code == 429
    assert headers["retry-after"] == "1"
    spec.error(json.loads(raw))
    code, headers, _ = await post(
        http, sim, ask("[[sim:mode=status,status=429,retry_after=2.5,message=slow down]]")
    )
    assert headers["retry-after"] == "2.5"


async def test_bad_directive_is_a_400(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    code, _, raw = await post(http, sim, ask("[[sim:mode=nope]]"))
    assert code == 400
    assert "[[sim:mode=nope]]" in json.loads(raw)["error"]["message"]


async def test_standing_faults(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    faults_url = f"{sim.root_url}/sim/faults"
    async with http.post(faults_url, json={"mode": "status", "status": 502, "count": 2}) as resp:
        assert resp.status == 201
    async with http.post(faults_url, json={"mode": "status", "status": 503, "model": "x"}) as resp:
        assert resp.status == 201
        listed = (await resp.json())["faults"]
    assert [(f["status"], f["remaining"]) for f in listed] == [(502, 2), (503, None)]
    hello = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert [(await post(http, sim, hello))[0] for _ in range(3)] == [502, 502, 200]
    assert (await post(http, sim, {**hello, "model": "x"}))[0] == 503
    async with http.delete(faults_url) as resp:
        assert (await resp.json()) == {"faults": []}
    assert (await post(http, sim, {**hello, "model": "x"}))[0] == 200
    for bad in ({"mode": "boom"}, {"mode": "status", "count": 0}, {"mode": "drop", "extra": 1}):
        async with http.post(faults_url, json=bad) as resp:
            assert resp.status == 400
    async with http.post(faults_url, data=b"nope") as resp:
        assert resp.status == 400
    async with http.get(faults_url) as resp:
        assert (await resp.json()) == {"faults": []}


# -- hang -----------------------------------------------------------------------------------


async def test_hang_until_client_gives_up(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    with pytest.raises(asyncio.TimeoutError):
        async with http.post(
            f"{sim.base_url}/chat/completions",
            json=ask("[[sim:hang]]"),
            timeout=aiohttp.ClientTimeout(total=0.3),
        ) as resp:
            await resp.read()

    async def gone() -> bool:
        return bool((await stats(http, sim))["client_disconnects"] == 1)

    await eventually(gone)


async def test_hang_for_seconds_then_answers(
    sim: RunningSimulator, http: aiohttp.ClientSession, spec: OpenAISpec
) -> None:
    started = time.monotonic()
    code, _, raw = await post(http, sim, ask("[[sim:mode=hang,seconds=0.2]]"))
    assert code == 200
    assert time.monotonic() - started >= 0.2
    spec.completion(json.loads(raw))


async def test_stream_stalls_after_chunks(
    sim: RunningSimulator, http: aiohttp.ClientSession, spec: OpenAISpec
) -> None:
    async with http.post(
        f"{sim.base_url}/chat/completions",
        json=ask("[[sim:mode=hang,after=2,seconds=0.3]]", stream=True, max_tokens=5),
    ) as resp:
        head = await resp.content.readline() + await resp.content.readline()
        head += await resp.content.readline() + await resp.content.readline()
        stalled_at = time.monotonic()
        rest = await resp.read()
        assert time.monotonic() - stalled_at >= 0.25
    chunks = sse_chunks(head + rest)
    assert len(chunks) == 7
    for chunk in chunks:
        spec.chunk(chunk)


async def test_shutdown_ends_a_hang(start_sim: StartSim) -> None:
    sim = await start_sim()
    async with aiohttp.ClientSession() as http:
        request = asyncio.ensure_future(post(http, sim, ask("[[sim:hang]]")))

        async def hanging() -> bool:
            return bool(sim.state.active)

        await eventually(hanging)
        started = time.monotonic()
        await sim.close()
        assert time.monotonic() - started < 1.5
        with pytest.raises(aiohttp.ClientError):
            await request
    assert sim.state.stats.client_disconnects == 0


# -- drop -----------------------------------------------------------------------------------


async def test_drop_plain_closes_without_answer(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await post(http, sim, ask("[[sim:drop]]"))
    assert (await stats(http, sim))["by_status"] == {"dropped": 1}


async def test_drop_stream_after_chunks(
    sim: RunningSimulator, http: aiohttp.ClientSession, spec: OpenAISpec
) -> None:
    received: list[bytes] = []

    async def read_all() -> None:
        url = f"{sim.base_url}/chat/completions"
        async with http.post(url, json=ask("[[sim:mode=drop,after=3]]", stream=True)) as resp:
            assert resp.status == 200
            async for line in resp.content:
                received.append(line)

    with pytest.raises(aiohttp.ClientPayloadError):
        await read_all()
    events = sse_data(b"".join(received))
    assert len(events) == 3
    assert DONE not in events
    for event in events:
        spec.chunk(json.loads(event))
    seen = await stats(http, sim)
    assert seen["streams_started"] == 1
    assert seen["streams_completed"] == 0
    assert seen["client_disconnects"] == 0


# -- malformed ------------------------------------------------------------------------------


async def test_malformed_plain(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    code, headers, raw = await post(http, sim, ask("[[sim:malformed]]"))
    assert code == 200
    assert headers["Content-Type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)


async def test_malformed_stream(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    _, _, raw = await post(http, sim, ask("[[sim:mode=malformed,after=2]]", stream=True))
    events = sse_data(raw)
    assert events[-1] == DONE
    json.loads(events[0])
    json.loads(events[1])
    with pytest.raises(json.JSONDecodeError):
        json.loads(events[2])
    for event in events[3:-1]:
        json.loads(event)


# -- slow, no_usage -------------------------------------------------------------------------


async def test_slow_directive(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    started = time.monotonic()
    await post(http, sim, ask("[[sim:mode=slow,ttft_ms=150,tokens_per_second=100]]", max_tokens=6))
    assert time.monotonic() - started >= 0.15 + 6 / 100 - 0.01


async def test_slow_standing_fault_on_stream(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    async with http.post(f"{sim.root_url}/sim/faults", json={"mode": "slow", "ttft_ms": 200}):
        pass
    started = time.monotonic()
    async with http.post(
        f"{sim.base_url}/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True},
    ) as resp:
        await resp.content.readline()
        assert time.monotonic() - started >= 0.2
        await resp.read()


async def test_no_usage(
    sim: RunningSimulator, http: aiohttp.ClientSession, spec: OpenAISpec
) -> None:
    _, _, raw = await post(http, sim, ask("[[sim:no_usage]]"))
    body = json.loads(raw)
    spec.completion(body)
    assert "usage" not in body
    _, _, raw = await post(
        http, sim, ask("[[sim:no_usage]]", stream=True, stream_options={"include_usage": True})
    )
    chunks = sse_chunks(raw)
    for chunk in chunks:
        spec.chunk(chunk)
        assert chunk["usage"] is None
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
