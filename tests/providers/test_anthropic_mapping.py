"""The Anthropic adapter: its pure mappings on payloads in Anthropic's published formats (golden
files under ``golden/``), its error translation, and the adapter over real HTTP against a small
local Anthropic-format server.

Golden files: ``requests.json`` (canonical request → expected Anthropic body, one case per row of
the contract's tables), ``untranslatable.json`` (canonical request → the part named),
``response_*.json`` (Anthropic ``message`` → expected canonical body and metered usage),
``stream_*.sse`` (an Anthropic event stream) with ``stream_*.json`` (the expected canonical
chunks and their metering). The Anthropic side of every golden is checked against the official
SDK's types, the canonical side against OpenAI's published schemas.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import aiohttp
import pydantic
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from anthropic.types import Message as SDKMessage
from anthropic.types import RawMessageStreamEvent
from anthropic.types.message_create_params import (
    MessageCreateParamsNonStreaming,
    MessageCreateParamsStreaming,
)

from gridgate.errors import (
    SupplierFailed,
    SupplierTimeout,
    Untranslatable,
    UpstreamRejected,
    ValidationFailed,
)
from gridgate.protocol.openai_chat import CHAT_REQUEST_DECODER, decode_chat_request
from gridgate.protocol.sse import SSEEvent, SSEParser
from gridgate.providers.anthropic import (
    ANTHROPIC_VERSION,
    AnthropicAdapter,
    StreamTranslator,
    map_request,
    map_response,
    upstream_error,
)
from gridgate.providers.base import Chunk, UpstreamCall
from gridgate.settings import UpstreamSettings
from gridgate.storage.records import OfferRecord, SupplierRecord
from tests.openai_spec import OpenAISpec

GOLDEN = Path(__file__).parent / "golden"
NOW = 1_700_000_000.5  # every golden's ``created`` is int(NOW)
SECRET = "sk-ant-api03-secret-0123456789"
SUPPLIER = SupplierRecord(
    name="anthropic",
    wire="anthropic",
    base_url="http://127.0.0.1:1/v1",
    api_key_env="ANTHROPIC_KEY",
)
OFFER = OfferRecord(
    id="anthropic/text-prime/claude-sonnet-4-5",
    supplier="anthropic",
    instrument="text-prime",
    model="claude-sonnet-4-5",
    input_per_m=3_000_000_000,
    output_per_m=15_000_000_000,
    quality=50,
    context=200_000,
    max_output=64_000,
)


def _now() -> float:
    return NOW


def _load(name: str) -> Any:
    return json.loads((GOLDEN / name).read_text(encoding="utf-8"))


def make_call(
    request: dict[str, Any],
    *,
    cap: int = 1024,
    stream: bool = False,
    supplier: SupplierRecord = SUPPLIER,
    model: str | None = None,
    translated: bool = False,
) -> UpstreamCall:
    """An upstream call for a canonical request given as JSON. ``translated``: the request
    came from another surface, so it skips the OpenAI-surface checks (as core's translation
    does)."""
    offer = OFFER if model is None else OfferRecord(**{**_offer_fields(), "model": model})
    body = json.dumps(request).encode()
    return UpstreamCall(
        supplier=supplier,
        offer=offer,
        request=CHAT_REQUEST_DECODER.decode(body) if translated else decode_chat_request(body),
        max_output_tokens=cap,
        stream=stream,
        prompt_estimate=11,
    )


def _offer_fields() -> dict[str, Any]:
    return {field: getattr(OFFER, field) for field in OFFER.__struct_fields__}


# -- the request ---------------------------------------------------------------------------------
REQUESTS: dict[str, Any] = _load("requests.json")
UNTRANSLATABLE: dict[str, Any] = _load("untranslatable.json")
_params = pydantic.TypeAdapter(MessageCreateParamsNonStreaming)
_stream_params = pydantic.TypeAdapter(MessageCreateParamsStreaming)


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_request_mapping_golden(name: str) -> None:
    case = REQUESTS[name]
    call = make_call(
        case["request"],
        cap=case["max_output_tokens"],
        stream=case["stream"],
        translated=case.get("translated", False),
    )
    sent = json.loads(map_request(call))
    assert sent == case["anthropic"]
    # the expectation itself is in Anthropic's format (the official SDK's request types)
    (_stream_params if case["stream"] else _params).validate_python(sent)


def test_request_goldens_cover_every_contract_row() -> None:
    rows = {
        "system_and_developer_anywhere_joined",
        "system_blocks_keep_cache_control",
        "consecutive_user_messages_merged",
        "assistant_tool_calls_and_tool_results_merged",
        "assistant_thinking_blocks_in_order",
        "assistant_reasoning_content_alone_dropped",
        "tool_result_error_and_images",
        "user_images",
        "pdf_and_text_files",
        "tools_defaults_cache_control_strict",
        "tool_choice_auto",
        "tool_choice_required",
        "tool_choice_none",
        "tool_choice_named",
        "parallel_tool_calls_false_without_tool_choice",
        "stop_string",
        "stop_list",
        "sampling_as_is",
        "user_to_metadata",
        "thinking_enabled",
        "thinking_budget_clamped_below_max_tokens",
        "thinking_dropped_when_max_tokens_too_small",
        "reasoning_effort_minimal",
        "reasoning_effort_low",
        "reasoning_effort_medium",
        "reasoning_effort_high",
        "reasoning_effort_xhigh",
        "reasoning_effort_max",
        "reasoning_effort_none",
        "response_format_json_schema_forced_tool",
        "response_format_json_schema_with_callers_tools",
        "response_format_json_object",
        "max_tokens_is_the_held_max",
        "stream_flag",
    }
    assert rows <= set(REQUESTS)


@pytest.mark.parametrize("name", sorted(UNTRANSLATABLE))
def test_untranslatable_parts_are_named(name: str) -> None:
    case = UNTRANSLATABLE[name]
    call = make_call(case["request"], cap=case["max_output_tokens"])
    with pytest.raises(Untranslatable) as caught:
        map_request(call)
    error = caught.value
    assert error.param == case["param"]
    assert error.message.startswith(case["param"] + ": ")
    assert isinstance(error, ValidationFailed) and error.status == 422
    assert error.code == "untranslatable"


def test_the_same_foreign_tool_id_maps_the_same_in_use_and_result() -> None:
    body = REQUESTS["assistant_tool_calls_and_tool_results_merged"]["anthropic"]
    use_ids = [b["id"] for b in body["messages"][1]["content"] if b["type"] == "tool_use"]
    result_ids = [
        b["tool_use_id"] for b in body["messages"][2]["content"] if b["type"] == "tool_result"
    ]
    assert use_ids == result_ids
    assert use_ids[0] == "call_abc123"  # a valid id is kept as it is


# -- the answer ------------------------------------------------------------------------------------
RESPONSES = sorted(p.name for p in GOLDEN.glob("response_*.json"))


@pytest.mark.parametrize("name", RESPONSES)
def test_response_mapping_golden(name: str, spec: OpenAISpec) -> None:
    case = _load(name)
    SDKMessage.model_validate(case["anthropic"])  # the input is in Anthropic's format
    request = decode_chat_request(json.dumps(case["request"]).encode())
    completion = map_response(
        json.dumps(case["anthropic"]).encode(), request=request, prompt_estimate=11, now=_now
    )
    body = json.loads(completion.body)
    assert body == case["canonical"]
    spec.completion(body)
    assert asdict(completion.usage) == case["usage"]
    assert completion.model == case["anthropic"]["model"]


def _message(content: list[dict[str, Any]], **fields: Any) -> bytes:
    message = {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": content,
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 5},
    }
    message.update(fields)
    return json.dumps(message).encode()


PLAIN = decode_chat_request(b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}')


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"type": "message", "content": []}',
        _message([], id=None),
        _message("hello"),  # type: ignore[arg-type]
        _message([{"type": "text"}]),
        _message([{"type": "thinking", "thinking": "hmm"}]),
        _message([{"type": "redacted_thinking"}]),
        _message([{"type": "tool_use", "id": "toolu_1", "input": {}}]),
        _message([{"type": "tool_use", "name": "f", "input": {}}]),
        _message([{"type": "tool_use", "id": "toolu_1", "name": "f", "input": [1]}]),
        json.dumps(
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        ).encode(),
    ],
)
def test_malformed_answers_are_the_suppliers_fault(body: bytes) -> None:
    with pytest.raises(SupplierFailed):
        map_response(body, request=PLAIN, prompt_estimate=1)


@pytest.mark.parametrize(
    "block",
    [
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}},
        {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
        {"type": "container_upload", "file_id": "file_1"},
        {"type": "a_block_from_the_future", "text": "hi"},
    ],
)
def test_unsupported_content_blocks_fail_over_naming_the_type(block: dict[str, Any]) -> None:
    body = _message([{"type": "text", "text": "Searching."}, block])
    with pytest.raises(SupplierFailed, match=f"unsupported content block type '{block['type']}'"):
        map_response(body, request=PLAIN, prompt_estimate=1)


def test_an_answer_without_usage_is_counted_and_marked_estimated(spec: OpenAISpec) -> None:
    body = _message([{"type": "text", "text": "x" * 40}], usage=None)
    completion = map_response(body, request=PLAIN, prompt_estimate=12, now=_now)
    assert completion.usage.estimated
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (12, 10)
    document = json.loads(completion.body)
    assert document["usage"] == {"prompt_tokens": 12, "completion_tokens": 10, "total_tokens": 22}
    spec.completion(document)


def test_an_answer_whose_usage_counts_nothing_is_counted_and_marked_estimated() -> None:
    """The Messages wire cannot leave usage out: a supplier that does not meter reports
    zeros. Zero tokens for 40 bytes of text (or for any prompt) is not a count."""
    zero = {"input_tokens": 0, "output_tokens": 0}
    body = _message([{"type": "text", "text": "x" * 40}], usage=zero)
    completion = map_response(body, request=PLAIN, prompt_estimate=12, now=_now)
    assert completion.usage.estimated
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (12, 10)
    assert json.loads(completion.body)["usage"]["total_tokens"] == 22
    # a prompt it did count is kept; only the output is gridgate's
    counted_prompt = {"input_tokens": 8, "output_tokens": 0}
    body = _message([{"type": "text", "text": "x" * 40}], usage=counted_prompt)
    usage = map_response(body, request=PLAIN, prompt_estimate=12).usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.estimated) == (8, 10, True)
    # an empty answer of 0 output tokens is a count
    empty = _message([{"type": "text", "text": ""}], usage={"input_tokens": 8, "output_tokens": 0})
    usage = map_response(empty, request=PLAIN, prompt_estimate=12).usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.estimated) == (8, 0, False)


def test_a_json_object_answer_is_the_forced_tools_input() -> None:
    request = decode_chat_request(
        b'{"model": "m", "messages": [{"role": "user", "content": "hi"}],'
        b' "response_format": {"type": "json_object"}}'
    )
    body = _message(
        [{"type": "tool_use", "id": "toolu_1", "name": "json_object", "input": {"a": [1, 2]}}],
        stop_reason="tool_use",
    )
    choice = json.loads(map_response(body, request=request, prompt_estimate=1).body)["choices"][0]
    assert choice["message"]["content"] == '{"a":[1,2]}'
    assert "tool_calls" not in choice["message"]
    assert choice["finish_reason"] == "stop"


def test_without_a_json_answer_a_tool_named_json_object_is_a_tool_call() -> None:
    body = _message(
        [{"type": "tool_use", "id": "toolu_1", "name": "json_object", "input": {}}],
        stop_reason="tool_use",
    )
    choice = json.loads(map_response(body, request=PLAIN, prompt_estimate=1).body)["choices"][0]
    assert choice["message"]["tool_calls"][0]["function"]["name"] == "json_object"
    assert choice["finish_reason"] == "tool_calls"


def test_an_unknown_stop_reason_is_stop() -> None:
    body = _message([{"type": "text", "text": "hi"}], stop_reason="a_reason_from_the_future")
    choice = json.loads(map_response(body, request=PLAIN, prompt_estimate=1).body)["choices"][0]
    assert choice["finish_reason"] == "stop"


# -- the stream ----------------------------------------------------------------------------------
STREAMS = sorted(p.stem for p in GOLDEN.glob("stream_*.sse"))
_event_types = pydantic.TypeAdapter(RawMessageStreamEvent)


def _chunk_view(chunk: Chunk) -> dict[str, Any]:
    assert chunk.raw.startswith(b"data: ") and chunk.raw.endswith(b"\n\n")
    data = chunk.raw[6:-2]
    return {
        "data": "[DONE]" if data == b"[DONE]" else json.loads(data),
        "output_bytes": chunk.output_bytes,
        "deltas": chunk.deltas,
        "finish_reason": chunk.finish_reason,
        "usage_only": chunk.usage_only,
        "done": chunk.done,
        "usage": None if chunk.usage is None else asdict(chunk.usage),
    }


def _translate(
    translator: StreamTranslator, events: list[SSEEvent]
) -> tuple[list[Chunk], SupplierFailed | None]:
    chunks: list[Chunk] = []
    try:
        for event in events:
            chunks.extend(translator.feed(event))
    except SupplierFailed as exc:
        return chunks, exc
    return chunks, None


def _translator(request: dict[str, Any], prompt_estimate: int = 11) -> StreamTranslator:
    return StreamTranslator(
        request=decode_chat_request(json.dumps(request).encode()),
        prompt_estimate=prompt_estimate,
        now=_now,
    )


@pytest.mark.parametrize("name", STREAMS)
def test_stream_translation_golden(name: str, spec: OpenAISpec) -> None:
    expected = _load(name + ".json")
    events = SSEParser().feed((GOLDEN / (name + ".sse")).read_bytes())
    if expected["anthropic_conformant"]:
        for event in events:
            document = json.loads(event.data)
            assert event.event == document["type"]
            if document["type"] not in ("ping", "error"):
                _event_types.validate_python(document)
    translator = _translator(expected["request"], expected["prompt_estimate"])
    chunks, error = _translate(translator, events)
    assert [_chunk_view(c) for c in chunks] == expected["chunks"]
    assert (error.message if error else None) == expected["error"]
    assert translator.done is (error is None)
    for chunk in chunks:
        if not chunk.done:
            spec.chunk(json.loads(chunk.raw[6:-2]))


@pytest.mark.parametrize("name", STREAMS)
def test_stream_translation_does_not_depend_on_how_the_bytes_arrive(name: str) -> None:
    raw = (GOLDEN / (name + ".sse")).read_bytes()
    request = _load(name + ".json")["request"]
    whole, whole_error = _translate(_translator(request), SSEParser().feed(raw))
    for size in (1, 3, 7, 64):
        parser, translator = SSEParser(), _translator(request)
        pieces: list[Chunk] = []
        error: SupplierFailed | None = None
        for start in range(0, len(raw), size):
            got, error = _translate(translator, parser.feed(raw[start : start + size]))
            pieces.extend(got)
            if error is not None:
                break
        assert [c.raw for c in pieces] == [c.raw for c in whole]
        assert (error is None) == (whole_error is None)


def _anthropic_answer(events: list[SSEEvent]) -> dict[str, Any]:
    """What the Anthropic stream says, assembled: text, reasoning, tool inputs by block."""
    text, reasoning, tools = "", "", {}
    for event in events:
        document = json.loads(event.data)
        if document["type"] == "content_block_start":
            block = document["content_block"]
            if block["type"] == "tool_use":
                tools[document["index"]] = [block["name"], ""]
        elif document["type"] == "content_block_delta":
            delta = document["delta"]
            if delta["type"] == "text_delta":
                text += delta["text"]
            elif delta["type"] == "thinking_delta":
                reasoning += delta["thinking"]
            elif delta["type"] == "input_json_delta":
                tools[document["index"]][1] += delta["partial_json"]
    return {
        "text": text,
        "reasoning": reasoning,
        "tools": [(name, json.loads(args)) for name, args in tools.values()],
    }


def _canonical_answer(chunks: list[Chunk]) -> dict[str, Any]:
    """What the canonical stream says, assembled the way an OpenAI client does it."""
    text, reasoning, calls = "", "", {}
    for chunk in chunks:
        if chunk.done or chunk.usage_only:
            continue
        (choice,) = json.loads(chunk.raw[6:-2])["choices"]
        delta = choice["delta"]
        text += delta.get("content") or ""
        reasoning += delta.get("reasoning_content") or ""
        for call in delta.get("tool_calls", ()):
            entry = calls.setdefault(call["index"], ["", ""])
            entry[0] += call["function"].get("name", "")
            entry[1] += call["function"]["arguments"]
    return {
        "text": text,
        "reasoning": reasoning,
        "tools": [(name, json.loads(args)) for name, args in calls.values()],
    }


@pytest.mark.parametrize("name", STREAMS)
def test_a_streamed_answer_says_what_the_anthropic_stream_said(name: str) -> None:
    expected = _load(name + ".json")
    events = SSEParser().feed((GOLDEN / (name + ".sse")).read_bytes())
    chunks, _ = _translate(_translator(expected["request"]), events)
    source = _anthropic_answer([e for e in events if json.loads(e.data)["type"] != "error"])
    if expected["request"].get("response_format"):  # the forced tool's input is the content
        (_, document) = source["tools"].pop()
        assert json.loads(_canonical_answer(chunks)["text"]) == document
        source["text"] = _canonical_answer(chunks)["text"]
    assert _canonical_answer(chunks) == source
    generated = len(source["text"].encode()) + len(source["reasoning"].encode())
    assert sum(c.output_bytes for c in chunks) == generated + _tool_bytes(
        events, expected["request"]
    )


def _tool_bytes(events: list[SSEEvent], request: dict[str, Any]) -> int:
    """Bytes of tool names and argument fragments as streamed (not the forced JSON tool's)."""
    json_tool = (request.get("response_format") or {}).get("json_schema", {}).get("name")
    total, names = 0, {}
    for event in events:
        document = json.loads(event.data)
        if document["type"] == "content_block_start":
            block = document["content_block"]
            if block["type"] == "tool_use" and block["name"] != json_tool:
                names[document["index"]] = block["name"]
                total += len(block["name"].encode())
        elif document["type"] == "content_block_delta" and document["index"] in names:
            total += len(document["delta"].get("partial_json", "").encode())
    return total


def _events(*documents: dict[str, Any]) -> list[SSEEvent]:
    raw = b"".join(
        b"event: " + d["type"].encode() + b"\ndata: " + json.dumps(d).encode() + b"\n\n"
        for d in documents
    )
    return SSEParser().feed(raw)


START = {
    "type": "message_start",
    "message": {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": "claude-sonnet-4-5",
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 30, "cache_read_input_tokens": 70, "output_tokens": 1},
    },
}
TEXT_START = {
    "type": "content_block_start",
    "index": 0,
    "content_block": {"type": "text", "text": ""},
}
TEXT = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "abcd"}}
END = {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}}
STOP = {"type": "message_stop"}
PLAIN_STREAM = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}


