"""The ``Response`` object (write side), what it echoes of the request, and the canonical
answer's fields both encoders read (``from_chat.py`` for whole answers, ``stream.py``).

OpenAI's ``Response`` requires ``id``, ``object``, ``created_at``, ``error``,
``incomplete_details``, ``instructions``, ``model``, ``tools``, ``output``,
``parallel_tool_calls``, ``metadata``, ``tool_choice``, ``temperature`` and ``top_p``; each is
filled with what was asked, or with what was in force when the caller left it out: no
instructions is ``null``, no tools ``[]``, no metadata ``{}``, ``tool_choice`` ``"auto"``,
``parallel_tool_calls`` true (chat's default), and an unset ``temperature`` or ``top_p`` is
``null`` (the supplier's default applied; gridgate does not know its value). Function tools are
echoed with ``parameters`` and ``strict`` (``null`` when not given), namespaces and hosted tools
as they were sent. ``truncation`` is always ``disabled``: nothing is truncated.

Item ids derive from the response id (``resp_X`` → ``msg_X_0``, ``fc_X_1``, ``rs_X_0``, the
number being the item's ``output_index``), so they are unique, and repeatable in tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import msgspec
from msgspec import UNSET, UnsetType

from gridgate.protocol.openai_responses import request as rq
from gridgate.protocol.openai_responses.to_chat import Translation
from gridgate.protocol.openai_responses.tools import ToolChoiceObject

__all__ = [
    "Completion",
    "FunctionCallItem",
    "LogProb",
    "MessageItem",
    "OutputItem",
    "OutputTextPart",
    "ReasoningItem",
    "RefusalPart",
    "Response",
    "ResponseContext",
    "SummaryPart",
    "Usage",
    "response_context",
]

Status = Literal["completed", "incomplete", "in_progress", "failed"]
ItemStatus = Literal["completed", "incomplete", "in_progress"]


# -- the canonical answer, read side: only what the mapping needs ------------------------------
class _TopLogprob(msgspec.Struct, gc=False):
    token: str = ""
    logprob: float = 0.0
    bytes: list[int] | None = None


class CanonicalLogprob(msgspec.Struct, gc=False):
    token: str = ""
    logprob: float = 0.0
    bytes: list[int] | None = None
    top_logprobs: list[_TopLogprob] | None = None


class _Logprobs(msgspec.Struct, gc=False):
    content: list[CanonicalLogprob] | None = None


class _Function(msgspec.Struct, gc=False):
    name: str | None = None
    arguments: str | None = None


class CanonicalToolCall(msgspec.Struct, gc=False):
    index: int = 0
    id: str | None = None
    function: _Function | None = None


class CanonicalBlock(msgspec.Struct, gc=False):
    type: Literal["thinking", "redacted_thinking"] = "thinking"
    thinking: str | None = None
    signature: str | None = None
    data: str | None = None


class CanonicalMessage(msgspec.Struct, gc=False):
    """A plain answer's ``message``, or a chunk's ``delta``."""

    content: str | None = None
    reasoning_content: str | None = None
    refusal: str | None = None
    tool_calls: list[CanonicalToolCall] | None = None
    thinking_blocks: list[CanonicalBlock] | None = None


class _PromptDetails(msgspec.Struct, gc=False):
    cached_tokens: int | None = None
    cache_write_tokens: int | None = None


class _CompletionDetails(msgspec.Struct, gc=False):
    reasoning_tokens: int | None = None


class CanonicalUsage(msgspec.Struct, gc=False):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_tokens_details: _PromptDetails | None = None
    completion_tokens_details: _CompletionDetails | None = None
    cost: str | None = None  # what the answer was charged (core's ``usage.cost``)


class _Choice(msgspec.Struct, gc=False):
    index: int = 0
    message: CanonicalMessage | None = None
    delta: CanonicalMessage | None = None
    finish_reason: str | None = None
    logprobs: _Logprobs | None = None


class _ErrorObject(msgspec.Struct, gc=False):
    message: str = ""
    type: str | None = None
    code: str | None = None
    param: str | None = None


class Completion(msgspec.Struct, gc=False):
    """A ``chat.completion``, a chunk, a usage chunk, or core's error event."""

    id: str | None = None
    choices: list[_Choice] = []
    usage: CanonicalUsage | None = None
    error: _ErrorObject | None = None


