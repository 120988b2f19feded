"""The tools of a Responses request and its ``tool_choice``: schema and checks.

A tool is one of three kinds, all read as a ``ToolSpec`` (one struct, ``type`` a plain string):

- ``function``: name, description, parameters, strict, as on chat (flattened: no ``function``
  wrapper).
- ``namespace`` (Codex's groups, OpenAI's ``NamespaceToolParam``): a name, a description, and
  ``tools``, its functions (and ``custom`` tools). The model calls a namespaced function by its
  canonical name ``<namespace>__<name>`` (``flat_name``); the answer's ``function_call`` item
  gives ``namespace`` and ``name`` apart again, as OpenAI's ``FunctionToolCall`` does.
  ``__`` keeps the flat name inside the function-name alphabet every supplier takes
  (``[a-zA-Z0-9_-]{1,64}``); the namespace table, not the string, maps it back, so a function
  whose own name contains ``__`` is no ambiguity.
- a hosted tool (``HOSTED_TOOL_TYPES``: web search, file search, code interpreter, MCP, custom
  grammar tools …), which the canonical form cannot hold: ``to_chat`` returns it beside the
  canonical request, configuration and all, for the exchange to decide on.

``tools`` is decoded one tool at a time (``decode_tool``), so a hosted tool keeps its raw JSON.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import msgspec
from msgspec import UNSET, UnsetType

from gridgate.protocol.openai_content import Wire
from gridgate.protocol.wire_errors import Surface, check_name, choices_text, fail, show, translate

__all__ = [
    "HOSTED_TOOL_CHOICES",
    "HOSTED_TOOL_TYPES",
    "NAMESPACE_SEPARATOR",
    "ToolChoiceMode",
    "ToolChoiceObject",
    "ToolSpec",
    "check_tool_choice",
    "check_tools",
    "decode_tool",
    "flat_name",
]

ToolChoiceMode = Literal["none", "auto", "required"]

HOSTED_TOOL_TYPES: Final = frozenset(
    {
        "file_search", "computer", "computer_use_preview", "web_search", "web_search_2025_08_26",
        "mcp", "code_interpreter", "programmatic_tool_calling", "image_generation",
        "local_shell", "shell", "custom", "tool_search", "web_search_preview",
        "web_search_preview_2025_03_11", "apply_patch",
    }
)  # fmt: skip
HOSTED_TOOL_CHOICES: Final = frozenset(
    {
        "file_search", "web_search_preview", "computer", "computer_use_preview", "computer_use",
        "web_search_preview_2025_03_11", "image_generation", "code_interpreter", "mcp",
        "custom", "apply_patch", "shell", "programmatic_tool_calling",
    }
)  # fmt: skip
NAMESPACE_SEPARATOR: Final = "__"


def flat_name(namespace: str, name: str) -> str:
    """The canonical (callable) name of function ``name`` of namespace ``namespace``."""
    return f"{namespace}{NAMESPACE_SEPARATOR}{name}"


class ToolSpec(Wire):
    """Any tool: a function, a namespace (``tools`` holds its members) or a hosted tool."""

    type: str
    name: str | UnsetType = UNSET
    description: str | UnsetType | None = UNSET
    parameters: dict[str, Any] | UnsetType | None = UNSET
    strict: bool | UnsetType | None = UNSET
    tools: list[ToolSpec] | UnsetType = UNSET  # namespace members


class ToolChoiceObject(Wire):
    """``{type: function, name}``, ``{type: allowed_tools, mode, tools}`` or a hosted tool."""

    type: str
    name: str | UnsetType | None = UNSET
    mode: Literal["auto", "required"] | UnsetType = UNSET
    tools: list[dict[str, Any]] | UnsetType = UNSET
    server_label: str | UnsetType = UNSET


_TOOL_DECODER: Final = msgspec.json.Decoder(ToolSpec)


def decode_tool(raw: msgspec.Raw, index: int, surface: Surface) -> ToolSpec:
    """``tools[index]``, decoded; a fault is phrased as the whole body's would be."""
    try:
        return _TOOL_DECODER.decode(raw)
    except msgspec.ValidationError as exc:
        text = str(exc)
        where = f"$.tools[{index}]"
        if " - at `$" in text:
            text = text.replace(" - at `$", f" - at `{where}", 1)
        else:
            text += f" - at `{where}`"
        raise translate(text, surface) from None


def check_tools(tools: list[ToolSpec]) -> frozenset[str]:
    """The callable (canonical) function names; namespace members as ``namespace__name``."""
    names: set[str] = set()

    def add(name: str, param: str) -> None:
        check_name(name, param)
        if name in names:
            fail(param, f"must be unique ({show(name)} is given twice)")
        names.add(name)

    for i, tool in enumerate(tools):
        path = f"tools[{i}]"
        if tool.type == "function":
            if not isinstance(tool.name, str):
                fail(f"{path}.name", "is required")
            add(tool.name, f"{path}.name")
        elif tool.type == "namespace":
            if not isinstance(tool.name, str) or not tool.name:
                fail(f"{path}.name", "is required")
            if not isinstance(tool.description, str):
                fail(f"{path}.description", "is required")
            if not isinstance(tool.tools, list) or not tool.tools:
                fail(f"{path}.tools", "must contain at least one tool")
            for j, member in enumerate(tool.tools):
                where = f"{path}.tools[{j}]"
                if member.type not in ("function", "custom"):
                    got = show(member.type)
                    fail(f"{where}.type", f"must be one of 'function', 'custom' (got {got})")
                if not isinstance(member.name, str):
                    fail(f"{where}.name", "is required")
                if member.type == "function":
                    add(flat_name(tool.name, member.name), f"{where}.name")
        elif tool.type not in HOSTED_TOOL_TYPES:
            known = choices_text(sorted({"function", "namespace", *HOSTED_TOOL_TYPES}))
            fail(f"{path}.type", f"unknown tool type {show(tool.type)} (known: {known})")
    return frozenset(names)


def check_tool_choice(
    choice: ToolChoiceMode | ToolChoiceObject | UnsetType | None, names: frozenset[str]
) -> None:
    """``names``: the callable function names (``check_tools``)."""
    if not isinstance(choice, ToolChoiceObject):
        if choice == "required" and not names:
            fail("tool_choice", "requires function tools (give tools, or omit tool_choice)")
        return
    kind = choice.type
    if kind == "function":
        if not isinstance(choice.name, str):
            fail("tool_choice.name", "is required")
        if choice.name not in names:
            _unknown_function("tool_choice.name", choice.name)
    elif kind == "allowed_tools":
        if choice.mode is UNSET:
            fail("tool_choice.mode", "is required (one of 'auto', 'required')")
        if not isinstance(choice.tools, list):
            fail("tool_choice.tools", "is required")
        for k, entry in enumerate(choice.tools):
            name = entry.get("name")
            if entry.get("type") == "function" and name not in names:
                _unknown_function(f"tool_choice.tools[{k}].name", name)
    elif kind not in HOSTED_TOOL_CHOICES:
        fail("tool_choice.type", f"unknown tool choice type {show(kind)}")


def _unknown_function(param: str, name: object) -> None:
    fail(param, f"names a function that is not in tools (got {show(name)})")
