"""Canonical streams → Responses events: the event sequence OpenAI sends, every event checked
against the spec's ``ResponseStreamEvent`` and read by the official SDK's event type."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from gridgate.errors import RateLimited, SupplierFailed, ValidationFailed
from gridgate.protocol.openai_content import ThinkingBlock
from gridgate.protocol.openai_responses.from_chat import response_from_completion
from gridgate.protocol.openai_responses.output import ResponseContext, response_context
from gridgate.protocol.openai_responses.reasoning import open_reasoning
from gridgate.protocol.openai_responses.request import decode_responses_request
from gridgate.protocol.openai_responses.stream import ResponseStreamEncoder, error_event
from gridgate.protocol.openai_responses.to_chat import to_chat_request
from gridgate.protocol.sse import SSEParser
from tests.openai_spec import OpenAISpec, load_spec
from tests.protocol.openai_responses.test_request import FUNCTION, NAMESPACE

EVENT: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
DONE = b"data: [DONE]\n\n"


@pytest.fixture(scope="module")
def spec() -> OpenAISpec:
    return load_spec()


def context_for(**fields: Any) -> ResponseContext:
    body = {"model": "m", "input": "hi", "stream": True, **fields}
    request = decode_responses_request(json.dumps(body).encode())
    return response_context(request, to_chat_request(request), response_id="resp_s", created_at=1)


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> bytes:
    choices = (
        [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish, **extra}]
    )
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "x",
        "choices": choices,
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def usage(prompt: int = 9, completion: int = 4) -> bytes:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "x",
        "choices": [],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def events(spec: OpenAISpec, raw: bytes) -> list[dict[str, Any]]:
    out = []
    for event in SSEParser().feed(raw):
        body = json.loads(event.data)
        assert event.event == body["type"]
        spec.check("ResponseStreamEvent", body)
        EVENT.validate_python(body)
        out.append(body)
    return out


def run(spec: OpenAISpec, context: ResponseContext, pieces: list[bytes]) -> list[dict[str, Any]]:
    encoder = ResponseStreamEncoder(context, clock=lambda: 7.5)
    raw = b"".join(encoder.feed(piece) for piece in pieces) + encoder.close()
    got = events(spec, raw)
    assert [e["sequence_number"] for e in got] == list(range(len(got)))
    assert encoder.ended
    return got


def test_a_text_answer(spec: OpenAISpec) -> None:
    pieces = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hel"}),
        chunk({"content": "lo."}),
        chunk({}, "stop"),
        usage(),
        DONE,
    ]
    got = run(spec, context_for(), pieces)
    assert [e["type"] for e in got] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert got[0]["response"]["status"] == "in_progress" and got[0]["response"]["output"] == []
    assert got[6]["text"] == "Hello." and got[8]["item"]["status"] == "completed"
    final = Response.model_validate(got[-1]["response"])
    assert final.output_text == "Hello." and final.completed_at == 7
    assert final.usage is not None and final.usage.total_tokens == 13


def test_reasoning_then_text_then_namespaced_calls(spec: OpenAISpec) -> None:
    context = context_for(tools=[FUNCTION, NAMESPACE], include=["reasoning.encrypted_content"])
    call = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "crm__find", "arguments": ""},
    }
    pieces = [
        chunk({"reasoning_content": "Let me "}),
        chunk({"reasoning_content": "look."}),
        chunk({"thinking_blocks": [{"type": "thinking", "thinking": "", "signature": "sig"}]}),
        chunk({"content": "Looking."}),
        chunk({"tool_calls": [call]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"q":'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 1,
                        "id": "call_2",
                        "function": {"name": "get_weather", "arguments": "{}"},
                    }
                ]
            }
        ),
        chunk({}, "tool_calls"),
        usage(),
        DONE,
    ]
    got = run(spec, context, pieces)
    assert [e["type"] for e in got][2:] == [
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    reasoning, message, first, second = got[-1]["response"]["output"]
    assert reasoning["summary"] == [{"type": "summary_text", "text": "Let me look."}]
    assert open_reasoning(reasoning["encrypted_content"]) == [
        ThinkingBlock(thinking="Let me look.", signature="sig")
    ]
    assert message["content"][0]["text"] == "Looking."
    assert (first["namespace"], first["name"], first["arguments"], first["call_id"]) == (
        "crm",
        "find",
        '{"q":1}',
        "call_1",
    )
    assert first["id"] == "fc_s_2" and second["name"] == "get_weather"
    done = [e for e in got if e["type"] == "response.function_call_arguments.done"]
    assert [e["name"] for e in done] == ["find", "get_weather"]


def test_the_stream_ends_as_the_whole_answer_would(spec: OpenAISpec) -> None:
    context = context_for()
    pieces = [chunk({"content": "Hi"}), chunk({"refusal": "No."}), chunk({}, "stop"), usage(), DONE]
    streamed = run(spec, context, pieces)[-1]["response"]
    whole = {
        "id": "c",
        "choices": [
            {"index": 0, "message": {"content": "Hi", "refusal": "No."}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 4},
    }
    plain = json.loads(
        response_from_completion(json.dumps(whole).encode(), context, completed_at=7)
    )
    assert streamed == plain


def test_a_cut_answer_is_incomplete(spec: OpenAISpec) -> None:
    got = run(spec, context_for(), [chunk({"content": "Hi"}), chunk({}, "length"), DONE])
    final = got[-1]
    assert final["type"] == "response.incomplete"
    assert final["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["response"]["output"][0]["status"] == "incomplete"
    assert "usage" not in final["response"]


def test_an_upstream_error_mid_stream_fails_the_response(spec: OpenAISpec) -> None:
    encoder = ResponseStreamEncoder(context_for(), clock=lambda: 0)
    first = events(spec, encoder.feed(chunk({"content": "Hi"})))
    assert first[-1]["type"] == "response.output_text.delta"  # relayed at once
    failure = b"data: " + SupplierFailed("the supplier broke").render() + b"\n\n"
    got = events(spec, encoder.feed(failure))
    assert [e["type"] for e in got] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.failed",
    ]
    response = got[-1]["response"]
    assert response["status"] == "failed"
    assert response["error"] == {"code": "server_error", "message": "the supplier broke"}
    assert response["output"][0]["status"] == "incomplete"
    assert encoder.ended and encoder.feed(DONE) == b"" and encoder.close() == b""


def test_fail_and_a_split_event(spec: OpenAISpec) -> None:
    encoder = ResponseStreamEncoder(context_for(), clock=lambda: 0)
    piece = chunk({"content": "Hi"})
    assert encoder.feed(piece[:10]) == b""
    assert events(spec, encoder.feed(piece[10:]))[-1]["delta"] == "Hi"
    got = events(spec, encoder.fail(RateLimited("slow down")))
    assert got[-1]["response"]["error"]["code"] == "rate_limit_exceeded"


def test_a_stream_cut_without_done_closes_as_if_done(spec: OpenAISpec) -> None:
    encoder = ResponseStreamEncoder(context_for(), clock=lambda: 0)
    raw = encoder.feed(chunk({"content": "Hi"})) + encoder.close()
    assert events(spec, raw)[-1]["type"] == "response.completed"


def test_error_event(spec: OpenAISpec) -> None:
    (got,) = events(
        spec, error_event(ValidationFailed("temperature: too hot", param="temperature"))
    )
    assert got == {
        "type": "error",
        "code": "invalid_request_error",
        "message": "temperature: too hot",
        "param": "temperature",
        "sequence_number": 0,
    }


@pytest.mark.parametrize("include", [[], ["reasoning.encrypted_content"]], ids=["plain", "include"])
def test_the_final_response_and_the_sealed_reasoning_are_kept_for_the_store(
    spec: OpenAISpec, include: list[str]
) -> None:
    """``response`` is the final event's response; ``sealed`` holds each reasoning item's
    signed blocks whether or not the events carry them (a stored answer keeps them)."""
    encoder = ResponseStreamEncoder(context_for(include=include), clock=lambda: 7.5)
    pieces = [
        chunk({"reasoning_content": "Hmm."}),
        chunk({"thinking_blocks": [{"type": "thinking", "thinking": "Hmm.", "signature": "s"}]}),
        chunk({"content": "Yes."}),
        chunk({}, "stop"),
        DONE,
    ]
    raw = b"".join(encoder.feed(piece) for piece in pieces)
    assert encoder.response is not None
    final = events(spec, raw)[-1]
    assert json.loads(msgspec.json.encode(encoder.response)) == final["response"]
    assert set(encoder.sealed) == {0}
    blocks = open_reasoning(encoder.sealed[0])
    assert blocks == [ThinkingBlock(thinking="Hmm.", signature="s")]
    carried = final["response"]["output"][0].get("encrypted_content")
    assert carried == (encoder.sealed[0] if include else None)


def test_a_failed_stream_keeps_its_failed_response() -> None:
    encoder = ResponseStreamEncoder(context_for(), clock=lambda: 7.5)
    encoder.feed(chunk({"content": "Hel"}))
    encoder.fail(SupplierFailed("upstream went away"))
    assert encoder.response is not None and encoder.response.status == "failed"