def test_usage_from_message_start_and_an_estimate_when_message_delta_has_none() -> None:
    chunks, error = _translate(
        _translator(PLAIN_STREAM), _events(START, TEXT_START, TEXT, TEXT, END, STOP)
    )
    assert error is None
    usage = chunks[-2].usage
    assert usage is not None and chunks[-2].usage_only
    assert (usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens) == (100, 70, 2)
    assert usage.estimated


def test_message_delta_usage_is_cumulative_and_replaces_message_start() -> None:
    delta = {**END, "usage": {"input_tokens": 35, "output_tokens": 9}}
    chunks, _ = _translate(_translator(PLAIN_STREAM), _events(START, TEXT_START, TEXT, delta, STOP))
    usage = chunks[-2].usage
    assert usage is not None and not usage.estimated
    assert (usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens) == (105, 70, 9)


def test_unknown_event_types_are_ignored_and_ping_makes_no_chunk() -> None:
    chunks, error = _translate(
        _translator(PLAIN_STREAM),
        _events(START, {"type": "ping"}, {"type": "an_event_from_the_future", "x": 1}, TEXT_START),
    )
    assert error is None and len(chunks) == 1


@pytest.mark.parametrize(
    ("documents", "problem"),
    [
        ((TEXT_START,), "did not start with message_start"),
        ((START, START), "second message_start"),
        ((START, TEXT), "never started"),
        ((START, TEXT_START, TEXT_START), "started a content block twice"),
        (
            (
                START,
                TEXT_START,
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "input_json_delta", "partial_json": "{"},
                },
            ),
            "'input_json_delta' delta for a text block",
        ),
        ((START, TEXT_START, TEXT, STOP), "stopped without a stop reason"),
        ((START, TEXT_START, TEXT, END, STOP, TEXT), "after message_stop"),
        (
            (
                START,
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {
                        "type": "server_tool_use",
                        "id": "s",
                        "name": "web_search",
                        "input": {},
                    },
                },
            ),
            "unsupported content block type 'server_tool_use'",
        ),
        (
            (START, {"type": "error", "error": {"type": "api_error", "message": "boom"}}),
            "api_error",
        ),
        ((START, {"type": "content_block_delta"}), "never started"),
        ((START, {"no_type": 1}), "malformed"),
    ],
)
def test_malformed_or_failed_streams_are_the_suppliers_fault(
    documents: tuple[dict[str, Any], ...], problem: str
) -> None:
    raw = b"".join(b"data: " + json.dumps(d).encode() + b"\n\n" for d in documents)
    _, error = _translate(_translator(PLAIN_STREAM), SSEParser().feed(raw))
    assert error is not None and problem in error.message


