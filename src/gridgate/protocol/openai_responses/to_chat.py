"""A Responses request, translated into the canonical ``ChatRequest``.

``to_chat_request(request, prior=())`` is pure. ``prior`` is the items of earlier turns (for
``previous_response_id``: the stored response's input and output items, oldest first); they go
before ``input``. The result, a ``Translation``, holds the canonical request and what the
canonical form cannot hold, for the caller to decide on or to re-encode the answer with:

- ``instructions`` → a leading system message; a string ``input`` → one user message.
- message items → messages of their role (user, system, developer; parts ``input_text`` →
  text, ``input_image`` → image (``detail`` ``original`` has no canonical value and is left
  out), ``input_file`` → a file part). System and developer messages take text only.
- An assistant turn is the run of ``reasoning``, assistant ``message`` and ``function_call``
  items between two items of another kind; it becomes one assistant message: the text
  (``output_text`` / ``input_text``), the ``refusal``, the ``tool_calls`` (``call_id`` → id, a
  namespaced call's name flattened to ``namespace__name``), and the reasoning. A reasoning item
  after text or calls starts a new turn.
- Reasoning: gridgate's own ``encrypted_content`` (``reasoning.py``) gives back the signed
  ``thinking_blocks``; otherwise the item's ``content`` (raw reasoning text) or else its
  summary becomes ``reasoning_content``. Another provider's encrypted content is dropped
  (noted), and so is a turn that is only reasoning (noted).
- ``function_call_output`` → a tool message (a string, or text, image and file parts).
- tools: functions as they are; namespace members flattened (``tools.py``); hosted tools, and
  custom tools inside a namespace, returned in ``hosted_tools``. ``tool_choice``: the modes and
  ``{type: function}`` as they are; ``allowed_tools`` keeps only the allowed functions in
  ``tools`` with its mode; a hosted tool's choice is returned in ``hosted_tool_choice``.
- ``text.format`` → ``response_format``; ``text.verbosity`` → ``verbosity``;
  ``reasoning.effort`` → ``reasoning_effort``; ``max_output_tokens`` →
  ``max_completion_tokens``; ``top_logprobs`` or ``include: message.output_text.logprobs`` →
  ``logprobs`` (and ``top_logprobs``); ``stream`` → ``stream`` with ``include_usage`` (the
  final events report usage); ``prompt_cache_retention`` ``in_memory`` → ``in-memory``;
  ``temperature``, ``top_p``, ``parallel_tool_calls``, ``user``, ``safety_identifier``,
  ``prompt_cache_key``, ``service_tier`` (the values chat has) and ``provider`` as they are.
- Not carried, noted: ``truncation: auto`` (the canonical form never truncates) and
  ``max_tool_calls``. ``store``, ``metadata``, ``previous_response_id`` and ``include`` belong
  to the surface (echoed on the answer, ``output.py``), not to the supplier.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, TypeVar, get_args

import msgspec

from gridgate.errors import ValidationFailed
from gridgate.protocol import openai_chat as chat
from gridgate.protocol.openai_chat import UNSET, UnsetType
from gridgate.protocol.openai_responses import items as it
from gridgate.protocol.openai_responses import request as rq
from gridgate.protocol.openai_responses.reasoning import open_reasoning
from gridgate.protocol.openai_responses.tools import (
    ToolChoiceMode,
    ToolChoiceObject,
    ToolSpec,
    flat_name,
)

__all__ = ["HostedTool", "Translation", "to_chat_request"]

_CHAT_TIERS: Final = frozenset(get_args(chat.ServiceTier))
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class HostedTool:
    """A tool the canonical form cannot hold: its type, its name if it has one (a custom tool
    of a namespace: ``namespace__name``; an MCP server: its ``server_label``) and its JSON."""

    type: str
    name: str | None
    raw: bytes


@dataclass(frozen=True, slots=True)
class Translation:
    request: chat.ChatRequest
    hosted_tools: tuple[HostedTool, ...] = ()
    hosted_tool_choice: str | None = None  # the hosted tool type ``tool_choice`` names
    # canonical function name → (namespace, name), for the answer's function_call items
    namespaces: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # what was dropped, in words


def to_chat_request(
    request: rq.ResponsesRequest, prior: Sequence[it.InputItem] = ()
) -> Translation:
    """The canonical request for a (decoded, validated) Responses request."""
    notes: list[str] = []
    messages: list[chat.Message] = []
    if isinstance(request.instructions, str):
        messages.append(chat.SystemMessage(content=request.instructions))
    given = request.input
    items = [*prior, *(given if isinstance(given, list) else ())]
    namespaced = _namespaced(rq.parse_tools(request))
    _Conversation(messages, notes, namespaced).add(items, len(prior))
    if isinstance(given, str):
        messages.append(chat.UserMessage(content=given))

    tools, hosted, namespaces = _tools(request)
    tools, choice, hosted_choice = _tool_choice(request.tool_choice, tools, notes)
    if request.truncation == "auto":
        notes.append("truncation 'auto' is not carried: the input is never truncated")
    if isinstance(request.max_tool_calls, int):
        notes.append("max_tool_calls is not carried to the supplier")
    return Translation(
        request=_options(request, messages, tools, choice),
        hosted_tools=tuple(hosted),
        hosted_tool_choice=hosted_choice,
        namespaces=namespaces,
        notes=tuple(notes),
    )


def _options(
    request: rq.ResponsesRequest,
    messages: list[chat.Message],
    tools: list[chat.Tool],
    choice: chat.ToolChoiceMode | chat.NamedToolChoice | UnsetType,
) -> chat.ChatRequest:
    text = request.text if isinstance(request.text, rq.TextConfig) else rq.TextConfig()
    reasoning = request.reasoning
    effort = reasoning.effort if isinstance(reasoning, rq.ReasoningConfig) else UNSET
    logprobs = request.includes("message.output_text.logprobs") or bool(request.top_logprobs)
    stream = request.stream is True
    retention = request.prompt_cache_retention
    tier = request.service_tier
    return chat.ChatRequest(
        model=request.model,
        messages=messages,
        max_completion_tokens=_given(request.max_output_tokens),
        temperature=_given(request.temperature),
        top_p=_given(request.top_p),
        stream=True if stream else UNSET,
        stream_options=chat.StreamOptions(include_usage=True) if stream else UNSET,
        logprobs=True if logprobs else UNSET,
        top_logprobs=_given(request.top_logprobs) if logprobs else UNSET,
        response_format=_response_format(text.format),
        verbosity=_given(text.verbosity),
        tools=tools or UNSET,
        tool_choice=choice,
        parallel_tool_calls=_given(request.parallel_tool_calls) if tools else UNSET,
        reasoning_effort=_given(effort),
        user=_given(request.user),
        safety_identifier=_given(request.safety_identifier),
        prompt_cache_key=_given(request.prompt_cache_key),
        prompt_cache_retention=(
            "in-memory" if retention == "in_memory" else "24h" if retention == "24h" else UNSET
        ),
        service_tier=tier if isinstance(tier, str) and tier in _CHAT_TIERS else UNSET,  # type: ignore[arg-type]
        provider=request.provider,
    )


def _given(value: _T | UnsetType | None) -> _T | UnsetType:
    """``null`` means "not given": leave it out."""
    return UNSET if value is None else value


# --------------------------------------------------------------------------------------------
# Items


class _Conversation:
    """Items → messages, gathering each assistant turn (see the module docstring)."""

    def __init__(
        self, out: list[chat.Message], notes: list[str], namespaced: Mapping[tuple[str, str], str]
    ) -> None:
        self._out = out
        self._notes = notes
        self._namespaced = namespaced
        self._texts: list[str] = []
        self._refusal: str | None = None
        self._calls: list[chat.ToolCall] = []
        self._blocks: list[chat.ReasoningBlock] = []
        self._thoughts: list[str] = []

    def add(self, items: Sequence[it.InputItem], n_prior: int) -> None:
        for i, item in enumerate(items):
            path = f"input[{i - n_prior}]" if i >= n_prior else f"prior[{i}]"
            kind = item.type
            if kind == "reasoning":
                if self._texts or self._calls or self._refusal is not None:
                    self._flush()
                self._reasoning(item, path)
            elif kind == "function_call":
                self._calls.append(self._call(item))
            elif kind == "message" and item.role == "assistant":
                if self._texts or self._calls or self._refusal is not None:
                    self._flush()
                self._assistant(item.content)
            else:
                self._flush()
                self._out.append(self._message(item, path))
        self._flush()

    def _message(self, item: it.InputItem, path: str) -> chat.Message:
        if item.type == "function_call_output":
            assert isinstance(item.call_id, str)
            output = item.output
            if isinstance(output, list):
                result: str | list[chat.ContentPart] = _parts(output, f"{path}.output")
            else:
                result = output if isinstance(output, str) else ""
            return chat.ToolMessage(content=result or "", tool_call_id=item.call_id)
        given = item.content
        assert not isinstance(given, UnsetType)
        content = given if isinstance(given, str) else _parts(given, f"{path}.content")
        if item.role == "user":
            return chat.UserMessage(content=content)
        if not isinstance(content, str):
            for j, part in enumerate(content):
                if not isinstance(part, chat.TextPart):
                    param = f"{path}.content[{j}].type"
                    raise ValidationFailed(
                        f"{param}: {item.role} messages take text only", param=param
                    )
        if item.role == "developer":
            return chat.DeveloperMessage(content=content)
        return chat.SystemMessage(content=content)

    def _assistant(self, content: str | list[it.ContentPart] | UnsetType) -> None:
        if isinstance(content, str):
            self._texts.append(content)
            return
        for part in content or ():
            if isinstance(part, it.OutputText | it.InputText):
                self._texts.append(part.text)
            elif isinstance(part, it.RefusalText):
                self._refusal = (self._refusal or "") + part.refusal

    def _call(self, item: it.InputItem) -> chat.ToolCall:
        assert isinstance(item.call_id, str) and isinstance(item.name, str)
        assert isinstance(item.arguments, str)
        name = item.name
        if isinstance(item.namespace, str):
            name = self._namespaced.get((item.namespace, name), flat_name(item.namespace, name))
        function = chat.FunctionCall(name=name, arguments=item.arguments)
        return chat.ToolCall(id=item.call_id, type="function", function=function)

    def _reasoning(self, item: it.InputItem, path: str) -> None:
        sealed = item.encrypted_content
        blocks = open_reasoning(sealed) if isinstance(sealed, str) else None
        if blocks is not None:
            self._blocks.extend(blocks)
            self._thoughts.extend(b.thinking for b in blocks if isinstance(b, chat.ThinkingBlock))
            return
        if isinstance(sealed, str):
            self._notes.append(f"{path}: encrypted reasoning of another provider was dropped")
        content = item.content
        texts = [p.text for p in content if isinstance(p, it.ReasoningText)] if content else []
        if not texts and isinstance(item.summary, list):
            texts = [part.text for part in item.summary]
        self._thoughts.extend(text for text in texts if text)

    def _flush(self) -> None:
        if not (self._texts or self._calls or self._refusal is not None):
            if self._blocks or self._thoughts:
                self._notes.append("reasoning that no answer followed was dropped")
                self._blocks, self._thoughts = [], []
            return
        self._out.append(
            chat.AssistantMessage(
                content="".join(self._texts) if self._texts else None,
                refusal=self._refusal if self._refusal is not None else UNSET,
                tool_calls=self._calls or UNSET,
                thinking_blocks=self._blocks or UNSET,
                reasoning_content="\n\n".join(self._thoughts) if self._thoughts else UNSET,
            )
        )
        self._texts, self._refusal, self._calls = [], None, []
        self._blocks, self._thoughts = [], []


def _parts(parts: list[it.ContentPart], path: str) -> list[chat.ContentPart]:
    out: list[chat.ContentPart] = []
    for j, part in enumerate(parts):
        match part:
            case it.InputText() | it.OutputText():
                out.append(chat.TextPart(text=part.text))
            case it.InputImage():
                assert isinstance(part.image_url, str)
                detail = part.detail if part.detail != "original" else UNSET
                url = chat.ImageURL(url=part.image_url, detail=detail)
                out.append(chat.ImagePart(image_url=url))
            case it.InputFile():
                ref = chat.FileRef(file_data=part.file_data, filename=part.filename)
                out.append(chat.FilePart(file=ref))
            case _:
                param = f"{path}[{j}].type"
                tag = part.__struct_config__.tag
                raise ValidationFailed(f"{param}: '{tag}' parts are not allowed here", param=param)
    return out


# --------------------------------------------------------------------------------------------
# Tools and options


def _namespaced(specs: list[ToolSpec]) -> dict[tuple[str, str], str]:
    table: dict[tuple[str, str], str] = {}
    for spec in specs:
        if spec.type == "namespace" and isinstance(spec.name, str):
            for member in spec.tools or ():
                if isinstance(member.name, str):
                    table[(spec.name, member.name)] = flat_name(spec.name, member.name)
    return table


def _function(spec: ToolSpec, name: str) -> chat.Tool:
    definition = chat.FunctionDefinition(
        name=name,
        description=_given(spec.description),
        parameters=_given(spec.parameters),
        strict=spec.strict,
    )
    return chat.Tool(type="function", function=definition)


def _tools(
    request: rq.ResponsesRequest,
) -> tuple[list[chat.Tool], list[HostedTool], dict[str, tuple[str, str]]]:
    """The canonical tools, the hosted ones (as sent), and the namespace table."""
    tools: list[chat.Tool] = []
    hosted: list[HostedTool] = []
    namespaces: dict[str, tuple[str, str]] = {}
    raws = request.tools if isinstance(request.tools, list) else []
    for raw, spec in zip(raws, rq.parse_tools(request), strict=True):
        if spec.type == "function" and isinstance(spec.name, str):
            tools.append(_function(spec, spec.name))
        elif spec.type == "namespace" and isinstance(spec.name, str):
            for j, member in enumerate(spec.tools or ()):
                assert isinstance(member.name, str)
                name = flat_name(spec.name, member.name)
                if member.type == "function":
                    tools.append(_function(member, name))
                    namespaces[name] = (spec.name, member.name)
                else:
                    given = msgspec.json.decode(raw)["tools"][j]
                    hosted.append(HostedTool(member.type, name, msgspec.json.encode(given)))
        else:
            label = spec.name if isinstance(spec.name, str) else _server_label(raw)
            hosted.append(HostedTool(spec.type, label, bytes(raw)))
    return tools, hosted, namespaces


def _server_label(raw: msgspec.Raw) -> str | None:
    label = msgspec.json.decode(raw).get("server_label")
    return label if isinstance(label, str) else None


def _tool_choice(
    choice: ToolChoiceMode | ToolChoiceObject | UnsetType | None,
    tools: list[chat.Tool],
    notes: list[str],
) -> tuple[list[chat.Tool], chat.ToolChoiceMode | chat.NamedToolChoice | UnsetType, str | None]:
    """The canonical tools, ``tool_choice``, and the hosted tool type a choice names."""
    if not isinstance(choice, ToolChoiceObject):
        if choice is None or choice is UNSET or (choice == "auto" and not tools):
            return tools, UNSET, None
        return tools, choice, None
    if choice.type == "function":
        named = chat.ToolChoiceFunction(name=str(choice.name))
        return tools, chat.NamedToolChoice(type="function", function=named), None
    if choice.type == "allowed_tools":
        allowed = {e.get("name") for e in choice.tools or () if e.get("type") == "function"}
        kept = [tool for tool in tools if tool.function.name in allowed]
        mode: chat.ToolChoiceMode = "required" if choice.mode == "required" else "auto"
        return kept, (mode if kept else UNSET), None
    notes.append(f"tool_choice names a hosted tool ({choice.type}), not carried")
    return tools, UNSET, choice.type


def _response_format(given: rq.TextFormat | UnsetType) -> chat.ResponseFormat | UnsetType:
    match given:
        case rq.TextFormatJSONSchema():
            schema = chat.JSONSchemaFormat(
                name=given.name,
                description=given.description,
                schema=given.schema,
                strict=given.strict,
            )
            return chat.ResponseFormatJSONSchema(json_schema=schema)
        case rq.TextFormatJSONObject():
            return chat.ResponseFormatJSONObject()
        case rq.TextFormatText():
            return chat.ResponseFormatText()
        case _:
            return UNSET
