"""The streamed Messages answer: Anthropic's SSE events, as chunks for the shared sender.

Event order, as api.anthropic.com sends it (``event: <type>\\ndata: <json>\\n\\n``)::

    message_start        the message with empty content, stop_reason null, usage with the
                         input and cache counts and an early output_tokens (1)
    ping
    per content block (index 0, 1, …; thinking, text, tool_use as in the plain answer):
      content_block_start   {"type": "thinking", "thinking": "", "signature": ""}
                            | {"type": "text", "text": ""}
                            | {"type": "tool_use", "id", "name", "input": {}}
      content_block_delta   thinking_delta per token, then one signature_delta
                            | text_delta per token | input_json_delta per argument fragment
      content_block_stop
    message_delta        {"stop_reason", "stop_sequence"} and the cumulative usage
    message_stop

Pacing steps mirror the OpenAI stream (:mod:`.stream`): token ``k`` is due at
``ttft + k / tokens_per_second``, a tool's name counts as one token, and the events that close
a block or the message leave with its last token.
"""

from __future__ import annotations

from typing import Any

import msgspec

from gridgate.simulator.anthropic_ids import tool_use_id
from gridgate.simulator.anthropic_response import (
    MessageUsage,
    stop_reason,
    thinking_block,
)
from gridgate.simulator.completion import Completion
from gridgate.simulator.signature import ThinkingSigner
from gridgate.simulator.stream import Chunk

_encode = msgspec.json.Encoder().encode
GARBAGE = (
    b"event: content_block_delta\n"
    b'data: {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": \n\n'
)
_PING = b'event: ping\ndata: {"type": "ping"}\n\n'
_MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + _encode(data) + b"\n\n"


def _start(index: int, block: dict[str, Any]) -> bytes:
    return _event(
        "content_block_start",
        {"type": "content_block_start", "index": index, "content_block": block},
    )


def _delta(index: int, delta: dict[str, Any]) -> bytes:
    return _event(
        "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
    )


def _stop(index: int) -> bytes:
    return _event("content_block_stop", {"type": "content_block_stop", "index": index})


def message_events(
    completion: Completion,
    *,
    message_id: str,
    model: str,
    signer: ThinkingSigner,
    usage: MessageUsage,
) -> list[Chunk]:
    """Every event of the answer in sending order, ``message_stop`` last."""
    choice = completion.choices[0]
    message: dict[str, Any] = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage.body(output_tokens=min(1, usage.output_tokens)),
    }
    chunks = [
        Chunk(0, _event("message_start", {"type": "message_start", "message": message})),
        Chunk(0, _PING),
    ]
    step = 0
    index = 0
    thinking = thinking_block(choice, signer)
    if thinking is not None:
        chunks.append(
            Chunk(step, _start(index, {"type": "thinking", "thinking": "", "signature": ""}))
        )
        for token in choice.reasoning:
            chunks.append(Chunk(step, _delta(index, {"type": "thinking_delta", "thinking": token})))
            step += 1
        signature = {"type": "signature_delta", "signature": thinking["signature"]}
        chunks.append(Chunk(step - 1, _delta(index, signature)))
        chunks.append(Chunk(step - 1, _stop(index)))
        index += 1
    if choice.text:
        chunks.append(Chunk(step, _start(index, {"type": "text", "text": ""})))
        head = (
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,'
            b'"delta":{"type":"text_delta","text":' % index
        )
        for token in choice.content or ():
            chunks.append(Chunk(step, head + _encode(token) + b"}}\n\n"))
            step += 1
        chunks.append(Chunk(step - 1, _stop(index)))
        index += 1
    for call in choice.tool_calls:
        block = {"type": "tool_use", "id": tool_use_id(call.id), "name": call.name, "input": {}}
        chunks.append(Chunk(step, _start(index, block)))
        step += 1  # the name is a token
        for fragment in call.fragments:
            delta = {"type": "input_json_delta", "partial_json": fragment}
            chunks.append(Chunk(step, _delta(index, delta)))
            step += 1
        chunks.append(Chunk(step - 1, _stop(index)))
        index += 1
    end = max(step - 1, 0)
    reason, sequence = stop_reason(choice)
    end_delta: dict[str, Any] = {
        "type": "message_delta",
        "delta": {"stop_reason": reason, "stop_sequence": sequence},
        "usage": usage.cumulative(),
    }
    chunks.append(Chunk(end, _event("message_delta", end_delta)))
    chunks.append(Chunk(end, _MESSAGE_STOP))
    return chunks
