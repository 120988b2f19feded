"""The Responses API answer: the whole ``Response`` and its event stream, from a planned choice.

Output items, in order: ``reasoning`` (when reasoning was planned: its summary shows the
reasoning text only when ``reasoning.summary`` asked for one; ``encrypted_content`` when
``include`` asked for it, :func:`.responses_request.seal_reasoning`), ``message`` (one
``output_text`` part; left out for tool calls), ``function_call`` per planned call.

Status: ``completed``, or ``incomplete`` with ``incomplete_details.reason =
"max_output_tokens"`` when max tokens cut the answer. Usage: ``input_tokens``,
``output_tokens`` (reasoning included), ``output_tokens_details.reasoning_tokens``,
``input_tokens_details.cached_tokens`` (0); left out under the ``no_usage`` fault (the
spec's ``usage`` is not nullable), as before the response is complete.

Event order, as OpenAI streams it (``event: <type>\\ndata: <json>\\n\\n``, ``sequence_number``
from 0)::

    response.created, response.in_progress          the response, in_progress, no output
    reasoning:  output_item.added, reasoning_summary_part.added, reasoning_summary_text.delta
                per token, reasoning_summary_text.done, reasoning_summary_part.done,
                output_item.done (with encrypted_content)
    message:    output_item.added, content_part.added, output_text.delta per token,
                output_text.done, content_part.done, output_item.done
    per call:   output_item.added, function_call_arguments.delta per fragment,
                function_call_arguments.done, output_item.done
    response.completed | response.incomplete        the whole response, with usage

Pacing steps mirror the other wires: a token per step, a tool's name one token.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import msgspec

from gridgate.simulator.completion import Choice, Completion
from gridgate.simulator.responses_request import ResponsesRequest, seal_reasoning
from gridgate.simulator.signature import ThinkingSigner
from gridgate.simulator.stream import Chunk

_encode = msgspec.json.Encoder().encode
GARBAGE = (
    b"event: response.output_text.delta\n"
    b'data: {"type": "response.output_text.delta", "item_id": "msg_garbage", "delta": \n\n'
)


def _id(prefix: str) -> str:
    return f"{prefix}_{os.urandom(24).hex()}"


def usage_body(completion: Completion) -> dict[str, Any]:
    choice = completion.choices[0]
    return {
        "input_tokens": completion.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": choice.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": len(choice.reasoning)},
        "total_tokens": completion.prompt_tokens + choice.completion_tokens,
    }


@dataclass(slots=True)
class ResponseShape:
    """One answer's ids and the fields every rendering of it shares."""

    ask: ResponsesRequest
    completion: Completion
    signer: ThinkingSigner
    created_at: int
    usage: bool = True
    response_id: str = field(default_factory=lambda: _id("resp"))
    reasoning_id: str = field(default_factory=lambda: _id("rs"))
    message_id: str = field(default_factory=lambda: _id("msg"))
    call_ids: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.call_ids = [_id("fc") for _ in self.choice.tool_calls]

    @property
    def choice(self) -> Choice:
        return self.completion.choices[0]

    @property
    def incomplete(self) -> bool:
        return self.choice.finish_reason == "length"

    def summary_text(self) -> str | None:
        """The reasoning summary's text (None: no summary part)."""
        choice = self.choice
        return "".join(choice.reasoning) if self.ask.summary and choice.reasoning else None

    def reasoning_item(self, *, done: bool = True) -> dict[str, Any]:
        text = self.summary_text()
        summary = [{"type": "summary_text", "text": text}] if text is not None and done else []
        sealed = None
        if self.ask.encrypted and done:
            sealed = seal_reasoning(self.signer, self.reasoning_id, "".join(self.choice.reasoning))
        return {
            "id": self.reasoning_id,
            "type": "reasoning",
            "summary": summary,
            "encrypted_content": sealed,
        }

    def message_item(self, *, done: bool = True) -> dict[str, Any]:
        part = {
            "type": "output_text",
            "text": self.choice.text or "",
            "annotations": [],
            "logprobs": [],
        }
        status = ("incomplete" if self.incomplete else "completed") if done else "in_progress"
        return {
            "id": self.message_id,
            "type": "message",
            "status": status,
            "role": "assistant",
            "content": [part] if done else [],
        }

    def call_item(self, position: int, *, done: bool = True) -> dict[str, Any]:
        call = self.choice.tool_calls[position]
        return {
            "id": self.call_ids[position],
            "type": "function_call",
            "status": "completed" if done else "in_progress",
            "call_id": call.id,
            "name": call.name,
            "arguments": call.arguments if done else "",
        }

    def output(self) -> list[dict[str, Any]]:
        items = []
        if self.choice.reasoning:
            items.append(self.reasoning_item())
        if self.choice.content is not None:
            items.append(self.message_item())
        items.extend(self.call_item(p) for p in range(len(self.choice.tool_calls)))
        return items

    def response(self, *, final: bool) -> dict[str, Any]:
        status = "in_progress"
        if final:
            status = "incomplete" if self.incomplete else "completed"
        body: dict[str, Any] = {
            "id": self.response_id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": False,
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"}
            if final and self.incomplete
            else None,
            "model": self.ask.chat.model,
            "output": self.output() if final else [],
            "previous_response_id": None,
            "service_tier": "default",
            "truncation": "disabled",
            **self.ask.echo,
        }
        if final and self.usage:
            body["usage"] = usage_body(self.completion)
        return body


