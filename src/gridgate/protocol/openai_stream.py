"""The bytes gridgate itself writes into an OpenAI chat-completions stream (the canonical
stream every surface starts from): the terminating ``[DONE]``, an error event, the closing
events of an answer cut at its hold, and a usage chunk the supplier did not send. Everything
else in a stream is the supplier's, relayed."""

from __future__ import annotations

from typing import Any

import msgspec

from gridgate.errors import GridgateError
from gridgate.protocol.sse import SSEParser

DONE_EVENT = b"data: [DONE]\n\n"


def error_event(error: GridgateError) -> bytes:
    """A failure after the 200 has gone out: the error's OpenAI body as one event."""
    return b"data: " + error.render() + b"\n\n"


def length_cutoff(
    last_raw: bytes,
    n: int,
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
    cost: str | None = None,
) -> bytes:
    """Closing events for an answer cut at its hold: a ``length`` finish for every choice, in
    the identity (id, created, model) of the chunks relayed so far (``last_raw``, the last
    event relayed), then, when the token counts are given (the caller asked for usage), a usage
    chunk of what was charged (``cost``: its ``usage.cost``), then ``[DONE]``."""
    chunk = _identity(last_raw)
    chunk["choices"] = [
        {"index": i, "delta": {}, "logprobs": None, "finish_reason": "length"} for i in range(n)
    ]
    out = b"data: " + msgspec.json.encode(chunk) + b"\n\n"
    if prompt_tokens is not None and completion_tokens is not None:
        out += usage_event(last_raw, prompt_tokens, completion_tokens, cost)
    return out + DONE_EVENT


def usage_event(
    last_raw: bytes, prompt_tokens: int, completion_tokens: int, cost: str | None
) -> bytes:
    """A usage chunk (no choices) in the identity of ``last_raw``, the last event relayed: for
    a stream whose caller asked for usage when the supplier sent none, or cut at its hold."""
    chunk = _identity(last_raw)
    chunk["choices"] = []
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if cost is not None:
        usage["cost"] = cost
    chunk["usage"] = usage
    return b"data: " + msgspec.json.encode(chunk) + b"\n\n"


def _identity(last_raw: bytes) -> dict[str, Any]:
    """The id, created, model and fingerprint of a relayed chunk, as a new chunk's start."""
    events = SSEParser().feed(last_raw) if last_raw else []
    head: dict[str, Any] = {}
    if events:
        try:
            head = msgspec.json.decode(events[0].data)
        except msgspec.DecodeError:
            head = {}
    chunk: dict[str, Any] = {
        key: head[key] for key in ("id", "created", "model", "system_fingerprint") if key in head
    }
    chunk["object"] = "chat.completion.chunk"
    return chunk
