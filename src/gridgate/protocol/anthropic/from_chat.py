"""Canonical answers → the Anthropic Messages wire (the response side of ``POST /v1/messages``).

Core answers in the canonical form (contract-issue5): an OpenAI ``chat.completion`` body, or
``chat.completion.chunk`` SSE events ending in ``data: [DONE]`` (or in core's error event), with
gridgate's extensions (``reasoning_content``, ``thinking_blocks``, a choice's string
``stop_reason``, ``prompt_tokens_details.cache_write_tokens``). This module turns them into
Anthropic's ``message`` object and its event stream, with no I/O:

    message_start ─► ping ─► ( content_block_start ─► content_block_delta* ─► content_block_stop )*
      ─► message_delta (stop reason, cumulative usage) ─► message_stop
    or, once anything was sent: error, and nothing after it

Only choice 0 is read: the Anthropic surface always asks for one choice.

Where the contract is silent, the choices are (each says why):

- Tool arguments that are not a JSON object (invalid JSON from an answer cut at its max tokens,
  or a bare value from a confused model) become ``"input": {}`` in a plain message: Anthropic's
  ``input`` is always an object, and the ``max_tokens`` stop reason tells the caller the call
  is incomplete. A stream relays argument fragments as they come (``input_json_delta``), like
  Anthropic's fine-grained tool streaming, which also ends cut calls mid-JSON.
- A ``refusal`` (OpenAI's refusal text) becomes text: Anthropic has no refusal block, and the
  caller should see why nothing else came.
- ``finish_reason`` ``"stop"`` (without a stop sequence), missing or unknown, on an answer that
  called tools, reports ``tool_use``: some OpenAI-compatible servers report ``stop`` there, and
  Anthropic clients run their tool loop on ``stop_reason == "tool_use"``. Otherwise a missing or
  unknown finish reports ``end_turn``.
- A stream that carried no usage reports ``output_tokens`` counted from the relayed text the
  way core meters it (``tokens_for_bytes``), and no ``input_tokens`` in ``message_delta`` (the
  ``message_start`` estimate stands). ``message_start`` reports ``output_tokens: 1``, as
  Anthropic does: the supplier has begun to answer.
- A tool-call fragment for a call whose block was closed (a supplier interleaving parallel
  calls) goes to that call's block index: Anthropic blocks cannot be reopened, and dropping the
  fragment would lose the call's input (the SDK accumulates by index).
- Error types: the OpenAI ``type`` of core's error event maps to Anthropic's (see
  ``anthropic_error_type``); what has no counterpart is ``api_error``.
"""

from __future__ import annotations

import uuid
from typing import Any, Final, Literal

import msgspec

from gridgate.errors import GridgateError
from gridgate.protocol.sse import SSEParser
from gridgate.protocol.tokens import tokens_for_bytes, utf8_length

__all__ = [
    "MessageStreamEncoder",
    "anthropic_error_type",
    "error_event",
    "message_from_completion",
    "stop_reason_for",
]


# -- the canonical wire, read side: only what the mapping needs ---------------------------------
class _Function(msgspec.Struct, gc=False):
    name: str | None = None
    arguments: str | None = None


class _ToolCall(msgspec.Struct, gc=False):
    index: int = 0
    id: str | None = None
    function: _Function | None = None


class _ReasoningBlock(msgspec.Struct, gc=False):
    type: Literal["thinking", "redacted_thinking"] = "thinking"
    thinking: str | None = None
    signature: str | None = None
    data: str | None = None


class _Message(msgspec.Struct, gc=False):
    """A plain answer's ``message``, or a chunk's ``delta``."""

    content: str | None = None
    reasoning_content: str | None = None
    refusal: str | None = None
    tool_calls: list[_ToolCall] | None = None
    thinking_blocks: list[_ReasoningBlock] | None = None


class _PromptDetails(msgspec.Struct, gc=False):
    cached_tokens: int | None = None
    cache_write_tokens: int | None = None


class _Usage(msgspec.Struct, gc=False):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_tokens_details: _PromptDetails | None = None
    cost: str | None = None  # what the answer was charged (core's ``usage.cost``)


