"""The ``openai-responses`` adapter: its pure mappings on payloads in the shapes OpenAI's
Responses API sends (each checked against the spec's ``Response`` / ``ResponseStreamEvent``
schemas and the openai SDK's types), the requests it sends (checked against the spec's
``CreateResponse`` and the SDK's ``ResponseCreateParams``), reasoning items going back
losslessly, and the adapter over real HTTP against the simulator's Responses wire."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import msgspec
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from openai.types.responses.response_create_params import (
    ResponseCreateParamsNonStreaming,
    ResponseCreateParamsStreaming,
)
from pydantic import TypeAdapter

from gridgate.errors import SupplierFailed, Untranslatable, UpstreamRejected
from gridgate.protocol.openai_chat import decode_chat_request
from gridgate.protocol.sse import SSEEvent
from gridgate.providers import anthropic
from gridgate.providers.base import Chunk, UpstreamCall
from gridgate.providers.openai_responses import (
    OpenAIResponsesAdapter,
    StreamTranslator,
    dropped_fields,
    map_request,
    map_response,
    open_item,
)
from gridgate.providers.openai_responses.reasoning import seal_item
from gridgate.settings import UpstreamSettings
from gridgate.simulator import RunningSimulator, SimulatorOptions, start_simulator
from gridgate.storage.records import OfferRecord, SupplierRecord
from tests.openai_spec import OpenAISpec, load_spec

SUPPLIER = SupplierRecord(
    name="responses", wire="openai-responses", base_url="http://127.0.0.1:1/v1", api_key_env=None
)
OFFER = OfferRecord(
    id="responses/text-x/gpt-5",
    supplier="responses",
    instrument="text-x",
    model="gpt-5",
    input_per_m=1_000_000_000,
    output_per_m=4_000_000_000,
    quality=50,
    context=400_000,
    max_output=128_000,
)
EVENT: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
PLAIN_PARAMS: TypeAdapter[Any] = TypeAdapter(ResponseCreateParamsNonStreaming)
STREAM_PARAMS: TypeAdapter[Any] = TypeAdapter(ResponseCreateParamsStreaming)
ENCRYPTED = "gAAAAABoZ-encrypted-by-openai-0123456789abcdef=="
REASONING_ITEM = {
    "id": "rs_68a1c2f3e4d5",
    "type": "reasoning",
    "summary": [
        {"type": "summary_text", "text": "**Checking the weather**"},
        {"type": "summary_text", "text": "I should call get_weather."},
    ],
    "encrypted_content": ENCRYPTED,
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture(scope="module")
def spec() -> OpenAISpec:
    return load_spec()


def call_for(body: dict[str, Any], *, stream: bool = False, held: int = 1000) -> UpstreamCall:
    return UpstreamCall(
        supplier=SUPPLIER,
        offer=OFFER,
        request=decode_chat_request(json.dumps({"model": "text-x", **body}).encode()),
        max_output_tokens=held,
        stream=stream,
        prompt_estimate=42,
    )


def sent(spec: OpenAISpec, call: UpstreamCall) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(map_request(call))
    # the spec's ``InputItem`` is a oneOf under which a message with a list of parts is both an
    # ``EasyInputMessage`` and an ``InputMessage``: messages are checked as the former
    spec.check("CreateResponse", {**body, "input": []})
    for item in body["input"]:
        spec.check("EasyInputMessage" if item["type"] == "message" else "InputItem", item)
    (STREAM_PARAMS if call.stream else PLAIN_PARAMS).validate_python(body)
    return body


def response(**fields: Any) -> dict[str, Any]:
    """A ``Response`` as OpenAI answers it (``store: false``)."""
    return {
        "id": "resp_68a1c2f3",
        "object": "response",
        "created_at": 1_755_000_000,
        "status": "completed",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": 1000,
        "model": "gpt-5-2025-08-07",
        "output": [],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": "medium", "summary": "auto"},
        "service_tier": "default",
        "store": False,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": {
            "input_tokens": 120,
            "input_tokens_details": {"cached_tokens": 64, "cache_write_tokens": 0},
            "output_tokens": 90,
            "output_tokens_details": {"reasoning_tokens": 50},
            "total_tokens": 210,
        },
        "metadata": {},
        **fields,
    }


def message(text: str) -> dict[str, Any]:
    return {
        "id": "msg_68a1c2f4",
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }


def function_call(arguments: str = '{"city":"Lisbon"}') -> dict[str, Any]:
    return {
        "id": "fc_68a1c2f5",
        "type": "function_call",
        "status": "completed",
        "call_id": "call_Lx8dQ2",
        "name": "get_weather",
        "arguments": arguments,
    }


def mapped(spec: OpenAISpec, body: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    spec.check("Response", body)
    Response.model_validate(body)
    completion = map_response(json.dumps(body).encode(), prompt_estimate=42)
    document = json.loads(completion.body)
    spec.completion(document)
    return document, completion


# -- requests ---------------------------------------------------------------------------------------
def test_a_full_request(spec: OpenAISpec) -> None:
    image = {"type": "image_url", "image_url": {"url": "https://x.test/a.png", "detail": "low"}}
    pdf = {
        "type": "file",
        "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"},
    }
    sealed = {"type": "thinking", "thinking": "ignored", "signature": seal_item(REASONING_ITEM)}
    foreign = {"type": "thinking", "thinking": "Anthropic's", "signature": "EqQBCkYIBxgCKkD"}
    body = {
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
            {"role": "user", "content": [{"type": "text", "text": "Weather?"}, image, pdf]},
            {
                "role": "assistant",
                "content": "Checking.",
                "reasoning_content": "ignored",
                "thinking_blocks": [foreign, sealed],
                "tool_calls": [
                    {
                        "id": "call_Lx8dQ2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Lisbon"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_Lx8dQ2", "content": "timeout", "is_error": True},
            {"role": "assistant", "content": "", "reasoning_content": "bare reasoning"},
        ],
        "tools": [WEATHER],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": False,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": True},
        },
        "verbosity": "low",
        "reasoning_effort": "high",
        "max_completion_tokens": 5000,
        "temperature": 0.5,
        "top_p": 0.9,
        "metadata": {"team": "a"},
        "prompt_cache_key": "k1",
        "safety_identifier": "user-1",
        "seed": 7,
        "frequency_penalty": 0.5,
        "store": True,
        "provider": {"sort": "price"},
    }
    got = sent(spec, call_for(body, held=5000))
    zero = sent(spec, call_for(body, held=5000))
    assert got == zero
    assert got == {
        "model": "gpt-5",
        "input": [
            {
                "type": "message",
                "role": "system",
                "content": [{"type": "input_text", "text": "Be terse."}],
            },
            {
                "type": "message",
                "role": "developer",
                "content": [{"type": "input_text", "text": "Use tools."}],
            },
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Weather?"},
                    {"type": "input_image", "image_url": "https://x.test/a.png", "detail": "low"},
                    {
                        "type": "input_file",
                        "file_data": "data:application/pdf;base64,JVBE",
                        "filename": "a.pdf",
                    },
                ],
            },
            REASONING_ITEM,  # the supplier's own item, back byte for byte; Anthropic's dropped
            {"type": "message", "role": "assistant", "content": "Checking."},
            {
                "type": "function_call",
                "call_id": "call_Lx8dQ2",
                "name": "get_weather",
                "arguments": '{"city":"Lisbon"}',
            },
            {"type": "function_call_output", "call_id": "call_Lx8dQ2", "output": "Error: timeout"},
            {"type": "message", "role": "assistant", "content": ""},
        ],
        "max_output_tokens": 5000,
        "store": False,
        "include": ["reasoning.encrypted_content"],
        "temperature": 0.5,
        "top_p": 0.9,
        "prompt_cache_key": "k1",
        "safety_identifier": "user-1",
        "tools": [
            {
                "type": "function",
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                "strict": False,
                "description": "Current weather",
            }
        ],
        "tool_choice": {"type": "function", "name": "get_weather"},
        "parallel_tool_calls": False,
        "text": {
            "format": {
                "type": "json_schema",
                "name": "out",
                "schema": {"type": "object"},
                "strict": True,
            },
            "verbosity": "low",
        },
        "reasoning": {"effort": "high", "summary": "auto"},
    }
    assert "metadata" not in got  # the supplier is zero-retention (the default)


def test_a_streamed_minimal_request(spec: OpenAISpec) -> None:
    body = {
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "thinking": {"type": "enabled", "budget_tokens": 4096},
    }
    got = sent(spec, call_for(body, stream=True, held=300))
    assert got == {
        "model": "gpt-5",
        "input": [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}
        ],
        "max_output_tokens": 300,
        "store": False,
        "include": ["reasoning.encrypted_content"],
        "reasoning": {"effort": "medium", "summary": "auto"},
        "stream": True,
        "stream_options": {"include_obfuscation": False},
    }


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 2}, "n"),
        ({"stop": ["END"]}, "stop"),
        ({"logprobs": True}, "logprobs"),
        ({"logprobs": True, "top_logprobs": 2}, "logprobs"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        (
            {"modalities": ["text", "audio"], "audio": {"voice": "alloy", "format": "wav"}},
            "modalities",
        ),
        ({"web_search_options": {}}, "web_search_options"),
    ],
)
def test_what_the_wire_cannot_carry_is_untranslatable(extra: dict[str, Any], param: str) -> None:
    call = call_for({"messages": [{"role": "user", "content": "hi"}], **extra})
    with pytest.raises(Untranslatable) as caught:
        map_request(call)
    assert caught.value.param == param


def test_audio_input_is_untranslatable() -> None:
    audio = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    call = call_for({"messages": [{"role": "user", "content": [audio]}]})
    with pytest.raises(Untranslatable) as caught:
        map_request(call)
    assert caught.value.param == "messages[0].content[0]"


def test_dropped_fields() -> None:
    req = call_for(
        {
            "messages": [{"role": "user", "content": "hi"}],
            "seed": 1,
            "top_k": 5,
            "thinking": {"type": "disabled"},
        }
    ).request
    assert dropped_fields(req) == {"seed", "top_k", "thinking"}
    assert (
        dropped_fields(call_for({"messages": [{"role": "user", "content": "hi"}]}).request) == set()
    )


# -- answers ----------------------------------------------------------------------------------------
def test_reasoning_and_text(spec: OpenAISpec) -> None:
    document, completion = mapped(spec, response(output=[REASONING_ITEM, message("Sunny.")]))
    [choice] = document["choices"]
    assert choice["finish_reason"] == "stop"
    msg = choice["message"]
    assert msg["content"] == "Sunny."
    assert msg["reasoning_content"] == "**Checking the weather**\n\nI should call get_weather."
    [block] = msg["thinking_blocks"]
    assert block["thinking"] == msg["reasoning_content"]
    assert open_item(block["signature"]) == REASONING_ITEM
    assert document["usage"]["prompt_tokens_details"] == {"cached_tokens": 64}
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (120, 90)
    assert (completion.usage.cached_tokens, completion.usage.reasoning_tokens) == (64, 50)
    assert not completion.usage.estimated
    assert completion.model == "gpt-5-2025-08-07"


def test_reasoning_goes_back_losslessly(spec: OpenAISpec) -> None:
    """The canonical answer, sent back as the next turn's assistant message, gives the
    supplier its own reasoning item and call."""
    document, _ = mapped(spec, response(output=[REASONING_ITEM, function_call()]))
    msg = document["choices"][0]["message"]
    follow = call_for(
        {
            "messages": [
                {"role": "user", "content": "Weather?"},
                msg,
                {"role": "tool", "tool_call_id": "call_Lx8dQ2", "content": "22C"},
            ]
        }
    )
    items = sent(spec, follow)["input"]
    assert items[1] == REASONING_ITEM
    assert items[2] == {k: function_call()[k] for k in ("type", "call_id", "name", "arguments")}
    assert items[3] == {"type": "function_call_output", "call_id": "call_Lx8dQ2", "output": "22C"}


def test_function_calls(spec: OpenAISpec) -> None:
    document, _ = mapped(spec, response(output=[function_call()]))
    [choice] = document["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == [
        {
            "id": "call_Lx8dQ2",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Lisbon"}'},
        }
    ]


def test_incomplete_and_refusal(spec: OpenAISpec) -> None:
    cut = response(
        status="incomplete",
        incomplete_details={"reason": "max_output_tokens"},
        output=[{**message("Sun"), "status": "incomplete"}],
    )
    assert mapped(spec, cut)[0]["choices"][0]["finish_reason"] == "length"
    filtered = response(status="incomplete", incomplete_details={"reason": "content_filter"})
    assert mapped(spec, filtered)[0]["choices"][0]["finish_reason"] == "content_filter"
    refusal = message("")
    refusal["content"] = [{"type": "refusal", "refusal": "I can't help with that."}]
    msg = mapped(spec, response(output=[refusal]))[0]["choices"][0]["message"]
    assert msg["refusal"] == "I can't help with that." and msg["content"] == ""


def test_no_usage_is_estimated(spec: OpenAISpec) -> None:
    body = response(output=[message("one two three four")])
    del body["usage"]
    document, completion = mapped(spec, body)
    assert completion.usage.estimated
    assert completion.usage.prompt_tokens == 42
    assert document["usage"]["completion_tokens"] == completion.usage.completion_tokens > 0


@pytest.mark.parametrize(
    "body",
    [
        response(status="failed", error={"code": "server_error", "message": "boom"}),
        response(
            output=[
                {
                    "id": "ws_1",
                    "type": "web_search_call",
                    "status": "completed",
                    "action": {"type": "search", "query": "x"},
                }
            ]
        ),
        response(status="in_progress"),
    ],
)
def test_the_suppliers_failures(body: dict[str, Any]) -> None:
    with pytest.raises(SupplierFailed):
        map_response(json.dumps(body).encode(), prompt_estimate=1)
    with pytest.raises(SupplierFailed):
        map_response(b"{not json", prompt_estimate=1)


# -- streams ----------------------------------------------------------------------------------------
def stream_of(spec: OpenAISpec, final: dict[str, Any]) -> list[dict[str, Any]]:
    """The events OpenAI sends for a response of a reasoning item, a message and a call."""
    start = response(status="in_progress", output=[])
    del start["usage"]
    added_reasoning = {**REASONING_ITEM, "summary": [], "encrypted_content": None}
    msg = message("Sunny.")
    call = function_call()
    ri, mi, ci = (
        {"item_id": REASONING_ITEM["id"], "output_index": 0},
        {"item_id": msg["id"], "output_index": 1},
        {"item_id": call["id"], "output_index": 2},
    )
    part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": start},
        {"type": "response.in_progress", "response": start},
        {"type": "response.output_item.added", "output_index": 0, "item": added_reasoning},
        {
            "type": "response.reasoning_summary_part.added",
            **ri,
            "summary_index": 0,
            "part": {"type": "summary_text", "text": ""},
        },
        {
            "type": "response.reasoning_summary_text.delta",
            **ri,
            "summary_index": 0,
            "delta": "**Checking",
        },
        {
            "type": "response.reasoning_summary_text.delta",
            **ri,
            "summary_index": 0,
            "delta": " the weather**",
        },
        {
            "type": "response.reasoning_summary_text.done",
            **ri,
            "summary_index": 0,
            "text": "**Checking the weather**",
        },
        {
            "type": "response.reasoning_summary_part.added",
            **ri,
            "summary_index": 1,
            "part": {"type": "summary_text", "text": ""},
        },
        {
            "type": "response.reasoning_summary_text.delta",
            **ri,
            "summary_index": 1,
            "delta": "I should call get_weather.",
        },
        {"type": "response.output_item.done", "output_index": 0, "item": REASONING_ITEM},
        {
            "type": "response.output_item.added",
            "output_index": 1,
            "item": {**msg, "status": "in_progress", "content": []},
        },
        {"type": "response.content_part.added", **mi, "content_index": 0, "part": part},
        {
            "type": "response.output_text.delta",
            **mi,
            "content_index": 0,
            "delta": "Sun",
            "logprobs": [],
        },
        {
            "type": "response.output_text.delta",
            **mi,
            "content_index": 0,
            "delta": "ny.",
            "logprobs": [],
        },
        {
            "type": "response.output_text.done",
            **mi,
            "content_index": 0,
            "text": "Sunny.",
            "logprobs": [],
        },
        {"type": "response.output_item.done", "output_index": 1, "item": msg},
        {
            "type": "response.output_item.added",
            "output_index": 2,
            "item": {**call, "status": "in_progress", "arguments": ""},
        },
        {"type": "response.function_call_arguments.delta", **ci, "delta": '{"city":'},
        {"type": "response.function_call_arguments.delta", **ci, "delta": '"Lisbon"}'},
        {
            "type": "response.function_call_arguments.done",
            **ci,
            "name": "get_weather",
            "arguments": call["arguments"],
        },
        {"type": "response.output_item.done", "output_index": 2, "item": call},
        {
            "type": (final["status"] == "incomplete" and "response.incomplete")
            or "response.completed",
            "response": final,
        },
    ]
    for number, event in enumerate(events):
        event["sequence_number"] = number
        spec.check("ResponseStreamEvent", event)
        EVENT.validate_python(event)
    return events


def translate(events: list[dict[str, Any]]) -> list[Chunk]:
    translator = StreamTranslator(prompt_estimate=42, now=lambda: 0.0)
    chunks: list[Chunk] = []
    for event in events:
        data = json.dumps(event).encode()
        chunks.extend(translator.feed(SSEEvent(event=event["type"], data=data, raw=b"")))
    assert translator.done
    return chunks


def assemble(spec: OpenAISpec, chunks: list[Chunk]) -> dict[str, Any]:
    facts: dict[str, Any] = {"content": "", "reasoning_content": "", "blocks": [], "calls": {}}
    assert chunks[-1].done and chunks[-1].raw == b"data: [DONE]\n\n"
    for chunk in chunks[:-1]:
        body = json.loads(chunk.raw.removeprefix(b"data: "))
        spec.chunk(body)
        if body.get("usage"):
            facts["usage"] = body["usage"]
        for choice in body["choices"]:
            delta = choice["delta"]
            facts["content"] += delta.get("content") or ""
            facts["reasoning_content"] += delta.get("reasoning_content") or ""
            facts["blocks"] += delta.get("thinking_blocks") or []
            for call in delta.get("tool_calls") or []:
                entry = facts["calls"].setdefault(call["index"], {"arguments": ""})
                entry.update({k: call[k] for k in ("id",) if k in call})
                entry.setdefault("name", call["function"].get("name"))
                entry["arguments"] += call["function"].get("arguments", "")
            if choice.get("finish_reason"):
                facts["finish"] = choice["finish_reason"]
    return facts


def test_a_stream_carries_what_the_whole_answer_does(spec: OpenAISpec) -> None:
    final = response(output=[REASONING_ITEM, message("Sunny."), function_call()])
    chunks = translate(stream_of(spec, final))
    facts = assemble(spec, chunks)
    whole, completion = mapped(spec, final)
    msg = whole["choices"][0]["message"]
    assert facts["content"] == msg["content"] == "Sunny."
    assert facts["reasoning_content"] == msg["reasoning_content"]
    [block] = facts["blocks"]
    assert open_item(block["signature"]) == REASONING_ITEM  # encrypted content from item.done
    assert facts["calls"] == {
        0: {"id": "call_Lx8dQ2", "name": "get_weather", "arguments": '{"city":"Lisbon"}'}
    }
    assert facts["finish"] == "tool_calls"
    assert facts["usage"] == whole["usage"]
    metered = [c for c in chunks if c.usage is not None]
    assert [c.usage for c in metered] == [completion.usage]
    assert sum(c.output_bytes for c in chunks) > 0


def test_an_incomplete_stream_and_one_without_usage(spec: OpenAISpec) -> None:
    final = response(status="incomplete", incomplete_details={"reason": "max_output_tokens"})
    del final["usage"]
    chunks = translate(stream_of(spec, final))
    facts = assemble(spec, chunks)
    assert facts["finish"] == "length"
    [metered] = [c for c in chunks if c.usage is not None]
    assert metered.usage is not None and metered.usage.estimated


def test_failures_mid_stream(spec: OpenAISpec) -> None:
    events = stream_of(spec, response())
    translator = StreamTranslator(prompt_estimate=1)
    for event in events[:5]:
        translator.feed(SSEEvent(event=None, data=json.dumps(event).encode(), raw=b""))
    error = {
        "type": "error",
        "code": "server_error",
        "message": "boom",
        "param": None,
        "sequence_number": 5,
    }
    spec.check("ResponseStreamEvent", error)
    with pytest.raises(SupplierFailed, match="server_error"):
        translator.feed(SSEEvent(event="error", data=json.dumps(error).encode(), raw=b""))
    failed = {
        "type": "response.failed",
        "sequence_number": 5,
        "response": response(status="failed", error={"code": "server_error", "message": "x"}),
    }
    spec.check("ResponseStreamEvent", failed)
    with pytest.raises(SupplierFailed, match="failed"):
        StreamTranslator(prompt_estimate=1).feed(
            SSEEvent(event=None, data=json.dumps(failed).encode(), raw=b"")
        )
    late = StreamTranslator(prompt_estimate=1)
    with pytest.raises(SupplierFailed, match="did not start"):
        late.feed(SSEEvent(event=None, data=json.dumps(events[4]).encode(), raw=b""))


# -- the adapter over HTTP, against the simulator's Responses wire ----------------------------------
@pytest.fixture
async def simulator() -> AsyncIterator[RunningSimulator]:
    sim = await start_simulator(SimulatorOptions(api_key="sk-sim-wire-0123456789"))
    try:
        yield sim
    finally:
        await sim.close()


async def test_the_adapter_against_the_simulator(simulator: RunningSimulator) -> None:
    supplier = msgspec.structs.replace(SUPPLIER, base_url=simulator.base_url, api_key_env="SIM_KEY")
    environ = {"SIM_KEY": "sk-sim-wire-0123456789"}
    body = {
        "messages": [{"role": "user", "content": "Check get_weather for me."}],
        "tools": [WEATHER],
        "reasoning_effort": "low",
    }
    async with aiohttp.ClientSession() as http:
        adapter = OpenAIResponsesAdapter(http, UpstreamSettings(), environ)
        plain = await adapter.complete(dataclasses.replace(call_for(body), supplier=supplier))
        document = json.loads(plain.body)
        [call] = document["choices"][0]["message"]["tool_calls"]
        assert document["choices"][0]["finish_reason"] == "tool_calls"
        assert plain.usage.reasoning_tokens == 8 and not plain.usage.estimated
        streamed: list[Chunk] = []
        stream_call = dataclasses.replace(call_for(body, stream=True), supplier=supplier)
        async for batch in adapter.stream(stream_call):
            streamed.extend(batch)
        assert streamed[-1].done
        [usage] = [c.usage for c in streamed if c.usage is not None]
        assert usage == plain.usage
        assert call["function"]["name"].encode() in b"".join(c.raw for c in streamed)

        # the reasoning goes back, and the simulator checks its encrypted content
        message = document["choices"][0]["message"]
        assert open_item(message["thinking_blocks"][0]["signature"]) is not None
        follow = {
            **body,
            "messages": [
                *body["messages"],
                message,
                {"role": "tool", "tool_call_id": call["id"], "content": "22C"},
            ],
        }
        second = await adapter.complete(dataclasses.replace(call_for(follow), supplier=supplier))
        assert "22C" in json.loads(second.body)["choices"][0]["message"]["content"]

        refused = {"messages": [{"role": "user", "content": "[[sim:mode=status,status=400]] hi"}]}
        with pytest.raises(UpstreamRejected):
            await adapter.complete(dataclasses.replace(call_for(refused), supplier=supplier))
        overloaded = {"messages": [{"role": "user", "content": "[[sim:mode=error,after=5]] hi"}]}
        chunks: list[Chunk] = []

        async def read() -> None:
            call = dataclasses.replace(call_for(overloaded, stream=True), supplier=supplier)
            async for batch in adapter.stream(call):
                chunks.extend(batch)

        with pytest.raises(SupplierFailed):
            await read()
        assert chunks  # what came before the error was relayed


def test_an_anthropic_format_supplier_never_gets_a_sealed_reasoning_item() -> None:
    """Each wire drops the other's reasoning: neither supplier could read it."""
    signed = {"type": "thinking", "thinking": "Anthropic's", "signature": "EqQBCkYIBxgCKkD"}
    sealed = {"type": "thinking", "thinking": "OpenAI's", "signature": seal_item(REASONING_ITEM)}
    body = {
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "ok", "thinking_blocks": [sealed, signed]},
            {"role": "user", "content": "again"},
        ],
        "max_tokens": 4000,
    }
    call = call_for(body)
    to_anthropic = dataclasses.replace(
        call, supplier=msgspec.structs.replace(SUPPLIER, wire="anthropic")
    )
    assistant = json.loads(anthropic.map_request(to_anthropic))["messages"][1]
    assert assistant["content"] == [
        {"type": "thinking", "thinking": "Anthropic's", "signature": "EqQBCkYIBxgCKkD"},
        {"type": "text", "text": "ok"},
    ]
    assert json.loads(map_request(call))["input"][1] == REASONING_ITEM