# -- errors ----------------------------------------------------------------------------------------
def _error_body(kind: str, message: str) -> bytes:
    return json.dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()


@pytest.mark.parametrize(
    ("status", "kind", "expected"),
    [
        (400, "invalid_request_error", UpstreamRejected),
        (413, "request_too_large", UpstreamRejected),
        (422, "invalid_request_error", UpstreamRejected),
        (401, "authentication_error", SupplierFailed),
        (402, "billing_error", SupplierFailed),
        (403, "permission_error", SupplierFailed),
        (404, "not_found_error", SupplierFailed),
        (429, "rate_limit_error", SupplierFailed),
        (500, "api_error", SupplierFailed),
        (502, "api_error", SupplierFailed),
        (503, "api_error", SupplierFailed),
        (529, "overloaded_error", SupplierFailed),
        (408, "timeout_error", SupplierTimeout),
        (504, "timeout_error", SupplierTimeout),
    ],
)
def test_upstream_errors_split_into_caller_and_supplier_faults(
    status: int, kind: str, expected: type[Exception]
) -> None:
    body = _error_body(kind, f"messages.0: bad input near {SECRET} " + "x" * 1000)
    error = upstream_error(status, body, secret=SECRET)
    assert type(error) is expected
    assert SECRET not in error.message
    if isinstance(error, UpstreamRejected):
        assert error.http_status == status
        assert error.message.startswith("messages.0: bad input near [redacted]")
        assert len(error.message) == 500
    else:
        assert str(status) in error.message