def response_body(shape: ResponseShape) -> bytes:
    return _encode(shape.response(final=True))


class _Events:
    """Numbers the events of one stream."""

    def __init__(self) -> None:
        self.chunks: list[Chunk] = []

    def add(self, step: int, kind: str, **fields: Any) -> None:
        data = {"type": kind, "sequence_number": len(self.chunks), **fields}
        self.chunks.append(
            Chunk(step, b"event: " + kind.encode() + b"\ndata: " + _encode(data) + b"\n\n")
        )


def response_events(shape: ResponseShape) -> list[Chunk]:
    """Every event of the answer in sending order, the final ``response.*`` last."""
    events = _Events()
    events.add(0, "response.created", response=shape.response(final=False))
    events.add(0, "response.in_progress", response=shape.response(final=False))
    choice = shape.choice
    step = 0
    index = 0
    if choice.reasoning:
        step = _reasoning_events(events, shape, index, step)
        index += 1
    if choice.content is not None:
        step = _message_events(events, shape, index, step)
        index += 1
    for position, call in enumerate(choice.tool_calls):
        item_id = shape.call_ids[position]
        where = {"item_id": item_id, "output_index": index}
        events.add(
            step,
            "response.output_item.added",
            output_index=index,
            item=shape.call_item(position, done=False),
        )
        step += 1  # the name is a token
        for fragment in call.fragments:
            events.add(step, "response.function_call_arguments.delta", **where, delta=fragment)
            step += 1
        events.add(
            step - 1,
            "response.function_call_arguments.done",
            **where,
            name=call.name,
            arguments=call.arguments,
        )
        events.add(
            step - 1,
            "response.output_item.done",
            output_index=index,
            item=shape.call_item(position),
        )
        index += 1
    end = max(step - 1, 0)
    kind = "response.incomplete" if shape.incomplete else "response.completed"
    events.add(end, kind, response=shape.response(final=True))
    return events.chunks


def _reasoning_events(events: _Events, shape: ResponseShape, index: int, step: int) -> int:
    where = {"item_id": shape.reasoning_id, "output_index": index}
    events.add(
        step,
        "response.output_item.added",
        output_index=index,
        item=shape.reasoning_item(done=False),
    )
    text = shape.summary_text()
    if text is None:
        step += len(shape.choice.reasoning)  # thought, not shown
    else:
        part = {"type": "summary_text", "text": ""}
        events.add(
            step, "response.reasoning_summary_part.added", **where, summary_index=0, part=part
        )
        for token in shape.choice.reasoning:
            events.add(
                step, "response.reasoning_summary_text.delta", **where, summary_index=0, delta=token
            )
            step += 1
        events.add(
            step - 1, "response.reasoning_summary_text.done", **where, summary_index=0, text=text
        )
        done_part = {"type": "summary_text", "text": text}
        events.add(
            step - 1,
            "response.reasoning_summary_part.done",
            **where,
            summary_index=0,
            part=done_part,
        )
    events.add(
        step - 1, "response.output_item.done", output_index=index, item=shape.reasoning_item()
    )
    return step


def _message_events(events: _Events, shape: ResponseShape, index: int, step: int) -> int:
    where = {"item_id": shape.message_id, "output_index": index, "content_index": 0}
    events.add(
        step, "response.output_item.added", output_index=index, item=shape.message_item(done=False)
    )
    empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    events.add(step, "response.content_part.added", **where, part=empty)
    for token in shape.choice.content or ():
        events.add(step, "response.output_text.delta", **where, delta=token, logprobs=[])
        step += 1
    last = max(step - 1, 0)
    text = shape.choice.text or ""
    events.add(last, "response.output_text.done", **where, text=text, logprobs=[])
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    events.add(last, "response.content_part.done", **where, part=part)
    events.add(last, "response.output_item.done", output_index=index, item=shape.message_item())
    return step


def error_event(sequence_number: int, status: int, message: str, code: str | None) -> bytes:
    """The mid-stream ``error`` event; nothing follows it. The spec's fields (``code``,
    ``message``, ``param``) and, as OpenAI sends it, the same in an ``error`` object, which is
    what the OpenAI SDK raises on."""
    error = {
        "type": "server_error" if status >= 500 else "invalid_request_error",
        "code": code or ("server_error" if status >= 500 else "invalid_request_error"),
        "message": message,
        "param": None,
    }
    data = {
        "type": "error",
        "code": error["code"],
        "message": message,
        "param": None,
        "sequence_number": sequence_number,
        "error": error,
    }
    return b"event: error\ndata: " + _encode(data) + b"\n\n"
