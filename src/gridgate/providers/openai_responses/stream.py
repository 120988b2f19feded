"""How a Responses API event stream becomes canonical ``chat.completion.chunk`` events (pure).

    response.created                      the role chunk (the head: id, created, model)
    response.output_item.added            function_call: a tool call header chunk (index, id =
                                          call_id, name, the arguments so far)
    response.output_text.delta            content
    response.refusal.delta                refusal
    response.function_call_arguments.delta  the tool call's arguments
    response.reasoning_summary_text.delta reasoning_content (summary parts after the first are
    response.reasoning_text.delta           preceded by a blank line, as in the plain answer)
    response.output_item.done             reasoning: a thinking_blocks chunk sealing the item
                                          (its encrypted_content is final only here);
                                          function_call: any arguments not yet streamed
    response.completed / .incomplete      the finish chunk, a usage-only chunk, ``[DONE]``
    response.failed, error                the supplier's failure (what came before is relayed)

Every other event (in_progress, content_part.*, *.done, annotations…) makes no chunk. Newer
event types are ignored; a hosted tool's output item is the supplier's failure, as in the
plain answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final

import msgspec

from gridgate.errors import SupplierFailed
from gridgate.protocol.sse import SSEEvent
from gridgate.protocol.tokens import utf8_length
from gridgate.providers.base import Chunk, Usage, counted
from gridgate.providers.openai_responses.answer import (
    WireResponse,
    failure_of,
    finish_reason,
    usage_document,
    usage_of,
)
from gridgate.providers.openai_responses.reasoning import thinking_block

_DONE_RAW: Final = b"data: [DONE]\n\n"
_CHUNK_TAIL: Final = b',"logprobs":null,"finish_reason":null}]}\n\n'
_encoder: Final = msgspec.json.Encoder()


class _Event(msgspec.Struct):
    type: str
    response: WireResponse | None = None
    item: dict[str, Any] | None = None
    output_index: int | None = None
    item_id: str | None = None
    delta: str | None = None
    summary_index: int | None = None
    code: str | None = None
    message: str | None = None


_event_decoder: Final = msgspec.json.Decoder(_Event)


class StreamTranslator:
    """One Responses event stream → canonical chunks; ``feed`` raises ``SupplierFailed`` for a
    ``response.failed`` / ``error`` event or a malformed one. ``done`` once it finished."""

    __slots__ = (
        "_arguments",
        "_head",
        "_now",
        "_out_bytes",
        "_prompt_estimate",
        "_reasoned",
        "_tools",
        "done",
    )

    def __init__(self, *, prompt_estimate: int, now: Callable[[], float] = time.time) -> None:
        self._prompt_estimate = prompt_estimate
        self._now = now
        self._head = b""
        self._tools: dict[int, int] = {}  # output_index → canonical tool call index
        self._arguments: dict[int, str] = {}  # output_index → the arguments streamed so far
        self._reasoned: set[tuple[int, int]] = set()  # (output_index, summary part) started
        self._out_bytes = 0
        self.done = False

    def feed(self, event: SSEEvent) -> list[Chunk]:
        try:
            parsed = _event_decoder.decode(event.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise SupplierFailed("the supplier sent a malformed stream event") from exc
        kind = parsed.type
        if kind == "error":
            raise SupplierFailed(
                f"the supplier reported an error mid-stream ({parsed.code or 'error'})"
            )
        if kind == "response.failed":
            if parsed.response is None:
                raise SupplierFailed("the supplier's response failed")
            raise failure_of(parsed.response)
        if kind == "response.created":
            return self._start(parsed)
        if not self._head:
            if kind == "response.in_progress" and parsed.response is not None:
                return self._start(parsed)
            raise SupplierFailed("the supplier's stream did not start with response.created")
        if self.done:
            raise SupplierFailed("the supplier sent events after the response finished")
        match kind:
            case "response.output_text.delta":
                return [self._text("content", parsed.delta)] if parsed.delta else []
            case "response.refusal.delta":
                return [self._text("refusal", parsed.delta)] if parsed.delta else []
            case "response.reasoning_summary_text.delta" | "response.reasoning_text.delta":
                return self._reasoning(parsed)
            case "response.function_call_arguments.delta":
                return self._arguments_delta(parsed)
            case "response.output_item.added":
                return self._item_added(parsed)
            case "response.output_item.done":
                return self._item_done(parsed)
            case "response.completed" | "response.incomplete":
                return self._finish(parsed)
            case _:
                return []

    # events ------------------------------------------------------------------------------------
    def _start(self, event: _Event) -> list[Chunk]:
        response = event.response
        if response is None:
            raise SupplierFailed("the supplier sent response.created without a response")
        if self._head:
            return []  # response.in_progress after response.created
        created = response.created_at if response.created_at is not None else self._now()
        self._head = (
            b'data: {"id":'
            + _encoder.encode(response.id)
            + b',"object":"chat.completion.chunk","created":'
            + str(int(created)).encode()
            + b',"model":'
            + _encoder.encode(response.model)
            + b',"choices":['
        )
        return [Chunk(raw=self._delta(b'{"role":"assistant","content":""}'))]

    def _item_added(self, event: _Event) -> list[Chunk]:
        item = self._item(event)
        kind = item.get("type")
        if kind in ("message", "reasoning"):
            return []
        if kind != "function_call":
            raise SupplierFailed(f"the supplier sent an unsupported output item type {kind!r}")
        index = self._index(event)
        call_id, name = item.get("call_id"), item.get("name")
        if not isinstance(call_id, str) or not isinstance(name, str):
            raise SupplierFailed("the supplier sent a function_call item without call_id or name")
        arguments = item.get("arguments")
        start = arguments if isinstance(arguments, str) else ""
        self._tools[index] = len(self._tools)
        self._arguments[index] = start
        call = {
            "index": self._tools[index],
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": start},
        }
        return [self._counted({"tool_calls": [call]}, utf8_length(name) + utf8_length(start))]

    def _arguments_delta(self, event: _Event) -> list[Chunk]:
        index = self._index(event)
        if index not in self._tools:
            raise SupplierFailed("the supplier sent arguments for a function call it never added")
        if not event.delta:
            return []
        self._arguments[index] += event.delta
        call = {"index": self._tools[index], "function": {"arguments": event.delta}}
        return [self._counted({"tool_calls": [call]}, utf8_length(event.delta))]

    def _reasoning(self, event: _Event) -> list[Chunk]:
        if not event.delta:
            return []
        part = (self._index(event), event.summary_index or 0)
        text = event.delta
        if part not in self._reasoned:
            if self._reasoned:
                text = "\n\n" + text  # parts are joined by a blank line, as in the plain answer
            self._reasoned.add(part)
        return [self._text("reasoning_content", text)]

    def _item_done(self, event: _Event) -> list[Chunk]:
        item = self._item(event)
        kind = item.get("type")
        if kind == "reasoning":
            if not isinstance(item.get("id"), str):
                raise SupplierFailed("the supplier sent a reasoning item without id")
            block = thinking_block(item, with_text=False)
            return [Chunk(raw=self._delta(_encoder.encode({"thinking_blocks": [block]})))]
        if kind == "function_call":
            index = self._index(event)
            streamed = self._arguments.get(index)
            arguments = item.get("arguments")
            if streamed is None or not isinstance(arguments, str):
                raise SupplierFailed("the supplier finished a function call it never added")
            if len(arguments) > len(streamed) and arguments.startswith(streamed):
                rest = arguments[len(streamed) :]
                self._arguments[index] = arguments
                call = {"index": self._tools[index], "function": {"arguments": rest}}
                return [self._counted({"tool_calls": [call]}, utf8_length(rest))]
        return []

    def _finish(self, event: _Event) -> list[Chunk]:
        response = event.response
        if response is None:
            raise SupplierFailed(f"the supplier sent {event.type} without a response")
        finish = finish_reason(response, bool(self._tools))
        self.done = True
        choice = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish}
        usage: Usage = counted(
            usage_of(response.usage),
            prompt_estimate=self._prompt_estimate,
            out_bytes=self._out_bytes,
        )
        usage_raw = self._head + b'],"usage":' + _encoder.encode(usage_document(usage)) + b"}\n\n"
        return [
            Chunk(raw=self._head + _encoder.encode(choice) + b"]}\n\n", finish_reason=finish),
            Chunk(raw=usage_raw, usage=usage, usage_only=True),
            Chunk(raw=_DONE_RAW, done=True),
        ]

    # helpers -----------------------------------------------------------------------------------
    def _item(self, event: _Event) -> dict[str, Any]:
        if event.item is None:
            raise SupplierFailed(f"the supplier sent {event.type} without an item")
        return event.item

    def _index(self, event: _Event) -> int:
        if event.output_index is None:
            raise SupplierFailed(f"the supplier sent {event.type} without output_index")
        return event.output_index

    def _delta(self, delta: bytes) -> bytes:
        return self._head + b'{"index":0,"delta":' + delta + _CHUNK_TAIL

    def _text(self, key: str, text: str) -> Chunk:
        return self._counted({key: text}, utf8_length(text))

    def _counted(self, delta: dict[str, Any], size: int) -> Chunk:
        self._out_bytes += size
        return Chunk(raw=self._delta(_encoder.encode(delta)), output_bytes=size, deltas=1)
