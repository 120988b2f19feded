"""The planned answer to one request: per choice its tokens, tool calls and finish reason.

Planning is pure and happens before the first byte is sent, so a streamed answer and a
plain one carry the same text. Token accounting (what ``usage`` reports):

- text: one word = one token (:mod:`.text`); a tool-result quote is split the same way;
- JSON (structured outputs, tool arguments): one token per 4 characters;
- a tool call: one token for its name plus its argument tokens;
- reasoning: ``reasoning_length`` word tokens, sent before the answer (``reasoning_content``
  on the OpenAI wire, a ``thinking`` block on the Anthropic wire); they are part of
  ``completion_tokens`` and count against max tokens. The OpenAI wire asks for it with
  ``reasoning_effort`` (:func:`reasoning_tokens`), the Anthropic wire with a thinking budget;
  the caller turns either into the length, so both wires plan the same answer.

A max-tokens cut gives ``finish_reason: "length"`` (a cut JSON document or tool argument is
left invalid, as a real model leaves it); a ``stop`` sequence cuts the content right before
its first occurrence and gives ``"stop"`` with the matched sequence in ``stop_sequence``;
tool calls give ``"tool_calls"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from gridgate.simulator.errors import SimulatorError
from gridgate.simulator.logprobs import token_logprobs
from gridgate.simulator.prompt import Prompt
from gridgate.simulator.request import ChatRequest
from gridgate.simulator.schema_instance import SchemaInstanceError, schema_instance
from gridgate.simulator.text import choice_seed, derived_rng, fragments, phrase, tokenize, words
from gridgate.simulator.tools import choose_tools, given_arguments, tool_name

_REASONING_TOKENS: Mapping[str, int] = {
    "none": 0,
    "minimal": 4,
    "low": 8,
    "medium": 16,
    "high": 32,
    "xhigh": 64,
}
_QUOTE_CHARS = 80

# Independent PRNG streams of one choice.
_TEXT, _REASONING, _LOGPROBS, _JSON, _TOOL = 1, 2, 3, 4, 16


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    fragments: tuple[str, ...]
    """The argument tokens; ``arguments`` is their concatenation."""

    @property
    def arguments(self) -> str:
        return "".join(self.fragments)


@dataclass(frozen=True, slots=True)
class Choice:
    index: int
    reasoning: tuple[str, ...]
    content: tuple[str, ...] | None
    """Content tokens; ``None`` when the answer is tool calls."""
    tool_calls: tuple[ToolCall, ...]
    finish_reason: str
    completion_tokens: int
    logprobs: tuple[dict[str, Any], ...] | None
    """One entry per content token when the request asked for logprobs."""
    stop_sequence: str | None = None
    """The stop sequence that ended the content (``finish_reason`` is then ``"stop"``)."""

    @property
    def text(self) -> str | None:
        return None if self.content is None else "".join(self.content)


@dataclass(frozen=True, slots=True)
class Completion:
    choices: tuple[Choice, ...]
    prompt_tokens: int

    @property
    def completion_tokens(self) -> int:
        return sum(choice.completion_tokens for choice in self.choices)

    @property
    def longest(self) -> int:
        """Tokens of the longest choice: how long generating all of them in parallel takes."""
        return max(choice.completion_tokens for choice in self.choices)

    def usage(self) -> dict[str, Any]:
        completion = self.completion_tokens
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": sum(len(choice.reasoning) for choice in self.choices),
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }


def reasoning_tokens(effort: str | None) -> int:
    """How many reasoning tokens a ``reasoning_effort`` plans (an unknown effort: medium)."""
    if effort is None:
        return 0
    return _REASONING_TOKENS.get(effort, _REASONING_TOKENS["medium"])


def plan_completion(
    request: ChatRequest,
    prompt: Prompt,
    *,
    salt: str,
    default_length: int,
    reasoning_length: int,
) -> Completion:
    """Plan every choice; ``reasoning_length`` word tokens of reasoning come first in each."""
    tools = choose_tools(request, prompt)
    choices = []
    for index in range(request.n):
        seed = choice_seed(
            salt=salt,
            model=request.model,
            prompt_digest=prompt.digest,
            seed=request.seed,
            index=index,
        )
        budget = request.max_tokens
        reasoning = (
            tuple(words(derived_rng(seed, _REASONING), reasoning_length))
            if reasoning_length
            else ()
        )
        if budget is not None:
            reasoning = reasoning[:budget]
            budget -= len(reasoning)
        if tools:
            choices.append(
                _tool_choice(index, seed, tools, reasoning, budget, prompt.last_user_text)
            )
            continue
        tokens = _content_tokens(request, prompt, seed, default_length, budget)
        content, generated, finish, stop_sequence = _cut(tokens, budget, request.stop)
        logprobs = None
        if request.logprobs:
            logprobs = tuple(
                token_logprobs(derived_rng(seed, _LOGPROBS), list(content), request.top_logprobs)
            )
        choices.append(
            Choice(
                index=index,
                reasoning=reasoning,
                content=content,
                tool_calls=(),
                finish_reason=finish,
                completion_tokens=len(reasoning) + generated,
                logprobs=logprobs,
                stop_sequence=stop_sequence,
            )
        )
    return Completion(choices=tuple(choices), prompt_tokens=prompt.tokens)


def _content_tokens(
    request: ChatRequest, prompt: Prompt, seed: int, default_length: int, budget: int | None
) -> list[str]:
    response_format = request.response_format or {}
    kind = response_format.get("type")
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema", True) if isinstance(spec, dict) else True
        try:
            document = schema_instance(schema, seed=derived_rng(seed, _JSON).getrandbits(64))
        except SchemaInstanceError as exc:
            raise SimulatorError(
                400, f"Invalid schema for response_format: {exc}", param="response_format"
            ) from exc
        return fragments(msgspec.json.encode(document).decode())
    if kind == "json_object":
        rng = derived_rng(seed, _JSON)
        document = {"answer": phrase(rng, 4), "confidence": round(rng.random(), 2)}
        return fragments(msgspec.json.encode(document).decode())
    if prompt.last_role == "tool":
        quote = " ".join(prompt.last_text.split())[:_QUOTE_CHARS]
        return tokenize(f'The tool returned: "{quote}".')
    # One word past the budget is enough for the cut to see the answer was longer.
    count = default_length if budget is None else min(budget + 1, default_length)
    return words(derived_rng(seed, _TEXT), count, default_length)


def _cut(
    tokens: list[str], budget: int | None, stops: tuple[str, ...]
) -> tuple[tuple[str, ...], int, str, str | None]:
    """Apply max tokens then stop sequences: (tokens sent, tokens generated, finish reason,
    the stop sequence matched). Of sequences starting at the same place the longest wins."""
    finish = "stop"
    if budget is not None and len(tokens) > budget:
        tokens = tokens[:budget]
        finish = "length"
    if stops:
        text = "".join(tokens)
        found = [position for stop in stops if (position := text.find(stop)) >= 0]
        if found:
            cut = min(found)
            matched = max((stop for stop in stops if text.find(stop) == cut), key=len)
            end = cut + len(matched)
            kept: list[str] = []
            generated = 0
            offset = 0
            for token in tokens:
                if offset >= end:
                    break
                generated += 1
                if offset < cut:
                    kept.append(token[: cut - offset])
                offset += len(token)
            return tuple(piece for piece in kept if piece), generated, "stop", matched
    return tuple(tokens), len(tokens), finish, None


def _tool_choice(
    index: int,
    seed: int,
    tools: tuple[dict[str, Any], ...],
    reasoning: tuple[str, ...],
    budget: int | None,
    user_text: str,
) -> Choice:
    calls: list[ToolCall] = []
    used = 0
    finish = "tool_calls"
    for position, tool in enumerate(tools):
        rng = derived_rng(seed, _TOOL + position)
        parameters = tool["function"].get("parameters", {"type": "object", "properties": {}})
        instance_seed = rng.getrandbits(64)
        arguments: Any = given_arguments(user_text, tool_name(tool))
        if arguments is None:
            try:
                arguments = schema_instance(parameters, seed=instance_seed)
            except SchemaInstanceError as exc:
                raise SimulatorError(
                    400, f"Invalid schema for function '{tool_name(tool)}': {exc}", param="tools"
                ) from exc
        pieces = fragments(msgspec.json.encode(arguments).decode())
        if budget is not None and used + 1 + len(pieces) > budget:
            finish = "length"
            room = budget - used - 1
            if room < 0:
                break
            pieces = pieces[:room]
        calls.append(
            ToolCall(
                id=f"call_{rng.getrandbits(96):024x}", name=tool_name(tool), fragments=tuple(pieces)
            )
        )
        used += 1 + len(pieces)
        if finish == "length":
            break
    return Choice(
        index=index,
        reasoning=reasoning,
        content=None if calls else (),
        tool_calls=tuple(calls),
        finish_reason=finish,
        completion_tokens=len(reasoning) + used,
        logprobs=None,
    )