def test_a_rejection_without_a_readable_body_still_says_so() -> None:
    error = upstream_error(400, b"<html>Bad Request</html>", secret=None)
    assert isinstance(error, UpstreamRejected)
    assert error.message == "the supplier rejected the request (HTTP 400)"


# -- the adapter over HTTP -------------------------------------------------------------------------
STREAM_TEXT = (GOLDEN / "stream_text.sse").read_bytes()
STREAM_TOOLS = (GOLDEN / "stream_tool_use.sse").read_bytes()
ANSWER = _load("response_text.json")["anthropic"]


class FakeAnthropic:
    """A local Anthropic-format server. The offer's model (``model`` in the body) picks the
    behaviour; every request is recorded; ``release`` lets handlers that wait finish."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.release = asyncio.Event()
        self.next_piece = asyncio.Event()
        self.gone = asyncio.Event()
        app = web.Application()
        app.router.add_post("/v1/messages", self.messages)
        self.server = TestServer(app)

    @property
    def base_url(self) -> str:
        return str(self.server.make_url("/v1"))

    async def messages(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append((dict(request.headers), body))
        behaviour = json.loads(body)["model"]
        match behaviour:
            case "answer":
                return web.json_response(ANSWER)
            case "overloaded":
                return web.Response(status=529, body=_error_body("overloaded_error", "Overloaded"))
            case "invalid":
                return web.Response(
                    status=400, body=_error_body("invalid_request_error", "max_tokens: too big")
                )
            case "hang":
                await self.release.wait()
                return web.json_response(ANSWER)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            match behaviour:
                case "stream":
                    await response.write(STREAM_TEXT)
                case "stream-in-two":  # the second read only once the first batch was seen
                    cut = STREAM_TOOLS.index(b"event: content_block_start", 500)
                    await response.write(STREAM_TOOLS[:cut])
                    await self.next_piece.wait()
                    await response.write(STREAM_TOOLS[cut:])
                case "stream-then-silence":
                    await response.write(STREAM_TEXT[: STREAM_TEXT.index(b"event: ping")])
                    await self.release.wait()
                case "stream-cut-short":
                    await response.write(STREAM_TEXT[: STREAM_TEXT.index(b"event: message_delta")])
                case "stream-error-first":
                    await response.write(
                        b"event: error\ndata: "
                        + _error_body("overloaded_error", "Overloaded")
                        + b"\n\n"
                    )
                case "stream-silent-after-headers":
                    await self.release.wait()
        except asyncio.CancelledError:
            self.gone.set()  # the client closed the connection
            raise
        await response.write_eof()
        return response


@pytest.fixture
async def upstream() -> AsyncIterator[FakeAnthropic]:
    fake = FakeAnthropic()
    await fake.server.start_server()
    try:
        yield fake
    finally:
        fake.release.set()
        fake.next_piece.set()
        await fake.server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def _settings(**overrides: float) -> UpstreamSettings:
    values: dict[str, float] = {
        "connect_timeout_seconds": 5.0,
        "first_byte_timeout_seconds": 5.0,
        "idle_timeout_seconds": 5.0,
        "total_timeout_seconds": 5.0,
    }
    values.update(overrides)
    return UpstreamSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def adapter(
    upstream: FakeAnthropic, session: aiohttp.ClientSession
) -> Callable[..., tuple[AnthropicAdapter, SupplierRecord]]:
    def build(
        *, key_env: str | None = "ANTHROPIC_KEY", **timeouts: float
    ) -> tuple[AnthropicAdapter, SupplierRecord]:
        supplier = SupplierRecord(
            name="anthropic", wire="anthropic", base_url=upstream.base_url, api_key_env=key_env
        )
        environ = {"ANTHROPIC_KEY": SECRET}
        return AnthropicAdapter(session, _settings(**timeouts), environ), supplier

    return build


HELLO = {"model": "text-prime", "messages": [{"role": "user", "content": "Hello"}]}
HELLO_STREAM = {**HELLO, "stream": True, "stream_options": {"include_usage": True}}


async def _drain(
    batches: AsyncIterator[list[Chunk]], into: list[Chunk] | None = None
) -> list[list[Chunk]]:
    drained: list[list[Chunk]] = []
    async for batch in batches:
        drained.append(batch)
        if into is not None:
            into.extend(batch)
    return drained


async def _first(anthropic: AnthropicAdapter, call: UpstreamCall) -> object:
    """The whole answer, or the first batch of a streamed one."""
    if call.stream:
        return await anext(anthropic.stream(call))
    return await anthropic.complete(call)


async def test_complete_sends_the_mapped_body_with_anthropic_headers(
    upstream: FakeAnthropic, adapter: Any, spec: OpenAISpec
) -> None:
    anthropic, supplier = adapter()
    call = make_call(HELLO, supplier=supplier, model="answer", cap=300)
    completion = await anthropic.complete(call)
    (headers, body), *_ = upstream.requests
    assert headers["x-api-key"] == SECRET
    assert headers["anthropic-version"] == ANTHROPIC_VERSION
    assert headers["Content-Type"] == "application/json"
    assert headers["Accept"] == "application/json"
    assert "Authorization" not in headers
    assert body == map_request(call)
    assert json.loads(body)["max_tokens"] == 300
    spec.completion(json.loads(completion.body))
    assert completion.usage.prompt_tokens == 2095 and completion.model == ANSWER["model"]


async def test_no_credential_variable_means_no_api_key_header(
    upstream: FakeAnthropic, adapter: Any
) -> None:
    anthropic, supplier = adapter(key_env=None)
    await anthropic.complete(make_call(HELLO, supplier=supplier, model="answer"))
    await anthropic.complete(make_call(HELLO, supplier=supplier, model="answer"))
    assert all("x-api-key" not in headers for headers, _ in upstream.requests)
    assert len(upstream.requests) == 2


async def test_stream_relays_canonical_chunks_ending_with_done(
    upstream: FakeAnthropic, adapter: Any, spec: OpenAISpec
) -> None:
    anthropic, supplier = adapter()
    call = make_call(HELLO_STREAM, supplier=supplier, model="stream", stream=True)
    batches = await _drain(anthropic.stream(call))
    chunks = [chunk for batch in batches for chunk in batch]
    expected = [c["data"] for c in _load("stream_text.json")["chunks"]]
    got = [_chunk_view(c)["data"] for c in chunks]
    assert [g if g == "[DONE]" else {**g, "created": 0} for g in got] == [
        e if e == "[DONE]" else {**e, "created": 0} for e in expected
    ]
    headers, body = upstream.requests[0]
    assert headers["Accept"] == "text/event-stream" and json.loads(body)["stream"] is True
    assert chunks[-1].done and chunks[-2].usage_only
    for chunk in chunks[:-1]:
        spec.chunk(json.loads(chunk.raw[6:-2]))


async def test_one_batch_per_upstream_read(upstream: FakeAnthropic, adapter: Any) -> None:
    anthropic, supplier = adapter()
    call = make_call(
        {**HELLO_STREAM, "tools": [{"type": "function", "function": {"name": "get_weather"}}]},
        supplier=supplier,
        model="stream-in-two",
        stream=True,
    )
    batches = anthropic.stream(call)
    first = await anext(batches)
    # the first read held message_start and the text block: role chunk + two text chunks
    assert [json.loads(c.raw[6:-2])["choices"][0]["delta"] for c in first] == [
        {"role": "assistant", "content": ""},
        {"content": "Okay"},
        {"content": ", let me check the weather for San Francisco, CA:"},
    ]
    upstream.next_piece.set()
    rest = [chunk for batch in await _drain(batches) for chunk in batch]
    assert rest[-1].done and any(c.finish_reason == "tool_calls" for c in rest)


@pytest.mark.parametrize("stream", [False, True])
async def test_a_supplier_error_status_fails_over_before_the_first_byte(
    adapter: Any, stream: bool
) -> None:
    anthropic, supplier = adapter()
    call = make_call(
        HELLO_STREAM if stream else HELLO, supplier=supplier, model="overloaded", stream=stream
    )
    with pytest.raises(SupplierFailed, match="HTTP 529") as caught:
        await _first(anthropic, call)
    assert type(caught.value) is SupplierFailed


@pytest.mark.parametrize("stream", [False, True])
async def test_the_callers_fault_is_surfaced_with_the_upstreams_message(
    adapter: Any, stream: bool
) -> None:
    anthropic, supplier = adapter()
    call = make_call(
        HELLO_STREAM if stream else HELLO, supplier=supplier, model="invalid", stream=stream
    )
    with pytest.raises(UpstreamRejected, match=r"max_tokens: too big") as caught:
        await _first(anthropic, call)
    assert caught.value.http_status == 400


@pytest.mark.parametrize("stream", [False, True])
async def test_an_unreachable_supplier_fails_over(
    session: aiohttp.ClientSession, stream: bool
) -> None:
    server = TestServer(web.Application())
    await server.start_server()
    base_url = str(server.make_url("/v1"))
    await server.close()  # nothing listens there any more
    supplier = SupplierRecord(name="gone", wire="anthropic", base_url=base_url)
    anthropic = AnthropicAdapter(session, _settings(), {})
    call = make_call(HELLO_STREAM if stream else HELLO, supplier=supplier, stream=stream)
    with pytest.raises(SupplierFailed, match="connection failed"):
        await _first(anthropic, call)


async def test_complete_times_out_as_the_suppliers_fault(adapter: Any) -> None:
    anthropic, supplier = adapter(total_timeout_seconds=0.2)
    with pytest.raises(SupplierTimeout):
        await anthropic.complete(make_call(HELLO, supplier=supplier, model="hang"))


@pytest.mark.parametrize("model", ["hang", "stream-silent-after-headers"])
async def test_no_first_byte_in_time_fails_over(adapter: Any, model: str) -> None:
    anthropic, supplier = adapter(first_byte_timeout_seconds=0.2)
    call = make_call(HELLO_STREAM, supplier=supplier, model=model, stream=True)
    with pytest.raises(SupplierTimeout):
        await anext(anthropic.stream(call))


async def test_silence_mid_answer_ends_the_stream(adapter: Any) -> None:
    anthropic, supplier = adapter(idle_timeout_seconds=0.2)
    batches = anthropic.stream(
        make_call(HELLO_STREAM, supplier=supplier, model="stream-then-silence", stream=True)
    )
    first = await anext(batches)
    assert first
    with pytest.raises(SupplierTimeout, match="silent mid-answer"):
        await anext(batches)


async def test_a_stream_that_ends_before_message_stop_is_the_suppliers_fault(
    adapter: Any,
) -> None:
    anthropic, supplier = adapter()
    batches = anthropic.stream(
        make_call(HELLO_STREAM, supplier=supplier, model="stream-cut-short", stream=True)
    )
    relayed: list[Chunk] = []
    with pytest.raises(SupplierFailed, match="ended before the answer did"):
        await _drain(batches, relayed)
    assert relayed and not any(c.done or c.finish_reason for c in relayed)


async def test_an_error_event_before_any_chunk_fails_over(adapter: Any) -> None:
    anthropic, supplier = adapter()
    call = make_call(HELLO_STREAM, supplier=supplier, model="stream-error-first", stream=True)
    with pytest.raises(SupplierFailed, match="overloaded_error"):
        await anext(anthropic.stream(call))


async def test_closing_the_stream_early_closes_the_upstream_connection(
    upstream: FakeAnthropic, adapter: Any
) -> None:
    anthropic, supplier = adapter()
    batches = anthropic.stream(
        make_call(HELLO_STREAM, supplier=supplier, model="stream-then-silence", stream=True)
    )
    assert await anext(batches)
    await batches.aclose()  # type: ignore[attr-defined]
    await asyncio.wait_for(upstream.gone.wait(), 5)


@pytest.mark.parametrize("stream", [False, True])
async def test_untranslatable_requests_never_reach_the_supplier(
    upstream: FakeAnthropic, adapter: Any, stream: bool
) -> None:
    anthropic, supplier = adapter()
    call = make_call({**HELLO, "n": 2}, supplier=supplier, model="answer", stream=stream)
    with pytest.raises(Untranslatable, match=r"^n: "):
        await _first(anthropic, call)
    assert upstream.requests == []


def test_a_stream_whose_usage_counts_nothing_is_counted_and_marked_estimated() -> None:
    zero = {"input_tokens": 0, "output_tokens": 0}
    start = {**START, "message": {**START["message"], "usage": zero}}  # type: ignore[dict-item]
    end = {**END, "usage": {"output_tokens": 0}}
    chunks, error = _translate(
        _translator(PLAIN_STREAM, prompt_estimate=11), _events(start, TEXT_START, TEXT, end, STOP)
    )
    assert error is None
    assert chunks[0].prompt_tokens is None  # 0 is not a count of the prompt
    usage = chunks[-2].usage
    assert usage is not None and usage.estimated
    assert (usage.prompt_tokens, usage.completion_tokens) == (11, 1)


def test_the_prompt_count_of_message_start_rides_the_first_chunk() -> None:
    """A stream cut before message_stop is charged the supplier's prompt count."""
    chunks, error = _translate(_translator(PLAIN_STREAM), _events(START, TEXT_START, TEXT))
    assert error is None
    assert chunks[0].prompt_tokens == 100  # input 30 + cache reads 70
    assert all(c.prompt_tokens is None for c in chunks[1:])
