"""The input items of a Responses request (``input``), and their content parts.

OpenAI's ``InputItem`` is a union tagged by ``type``, except that a message may leave ``type``
out (``EasyInputMessage``: ``{"role": "user", "content": "hi"}``). msgspec's tagged unions need
the tag, so an item is one struct, ``InputItem``, whose ``type`` defaults to ``"message"`` and
whose fields are the union of the kinds this exchange carries:

    message               role (user, system, developer, assistant), content (a string or parts)
    function_call         call_id, name, arguments, namespace (a namespaced tool's group)
    function_call_output  call_id, output (a string or input parts)
    reasoning             id, summary (summary_text parts), content (reasoning_text parts),
                          encrypted_content

``request.py``'s Python pass checks, per kind, the fields it requires and the part types each
role may carry; any other ``type`` (hosted tools' calls, ``item_reference`` …) is refused there
with its name. Content parts are a tagged union, as in OpenAI's schema: ``input_text``,
``input_image``, ``input_file`` (what a caller writes), ``output_text`` and ``refusal`` (an
assistant's earlier answer, sent back), ``reasoning_text`` (a reasoning item's content).
"""

from __future__ import annotations

from typing import Any, Final, Literal

from msgspec import UNSET, UnsetType

from gridgate.protocol.openai_content import Wire

__all__ = [
    "ITEM_TYPES",
    "ContentPart",
    "ImageDetail",
    "InputFile",
    "InputImage",
    "InputItem",
    "InputText",
    "ItemType",
    "OutputText",
    "ReasoningText",
    "RefusalText",
    "Role",
    "SummaryText",
]

Role = Literal["user", "system", "developer", "assistant"]
ImageDetail = Literal["low", "high", "auto", "original"]
ItemType = Literal["message", "function_call", "function_call_output", "reasoning"]
ITEM_TYPES: Final = ("message", "function_call", "function_call_output", "reasoning")


class InputText(Wire, tag="input_text", tag_field="type"):
    text: str


class InputImage(Wire, tag="input_image", tag_field="type"):
    """An image by URL (``http(s)`` or a base64 ``data:`` URL) or by Files-API ``file_id``
    (refused: an id of one provider's storage)."""

    image_url: str | UnsetType | None = UNSET
    file_id: str | UnsetType | None = UNSET
    detail: ImageDetail | UnsetType = UNSET


class InputFile(Wire, tag="input_file", tag_field="type"):
    """A file given inline (``file_data``, base64 or a data URL); ``file_id`` and
    ``file_url`` are refused (a canonical file part holds data, not a reference)."""

    file_data: str | UnsetType = UNSET
    file_id: str | UnsetType | None = UNSET
    file_url: str | UnsetType = UNSET
    filename: str | UnsetType = UNSET


class OutputText(Wire, tag="output_text", tag_field="type"):
    text: str
    annotations: list[dict[str, Any]] | UnsetType = UNSET  # not carried
    logprobs: list[dict[str, Any]] | UnsetType = UNSET  # not carried


class RefusalText(Wire, tag="refusal", tag_field="type"):
    refusal: str


class ReasoningText(Wire, tag="reasoning_text", tag_field="type"):
    text: str


ContentPart = InputText | InputImage | InputFile | OutputText | RefusalText | ReasoningText


class SummaryText(Wire):
    type: Literal["summary_text"]
    text: str


class InputItem(Wire):
    """One item of ``input`` (see the module docstring for which fields each kind uses)."""

    type: str = "message"
    id: str | UnsetType | None = UNSET
    status: str | UnsetType | None = UNSET
    # message
    role: Role | UnsetType = UNSET
    content: str | list[ContentPart] | UnsetType = UNSET  # reasoning: reasoning_text parts
    phase: str | UnsetType | None = UNSET
    # function_call, function_call_output
    call_id: str | UnsetType | None = UNSET
    name: str | UnsetType | None = UNSET
    namespace: str | UnsetType | None = UNSET
    arguments: str | UnsetType = UNSET
    output: str | list[ContentPart] | UnsetType = UNSET
    # reasoning
    summary: list[SummaryText] | UnsetType = UNSET
    encrypted_content: str | UnsetType | None = UNSET
