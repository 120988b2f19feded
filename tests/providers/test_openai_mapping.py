"""The OpenAI adapter's pure mappings, on payloads in OpenAI's published format."""

from __future__ import annotations

import json

import msgspec
import pytest

from gridgate.errors import SupplierFailed, SupplierTimeout, UpstreamRejected
from gridgate.protocol.openai_chat import decode_chat_request
from gridgate.protocol.sse import SSEParser
from gridgate.protocol.usage_cost import with_cost
from gridgate.providers.base import UpstreamCall, Usage, counted
from gridgate.providers.openai import map_request, map_response, map_stream_event, upstream_error
from gridgate.storage.records import OfferRecord, SupplierRecord

SUPPLIER = SupplierRecord(name="s", wire="openai", base_url="http://127.0.0.1:1/v1")
OFFER = OfferRecord(
    id="s/text-prime/up-model",
    supplier="s",
    instrument="text-prime",
    model="up-model",
    input_per_m=1,
    output_per_m=1,
    quality=40,
    context=200_000,
    max_output=64_000,
)

# as OpenAI documents a chat completion (trimmed of nothing that matters to metering)
COMPLETION = {
    "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
    "object": "chat.completion",
    "created": 1741569952,
    "model": "gpt-4.1-2025-04-14",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hello! How can I assist you today?",
                "refusal": None,
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 19,
        "completion_tokens": 10,
        "total_tokens": 29,
        "prompt_tokens_details": {"cached_tokens": 3, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 4,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
    "service_tier": "default",
}
STREAM = (
    b'data: {"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,'
    b'"model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,'
    b'"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],'
    b'"usage":null}\n\n'
    b'data: {"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,'
    b'"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,'
    b'"finish_reason":null}],"usage":null}\n\n'
    b'data: {"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,'
    b'"model":"gpt-4o-mini","choices":[{"index":0,"delta":{},"logprobs":null,'
    b'"finish_reason":"stop"}],"usage":null}\n\n'
    b'data: {"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,'
    b'"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,'
    b'"total_tokens":11,"completion_tokens_details":{"reasoning_tokens":0}}}\n\n'
    b"data: [DONE]\n\n"
)


def call(body: dict[str, object], *, stream: bool = False, cap: int = 100) -> UpstreamCall:
    request = decode_chat_request(json.dumps(body).encode())
    return UpstreamCall(
        supplier=SUPPLIER,
        offer=OFFER,
        request=request,
        max_output_tokens=cap,
        stream=stream,
        prompt_estimate=7,
    )


def test_a_zero_retention_supplier_is_sent_no_metadata_and_no_store_request() -> None:
    body = {
        "model": "text-prime",
        "messages": [{"role": "user", "content": "hi"}],
        "metadata": {"project": "x"},
        "store": True,
    }
    sent = json.loads(map_request(call(body)))  # SUPPLIER declares zero retention (the default)
    assert "metadata" not in sent and "store" not in sent
    assert json.loads(map_request(call({**body, "store": False})))["store"] is False
    keeps = UpstreamCall(
        supplier=msgspec.structs.replace(SUPPLIER, zero_retention=False),
        offer=OFFER,
        request=decode_chat_request(json.dumps(body).encode()),
        max_output_tokens=100,
        stream=False,
        prompt_estimate=7,
    )
    sent = json.loads(map_request(keeps))
    assert sent["metadata"] == {"project": "x"} and sent["store"] is True


def test_request_drops_gateway_fields_and_sets_model_and_cap() -> None:
    body = {
        "model": "Text-Prime",
        "messages": [{"role": "user", "content": "hi"}],
        "provider": {"order": ["x"]},
        "route": "fallback",
        "temperature": 0.5,
        "unknown_thing": 1,
    }
    sent = json.loads(map_request(call(body, cap=321)))
    assert sent == {
        "model": "up-model",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.5,
        "max_completion_tokens": 321,
    }


def test_request_keeps_the_callers_max_tokens_field() -> None:
    body = {
        "model": "text-prime",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 500,
    }
    assert json.loads(map_request(call(body, cap=200)))["max_tokens"] == 200


def test_streamed_request_always_asks_for_usage() -> None:
    body = {"model": "text-prime", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    sent = json.loads(map_request(call(body, stream=True)))
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


def test_response_usage_is_metered_and_the_body_forwarded_untouched() -> None:
    raw = json.dumps(COMPLETION).encode()
    completion = map_response(raw, prompt_estimate=1)
    assert completion.body is raw
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (19, 10)
    assert (completion.usage.reasoning_tokens, completion.usage.cached_tokens) == (4, 3)
    assert not completion.usage.estimated and completion.model == "gpt-4.1-2025-04-14"


def test_response_says_where_its_usage_ends_for_the_cost() -> None:
    """The adapter reads ``usage`` as it stands in the body: ``usage_at`` is its closing
    brace, where core writes ``usage.cost`` without reading the body again."""
    raw = json.dumps(COMPLETION, indent=2).encode()
    completion = map_response(raw, prompt_estimate=1)
    at = completion.usage_at
    spliced = with_cost(raw, "0.000000042", at)
    assert spliced == raw[:at] + b',"cost":"0.000000042"' + raw[at:]
    priced = json.loads(spliced)
    assert priced == {**COMPLETION, "usage": {**COMPLETION["usage"], "cost": "0.000000042"}}
    # a supplier's own cost: no place to splice (core replaces it the slow way)
    own = {**COMPLETION, "usage": {**COMPLETION["usage"], "cost": 0.5}}
    assert map_response(json.dumps(own).encode(), prompt_estimate=1).usage_at == -1
    escaped = json.dumps(own).replace('"cost"', '"co\\u0073t"').encode()
    assert b"co\\u0073t" in escaped
    assert map_response(escaped, prompt_estimate=1).usage_at == -1
    assert json.loads(with_cost(escaped, "0.000000042"))["usage"]["cost"] == "0.000000042"


@pytest.mark.parametrize("usage", [[1], "x", 3])
def test_a_usage_that_is_not_an_object_is_the_suppliers_fault(usage: object) -> None:
    with pytest.raises(SupplierFailed):
        map_response(json.dumps({**COMPLETION, "usage": usage}).encode(), prompt_estimate=1)


def test_response_without_usage_is_counted_and_marked_estimated() -> None:
    doc = {k: v for k, v in COMPLETION.items() if k != "usage"}
    completion = map_response(json.dumps(doc).encode(), prompt_estimate=12)
    assert completion.usage.estimated
    assert completion.usage.prompt_tokens == 12
    assert completion.usage.completion_tokens == -(-len(b"Hello! How can I assist you today?") // 4)
    assert (
        json.loads(completion.body)["usage"]["total_tokens"]
        == 12 + completion.usage.completion_tokens
    )


def test_response_whose_usage_counts_nothing_is_counted_and_marked_estimated() -> None:
    """Explicit zeros for an answer with text are no count: gridgate counts instead, keeping
    what the supplier did count."""
    zero = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    completion = map_response(
        json.dumps({**COMPLETION, "usage": zero}).encode(), prompt_estimate=12
    )
    output = -(-len(b"Hello! How can I assist you today?") // 4)
    usage = completion.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.estimated) == (12, output, True)
    assert json.loads(completion.body)["usage"]["total_tokens"] == 12 + output
    half = {"prompt_tokens": 19, "completion_tokens": 0, "total_tokens": 19}
    usage = map_response(
        json.dumps({**COMPLETION, "usage": half}).encode(), prompt_estimate=12
    ).usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.estimated) == (19, output, True)


def test_counted_keeps_a_real_count() -> None:
    real = Usage(prompt_tokens=8, completion_tokens=0)
    assert counted(real, prompt_estimate=3, out_bytes=0) is real  # an empty answer
    assert counted(None, prompt_estimate=3, out_bytes=9) == Usage(3, 3, estimated=True)
    assert counted(Usage(0, 5), prompt_estimate=3, out_bytes=40) == Usage(3, 5, estimated=True)


@pytest.mark.parametrize("body", [b"not json", b'{"choices": []}', b'{"id": 1}'])
def test_malformed_answers_are_the_suppliers_fault(body: bytes) -> None:
    with pytest.raises(SupplierFailed):
        map_response(body, prompt_estimate=1)


def test_stream_events_are_metered_and_forwarded() -> None:
    events = SSEParser().feed(STREAM)
    chunks = [map_stream_event(e, include_usage=True) for e in events]
    assert [c.raw for c in chunks] == [e.raw for e in events]
    assert chunks[1].output_bytes == 5
    assert chunks[2].finish_reason == "stop"
    assert chunks[3].usage_only and chunks[3].usage is not None
    assert chunks[3].usage.completion_tokens == 2
    assert chunks[4].done


def test_usage_null_is_dropped_when_the_caller_did_not_ask_for_usage() -> None:
    events = SSEParser().feed(STREAM)
    chunk = map_stream_event(events[1], include_usage=False)
    assert b"usage" not in chunk.raw
    assert json.loads(chunk.raw.removeprefix(b"data: "))["choices"][0]["delta"] == {
        "content": "Hello"
    }


def test_error_and_garbage_events_are_the_suppliers_fault() -> None:
    for raw in (b'data: {"error": {"message": "overloaded"}}\n\n', b"data: {garbage\n\n"):
        with pytest.raises(SupplierFailed):
            map_stream_event(SSEParser().feed(raw)[0], include_usage=True)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, UpstreamRejected),
        (422, UpstreamRejected),
        (413, UpstreamRejected),
        (401, SupplierFailed),
        (403, SupplierFailed),
        (404, SupplierFailed),
        (429, SupplierFailed),
        (500, SupplierFailed),
        (502, SupplierFailed),
        (503, SupplierFailed),
        (408, SupplierTimeout),
        (504, SupplierTimeout),
    ],
)
def test_upstream_status_is_split_into_caller_and_supplier_faults(
    status: int, kind: type[Exception]
) -> None:
    body = json.dumps(
        {"error": {"message": "context too long for sk-secret123", "type": "invalid_request_error"}}
    ).encode()
    error = upstream_error(status, body, secret="sk-secret123")
    assert type(error) is kind
    if isinstance(error, UpstreamRejected):
        assert error.http_status == status
        assert "sk-secret123" not in error.message and "[redacted]" in error.message
    else:
        assert "sk-secret123" not in error.message
