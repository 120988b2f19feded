"""How a canonical ``ChatRequest`` becomes an Anthropic ``/messages`` body (pure).

What the request mapping does with each canonical field that Anthropic has no place for:

    field                               decision        why
    ─────────────────────────────────── ─────────────── ───────────────────────────────────────────
    n > 1                               Untranslatable  one answer per call; several would
                                                        change what the caller gets
    logprobs true / top_logprobs        Untranslatable  Anthropic returns no log probabilities
    logit_bias (non-empty)              Untranslatable  steers the tokens; without it the answer
                                                        is not what was asked for
    modalities containing "audio",      Untranslatable  no audio output
      audio (output parameters)
    web_search_options                  Untranslatable  search changes the answer; gridgate
                                                        carries no server-tool blocks
    audio input parts, file_id files,   Untranslatable  no audio input; no access to the
      assistant ``audio`` references                    caller's OpenAI files
    files other than PDF / plain text   Untranslatable  Anthropic documents are PDF or text
    images neither data: nor http(s),   Untranslatable  no source type for them
      or not jpeg/png/gif/webp
    tool call arguments not an object   Untranslatable  ``tool_use.input`` is a JSON object
    temperature > 1                     Untranslatable  Anthropic's range is 0..1; clamping
                                                        would change the sampling asked for
    thinking (explicit) with forced     Untranslatable  Anthropic cannot think while a tool
      tool use, temperature ≠ 1, top_k,                 call is forced or with those sampling
      or top_p < 0.95                                   settings; the caller asked for both
    a conversation of system messages   Untranslatable  Anthropic needs a user or assistant
      only                                              message
    seed                                dropped         best-effort determinism; no field
    frequency/presence_penalty          dropped         soft sampling hints; no field
    service_tier                        dropped         OpenAI's pricing tiers; the offer prices
    store, metadata                     dropped         OpenAI-side storage and its labels
    prompt_cache_key,                   dropped         cache routing hints; Anthropic caches by
      prompt_cache_retention                            ``cache_control`` breakpoints (carried)
    verbosity                           dropped         a style hint; no field
    prediction                          dropped         a latency hint: the answer is the same
                                                        without it (and no rejected prediction
                                                        tokens are billed)
    stream_options                      dropped         Anthropic streams always carry usage
    reasoning_effort                    → thinking      budget per the contract table; no
                                                        thinking when it would conflict with forced
                                                        tool use or the sampling settings above
                                                        (the effort is a hint, those are not)
    reasoning_content without           dropped         Anthropic takes earlier reasoning back
      thinking_blocks, thinking blocks                  only with its signature
      without a signature, or whose
      signature seals a Responses-API
      reasoning item (not Anthropic's)
    name (on messages)                  dropped         no per-message names
    image_url.detail                    dropped         a rendering hint
    empty text (content "" or parts)    dropped         Anthropic rejects empty text blocks; an
                                                        empty text says nothing
    provider, route, model, max_tokens, replaced        gateway fields; ``model`` is the offer's
      max_completion_tokens                             model, ``max_tokens`` the held max

``dropped_fields(request)`` lists the parameters a request sets that this mapping would leave
out (the rows "dropped" above that are request parameters, plus a ``reasoning_effort`` that
yields no thinking and a ``user`` hidden by ``safety_identifier``), so routing can honour a
caller's ``provider.require_parameters`` without mapping the request first.

Tool call ids the Anthropic wire cannot carry (it takes ``[a-zA-Z0-9_-]+``; other suppliers'
ids may hold ``.`` or ``:``) are replaced by a stable digest, the same in the ``tool_use`` and
its ``tool_result``. An explicit thinking budget under Anthropic's minimum (1024) is raised to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from gridgate.protocol.openai_chat import (
    UNSET,
    ChatRequest,
    NamedToolChoice,
    ResponseFormatJSONObject,
    ResponseFormatJSONSchema,
    ThinkingDisabled,
    ThinkingEnabled,
    UnsetType,
)
from gridgate.providers.anthropic.conversation import cache_control_of, map_messages, refuse
from gridgate.providers.anthropic.wire import (
    MIN_THINKING_BUDGET,
    _Body,
    _encoder,
    _Metadata,
    _ThinkingConfig,
    _Tool,
    _ToolChoice,
)
from gridgate.providers.base import UpstreamCall

JSON_TOOL_DESCRIPTION: Final = "Respond with a JSON document"
JSON_OBJECT_TOOL: Final = "json_object"

# reasoning_effort → thinking budget (tokens); "none" means no thinking
EFFORT_BUDGET: Final[Mapping[str, int]] = {
    "minimal": 1024,
    "low": 2048,
    "medium": 4096,
    "high": 8192,
    "xhigh": 16384,
    "max": 16384,
}
# request parameters with no place on the Anthropic wire (the "dropped" rows of the table)
_DROPPED: Final = (
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "service_tier",
    "store",
    "metadata",
    "prompt_cache_key",
    "prompt_cache_retention",
    "verbosity",
    "prediction",
)


def map_request(call: UpstreamCall) -> bytes:
    """The Anthropic body for ``call``. Raises ``Untranslatable`` (naming the part) for anything
    the Anthropic wire cannot carry; nothing is sent then."""
    req = call.request
    _refuse_untranslatable_fields(req)
    system, messages = map_messages(req.messages)
    tools, tool_choice = _map_tools(req)
    body = _Body(
        model=call.offer.model,
        max_tokens=call.max_output_tokens,
        system=system,
        messages=messages,
        thinking=_map_thinking(req, call.max_output_tokens, tool_choice),
    )
    if tools:
        body.tools = tools
    if tool_choice is not None:
        body.tool_choice = tool_choice
    stop = req.stop_list
    if stop:
        body.stop_sequences = stop
    if isinstance(req.temperature, float | int):
        if req.temperature > 1:
            refuse("temperature", f"Anthropic accepts 0 to 1 (got {req.temperature})")
        body.temperature = req.temperature
    if isinstance(req.top_p, float | int):
        body.top_p = req.top_p
    if isinstance(req.top_k, int):
        body.top_k = req.top_k
    user = req.safety_identifier if isinstance(req.safety_identifier, str) else req.user
    if isinstance(user, str) and user:
        body.metadata = _Metadata(user_id=user)
    if call.stream:
        body.stream = True
    return _encoder.encode(body)


def dropped_fields(req: ChatRequest) -> frozenset[str]:
    """The parameters ``req`` sets (not null) that ``map_request`` would drop. Pure and cheap:
    no mapping is done. (What it would refuse instead is ``Untranslatable``, not listed.)"""
    dropped = [name for name in _DROPPED if getattr(req, name) not in (UNSET, None)]
    if isinstance(req.reasoning_effort, str) and _effort_dropped(req):
        dropped.append("reasoning_effort")
    if isinstance(req.safety_identifier, str) and isinstance(req.user, str) and req.user:
        dropped.append("user")  # one metadata.user_id: the safety identifier wins
    return frozenset(dropped)


def _effort_dropped(req: ChatRequest) -> bool:
    """``reasoning_effort`` (set) yields no thinking: an explicit ``thinking`` decides instead,
    the max tokens leave no room for the minimum budget, or the request forbids thinking."""
    if req.thinking is not UNSET and req.thinking is not None:
        return True
    if req.reasoning_effort not in EFFORT_BUDGET:
        return False  # "none": no thinking is what was asked
    requested = req.effective_max_tokens
    if requested is not None and requested <= MIN_THINKING_BUDGET:
        return True
    forced = (
        json_tool_name(req) is not None
        or req.tool_choice == "required"
        or isinstance(req.tool_choice, NamedToolChoice)
    )
    return _thinking_conflict(req, _ToolChoice(type="any") if forced else None) is not None


def json_tool_name(req: ChatRequest) -> str | None:
    """The name of the tool that carries a JSON answer (``response_format`` json_schema or
    json_object), or None when the caller asked for none."""
    fmt = req.response_format
    if isinstance(fmt, ResponseFormatJSONSchema):
        return fmt.json_schema.name
    if isinstance(fmt, ResponseFormatJSONObject):
        return JSON_OBJECT_TOOL
    return None


def _refuse_untranslatable_fields(req: ChatRequest) -> None:
    if isinstance(req.n, int) and req.n > 1:
        refuse("n", f"an Anthropic-format supplier gives one answer per request (got {req.n})")
    if req.logprobs is True:
        refuse("logprobs", "an Anthropic-format supplier returns no log probabilities")
    if isinstance(req.top_logprobs, int):
        refuse("top_logprobs", "an Anthropic-format supplier returns no log probabilities")
    if req.logit_bias:
        refuse("logit_bias", "an Anthropic-format supplier cannot bias tokens")
    if isinstance(req.modalities, list) and "audio" in req.modalities:
        refuse("modalities", "an Anthropic-format supplier cannot answer with audio")
    if req.audio is not UNSET and req.audio is not None:
        refuse("audio", "an Anthropic-format supplier cannot answer with audio")
    if req.web_search_options is not UNSET and req.web_search_options is not None:
        refuse("web_search_options", "gridgate cannot carry an Anthropic-format web search")


# tools, tool choice, response format -------------------------------------------------------------
def _object_schema(schema: dict[str, Any] | UnsetType, param: str) -> dict[str, Any]:
    if not isinstance(schema, dict) or not schema:
        return {"type": "object", "properties": {}}
    kind = schema.get("type", "object")
    if kind != "object":
        refuse(param, f"an Anthropic-format supplier takes an object schema (got type {kind!r})")
    return schema if "type" in schema else {"type": "object", **schema}


def _map_tools(req: ChatRequest) -> tuple[list[_Tool], _ToolChoice | None]:
    tools = [
        _Tool(
            name=tool.function.name,
            description=tool.function.description,
            input_schema=_object_schema(
                tool.function.parameters, f"tools[{i}].function.parameters"
            ),
            strict=True if tool.function.strict is True else UNSET,
            cache_control=cache_control_of(tool.cache_control),
        )
        for i, tool in enumerate(req.tools or ())
    ]
    choice = req.tool_choice
    tool_choice: _ToolChoice | None = None
    if isinstance(choice, NamedToolChoice):
        tool_choice = _ToolChoice(type="tool", name=choice.function.name)
    elif choice == "auto":
        tool_choice = _ToolChoice(type="auto")
    elif choice == "required":
        tool_choice = _ToolChoice(type="any")
    elif choice == "none":
        tool_choice = _ToolChoice(type="none")

    json_name = json_tool_name(req)
    if json_name is not None:
        param = (
            "response_format.json_schema"
            if isinstance(req.response_format, ResponseFormatJSONSchema)
            else "response_format"
        )
        if any(tool.name == json_name for tool in tools):
            refuse(
                f"{param}.name" if param.endswith("json_schema") else param,
                f"the JSON answer is carried by a tool named {json_name!r}, and a tool of "
                "the request has that name",
            )
        fmt = req.response_format
        if isinstance(fmt, ResponseFormatJSONSchema):
            spec = fmt.json_schema
            json_tool = _Tool(
                name=json_name,
                description=spec.description
                if isinstance(spec.description, str)
                else JSON_TOOL_DESCRIPTION,
                input_schema=_object_schema(spec.schema, f"{param}.schema")
                if isinstance(spec.schema, dict)
                else {"type": "object"},
                strict=True if spec.strict is True else UNSET,
            )
        else:
            json_tool = _Tool(
                name=json_name, description=JSON_TOOL_DESCRIPTION, input_schema={"type": "object"}
            )
        if tool_choice is None or tool_choice.type != "tool":
            callers_tools_usable = bool(tools) and (
                tool_choice is None or tool_choice.type != "none"
            )
            tool_choice = (
                _ToolChoice(type="any")
                if callers_tools_usable
                else _ToolChoice(type="tool", name=json_name)
            )
        tools.append(json_tool)

    if not tools:
        return tools, None
    if req.parallel_tool_calls is False:
        if tool_choice is None:
            tool_choice = _ToolChoice(type="auto")
        if tool_choice.type != "none":
            tool_choice.disable_parallel_tool_use = True
    return tools, tool_choice


# thinking -----------------------------------------------------------------------------------------
def _map_thinking(
    req: ChatRequest, max_tokens: int, tool_choice: _ToolChoice | None
) -> _ThinkingConfig | UnsetType:
    """The Anthropic thinking budget (contract table), within ``1024 ≤ budget < max_tokens``."""
    explicit = req.thinking
    if isinstance(explicit, ThinkingDisabled):
        return _ThinkingConfig(type="disabled")
    if isinstance(explicit, ThinkingEnabled):
        budget = max(explicit.budget_tokens, MIN_THINKING_BUDGET)
    elif isinstance(req.reasoning_effort, str) and req.reasoning_effort in EFFORT_BUDGET:
        budget = EFFORT_BUDGET[req.reasoning_effort]
    else:
        return UNSET
    if max_tokens <= budget:
        budget = max_tokens - 1
    if budget < MIN_THINKING_BUDGET:
        return UNSET
    conflict = _thinking_conflict(req, tool_choice)
    if conflict is not None:
        if isinstance(explicit, ThinkingEnabled):
            refuse(conflict[0], conflict[1])
        return UNSET  # reasoning_effort is a hint; the conflicting settings are not
    return _ThinkingConfig(type="enabled", budget_tokens=budget)


def _thinking_conflict(req: ChatRequest, tool_choice: _ToolChoice | None) -> tuple[str, str] | None:
    """What the caller asked for that Anthropic forbids while thinking: (param, why)."""
    if tool_choice is not None and tool_choice.type in ("any", "tool"):
        callers = req.tool_choice == "required" or isinstance(req.tool_choice, NamedToolChoice)
        param = "tool_choice" if callers else "response_format"
        return param, "an Anthropic-format supplier cannot think while a tool call is forced"
    if isinstance(req.temperature, float | int) and req.temperature != 1:
        return "temperature", "an Anthropic-format supplier takes only temperature 1 while thinking"
    if isinstance(req.top_k, int):
        return "top_k", "an Anthropic-format supplier takes no top_k while thinking"
    if isinstance(req.top_p, float | int) and req.top_p < 0.95:
        return "top_p", "an Anthropic-format supplier takes top_p of 0.95 to 1 while thinking"
    return None