class _Choice(msgspec.Struct, gc=False):
    message: _Message | None = None
    finish_reason: str | None = None
    stop_reason: str | int | None = None  # vLLM's: the stop string, or a stop token id


class _Completion(msgspec.Struct, gc=False):
    id: str
    choices: list[_Choice]
    usage: _Usage | None = None


class _StreamChoice(msgspec.Struct, gc=False):
    index: int = 0
    delta: _Message | None = None
    finish_reason: str | None = None
    stop_reason: str | int | None = None


class _ErrorObject(msgspec.Struct, gc=False):
    message: str = ""
    type: str | None = None


class _StreamEvent(msgspec.Struct, gc=False):
    """A chunk, a usage chunk, or core's error event."""

    id: str | None = None
    choices: list[_StreamChoice] = []
    usage: _Usage | None = None
    error: _ErrorObject | None = None


_completion_decoder: Final = msgspec.json.Decoder(_Completion)
_event_decoder: Final = msgspec.json.Decoder(_StreamEvent)
_object_decoder: Final = msgspec.json.Decoder(dict[str, Any])


# -- the Anthropic wire, write side ---------------------------------------------------------------
class _TextBlock(msgspec.Struct, tag_field="type", tag="text"):
    text: str


class _ThinkingBlock(msgspec.Struct, tag_field="type", tag="thinking"):
    thinking: str
    signature: str


class _RedactedThinkingBlock(msgspec.Struct, tag_field="type", tag="redacted_thinking"):
    data: str


class _ToolUseBlock(msgspec.Struct, tag_field="type", tag="tool_use"):
    id: str
    name: str
    input: dict[str, Any]


_Block = _TextBlock | _ThinkingBlock | _RedactedThinkingBlock | _ToolUseBlock


class _MessageUsage(msgspec.Struct, omit_defaults=True):
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    cost: str | None = None  # gridgate's: USD charged, a decimal string (9 places)


class _AnthropicMessage(msgspec.Struct, tag_field="type", tag="message"):
    id: str
    role: Literal["assistant"]
    model: str
    content: list[_Block]
    stop_reason: str | None
    stop_sequence: str | None
    usage: _MessageUsage


class _MessageStart(msgspec.Struct, tag_field="type", tag="message_start"):
    message: _AnthropicMessage


_encode: Final = msgspec.json.Encoder().encode

_DONE: Final = b"[DONE]"
_PING: Final = b'event: ping\ndata: {"type":"ping"}\n\n'
_MESSAGE_STOP: Final = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'

#: OpenAI error ``type`` → Anthropic error ``type`` (the pairs gridgate's error tree declares).
_ERROR_TYPES: Final = {
    "invalid_request_error": "invalid_request_error",
    "authentication_error": "authentication_error",
    "permission_error": "permission_error",
    "not_found_error": "not_found_error",
    "rate_limit_error": "rate_limit_error",
    "insufficient_quota": "billing_error",
    "service_unavailable": "overloaded_error",
    "timeout_error": "timeout_error",
}

_Kind = Literal["text", "thinking", "tool_use"]


# -- shared rules ----------------------------------------------------------------------------------
def stop_reason_for(
    finish_reason: str | None, stop_reason: str | int | None, *, called_tools: bool
) -> tuple[str, str | None]:
    """Anthropic's ``(stop_reason, stop_sequence)`` for a canonical finish (contract table; the
    module docstring says why ``called_tools`` matters)."""
    if finish_reason == "length":
        return "max_tokens", None
    if finish_reason in ("tool_calls", "function_call"):
        return "tool_use", None
    if finish_reason == "content_filter":
        return "refusal", None
    if finish_reason == "stop" and isinstance(stop_reason, str):
        return "stop_sequence", stop_reason
    if called_tools:
        return "tool_use", None
    return "end_turn", None


def anthropic_error_type(openai_type: str | None) -> str:
    """The Anthropic error ``type`` for an OpenAI one; ``api_error`` when there is no
    counterpart (``api_error``, ``upstream_error``, anything unknown)."""
    return _ERROR_TYPES.get(openai_type or "", "api_error")


