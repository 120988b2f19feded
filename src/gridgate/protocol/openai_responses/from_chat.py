"""A canonical ``chat.completion`` → a Responses ``Response`` (the whole-answer side of
``POST /v1/responses``). Only choice 0 is read: the surface asks for one choice.

The output items, in order:

- ``reasoning``, when the answer carries reasoning (``reasoning_content``, or
  ``thinking_blocks``): the reasoning text as its one summary part (OpenAI's models return a
  summary; other suppliers' reasoning is the nearest thing), and, when the request's
  ``include`` asks for ``reasoning.encrypted_content``, the signed blocks sealed for the next
  turn (``reasoning.py``).
- ``message``, when there is text or a refusal: an ``output_text`` part (``annotations`` empty;
  ``logprobs`` when the answer has them) and a ``refusal`` part.
- one ``function_call`` per tool call: ``call_id`` the canonical call id, ``id`` ``fc_…``, a
  namespaced function given as ``namespace`` and ``name`` (``output.py``).

``status`` is ``completed``, or ``incomplete`` with ``incomplete_details.reason``
``max_output_tokens`` (finish ``length``) or ``content_filter``; the items of an incomplete
answer are ``incomplete`` too. ``usage`` maps the canonical usage (``input_tokens`` includes
the cached part, as OpenAI counts it).
"""

from __future__ import annotations

from typing import Final

import msgspec

from gridgate.errors import GridgateError
from gridgate.protocol.openai_content import ReasoningBlock, RedactedThinkingBlock, ThinkingBlock
from gridgate.protocol.openai_responses.output import (
    CanonicalBlock,
    CanonicalMessage,
    Completion,
    ItemStatus,
    MessageItem,
    OutputItem,
    OutputTextPart,
    ReasoningItem,
    RefusalPart,
    ResponseContext,
    SummaryPart,
    Usage,
    incomplete_reason,
    logprobs_of,
)
from gridgate.protocol.openai_responses.reasoning import seal_reasoning

__all__ = ["canonical_blocks", "reasoning_item", "response_from_completion"]

_decoder: Final = msgspec.json.Decoder(Completion)
_encode: Final = msgspec.json.Encoder().encode


def response_from_completion(body: bytes, context: ResponseContext, *, completed_at: int) -> bytes:
    """The ``Response`` for a canonical ``chat.completion`` body. Raises ``GridgateError``
    (500) for a body that cannot be read: gridgate's own adapters made it (a gridgate bug)."""
    try:
        parsed = _decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise GridgateError(
            f"gridgate could not read its own canonical answer (a gridgate bug): {exc}"
        ) from exc
    if not parsed.choices:
        raise GridgateError("gridgate's canonical answer has no choices (a gridgate bug)")
    choice = parsed.choices[0]
    message = choice.message or CanonicalMessage()
    incomplete = incomplete_reason(choice.finish_reason)
    status: ItemStatus = "incomplete" if incomplete else "completed"

    output: list[OutputItem] = []
    blocks = canonical_blocks(message.thinking_blocks or ())
    if message.reasoning_content or blocks:
        output.append(reasoning_item(context, len(output), message.reasoning_content, blocks))
    parts: list[OutputTextPart | RefusalPart] = []
    if message.content:
        logprobs = choice.logprobs.content if choice.logprobs else None
        parts.append(OutputTextPart(message.content, logprobs=logprobs_of(logprobs or [])))
    if message.refusal:
        parts.append(RefusalPart(message.refusal))
    if parts:
        output.append(MessageItem(context.item_id("msg", len(output)), status, parts))
    for call in message.tool_calls or ():
        function = call.function
        name = (function.name if function else None) or ""
        arguments = (function.arguments if function else None) or ""
        output.append(context.function_call(call.id, name, arguments, len(output), status))

    response = msgspec.structs.replace(
        context.shell,
        status="incomplete" if incomplete else "completed",
        completed_at=completed_at,
        incomplete_details=incomplete,
        output=output,
        usage=Usage.of(parsed.usage) if parsed.usage else msgspec.UNSET,
    )
    return _encode(response)


def canonical_blocks(given: list[CanonicalBlock] | tuple[()]) -> list[ReasoningBlock]:
    """The reasoning blocks of an answer as the canonical form gives them, for sealing."""
    blocks: list[ReasoningBlock] = []
    for block in given:
        if block.type == "redacted_thinking":
            blocks.append(RedactedThinkingBlock(data=block.data or ""))
        elif block.signature:
            blocks.append(ThinkingBlock(thinking=block.thinking or "", signature=block.signature))
        else:
            blocks.append(ThinkingBlock(thinking=block.thinking or ""))
    return blocks


def reasoning_item(
    context: ResponseContext, index: int, text: str | None, blocks: list[ReasoningBlock]
) -> ReasoningItem:
    if not text:
        text = "\n\n".join(b.thinking for b in blocks if isinstance(b, ThinkingBlock))
    sealed = seal_reasoning(blocks) if context.seal_reasoning and blocks else msgspec.UNSET
    return ReasoningItem(
        id=context.item_id("rs", index),
        summary=[SummaryPart(text)] if text else [],
        encrypted_content=sealed,
    )
