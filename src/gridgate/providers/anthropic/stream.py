"""How an Anthropic event stream becomes canonical ``chat.completion.chunk`` events (pure).

Unknown stream event types are ignored, as Anthropic's versioning policy asks; ``ping`` makes
no chunk; an ``error`` event is the supplier's failure. Content blocks, stop reasons and usage
follow the answer's rules (``answer.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final, Literal

import msgspec

from gridgate.errors import SupplierFailed
from gridgate.protocol.openai_chat import ChatRequest
from gridgate.protocol.sse import SSEEvent
from gridgate.protocol.tokens import utf8_length
from gridgate.providers.anthropic.answer import (
    _estimated_usage,
    _finish_reason,
    _need,
    _prompt_tokens,
    _usage,
    _usage_document,
)
from gridgate.providers.anthropic.request import json_tool_name
from gridgate.providers.anthropic.wire import _encoder, _Event, _event_decoder, _Usage
from gridgate.providers.base import Chunk

_DONE_RAW: Final = b"data: [DONE]\n\n"
_CHUNK_TAIL: Final = b',"logprobs":null,"finish_reason":null}]}\n\n'


class _Open(msgspec.Struct):
    """A content block being streamed: what it is, and its tool call index if it is one."""

    kind: Literal["text", "thinking", "redacted_thinking", "tool", "json"]
    tool_index: int = -1


class StreamTranslator:
    """One Anthropic event stream → canonical ``chat.completion.chunk`` events, in order:
    a first chunk with the role, content / reasoning / thinking-block / tool-call chunks, the
    finish chunk (at ``message_delta``), then at ``message_stop`` a usage-only chunk and
    ``[DONE]``. ``feed`` raises ``SupplierFailed`` for an ``error`` event or a malformed one."""

    __slots__ = (
        "_blocks",
        "_finished",
        "_head",
        "_json_name",
        "_now",
        "_out_bytes",
        "_prompt_estimate",
        "_tools",
        "_usage",
        "_usage_reported",
        "done",
    )

    def __init__(
        self,
        *,
        request: ChatRequest,
        prompt_estimate: int,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._json_name = json_tool_name(request)
        self._prompt_estimate = prompt_estimate
        self._now = now
        self._head = b""  # ``data: {"id":…,"choices":[`` once message_start has come
        self._blocks: dict[int, _Open] = {}
        self._tools = 0  # tool calls started (the canonical tool call index)
        self._usage = _Usage()
        self._usage_reported = False  # a message_delta carried usage
        self._out_bytes = 0
        self._finished = False  # the finish chunk was made
        self.done = False  # message_stop: the answer is complete

    def feed(self, event: SSEEvent) -> list[Chunk]:
        try:
            parsed = _event_decoder.decode(event.data)
        except msgspec.DecodeError as exc:
            raise SupplierFailed("the supplier sent a malformed stream event") from exc
        match parsed.type:
            case "message_start":
                return self._start(parsed)
            case "content_block_start":
                return self._block_start(parsed)
            case "content_block_delta":
                return self._block_delta(parsed)
            case "content_block_stop":
                self._block(parsed)
                return []
            case "message_delta":
                return self._message_delta(parsed)
            case "message_stop":
                return self._stop()
            case "ping":
                return []
            case "error":
                kind = parsed.error.type if parsed.error is not None else "error"
                raise SupplierFailed(f"the supplier reported an error mid-stream ({kind})")
            case _:
                return []  # newer event types are to be ignored (Anthropic's versioning policy)

    # events --------------------------------------------------------------------------------
    def _start(self, event: _Event) -> list[Chunk]:
        if event.message is None:
            raise SupplierFailed("the supplier sent message_start without a message")
        if self._head:
            raise SupplierFailed("the supplier sent a second message_start")
        created = int(self._now())
        self._head = (
            b'data: {"id":'
            + _encoder.encode(event.message.id)
            + b',"object":"chat.completion.chunk","created":'
            + str(created).encode()
            + b',"model":'
            + _encoder.encode(event.message.model)
            + b',"choices":['
        )
        if event.message.usage is not None:
            self._update_usage(event.message.usage)
        # the prompt's count comes now: a stream cut before its end is charged it
        prompt = _prompt_tokens(event.message.usage)
        return [Chunk(raw=self._delta(b'{"role":"assistant","content":""}'), prompt_tokens=prompt)]

    def _block_start(self, event: _Event) -> list[Chunk]:
        self._check_started()
        block = event.content_block
        if block is None or event.index is None:
            raise SupplierFailed("the supplier sent content_block_start without a block")
        if event.index in self._blocks:
            raise SupplierFailed("the supplier started a content block twice")
        match block.type:
            case "text":
                self._blocks[event.index] = _Open("text")
                return [self._text(block.text)] if block.text else []
            case "thinking":
                self._blocks[event.index] = _Open("thinking")
                chunks = [self._reasoning(block.thinking)] if block.thinking else []
                if block.signature:
                    chunks.append(self._signature(block.signature))
                return chunks
            case "redacted_thinking":
                self._blocks[event.index] = _Open("redacted_thinking")
                data = _need(block.data, "redacted_thinking", "data")
                item = {"type": "redacted_thinking", "data": data}
                return [Chunk(raw=self._delta(_encoder.encode({"thinking_blocks": [item]})))]
            case "tool_use":
                name = _need(block.name, "tool_use", "name")
                start = _encoder.encode(block.input).decode() if block.input else ""
                if name == self._json_name:
                    self._blocks[event.index] = _Open("json")
                    return [self._text(start)] if start else []
                self._blocks[event.index] = _Open("tool", self._tools)
                self._tools += 1
                call = {
                    "index": self._tools - 1,
                    "id": _need(block.id, "tool_use", "id"),
                    "type": "function",
                    "function": {"name": name, "arguments": start},
                }
                size = utf8_length(name) + utf8_length(start)
                self._out_bytes += size
                raw = self._delta(_encoder.encode({"tool_calls": [call]}))
                return [Chunk(raw=raw, output_bytes=size, deltas=1)]
            case other:
                raise SupplierFailed(
                    f"the supplier sent an unsupported content block type {other!r}"
                )

    def _block_delta(self, event: _Event) -> list[Chunk]:
        self._check_started()
        opened = self._block(event)
        delta = event.delta
        if delta is None:
            raise SupplierFailed("the supplier sent content_block_delta without a delta")
        match (delta.type, opened.kind):
            case ("text_delta", "text"):
                return [self._text(delta.text)] if delta.text else []
            case ("input_json_delta", "json"):
                return [self._text(delta.partial_json)] if delta.partial_json else []
            case ("input_json_delta", "tool"):
                if not delta.partial_json:
                    return []
                fragment = delta.partial_json
                call = {"index": opened.tool_index, "function": {"arguments": fragment}}
                size = utf8_length(fragment)
                self._out_bytes += size
                raw = self._delta(_encoder.encode({"tool_calls": [call]}))
                return [Chunk(raw=raw, output_bytes=size, deltas=1)]
            case ("thinking_delta", "thinking"):
                return [self._reasoning(delta.thinking)] if delta.thinking else []
            case ("signature_delta", "thinking"):
                return [self._signature(delta.signature)] if delta.signature else []
            case ("citations_delta", "text"):
                return []  # gridgate never enables citations; the text carries the answer
            case (kind, block):
                raise SupplierFailed(f"the supplier sent a {kind!r} delta for a {block} block")

    def _message_delta(self, event: _Event) -> list[Chunk]:
        self._check_started()
        if event.usage is not None:
            self._update_usage(event.usage)
            self._usage_reported = self._usage_reported or event.usage.output_tokens is not None
        delta = event.delta
        stop_reason = delta.stop_reason if delta is not None else None
        if stop_reason is None or self._finished:
            return []
        self._finished = True
        finish = _finish_reason(stop_reason, self._tools > 0)
        choice: dict[str, Any] = {
            "index": 0,
            "delta": {},
            "logprobs": None,
            "finish_reason": finish,
        }
        if stop_reason == "stop_sequence" and delta is not None and delta.stop_sequence is not None:
            choice["stop_reason"] = delta.stop_sequence
        raw = self._head + _encoder.encode(choice) + b"]}\n\n"
        return [Chunk(raw=raw, finish_reason=finish)]

    def _stop(self) -> list[Chunk]:
        self._check_started()
        if not self._finished:
            raise SupplierFailed("the supplier's stream stopped without a stop reason")
        self.done = True
        usage = _usage(self._usage, self._out_bytes) if self._usage_reported else None
        if usage is None:
            usage = _estimated_usage(self._usage, self._prompt_estimate, self._out_bytes)
        raw = (
            self._head
            + b'],"usage":'
            + _encoder.encode(_usage_document(usage, self._usage))
            + b"}\n\n"
        )
        return [
            Chunk(raw=raw, usage=usage, usage_only=True),
            Chunk(raw=_DONE_RAW, done=True),
        ]

    # helpers ---------------------------------------------------------------------------------
    def _check_started(self) -> None:
        if not self._head:
            raise SupplierFailed("the supplier's stream did not start with message_start")
        if self.done:
            raise SupplierFailed("the supplier sent events after message_stop")

    def _block(self, event: _Event) -> _Open:
        opened = self._blocks.get(event.index) if event.index is not None else None
        if opened is None:
            raise SupplierFailed("the supplier sent an event for a content block it never started")
        return opened

    def _update_usage(self, raw: _Usage) -> None:
        """Anthropic's stream usage is cumulative: a field present replaces the earlier one."""
        usage = self._usage
        if raw.input_tokens is not None:
            usage.input_tokens = raw.input_tokens
        if raw.output_tokens is not None:
            usage.output_tokens = raw.output_tokens
        if raw.cache_creation_input_tokens is not None:
            usage.cache_creation_input_tokens = raw.cache_creation_input_tokens
        if raw.cache_read_input_tokens is not None:
            usage.cache_read_input_tokens = raw.cache_read_input_tokens
        if raw.output_tokens_details is not None:
            usage.output_tokens_details = raw.output_tokens_details

    def _delta(self, delta: bytes) -> bytes:
        return self._head + b'{"index":0,"delta":' + delta + _CHUNK_TAIL

    def _text(self, text: str) -> Chunk:
        size = utf8_length(text)
        self._out_bytes += size
        raw = self._delta(b'{"content":' + _encoder.encode(text) + b"}")
        return Chunk(raw=raw, output_bytes=size, deltas=1)

    def _reasoning(self, text: str) -> Chunk:
        size = utf8_length(text)
        self._out_bytes += size
        raw = self._delta(b'{"reasoning_content":' + _encoder.encode(text) + b"}")
        return Chunk(raw=raw, output_bytes=size, deltas=1)

    def _signature(self, signature: str) -> Chunk:
        item = {"type": "thinking", "thinking": "", "signature": signature}
        return Chunk(raw=self._delta(_encoder.encode({"thinking_blocks": [item]})))
