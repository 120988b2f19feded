"""The plain Messages answer, and what it shares with the streamed one: the content blocks of
a planned choice, its stop reason, and usage.

Content blocks, in order: ``thinking`` (the reasoning, with its :mod:`.signature`), ``text``
(left out when the planned text is empty, e.g. a stop sequence at the very start or a budget
spent on thinking), then one ``tool_use`` per planned call with ``input`` the parsed
arguments (``{}`` when a max-tokens cut left them invalid JSON).

Stop reasons: stop → ``end_turn``, or ``stop_sequence`` with ``stop_sequence`` set to the
matched string; length → ``max_tokens``; tool calls → ``tool_use``.

Usage: ``output_tokens`` is the OpenAI wire's ``completion_tokens`` (reasoning included);
``input_tokens`` + ``cache_creation_input_tokens`` + ``cache_read_input_tokens`` is its
``prompt_tokens`` (:mod:`.prompt_cache` splits it). Under a ``no_usage`` fault every count is
0: the Messages wire has no way to leave usage out (the SDK requires it), so a supplier that
does not report usage looks like one that reports zeros.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from gridgate.simulator.anthropic_ids import tool_use_id
from gridgate.simulator.completion import Choice, Completion, ToolCall
from gridgate.simulator.prompt_cache import NO_CACHE, CacheUse
from gridgate.simulator.signature import ThinkingSigner

_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
_encode = msgspec.json.Encoder().encode


def stop_reason(choice: Choice) -> tuple[str, str | None]:
    """(``stop_reason``, ``stop_sequence``) of a planned choice."""
    if choice.stop_sequence is not None:
        return "stop_sequence", choice.stop_sequence
    return _STOP_REASONS[choice.finish_reason], None


def tool_input(call: ToolCall) -> dict[str, Any]:
    try:
        value = msgspec.json.decode(call.arguments)
    except msgspec.DecodeError:
        return {}
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True, slots=True)
class MessageUsage:
    input_tokens: int
    """Prompt tokens neither read from nor written to the cache."""
    output_tokens: int
    cache: CacheUse

    @classmethod
    def of(cls, completion: Completion, cache: CacheUse) -> MessageUsage:
        return cls(
            input_tokens=completion.prompt_tokens - cache.read - cache.written,
            output_tokens=completion.completion_tokens,
            cache=cache,
        )

    def body(self, output_tokens: int | None = None) -> dict[str, Any]:
        """The ``usage`` object of a message (``message_start`` passes its early count)."""
        return {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache.written,
            "cache_read_input_tokens": self.cache.read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.cache.written_5m,
                "ephemeral_1h_input_tokens": self.cache.written_1h,
            },
            "output_tokens": self.output_tokens if output_tokens is None else output_tokens,
            "service_tier": "standard",
        }

    def cumulative(self) -> dict[str, Any]:
        """The ``usage`` of ``message_delta``: the totals so far."""
        return {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache.written,
            "cache_read_input_tokens": self.cache.read,
            "output_tokens": self.output_tokens,
        }


ZERO_USAGE = MessageUsage(0, 0, NO_CACHE)


def thinking_block(choice: Choice, signer: ThinkingSigner) -> dict[str, Any] | None:
    if not choice.reasoning:
        return None
    thinking = "".join(choice.reasoning)
    return {"type": "thinking", "thinking": thinking, "signature": signer.sign(thinking)}


def message_body(
    completion: Completion,
    *,
    message_id: str,
    model: str,
    signer: ThinkingSigner,
    usage: MessageUsage,
) -> bytes:
    choice = completion.choices[0]
    content: list[dict[str, Any]] = []
    thinking = thinking_block(choice, signer)
    if thinking is not None:
        content.append(thinking)
    if choice.text:
        content.append({"type": "text", "text": choice.text})
    for call in choice.tool_calls:
        content.append(
            {
                "type": "tool_use",
                "id": tool_use_id(call.id),
                "name": call.name,
                "input": tool_input(call),
            }
        )
    reason, sequence = stop_reason(choice)
    return _encode(
        {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": reason,
            "stop_sequence": sequence,
            "usage": usage.body(),
        }
    )