# -- the Responses wire, write side -------------------------------------------------------------
class TopLogProb(msgspec.Struct):
    token: str
    logprob: float
    bytes: list[int]


class LogProb(msgspec.Struct):
    token: str
    logprob: float
    bytes: list[int]
    top_logprobs: list[TopLogProb]


class OutputTextPart(msgspec.Struct, tag="output_text", tag_field="type"):
    text: str
    annotations: list[Any] = msgspec.field(default_factory=list)
    logprobs: list[LogProb] = msgspec.field(default_factory=list)


class RefusalPart(msgspec.Struct, tag="refusal", tag_field="type"):
    refusal: str


class MessageItem(msgspec.Struct, tag="message", tag_field="type"):
    id: str
    status: ItemStatus
    content: list[OutputTextPart | RefusalPart]
    role: Literal["assistant"] = "assistant"


class FunctionCallItem(msgspec.Struct, tag="function_call", tag_field="type"):
    id: str
    call_id: str
    name: str
    arguments: str
    status: ItemStatus
    namespace: str | UnsetType = UNSET


class SummaryPart(msgspec.Struct, tag="summary_text", tag_field="type"):
    text: str


class ReasoningItem(msgspec.Struct, tag="reasoning", tag_field="type"):
    id: str
    summary: list[SummaryPart]
    encrypted_content: str | UnsetType = UNSET


OutputItem = MessageItem | FunctionCallItem | ReasoningItem


class InputTokensDetails(msgspec.Struct):
    cached_tokens: int
    cache_write_tokens: int


class OutputTokensDetails(msgspec.Struct):
    reasoning_tokens: int


class Usage(msgspec.Struct, omit_defaults=True):
    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int
    output_tokens_details: OutputTokensDetails
    total_tokens: int
    cost: str | None = None  # gridgate's: USD charged, a decimal string (9 places)

    @classmethod
    def of(cls, usage: CanonicalUsage) -> Usage:
        prompt = usage.prompt_tokens_details or _PromptDetails()
        completion = usage.completion_tokens_details or _CompletionDetails()
        return cls(
            input_tokens=usage.prompt_tokens,
            input_tokens_details=InputTokensDetails(
                prompt.cached_tokens or 0, prompt.cache_write_tokens or 0
            ),
            output_tokens=usage.completion_tokens,
            output_tokens_details=OutputTokensDetails(completion.reasoning_tokens or 0),
            total_tokens=usage.prompt_tokens + usage.completion_tokens,
            cost=usage.cost,
        )


class ResponseError(msgspec.Struct):
    code: str
    message: str


class IncompleteDetails(msgspec.Struct):
    reason: Literal["max_output_tokens", "content_filter"]


class Response(msgspec.Struct, kw_only=True):
    id: str
    object: Literal["response"] = "response"
    created_at: int
    status: Status = "in_progress"
    completed_at: int | None = None
    error: ResponseError | None = None
    incomplete_details: IncompleteDetails | None = None
    model: str
    output: list[OutputItem] = msgspec.field(default_factory=list)
    usage: Usage | UnsetType = UNSET
    # echoed from the request (the module docstring says how)
    instructions: str | None = None
    tools: list[msgspec.Raw] = msgspec.field(default_factory=list)
    tool_choice: str | msgspec.Raw = "auto"
    parallel_tool_calls: bool = True
    temperature: float | None = None
    top_p: float | None = None
    top_logprobs: int | None = None
    max_output_tokens: int | None = None
    max_tool_calls: int | None = None
    text: msgspec.Raw | UnsetType = UNSET
    reasoning: dict[str, str | None] = msgspec.field(default_factory=dict)
    truncation: Literal["disabled"] = "disabled"
    previous_response_id: str | None = None
    store: bool = True
    background: bool = False
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    user: str | UnsetType = UNSET  # a string in the spec, never null
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    service_tier: str | None = None


