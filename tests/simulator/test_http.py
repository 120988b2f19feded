"""The simulator over real HTTP (aiohttp client): wire format, framing, auth, stats, timing."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import aiohttp
import pytest

from gridgate.simulator import RunningSimulator
from tests.openai_spec import OpenAISpec
from tests.simulator.conftest import StartSim
from tests.simulator.helpers import eventually, post, stats
from tests.simulator.sse import sse_chunks, sse_data

HELLO = [{"role": "user", "content": "Say hello."}]


# -- plain answers --------------------------------------------------------------------------


async def test_plain_completion_shape(
    sim: RunningSimulator, http: aiohttp.ClientSession, spec: OpenAISpec
) -> None:
    status, headers, raw = await post(http, sim, {"model": "any-model", "messages": HELLO})
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    body = json.loads(raw)
    spec.completion(body)
    assert body["id"].startswith("chatcmpl-")
    assert body["object"] == "chat.completion"
    assert body["model"] == "any-model"
    assert body["service_tier"] == "default"
    assert body["system_fingerprint"].startswith("fp_")
    (choice,) = body["choices"]
    assert choice["index"] == 0
    assert choice["finish_reason"] == "stop"
    assert choice["logprobs"] is None
    message = choice["message"]
    assert message["role"] == "assistant"
    assert message["refusal"] is None
    assert "tool_calls" not in message
    # 64 words by default, one token each.
    assert len(message["content"].split()) == 64
    usage = body["usage"]
    # ceil(len("Say hello.") / 4) + 4 per message
    assert usage["prompt_tokens"] == 3 + 4
    assert usage["completion_tokens"] == 64
    assert usage["total_tokens"] == 71
    assert usage["prompt_tokens_details"]["cached_tokens"] == 0
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 0


async def test_prompt_tokens_count_all_text(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    messages = [
        {"role": "system", "content": "é" * 10},  # 20 bytes
        {"role": "user", "content": [{"type": "text", "text": "abcd"}, {"type": "image_url"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "ab", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c", "content": "xy"},
    ]
    _, _, raw = await post(http, sim, {"model": "m", "messages": messages})
    # 20 + 4 + 2 + 2 + 2 = 30 bytes -> 8 tokens, + 4 x 4 messages
    assert json.loads(raw)["usage"]["prompt_tokens"] == 8 + 16


async def test_n_choices_differ_and_usage_sums(
    sim: RunningSimulator, http: aiohttp.ClientSession, spec: OpenAISpec
) -> None:
    _, _, raw = await post(http, sim, {"model": "m", "messages": HELLO, "n": 3, "max_tokens": 5})
    body = json.loads(raw)
    spec.completion(body)
    texts = [c["message"]["content"] for c in body["choices"]]
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    assert len(set(texts)) == 3
    assert body["usage"]["completion_tokens"] == 15


async def test_determinism_and_seed(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    async def text(**extra: Any) -> str:
        _, _, raw = await post(http, sim, {"model": "m", "messages": HELLO, **extra})
        content: str = json.loads(raw)["choices"][0]["message"]["content"]
        return content

    first = await text()
    assert await text() == first
    assert await text(seed=1) == await text(seed=1)
    assert await text(seed=1) != await text(seed=2)
    assert await text(model="other") != first
    # Fields that do not pick the text leave it alone; a cut is a prefix.
    assert await text(temperature=0.3, user="u") == first
    assert first.startswith(await text(max_tokens=7))


async def test_simulators_with_different_salts_differ(start_sim: StartSim) -> None:
    one = await start_sim(seed_salt="a")
    two = await start_sim(seed_salt="b")
    async with aiohttp.ClientSession() as http:
        _, _, a = await post(http, one, {"model": "m", "messages": HELLO})
        _, _, b = await post(http, two, {"model": "m", "messages": HELLO})
    assert json.loads(a)["choices"][0]["message"] != json.loads(b)["choices"][0]["message"]


async def test_max_tokens_and_stop(
    sim: RunningSimulator, http: aiohttp.ClientSession, spec: OpenAISpec
) -> None:
    _, _, raw = await post(http, sim, {"model": "m", "messages": HELLO, "max_completion_tokens": 9})
    body = json.loads(raw)
    spec.completion(body)
    assert body["choices"][0]["finish_reason"] == "length"
    assert "stop_reason" not in body["choices"][0]
    assert body["usage"]["completion_tokens"] == 9
    full = body["choices"][0]["message"]["content"]
    stop = " " + full.split(" ")[5]
    _, _, raw = await post(http, sim, {"model": "m", "messages": HELLO, "stop": [stop, "zzz"]})
    body = json.loads(raw)
    spec.completion(body)
    choice = body["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert choice["stop_reason"] == stop  # vLLM's field: which sequence ended the answer
    assert choice["message"]["content"] == full[: full.index(stop)]
    assert body["usage"]["completion_tokens"] == 6  # the stop word was generated
    request = {"model": "m", "messages": HELLO, "stop": ["zzz", stop], "stream": True}
    _, _, raw = await post(http, sim, request)
    chunks = sse_chunks(raw)
    for chunk in chunks:
        spec.chunk(chunk)
    finish = chunks[-1]["choices"][0]
    assert (finish["finish_reason"], finish["stop_reason"]) == ("stop", stop)
    assert all("stop_reason" not in c for chunk in chunks[:-1] for c in chunk["choices"])
    # a natural end names no sequence
    _, _, raw = await post(http, sim, {"model": "m", "messages": HELLO})
    assert "stop_reason" not in json.loads(raw)["choices"][0]


async def test_logprobs(
    sim: RunningSimulator, http: aiohttp.ClientSession, spec: OpenAISpec
) -> None:
    request = {
        "model": "m",
        "messages": HELLO,
        "max_tokens": 6,
        "logprobs": True,
        "top_logprobs": 3,
    }
    _, _, raw = await post(http, sim, request)
    body = json.loads(raw)
    spec.completion(body)
    choice = body["choices"][0]
    entries = choice["logprobs"]["content"]
    assert choice["logprobs"]["refusal"] is None
    assert "".join(e["token"] for e in entries) == choice["message"]["content"]
    for entry in entries:
        assert entry["logprob"] <= 0
        assert bytes(entry["bytes"]).decode() == entry["token"]
        tops = entry["top_logprobs"]
        assert len(tops) == 3
        assert tops[0]["token"] == entry["token"]
        assert [t["logprob"] for t in tops] == sorted((t["logprob"] for t in tops), reverse=True)
    # Asking for logprobs does not change the text.
    _, _, plain = await post(http, sim, {"model": "m", "messages": HELLO, "max_tokens": 6})
    assert json.loads(plain)["choices"][0]["message"]["content"] == choice["message"]["content"]


async def test_reasoning_effort_counts_against_max_tokens(
    sim: RunningSimulator, http: aiohttp.ClientSession, spec: OpenAISpec
) -> None:
    request = {"model": "m", "messages": HELLO, "reasoning_effort": "low", "max_tokens": 20}
    _, _, raw = await post(http, sim, request)
    body = json.loads(raw)
    spec.completion(body)
    message = body["choices"][0]["message"]
    assert len(message["reasoning_content"].split()) == 8
    assert len(message["content"].split()) == 12
    assert body["usage"]["completion_tokens"] == 20
    assert body["usage"]["completion_tokens_details"]["reasoning_tokens"] == 8
    # A budget smaller than the reasoning leaves an empty answer, cut for length.
    _, _, raw = await post(http, sim, {**request, "max_tokens": 5})
    body = json.loads(raw)
    assert body["choices"][0]["message"]["content"] == ""
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 5


# -- streams --------------------------------------------------------------------------------


async def test_stream_framing_without_usage(
    sim: RunningSimulator, http: aiohttp.ClientSession, spec: OpenAISpec
) -> None:
    status, headers, raw = await post(
        http, sim, {"model": "m", "messages": HELLO, "stream": True, "max_tokens": 4}
    )
    assert status == 200
    assert headers["Content-Type"].startswith("text/event-stream")
    chunks = sse_chunks(raw)
    for chunk in chunks:
        spec.chunk(chunk)
        assert "usage" not in chunk
        assert chunk["object"] == "chat.completion.chunk"
        assert chunk["id"] == chunks[0]["id"]
        assert chunk["created"] == chunks[0]["created"]
        assert chunk["model"] == "m"
        assert chunk["system_fingerprint"].startswith("fp_")
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    tokens = [c["choices"][0]["delta"]["content"] for c in chunks[1:-1]]
    assert len(tokens) == 4
    last = chunks[-1]["choices"][0]
    assert last["delta"] == {}
    assert last["finish_reason"] == "length"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    _, _, plain = await post(http, sim, {"model": "m", "messages": HELLO, "max_tokens": 4})
    assert "".join(tokens) == json.loads(plain)["choices"][0]["message"]["content"]


async def test_stream_with_include_usage(
    sim: RunningSimulator, http: aiohttp.ClientSession, spec: OpenAISpec
) -> None:
    request = {
        "model": "m",
        "messages": HELLO,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    _, _, raw = await post(http, sim, request)
    chunks = sse_chunks(raw)
    for chunk in chunks:
        spec.chunk(chunk)
    assert all(c["usage"] is None for c in chunks[:-1])
    final = chunks[-1]
    assert final["choices"] == []
    assert final["usage"]["completion_tokens"] == 64
    assert final["usage"]["total_tokens"] == final["usage"]["prompt_tokens"] + 64
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"


async def test_stream_n_choices_interleave(
    sim: RunningSimulator, http: aiohttp.ClientSession, spec: OpenAISpec
) -> None:
    request = {
        "model": "m",
        "messages": HELLO,
        "n": 2,
        "max_tokens": 3,
        "stream": True,
        "stream_options": {"include_usage": True},
        "logprobs": True,
        "top_logprobs": 2,
    }
    _, _, raw = await post(http, sim, request)
    chunks = sse_chunks(raw)
    for chunk in chunks:
        spec.chunk(chunk)
    indexes = [c["choices"][0]["index"] for c in chunks[:-1]]
    assert indexes[:4] == [0, 0, 1, 1]  # role + first token of each choice, then alternating
    texts = ["", ""]
    for chunk in chunks[:-1]:
        choice = chunk["choices"][0]
        content = choice["delta"].get("content")
        if content:
            texts[choice["index"]] += content
            (entry,) = choice["logprobs"]["content"]
            assert entry["token"] == content
    _, _, plain = await post(http, sim, {**request, "stream": False})
    assert texts == [c["message"]["content"] for c in json.loads(plain)["choices"]]
    assert chunks[-1]["usage"]["completion_tokens"] == 6


async def test_stream_reasoning_deltas(
    sim: RunningSimulator, http: aiohttp.ClientSession, spec: OpenAISpec
) -> None:
    request = {"model": "m", "messages": HELLO, "stream": True, "reasoning_effort": "minimal"}
    _, _, raw = await post(http, sim, {**request, "max_tokens": 6})
    chunks = sse_chunks(raw)
    for chunk in chunks:
        spec.chunk(chunk)
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert [d for d in deltas if "reasoning_content" in d].__len__() == 4
    assert [d for d in deltas if d.get("content")].__len__() == 2


# -- structured outputs and tools on the raw wire -----------------------------------------------


async def test_json_object_response(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    request = {"model": "m", "messages": HELLO, "response_format": {"type": "json_object"}}
    _, _, raw = await post(http, sim, request)
    content = json.loads(raw)["choices"][0]["message"]["content"]
    assert isinstance(json.loads(content), dict)


async def test_stream_parallel_tool_calls(
    sim: RunningSimulator, http: aiohttp.ClientSession, spec: OpenAISpec
) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": name,
                "parameters": {
                    "type": "object",
                    "properties": {"q": {"type": "string"}},
                    "required": ["q"],
                },
            },
        }
        for name in ("search", "lookup", "unused")
    ]
    messages = [{"role": "user", "content": "Call search and lookup please."}]
    request = {"model": "m", "messages": messages, "tools": tools, "stream": True}
    _, _, raw = await post(http, sim, request)
    chunks = sse_chunks(raw)
    for chunk in chunks:
        spec.chunk(chunk)
    first = chunks[0]["choices"][0]["delta"]
    assert first["role"] == "assistant"
    assert first["content"] is None
    assert first["tool_calls"][0]["function"] == {"name": "search", "arguments": ""}
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks[:-1]:
        for part in chunk["choices"][0]["delta"].get("tool_calls", []):
            call = calls.setdefault(part["index"], {"name": "", "arguments": ""})
            if "id" in part:
                call["id"] = part["id"]
                call["name"] = part["function"]["name"]
            call["arguments"] += part["function"]["arguments"]
    assert [calls[i]["name"] for i in sorted(calls)] == ["search", "lookup"]
    for call in calls.values():
        assert isinstance(json.loads(call["arguments"])["q"], str)
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    # Not parallel: only the first named tool.
    _, _, raw = await post(http, sim, {**request, "stream": False, "parallel_tool_calls": False})
    (call,) = json.loads(raw)["choices"][0]["message"]["tool_calls"]
    assert call["function"]["name"] == "search"


async def test_tool_choice_none_and_unknown_named_tool(
    sim: RunningSimulator, http: aiohttp.ClientSession, spec: OpenAISpec
) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    messages = [{"role": "user", "content": "use the tool f"}]
    _, _, raw = await post(
        http, sim, {"model": "m", "messages": messages, "tools": tools, "tool_choice": "none"}
    )
    assert json.loads(raw)["choices"][0]["finish_reason"] == "stop"
    status, _, raw = await post(
        http,
        sim,
        {
            "model": "m",
            "messages": messages,
            "tools": tools,
            "tool_choice": {"type": "function", "function": {"name": "g"}},
        },
    )
    assert status == 400
    spec.error(json.loads(raw))
    assert json.loads(raw)["error"]["param"] == "tool_choice"


# -- errors, auth, models, stats ------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b"[]", None),
        (b'{"messages": []}', "model"),
        (b'{"model": "m"}', "messages"),
        (b'{"model": "m", "messages": []}', "messages"),
        (b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 0}', "n"),
        (b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": 3}', "stop"),
    ],
)
async def test_bad_requests(
    sim: RunningSimulator,
    http: aiohttp.ClientSession,
    spec: OpenAISpec,
    body: bytes,
    param: str | None,
) -> None:
    async with http.post(
        f"{sim.base_url}/chat/completions", data=body, headers={"Content-Type": "application/json"}
    ) as resp:
        assert resp.status == 400
        error = await resp.json()
    spec.error(error)
    assert error["error"]["type"] == "invalid_request_error"
    assert error["error"]["param"] == param


async def test_auth_and_models(
    start_sim: StartSim, http: aiohttp.ClientSession, spec: OpenAISpec
) -> None:
    sim = await start_sim(api_key="sk-supplier-secret", models=("alpha", "beta"))
    good = {"Authorization": "Bearer sk-supplier-secret"}
    for headers in (None, {"Authorization": "Bearer wrong-key-123"}, {"Authorization": "Basic x"}):
        status, _, raw = await post(http, sim, {"model": "alpha", "messages": HELLO}, headers)
        assert status == 401
        spec.error(json.loads(raw))
        assert json.loads(raw)["error"]["code"] == "invalid_api_key"
        assert b"sk-supplier-secret" not in raw
    status, _, raw = await post(http, sim, {"model": "alpha", "messages": HELLO}, good)
    assert status == 200
    status, _, raw = await post(http, sim, {"model": "gamma", "messages": HELLO}, good)
    assert status == 404
    spec.error(json.loads(raw))
    assert json.loads(raw)["error"]["code"] == "model_not_found"
    async with http.get(f"{sim.base_url}/models", headers=good) as resp:
        listing = await resp.json()
    spec.check("ListModelsResponse", listing)
    assert [m["id"] for m in listing["data"]] == ["alpha", "beta"]
    async with http.get(f"{sim.base_url}/models") as resp:
        assert resp.status == 401


async def test_stats_record_last_request_and_credential(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    body = {"model": "m", "messages": HELLO, "max_completion_tokens": 3, "extra_field": [1]}
    headers = {"Authorization": "Bearer sk-upstream", "X-Trace": "t1"}
    await post(http, sim, body, headers)
    await post(http, sim, {"model": "m", "messages": HELLO, "stream": True}, headers)
    await post(http, sim, {"model": "m"}, headers)  # 400
    seen = await stats(http, sim)
    assert seen["requests_total"] == 3
    assert seen["by_status"] == {"200": 2, "400": 1}
    assert seen["streams_started"] == 1
    assert seen["streams_completed"] == 1
    assert seen["client_disconnects"] == 0
    assert seen["last_request_body"] == {"model": "m"}
    assert seen["authorization"] == {
        "present": True,
        "sha256": hashlib.sha256(b"Bearer sk-upstream").hexdigest(),
        "bearer_sha256": hashlib.sha256(b"sk-upstream").hexdigest(),
    }
    assert seen["last_request_headers"]["X-Trace"] == "t1"
    assert "Authorization" not in seen["last_request_headers"]
    assert "sk-upstream" not in json.dumps(seen)
    await post(http, sim, body)
    seen = await stats(http, sim)
    assert seen["last_request_body"] == body
    assert seen["authorization"]["present"] is False
    async with http.post(f"{sim.root_url}/sim/reset") as resp:
        assert resp.status == 200
    seen = await stats(http, sim)
    assert seen["requests_total"] == 0
    assert seen["by_status"] == {}
    assert seen["last_request_body"] is None


async def test_client_disconnect_mid_stream_is_counted(
    start_sim: StartSim, http: aiohttp.ClientSession
) -> None:
    sim = await start_sim(tokens_per_second=50, default_max_tokens=500)
    async with http.post(
        f"{sim.base_url}/chat/completions",
        json={"model": "m", "messages": HELLO, "stream": True},
    ) as resp:
        for _ in range(3):
            assert (await resp.content.readline()).startswith(b"data: ")
            await resp.content.readline()
        resp.close()

    async def counted() -> bool:
        seen = await stats(http, sim)
        return bool(seen["client_disconnects"] == 1)

    await eventually(counted)
    seen = await stats(http, sim)
    assert seen["streams_started"] == 1
    assert seen["streams_completed"] == 0


# -- timing ---------------------------------------------------------------------------------


async def test_stream_timing(start_sim: StartSim, http: aiohttp.ClientSession) -> None:
    sim = await start_sim(ttft_ms=150, tokens_per_second=100)
    started = time.monotonic()
    async with http.post(
        f"{sim.base_url}/chat/completions",
        json={"model": "m", "messages": HELLO, "stream": True, "max_tokens": 11},
    ) as resp:
        await resp.content.readline()
        first = time.monotonic() - started
        await resp.read()
        total = time.monotonic() - started
    assert first >= 0.14
    assert total >= 0.14 + 10 / 100
    assert total < 2.0


async def test_plain_timing_and_realtime_off(
    start_sim: StartSim, http: aiohttp.ClientSession
) -> None:
    sim = await start_sim(ttft_ms=100, tokens_per_second=100)
    started = time.monotonic()
    await post(http, sim, {"model": "m", "messages": HELLO, "max_tokens": 10})
    assert time.monotonic() - started >= 0.1 + 10 / 100 - 0.01
    fast = await start_sim(ttft_ms=10_000, tokens_per_second=1, realtime=False)
    started = time.monotonic()
    await post(http, fast, {"model": "m", "messages": HELLO, "stream": True})
    await post(http, fast, {"model": "m", "messages": HELLO})
    assert time.monotonic() - started < 1.0


def test_sse_helper_rejects_bad_framing() -> None:
    with pytest.raises(AssertionError):
        sse_data(b"data: {}\n")
    with pytest.raises(AssertionError):
        sse_chunks(b"data: {}\n\n")
