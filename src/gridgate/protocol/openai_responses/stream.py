"""A canonical stream → the Responses event stream (the streamed side of ``POST /v1/responses``).

``ResponseStreamEncoder.feed`` takes what ``StreamSession.chunks()`` yields (complete canonical
SSE events; a split event waits for its rest) and returns at once the events to send for it,
each ``event: <type>`` + ``data: <json>`` with a ``sequence_number`` counting from 0::

    response.created ─► response.in_progress
      ─► per output item, in the order the answer produces them:
           reasoning  output_item.added ─► reasoning_summary_part.added
                      ─► reasoning_summary_text.delta* ─► reasoning_summary_text.done
                      ─► reasoning_summary_part.done ─► output_item.done
           message    output_item.added ─► content_part.added ─► output_text.delta*
                      (or refusal.delta*) ─► output_text.done (refusal.done)
                      ─► content_part.done ─► output_item.done
           call       output_item.added ─► function_call_arguments.delta*
                      ─► function_call_arguments.done ─► output_item.done
      ─► response.completed, or response.incomplete (finish length / content_filter)
    or, on core's error event (or ``fail``): response.failed, and nothing after it

An item opens at its first fragment and closes when another kind begins or the answer
finishes. The items and ``usage`` follow ``from_chat.py``'s mapping; the final event carries the
whole response. Like OpenAI's, the stream has no ``[DONE]``. A fragment for a tool call whose
item was already closed (a supplier interleaving parallel calls) is sent as a delta of that
call's item and kept in the final response: dropping it would lose the call's arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import msgspec

from gridgate.errors import GridgateError
from gridgate.protocol.openai_content import ReasoningBlock, RedactedThinkingBlock, ThinkingBlock
from gridgate.protocol.openai_responses.from_chat import reasoning_item
from gridgate.protocol.openai_responses.output import (
    CanonicalMessage,
    CanonicalToolCall,
    Completion,
    FunctionCallItem,
    ItemStatus,
    MessageItem,
    OutputItem,
    OutputTextPart,
    RefusalPart,
    Response,
    ResponseContext,
    ResponseError,
    Usage,
    incomplete_reason,
    logprobs_of,
)
from gridgate.protocol.openai_responses.reasoning import seal_reasoning
from gridgate.protocol.sse import SSEParser

__all__ = ["ResponseStreamEncoder", "error_event"]

_encode: Final = msgspec.json.Encoder().encode
_decoder: Final = msgspec.json.Decoder(Completion)
_DONE: Final = b"[DONE]"
_RATE_LIMITED: Final = "rate_limit_error"


def _sse(kind: str, body: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + _encode(body) + b"\n\n"


def error_event(error: GridgateError, sequence_number: int = 0) -> bytes:
    """An ``error`` event (OpenAI's ``ResponseErrorEvent``) for a stream that fails before
    its ``response.created``."""
    body = {
        "type": "error",
        "code": error.code or error.openai_type,
        "message": error.message,
        "param": error.param,
        "sequence_number": sequence_number,
    }
    return _sse("error", body)


class ResponseStreamEncoder:
    """One canonical stream → the Responses events (see the module docstring). ``clock`` gives
    unix seconds, for ``completed_at``."""

    def __init__(self, context: ResponseContext, clock: Callable[[], float]) -> None:
        self._context = context
        self._clock = clock
        self._parser = SSEParser()
        self._seq = 0
        self._started = False
        self.ended = False
        self._out: list[bytes] = []
        self._items: list[OutputItem] = []
        self._open: str | None = None  # "reasoning", "message" or "call"
        self._text = ""  # the open reasoning summary, text or refusal part
        self._parts: list[OutputTextPart | RefusalPart] = []
        self._part: str | None = None  # "text" or "refusal"
        self._logprobs: list[Any] = []
        self._thinking = ""  # reasoning text since the last signed block
        self._blocks: list[ReasoningBlock] = []
        self._calls: dict[int, int] = {}  # canonical call index → output index
        self._finish: str | None = None
        self._usage: Usage | None = None
        self.response: Response | None = None  # the final response, once the stream has ended
        # each reasoning item's signed blocks, sealed (``reasoning.py``), by output index, whether
        # or not the events carry them: a stored answer keeps them for ``previous_response_id``
        self.sealed: dict[int, str] = {}

    # -- the caller's side ------------------------------------------------------------------
    def feed(self, piece: bytes) -> bytes:
        if self.ended:
            return b""
        for event in self._parser.feed(piece):
            self._event(event.data)
            if self.ended:
                break
        return self._flush()

    def close(self) -> bytes:
        """The end of a canonical stream that stopped without ``[DONE]`` or an error: as if
        ``[DONE]`` came."""
        if self.ended:
            return b""
        for event in self._parser.flush():
            self._event(event.data)
        if not self.ended:
            self._event(_DONE)
        return self._flush()

    def fail(self, error: GridgateError) -> bytes:
        """``response.failed`` for a failure outside the canonical stream."""
        if self.ended:
            return b""
        self._failed(error.openai_type, error.message)
        return self._flush()

    # -- one canonical event ----------------------------------------------------------------
    def _event(self, data: bytes) -> None:
        if not data:
            return
        if not self._started:
            self._start()
        if data == _DONE:
            self._done()
            return
        try:
            parsed = _decoder.decode(data)
        except msgspec.DecodeError as exc:
            raise GridgateError(
                f"gridgate could not read its own canonical stream event (a gridgate bug): {exc}"
            ) from exc
        if parsed.error is not None:
            self._failed(parsed.error.type, parsed.error.message)
            return
        for choice in parsed.choices:
            if choice.index != 0:
                continue
            if choice.delta is not None:
                logprobs = choice.logprobs.content if choice.logprobs else None
                self._delta(choice.delta, logprobs or [])
            if choice.finish_reason is not None:
                self._finish = choice.finish_reason
                self._close()
        if parsed.usage is not None:
            self._usage = Usage.of(parsed.usage)

    def _delta(self, delta: CanonicalMessage, logprobs: list[Any]) -> None:
        if delta.reasoning_content:
            self._reasoning(delta.reasoning_content)
        for block in delta.thinking_blocks or ():
            self._ensure("reasoning")
            if block.type == "redacted_thinking":
                self._blocks.append(RedactedThinkingBlock(data=block.data or ""))
            elif block.signature:
                thinking = (block.thinking or "") or self._thinking
                self._blocks.append(ThinkingBlock(thinking=thinking, signature=block.signature))
                self._thinking = ""
        if delta.content:
            self._message_part("text", delta.content, logprobs)
        if delta.refusal:
            self._message_part("refusal", delta.refusal, [])
        for call in delta.tool_calls or ():
            self._tool_call(call)

    def _reasoning(self, text: str) -> None:
        index = self._ensure("reasoning")
        self._text += text
        self._thinking += text
        self._emit(
            "response.reasoning_summary_text.delta",
            item_id=self._id("rs", index),
            output_index=index,
            summary_index=0,
            delta=text,
        )

    def _message_part(self, kind: str, text: str, logprobs: list[Any]) -> None:
        index = self._ensure("message")
        item_id = self._id("msg", index)
        if self._part != kind:
            self._close_part(index)
            self._part, self._text, self._logprobs = kind, "", []
            part = OutputTextPart("") if kind == "text" else RefusalPart("")
            self._emit(
                "response.content_part.added",
                item_id=item_id,
                output_index=index,
                content_index=len(self._parts),
                part=part,
            )
        self._text += text
        where = {"item_id": item_id, "output_index": index, "content_index": len(self._parts)}
        if kind == "refusal":
            self._emit("response.refusal.delta", **where, delta=text)
            return
        converted = logprobs_of(logprobs)
        self._logprobs.extend(converted)
        self._emit("response.output_text.delta", **where, delta=text, logprobs=[
            {"token": lp.token, "logprob": lp.logprob, "top_logprobs": [
                {"token": t.token, "logprob": t.logprob} for t in lp.top_logprobs
            ]} for lp in converted
        ])  # fmt: skip

    def _tool_call(self, call: CanonicalToolCall) -> None:
        function = call.function
        arguments = (function.arguments if function else None) or ""
        index = self._calls.get(call.index)
        if index is None:
            self._close()
            index = len(self._items)
            self._calls[call.index] = index
            name = (function.name if function else None) or ""
            item = self._context.function_call(call.id, name, "", index, "in_progress")
            self._items.append(item)
            self._open = "call"
            self._emit("response.output_item.added", output_index=index, item=item)
        called = self._items[index]
        assert isinstance(called, FunctionCallItem)
        if arguments:
            called.arguments += arguments
            self._emit(
                "response.function_call_arguments.delta",
                item_id=called.id,
                output_index=index,
                delta=arguments,
            )

    # -- opening and closing items --------------------------------------------------------
    def _ensure(self, kind: str) -> int:
        """The output index of the open item of ``kind``, opening one if needed."""
        if self._open == kind and kind != "call":
            return len(self._items)
        self._close()
        index = len(self._items)
        self._open = kind
        if kind == "reasoning":
            self._text, self._thinking, self._blocks = "", "", []
            item = reasoning_item(self._context, index, None, [])
            item_id = item.id
            self._emit("response.output_item.added", output_index=index, item=item)
            part = {"type": "summary_text", "text": ""}
            self._emit(
                "response.reasoning_summary_part.added",
                item_id=item_id,
                output_index=index,
                summary_index=0,
                part=part,
            )
        else:
            self._parts, self._part = [], None
            message = MessageItem(self._id("msg", index), "in_progress", [])
            self._emit("response.output_item.added", output_index=index, item=message)
        return index

    def _close(self) -> None:
        kind, self._open = self._open, None
        status = self._status()
        index = len(self._items)
        if kind == "reasoning":
            item_id = self._id("rs", index)
            where = {"item_id": item_id, "output_index": index, "summary_index": 0}
            self._emit("response.reasoning_summary_text.done", **where, text=self._text)
            part = {"type": "summary_text", "text": self._text}
            self._emit("response.reasoning_summary_part.done", **where, part=part)
            item = reasoning_item(self._context, index, self._text, self._blocks)
            if self._blocks:
                self.sealed[index] = seal_reasoning(self._blocks)
            self._items.append(item)
            self._emit("response.output_item.done", output_index=index, item=item)
        elif kind == "message":
            self._close_part(index)
            message = MessageItem(self._id("msg", index), status, self._parts)
            self._items.append(message)
            self._emit("response.output_item.done", output_index=index, item=message)
        elif kind == "call":
            call = self._items[-1]
            assert isinstance(call, FunctionCallItem)
            call.status = status
            index = len(self._items) - 1
            self._emit(
                "response.function_call_arguments.done",
                item_id=call.id,
                output_index=index,
                name=call.name,
                arguments=call.arguments,
            )
            self._emit("response.output_item.done", output_index=index, item=call)

    def _close_part(self, index: int) -> None:
        if self._part is None:
            return
        where = {
            "item_id": self._id("msg", index),
            "output_index": index,
            "content_index": len(self._parts),
        }
        part: OutputTextPart | RefusalPart
        if self._part == "text":
            part = OutputTextPart(self._text, logprobs=self._logprobs)
            logprobs = [{"token": lp.token, "logprob": lp.logprob} for lp in self._logprobs]
            self._emit("response.output_text.done", **where, text=self._text, logprobs=logprobs)
        else:
            part = RefusalPart(self._text)
            self._emit("response.refusal.done", **where, refusal=self._text)
        self._emit("response.content_part.done", **where, part=part)
        self._parts.append(part)
        self._part = None

    # -- the response around them ---------------------------------------------------------
    def _start(self) -> None:
        self._started = True
        shell = self._context.shell
        self._emit("response.created", response=shell)
        self._emit("response.in_progress", response=shell)

    def _done(self) -> None:
        self._close()
        incomplete = incomplete_reason(self._finish)
        response = msgspec.structs.replace(
            self._context.shell,
            status="incomplete" if incomplete else "completed",
            completed_at=int(self._clock()),
            incomplete_details=incomplete,
            output=self._items,
            usage=self._usage if self._usage is not None else msgspec.UNSET,
        )
        kind = "response.incomplete" if incomplete else "response.completed"
        self._emit(kind, response=response)
        self.response = response
        self.ended = True

    def _failed(self, openai_type: str | None, message: str) -> None:
        if not self._started:
            self._start()
        self._finish = "length"  # what was open is incomplete
        self._close()
        code = "rate_limit_exceeded" if openai_type == _RATE_LIMITED else "server_error"
        response = msgspec.structs.replace(
            self._context.shell,
            status="failed",
            error=ResponseError(code=code, message=message),
            output=self._items,
            usage=self._usage if self._usage is not None else msgspec.UNSET,
        )
        self._emit("response.failed", response=response)
        self.response = response
        self.ended = True

    def _status(self) -> ItemStatus:
        return "incomplete" if incomplete_reason(self._finish) else "completed"

    def _id(self, prefix: str, index: int) -> str:
        return self._context.item_id(prefix, index)

    def _emit(self, kind: str, **fields: Any) -> None:
        self._out.append(_sse(kind, {"type": kind, **fields, "sequence_number": self._seq}))
        self._seq += 1

    def _flush(self) -> bytes:
        out, self._out = b"".join(self._out), []
        return out