def error_event(error: GridgateError) -> bytes:
    """An Anthropic ``error`` SSE event for a gridgate error (for a stream that has to end on a
    failure of its own, outside the canonical stream)."""
    return b"event: error\ndata: " + _encode(error.anthropic_body()) + b"\n\n"


def _message_id(canonical: str | None) -> str:
    if not canonical:
        return "msg_" + uuid.uuid4().hex
    return canonical if canonical.startswith("msg_") else "msg_" + canonical


def _tool_id(canonical: str | None) -> str:
    return canonical if canonical else "toolu_" + uuid.uuid4().hex[:24]


def _usage(usage: _Usage | None) -> _MessageUsage:
    """Anthropic usage from canonical: ``input_tokens`` is the uncached rest of the prompt."""
    if usage is None:
        return _MessageUsage(0, 0, 0, 0)
    details = usage.prompt_tokens_details
    read = (details.cached_tokens or 0) if details else 0
    write = (details.cache_write_tokens or 0) if details else 0
    return _MessageUsage(
        input_tokens=max(usage.prompt_tokens - read - write, 0),
        output_tokens=usage.completion_tokens,
        cache_creation_input_tokens=write,
        cache_read_input_tokens=read,
        cost=usage.cost,
    )


def _tool_input(arguments: str | None) -> dict[str, Any]:
    """Parsed tool arguments; ``{}`` when they are not a JSON object (see the module docstring)."""
    if not arguments:
        return {}
    try:
        return _object_decoder.decode(arguments)
    except msgspec.DecodeError:
        return {}


# -- plain -----------------------------------------------------------------------------------------
def message_from_completion(body: bytes, *, model: str) -> bytes:
    """A canonical ``chat.completion`` body as an Anthropic ``message``; ``model`` is the
    instrument the caller named. Raises ``GridgateError`` (500) for a body that cannot be read:
    gridgate's own adapters made it, so that is a gridgate bug."""
    try:
        parsed = _completion_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise GridgateError(
            f"gridgate could not read its own canonical answer (a gridgate bug): {exc}"
        ) from exc
    if not parsed.choices:
        raise GridgateError(
            "gridgate's canonical answer has no choices (a gridgate bug); nothing to return"
        )
    choice = parsed.choices[0]
    message = choice.message or _Message()
    content: list[_Block] = []
    if message.thinking_blocks:
        for block in message.thinking_blocks:
            if block.type == "redacted_thinking":
                content.append(_RedactedThinkingBlock(data=block.data or ""))
            else:
                content.append(
                    _ThinkingBlock(thinking=block.thinking or "", signature=block.signature or "")
                )
    elif message.reasoning_content:
        content.append(_ThinkingBlock(thinking=message.reasoning_content, signature=""))
    if message.content:
        content.append(_TextBlock(text=message.content))
    if message.refusal:
        content.append(_TextBlock(text=message.refusal))
    calls = message.tool_calls or ()
    for call in calls:
        function = call.function or _Function()
        content.append(
            _ToolUseBlock(
                id=_tool_id(call.id),
                name=function.name or "",
                input=_tool_input(function.arguments),
            )
        )
    stop_reason, stop_sequence = stop_reason_for(
        choice.finish_reason, choice.stop_reason, called_tools=bool(calls)
    )
    return _encode(
        _AnthropicMessage(
            id=_message_id(parsed.id),
            role="assistant",
            model=model,
            content=content,
            stop_reason=stop_reason,
            stop_sequence=stop_sequence,
            usage=_usage(parsed.usage),
        )
    )


# -- stream ----------------------------------------------------------------------------------------
def _block_start(index: int, block: bytes) -> bytes:
    return b"".join(
        (
            b'event: content_block_start\ndata: {"type":"content_block_start","index":',
            b"%d" % index,
            b',"content_block":',
            block,
            b"}\n\n",
        )
    )


def _block_delta(index: int, kind: bytes, field: bytes, value: str) -> bytes:
    return b"".join(
        (
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":',
            b"%d" % index,
            b',"delta":{"type":"',
            kind,
            b'","',
            field,
            b'":',
            _encode(value),
            b"}}\n\n",
        )
    )


def _block_stop(index: int) -> bytes:
    return b'event: content_block_stop\ndata: {"type":"content_block_stop","index":%d}\n\n' % index