_encode: Final = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class ResponseContext:
    """What re-encoding one answer needs: the response as it starts (``status`` in_progress,
    no output), the namespace table, and whether reasoning is sealed into its items."""

    shell: Response
    namespaces: Mapping[str, tuple[str, str]]
    seal_reasoning: bool

    @property
    def suffix(self) -> str:
        return self.shell.id.removeprefix("resp_")

    def item_id(self, prefix: str, output_index: int) -> str:
        return f"{prefix}_{self.suffix}_{output_index}"

    def function_call(
        self, canonical_id: str | None, name: str, arguments: str, index: int, status: ItemStatus
    ) -> FunctionCallItem:
        """A function call item; a namespaced function's name is given apart again."""
        namespace, plain = self.namespaces.get(name, (None, name))
        return FunctionCallItem(
            id=self.item_id("fc", index),
            call_id=canonical_id or self.item_id("call", index),
            name=plain,
            arguments=arguments,
            status=status,
            namespace=namespace if namespace is not None else UNSET,
        )


def response_context(
    request: rq.ResponsesRequest, translation: Translation, *, response_id: str, created_at: int
) -> ResponseContext:
    """``response_id``: ``resp_…``, chosen by the caller; ``created_at``: unix seconds."""
    reasoning = request.reasoning
    text = request.text
    shell = Response(
        id=response_id,
        created_at=created_at,
        model=request.model,
        instructions=_or_none(request.instructions),
        tools=[_echo_tool(raw, spec) for raw, spec in _tools(request)],
        tool_choice=_echo_choice(request.tool_choice),
        parallel_tool_calls=request.parallel_tool_calls is not False,
        temperature=_or_none(request.temperature),
        top_p=_or_none(request.top_p),
        top_logprobs=_or_none(request.top_logprobs),
        max_output_tokens=_or_none(request.max_output_tokens),
        max_tool_calls=_or_none(request.max_tool_calls),
        text=msgspec.Raw(_encode(text if isinstance(text, rq.TextConfig) else _PLAIN_TEXT)),
        reasoning={
            "effort": _or_none(reasoning.effort) if reasoning else None,
            "summary": _or_none(reasoning.summary) if reasoning else None,
        },
        previous_response_id=_or_none(request.previous_response_id),
        store=request.stores,
        metadata=request.metadata if isinstance(request.metadata, dict) else {},
        user=request.user if isinstance(request.user, str) else UNSET,
        safety_identifier=_or_none(request.safety_identifier),
        prompt_cache_key=_or_none(request.prompt_cache_key),
        service_tier=_or_none(request.service_tier),
    )
    return ResponseContext(
        shell=shell,
        namespaces=translation.namespaces,
        seal_reasoning=request.includes("reasoning.encrypted_content"),
    )


_PLAIN_TEXT: Final = rq.TextConfig(format=rq.TextFormatText())


def _or_none(value: Any) -> Any:
    return None if value is UNSET else value


def _tools(request: rq.ResponsesRequest) -> list[tuple[msgspec.Raw, rq.ToolSpec]]:
    raws = request.tools if isinstance(request.tools, list) else []
    return list(zip(raws, rq.parse_tools(request), strict=True))


def _echo_tool(raw: msgspec.Raw, spec: rq.ToolSpec) -> msgspec.Raw:
    if spec.type != "function":
        return raw
    echo = {
        "type": "function",
        "name": spec.name,
        "description": _or_none(spec.description),
        "parameters": _or_none(spec.parameters),
        "strict": _or_none(spec.strict),
    }
    return msgspec.Raw(_encode(echo))


def _echo_choice(choice: str | ToolChoiceObject | UnsetType | None) -> str | msgspec.Raw:
    if isinstance(choice, ToolChoiceObject):
        return msgspec.Raw(_encode(choice))
    return choice if isinstance(choice, str) else "auto"


def incomplete_reason(finish_reason: str | None) -> IncompleteDetails | None:
    if finish_reason == "length":
        return IncompleteDetails("max_output_tokens")
    if finish_reason == "content_filter":
        return IncompleteDetails("content_filter")
    return None


def logprobs_of(given: list[CanonicalLogprob]) -> list[LogProb]:
    return [
        LogProb(
            token=lp.token,
            logprob=lp.logprob,
            bytes=lp.bytes if lp.bytes is not None else list(lp.token.encode()),
            top_logprobs=[
                TopLogProb(
                    t.token, t.logprob, t.bytes if t.bytes is not None else list(t.token.encode())
                )
                for t in lp.top_logprobs or ()
            ],
        )
        for lp in given
    ]
