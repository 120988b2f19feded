"""What every upstream adapter offers core: one module per wire format, the same small interface.

Core speaks one canonical form, the OpenAI chat-completions wire format: a validated
``ChatRequest`` goes in; a response body or a stream of ``chat.completion.chunk`` events comes out.
An adapter for another wire format maps to and from it with pure functions. Every foreign
exception is translated once, in the adapter, into ``SupplierFailed`` (the supplier's fault: the
next offer may serve) or ``UpstreamRejected`` (the caller's fault: surface it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from gridgate.protocol.openai_chat import ChatRequest
from gridgate.protocol.tokens import tokens_for_bytes
from gridgate.storage.records import OfferRecord, SupplierRecord


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0  # includes reasoning tokens
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    estimated: bool = False  # counted by gridgate because the upstream reported none


def counted(usage: Usage | None, *, prompt_estimate: int, out_bytes: int) -> Usage:
    """``usage`` when the upstream counted the answer, else gridgate's count (marked
    estimated): no usage at all, a prompt of 0 tokens (no prompt is empty) or 0 output tokens
    for an answer of ``out_bytes`` > 0 bytes of text. A count the upstream did make is kept."""
    if (
        usage is not None
        and usage.prompt_tokens > 0
        and (usage.completion_tokens > 0 or out_bytes == 0)
    ):
        return usage
    prompt = usage.prompt_tokens if usage is not None else 0
    output = usage.completion_tokens if usage is not None else 0
    return Usage(
        prompt_tokens=prompt if prompt > 0 else prompt_estimate,
        completion_tokens=output if output > 0 else tokens_for_bytes(out_bytes),
        reasoning_tokens=usage.reasoning_tokens if usage is not None and output > 0 else 0,
        cached_tokens=usage.cached_tokens if usage is not None and prompt > 0 else 0,
        estimated=True,
    )


@dataclass(frozen=True, slots=True)
class UpstreamCall:
    supplier: SupplierRecord
    offer: OfferRecord
    request: ChatRequest
    max_output_tokens: int  # per choice; the upstream is always told this
    stream: bool
    prompt_estimate: int  # gridgate's own count (text only), used when the upstream reports none


@dataclass(slots=True)
class Completion:
    """A whole (non-streamed) answer, already in the canonical OpenAI response format."""

    body: bytes
    usage: Usage
    model: str
    usage_at: int = -1  # where ``usage.cost`` goes in ``body`` (``protocol/usage_cost.py``)


@dataclass(slots=True)
class Chunk:
    """One streamed event in canonical form, ready to forward."""

    raw: bytes  # the SSE event bytes (``data: {...}\\n\\n``), or b"" for nothing to forward
    usage: Usage | None = None  # set on the chunk that carries the upstream's usage
    prompt_tokens: int | None = None  # the upstream's prompt count, told before its usage
    usage_only: bool = False  # a chunk with no choices that exists only to carry usage
    output_bytes: int = 0  # UTF-8 bytes of generated text in this chunk (for self-metering)
    deltas: int = 0  # choices that carry generated text here: each holds at least one token
    finish_reason: str | None = None
    done: bool = False  # the terminator ``data: [DONE]``


class Adapter(Protocol):
    async def complete(self, call: UpstreamCall) -> Completion:
        """The whole answer. Raises SupplierFailed / UpstreamRejected."""

    def stream(self, call: UpstreamCall) -> AsyncIterator[list[Chunk]]:
        """The answer as batches of chunks, one batch per read from the upstream (so a relay
        writes once for what arrived together, never holding back what has arrived). Raises
        SupplierFailed / UpstreamRejected — before the first batch (core fails over) or later
        (core ends the stream and settles what was delivered). Closing the iterator early
        closes the upstream connection."""