_TEXT_START: Final = b'{"type":"text","text":""}'
_THINKING_START: Final = b'{"type":"thinking","thinking":"","signature":""}'


class MessageStreamEncoder:
    """Turns one canonical stream into Anthropic's event stream, piece by piece.

    ``feed`` takes what ``StreamSession.chunks()`` yields (one or more complete canonical SSE
    events; a split event waits for its rest) and returns the Anthropic SSE bytes to send for
    it, possibly ``b""``. The stream ends at ``[DONE]`` (closing block, ``message_delta``,
    ``message_stop``) or at core's error event (an ``error`` event); ``ended`` is then true and
    anything fed later is ignored. ``close`` ends a canonical stream that stopped without
    either. A canonical event that cannot be read raises ``GridgateError`` (500, a gridgate
    bug); the caller ends the stream with ``error_event`` of it.
    """

    __slots__ = (
        "_called_tools",
        "_finish",
        "_input_estimate",
        "_model",
        "_next_index",
        "_open",
        "_open_index",
        "_output_bytes",
        "_parser",
        "_started",
        "_stop_sequence",
        "_tools",
        "_usage",
        "ended",
    )

    def __init__(self, model: str, input_tokens_estimate: int) -> None:
        self._model = model  # the instrument the caller named
        self._input_estimate = input_tokens_estimate
        self._parser = SSEParser()
        self._started = False
        self.ended = False
        self._next_index = 0
        self._open: _Kind | None = None  # the kind of the open block, if one is open
        self._open_index = -1
        self._tools: dict[int, tuple[str | None, int]] = {}  # call index → (id, block index)
        self._called_tools = False
        self._finish: str | None = None
        self._stop_sequence: str | int | None = None
        self._usage: _Usage | None = None
        self._output_bytes = 0  # generated text relayed, for a stream that reports no usage

    def feed(self, piece: bytes) -> bytes:
        if self.ended:
            return b""
        out: list[bytes] = []
        for event in self._parser.feed(piece):
            self._event(event.data, out)
            if self.ended:
                break
        return b"".join(out)

    def close(self) -> bytes:
        """The end of the canonical stream: the closing events if ``[DONE]`` or an error did not
        already end it (as if ``[DONE]`` came; nothing if nothing was ever started)."""
        if self.ended:
            return b""
        out: list[bytes] = []
        for event in self._parser.flush():
            self._event(event.data, out)
            if self.ended:
                return b"".join(out)
        if self._started:
            self._done(out)
        self.ended = True
        return b"".join(out)

    # -- one canonical event -----------------------------------------------------------------------
    def _event(self, data: bytes, out: list[bytes]) -> None:
        if not data:
            return
        if data == _DONE:
            if not self._started:
                self._start(None, out)
            self._done(out)
            return
        try:
            parsed = _event_decoder.decode(data)
        except msgspec.DecodeError as exc:
            raise GridgateError(
                f"gridgate could not read its own canonical stream event (a gridgate bug): {exc}"
            ) from exc
        error = parsed.error
        if error is not None:
            body = {
                "type": "error",
                "error": {"type": anthropic_error_type(error.type), "message": error.message},
            }
            out.append(b"event: error\ndata: " + _encode(body) + b"\n\n")
            self.ended = True
            return
        if not self._started:
            self._start(parsed.id, out)
        for choice in parsed.choices:
            if choice.index != 0:
                continue
            if choice.delta is not None:
                self._delta(choice.delta, out)
            if choice.finish_reason is not None:
                self._finish = choice.finish_reason
                self._stop_sequence = choice.stop_reason
                self._close(out)  # the answer is complete: its last block is too
        if parsed.usage is not None:
            self._usage = parsed.usage

    def _start(self, canonical_id: str | None, out: list[bytes]) -> None:
        self._started = True
        start = _MessageStart(
            message=_AnthropicMessage(
                id=_message_id(canonical_id),
                role="assistant",
                model=self._model,
                content=[],
                stop_reason=None,
                stop_sequence=None,
                usage=_MessageUsage(self._input_estimate, 1, 0, 0),
            )
        )
        out.append(b"event: message_start\ndata: " + _encode(start) + b"\n\n")
        out.append(_PING)

    def _delta(self, delta: _Message, out: list[bytes]) -> None:
        reasoning = delta.reasoning_content
        if reasoning:
            self._output_bytes += utf8_length(reasoning)
            index = self._ensure("thinking", _THINKING_START, out)
            out.append(_block_delta(index, b"thinking_delta", b"thinking", reasoning))
        if delta.thinking_blocks:
            for block in delta.thinking_blocks:
                self._reasoning_block(block, out)
        text = delta.content
        if text:  # the first chunk's empty content opens nothing
            self._text(text, out)
        if delta.refusal:
            self._text(delta.refusal, out)
        if delta.tool_calls:
            for call in delta.tool_calls:
                self._tool_call(call, out)

    def _text(self, text: str, out: list[bytes]) -> None:
        self._output_bytes += utf8_length(text)
        index = self._ensure("text", _TEXT_START, out)
        out.append(_block_delta(index, b"text_delta", b"text", text))

    def _reasoning_block(self, block: _ReasoningBlock, out: list[bytes]) -> None:
        if block.type == "redacted_thinking":
            self._close(out)
            index = self._next_index
            self._next_index += 1
            data = _encode(_RedactedThinkingBlock(data=block.data or ""))
            out.append(_block_start(index, data))
            out.append(_block_stop(index))
            return
        index = self._ensure("thinking", _THINKING_START, out)
        if block.thinking:
            self._output_bytes += utf8_length(block.thinking)
            out.append(_block_delta(index, b"thinking_delta", b"thinking", block.thinking))
        if block.signature:
            out.append(_block_delta(index, b"signature_delta", b"signature", block.signature))
            self._close(out)  # a signature ends its block

    def _tool_call(self, call: _ToolCall, out: list[bytes]) -> None:
        function = call.function
        name = function.name if function is not None else None
        arguments = function.arguments if function is not None else None
        known = self._tools.get(call.index)
        if known is None or (call.id is not None and known[0] is not None and call.id != known[0]):
            # a new call (a supplier that numbers every call 0 still gives each its own id)
            self._close(out)
            self._called_tools = True
            call_id = _tool_id(call.id)
            if name:
                self._output_bytes += utf8_length(name)
            index = self._open_block(
                "tool_use",
                _encode(_ToolUseBlock(id=call_id, name=name or "", input={})),
                out,
            )
            self._tools[call.index] = (call.id, index)
        else:
            index = known[1]
        if arguments:
            self._output_bytes += utf8_length(arguments)
            out.append(_block_delta(index, b"input_json_delta", b"partial_json", arguments))

    def _ensure(self, kind: _Kind, start: bytes, out: list[bytes]) -> int:
        """The index of the open block of ``kind``, opening one (closing another) if needed."""
        if self._open == kind:
            return self._open_index
        self._close(out)
        return self._open_block(kind, start, out)

    def _open_block(self, kind: _Kind, start: bytes, out: list[bytes]) -> int:
        index = self._next_index
        self._next_index += 1
        self._open = kind
        self._open_index = index
        out.append(_block_start(index, start))
        return index

    def _close(self, out: list[bytes]) -> None:
        if self._open is not None:
            out.append(_block_stop(self._open_index))
            self._open = None

    def _done(self, out: list[bytes]) -> None:
        self._close(out)
        stop_reason, stop_sequence = stop_reason_for(
            self._finish, self._stop_sequence, called_tools=self._called_tools
        )
        usage: dict[str, int | str]
        if self._usage is not None:
            known = _usage(self._usage)
            usage = {
                "output_tokens": known.output_tokens,
                "input_tokens": known.input_tokens,
                "cache_creation_input_tokens": known.cache_creation_input_tokens,
                "cache_read_input_tokens": known.cache_read_input_tokens,
            }
            if known.cost is not None:
                usage["cost"] = known.cost
        else:
            usage = {"output_tokens": tokens_for_bytes(self._output_bytes)}
        body = {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
            "usage": usage,
        }
        out.append(b"event: message_delta\ndata: " + _encode(body) + b"\n\n")
        out.append(_MESSAGE_STOP)
        self.ended = True
