"""The OpenAI Responses request (``POST /v1/responses``): wire schema, decoding and validation.

``decode_responses_request(body)`` is the one entry point, built like the chat surface's
``decode_chat_request``: one msgspec pass decodes and type-checks the body, then a Python pass
checks bounds and cross-field rules. It raises only ``BadRequest`` (400: not JSON, not an
object, a wrong JSON type) and ``ValidationFailed`` (422: a missing field, a bound, an unknown
enum value or item type, a cross-field rule, anything malformed inside ``tools``,
``tool_choice``, ``text``, ``reasoning``, ``stream_options`` and ``provider``, and features this
exchange cannot carry). Both name ``param``, the path of the field (``input[2].content[0]``).

The schema follows OpenAI's ``CreateResponse`` (``shared/specs/openai-openapi.yaml``). As on
the other surfaces, unknown fields are accepted and dropped. Refused with their name, because
they need what this exchange does not have (yet): ``conversation`` (OpenAI's stored
conversations), ``prompt`` (stored prompt templates), ``background: true``, ``item_reference``
items and items of hosted tools' calls, and files or images given by ``file_id``/``file_url``.

Tools are read one by one (``tools`` is a list of raw JSON values; ``parse_tools`` decodes each
into a ``ToolSpec``), so that a hosted tool keeps its whole configuration for whoever serves it:
``function`` tools, Codex's ``namespace`` groups of functions, and the hosted types OpenAI
lists (``HOSTED_TOOL_TYPES``), which ``to_chat`` returns beside the canonical request. Their
schema and checks are in ``tools.py``; the input items and their parts in ``items.py``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final, Literal, get_args

import msgspec
from msgspec import UNSET, UnsetType

from gridgate.protocol.openai_chat import ReasoningEffort, Verbosity
from gridgate.protocol.openai_content import Wire
from gridgate.protocol.openai_responses.items import (
    ITEM_TYPES,
    ContentPart,
    ImageDetail,
    InputFile,
    InputImage,
    InputItem,
    InputText,
    OutputText,
    ReasoningText,
    RefusalText,
)
from gridgate.protocol.openai_responses.tools import (
    HOSTED_TOOL_CHOICES,
    HOSTED_TOOL_TYPES,
    NAMESPACE_SEPARATOR,
    ToolChoiceMode,
    ToolChoiceObject,
    ToolSpec,
    check_tool_choice,
    check_tools,
    decode_tool,
    flat_name,
)
from gridgate.protocol.provider_preferences import (
    PROVIDER_CHOICES,
    ProviderPreferences,
    check_provider_preferences,
)
from gridgate.protocol.wire_errors import (
    Surface,
    check_int_range,
    check_name,
    check_range,
    choices_text,
    decode,
    fail,
    show,
    tags,
)

__all__ = [
    "HOSTED_TOOL_CHOICES",
    "HOSTED_TOOL_TYPES",
    "NAMESPACE_SEPARATOR",
    "IncludeValue",
    "ReasoningConfig",
    "ResponsesRequest",
    "StreamOptions",
    "TextConfig",
    "TextFormat",
    "TextFormatJSONObject",
    "TextFormatJSONSchema",
    "TextFormatText",
    "ToolChoiceObject",
    "ToolSpec",
    "decode_responses_request",
    "flat_name",
    "parse_tools",
]

IncludeValue = Literal[
    "file_search_call.results",
    "web_search_call.results",
    "web_search_call.action.sources",
    "message.input_image.image_url",
    "computer_call_output.output.image_url",
    "code_interpreter_call.outputs",
    "reasoning.encrypted_content",
    "message.output_text.logprobs",
]
ServiceTier = Literal["auto", "default", "flex", "scale", "priority", "fast", "ultrafast"]
Truncation = Literal["auto", "disabled"]
SummaryMode = Literal["auto", "concise", "detailed"]
CacheRetention = Literal["in_memory", "24h"]

# --------------------------------------------------------------------------------------------
# Tools, tool choice, text, reasoning, stream options


class TextFormatText(Wire, tag="text", tag_field="type"):
    pass


class TextFormatJSONObject(Wire, tag="json_object", tag_field="type"):
    pass


class TextFormatJSONSchema(Wire, tag="json_schema", tag_field="type"):
    name: str
    schema: dict[str, Any]
    description: str | UnsetType = UNSET
    strict: bool | UnsetType | None = UNSET


TextFormat = TextFormatText | TextFormatJSONObject | TextFormatJSONSchema


class TextConfig(Wire):
    format: TextFormat | UnsetType = UNSET
    verbosity: Verbosity | UnsetType | None = UNSET


class ReasoningConfig(Wire):
    effort: ReasoningEffort | UnsetType | None = UNSET
    summary: SummaryMode | UnsetType | None = UNSET
    generate_summary: SummaryMode | UnsetType | None = UNSET  # deprecated spelling


class StreamOptions(Wire):
    include_obfuscation: bool | UnsetType = UNSET  # accepted; gridgate adds no obfuscation


# --------------------------------------------------------------------------------------------
# The request


class ResponsesRequest(Wire):
    """``POST /v1/responses``. ``UNSET`` = not sent; ``None`` = sent as ``null``."""

    model: str
    input: str | list[InputItem] | UnsetType = UNSET
    instructions: str | UnsetType | None = UNSET
    tools: list[msgspec.Raw] | UnsetType | None = UNSET  # each a ToolSpec (parse_tools)
    tool_choice: ToolChoiceMode | ToolChoiceObject | UnsetType | None = UNSET
    parallel_tool_calls: bool | UnsetType | None = UNSET
    text: TextConfig | UnsetType | None = UNSET
    reasoning: ReasoningConfig | UnsetType | None = UNSET
    max_output_tokens: int | UnsetType | None = UNSET
    max_tool_calls: int | UnsetType | None = UNSET
    temperature: float | UnsetType | None = UNSET
    top_p: float | UnsetType | None = UNSET
    top_logprobs: int | UnsetType | None = UNSET
    truncation: Truncation | UnsetType | None = UNSET
    include: list[IncludeValue] | UnsetType | None = UNSET
    prompt_cache_key: str | UnsetType | None = UNSET
    prompt_cache_retention: CacheRetention | UnsetType | None = UNSET
    metadata: dict[str, str] | UnsetType | None = UNSET
    user: str | UnsetType | None = UNSET
    safety_identifier: str | UnsetType | None = UNSET
    service_tier: ServiceTier | UnsetType | None = UNSET
    store: bool | UnsetType | None = UNSET
    previous_response_id: str | UnsetType | None = UNSET
    background: bool | UnsetType | None = UNSET
    stream: bool | UnsetType | None = UNSET
    stream_options: StreamOptions | UnsetType | None = UNSET
    # refused when given (anything but null): see the module docstring
    conversation: msgspec.Raw | UnsetType = UNSET
    prompt: msgspec.Raw | UnsetType = UNSET
    # extension: the routing preferences of the other surfaces
    provider: ProviderPreferences | UnsetType = UNSET

    @property
    def is_stream(self) -> bool:
        return self.stream is True

    @property
    def stores(self) -> bool:
        """``store`` defaults to true."""
        return self.store is not False

    def includes(self, value: IncludeValue) -> bool:
        return isinstance(self.include, list) and value in self.include


RESPONSES_REQUEST_DECODER: Final = msgspec.json.Decoder(ResponsesRequest)


def decode_responses_request(body: bytes) -> ResponsesRequest:
    """Decode and validate a Responses body. Raises only BadRequest / ValidationFailed."""
    request = decode(RESPONSES_REQUEST_DECODER, body, _SURFACE)
    _validate(request)
    return request


def parse_tools(request: ResponsesRequest) -> list[ToolSpec]:
    """The request's tools, decoded (``tools`` holds raw JSON values; see ``tools.py``)."""
    tools = request.tools
    if not isinstance(tools, list):
        return []
    return [decode_tool(raw, i, _SURFACE) for i, raw in enumerate(tools)]


# --------------------------------------------------------------------------------------------
# The Python pass

_METADATA_MAX_PAIRS: Final = 16
_METADATA_MAX_KEY: Final = 64
_METADATA_MAX_VALUE: Final = 512
_SAFETY_ID_MAX: Final = 64
_MIN_OUTPUT_TOKENS: Final = 16
_IMAGE_URL_RE: Final = re.compile(r"(?:https?://|data:image/[\w.+-]+;base64,)", re.IGNORECASE)

_INPUT_PARTS: Final[tuple[frozenset[type[msgspec.Struct]], str]] = (
    frozenset({InputText, InputImage, InputFile}),
    "'input_text', 'input_image', 'input_file'",
)
_ALLOWED_PARTS: Final[Mapping[str, tuple[frozenset[type[msgspec.Struct]], str]]] = MappingProxyType(
    {
        "user": _INPUT_PARTS,
        "system": _INPUT_PARTS,
        "developer": _INPUT_PARTS,
        "assistant": (
            frozenset({OutputText, RefusalText, InputText}),
            "'output_text', 'refusal', 'input_text'",
        ),
        "function_call_output": _INPUT_PARTS,
        "reasoning": (frozenset({ReasoningText}), "'reasoning_text'"),
    }
)


def _validate(req: ResponsesRequest) -> None:
    if isinstance(req.conversation, msgspec.Raw) and bytes(req.conversation) != b"null":
        fail("conversation", "stored conversations are not supported by this exchange")
    if isinstance(req.prompt, msgspec.Raw) and bytes(req.prompt) != b"null":
        fail("prompt", "stored prompt templates are not supported by this exchange")
    if req.background is True:
        fail("background", "background responses are not supported by this exchange")
    has_previous = isinstance(req.previous_response_id, str)
    if req.input is UNSET and not has_previous:
        fail("input", "is required (or give previous_response_id)")
    if isinstance(req.input, list):
        if not req.input and not has_previous:
            fail("input", "must contain at least one item")
        _check_items(req.input)

    check_int_range(req.max_output_tokens, "max_output_tokens", _MIN_OUTPUT_TOKENS)
    check_int_range(req.max_tool_calls, "max_tool_calls", 1)
    check_range(req.temperature, "temperature", 0, 2)
    check_range(req.top_p, "top_p", 0, 1)
    check_int_range(req.top_logprobs, "top_logprobs", 0, 20)
    if isinstance(req.safety_identifier, str) and len(req.safety_identifier) > _SAFETY_ID_MAX:
        fail("safety_identifier", f"must be at most {_SAFETY_ID_MAX} characters")
    if isinstance(req.stream_options, StreamOptions) and req.stream is not True:
        fail("stream_options", "is only allowed when stream is true")
    if isinstance(req.metadata, dict):
        _check_metadata(req.metadata)
    text = req.text
    if isinstance(text, TextConfig) and isinstance(text.format, TextFormatJSONSchema):
        check_name(text.format.name, "text.format.name")

    names = check_tools(parse_tools(req))
    check_tool_choice(req.tool_choice, names)
    check_provider_preferences(req.provider)


def _check_items(items: list[InputItem]) -> None:
    for i, item in enumerate(items):
        path = f"input[{i}]"
        kind = item.type
        if kind == "message":
            if item.role is UNSET:
                fail(f"{path}.role", f"is required (one of {choices_text(get_args(_Role))})")
            _check_content(item.content, f"{path}.content", item.role, required=True)
        elif kind == "function_call":
            for field in ("call_id", "name", "arguments"):
                if not isinstance(getattr(item, field), str):
                    fail(f"{path}.{field}", "is required")
        elif kind == "function_call_output":
            if not isinstance(item.call_id, str):
                fail(f"{path}.call_id", "is required")
            _check_content(item.output, f"{path}.output", "function_call_output", required=True)
        elif kind == "reasoning":
            if item.summary is UNSET:
                fail(f"{path}.summary", "is required (a list of summary_text parts)")
            _check_content(item.content, f"{path}.content", "reasoning", required=False)
        elif kind == "item_reference":
            fail(f"{path}.type", "item references need stored responses, not supported yet")
        else:
            fail(
                f"{path}.type",
                f"{show(kind)} items are not supported by this exchange"
                f" (supported: {choices_text(ITEM_TYPES)})",
            )


_Role = Literal["user", "system", "developer", "assistant"]


def _check_content(
    content: str | list[ContentPart] | UnsetType, path: str, role: str, *, required: bool
) -> None:
    if content is UNSET:
        if required:
            fail(path, "is required")
        return
    if isinstance(content, str):
        return
    if not content and role != "function_call_output":
        fail(path, "must contain at least one content part")
    allowed, names = _ALLOWED_PARTS[role]
    for j, part in enumerate(content):
        where = f"{path}[{j}]"
        if type(part) not in allowed:
            fail(
                f"{where}.type",
                f"'{part.__struct_config__.tag}' parts are not allowed here (allowed: {names})",
            )
        if isinstance(part, InputImage):
            _check_image(part, where)
        elif isinstance(part, InputFile):
            _check_file(part, where)


def _check_image(part: InputImage, path: str) -> None:
    if isinstance(part.file_id, str):
        fail(
            f"{path}.file_id",
            "images given by file_id are not supported by this exchange;"
            " give image_url (an http(s) URL or a base64 data URL)",
        )
    url = part.image_url
    if not isinstance(url, str):
        fail(f"{path}.image_url", "is required")
    if _IMAGE_URL_RE.match(url) is None:
        fail(
            f"{path}.image_url",
            f"must be an http(s) URL or a base64 data:image/… URL (got {show(url)})",
        )


def _check_file(part: InputFile, path: str) -> None:
    if isinstance(part.file_id, str):
        fail(
            f"{path}.file_id",
            "files given by file_id are not supported by this exchange; send file_data",
        )
    if isinstance(part.file_url, str):
        fail(
            f"{path}.file_url",
            "files given by URL are not supported by this exchange; send file_data",
        )
    if not isinstance(part.file_data, str):
        fail(f"{path}.file_data", "is required")


def _check_metadata(metadata: dict[str, str]) -> None:
    if len(metadata) > _METADATA_MAX_PAIRS:
        fail("metadata", f"must have at most {_METADATA_MAX_PAIRS} pairs (got {len(metadata)})")
    for key, value in metadata.items():
        if len(key) > _METADATA_MAX_KEY:
            fail("metadata", f"keys must be at most {_METADATA_MAX_KEY} characters")
        if len(value) > _METADATA_MAX_VALUE:
            fail("metadata", f"values must be at most {_METADATA_MAX_VALUE} characters")


# --------------------------------------------------------------------------------------------
# Translating msgspec's errors into the error tree

_STRUCTURED_RE: Final = re.compile(
    r"(?:tools\[|tool_choice\.|text\.|reasoning\.|stream_options\.|provider\.)"
)
_CHOICES: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "service_tier": get_args(ServiceTier),
        "truncation": get_args(Truncation),
        "prompt_cache_retention": get_args(CacheRetention),
        "include[]": get_args(IncludeValue),
        "tool_choice": get_args(ToolChoiceMode),
        "tool_choice.mode": ("auto", "required"),
        "text.format.type": tags(TextFormat),
        "text.verbosity": get_args(Verbosity),
        "reasoning.effort": get_args(ReasoningEffort),
        "reasoning.summary": get_args(SummaryMode),
        "reasoning.generate_summary": get_args(SummaryMode),
        "input[].role": get_args(_Role),
        "input[].content[].type": tags(ContentPart),
        "input[].output[].type": tags(ContentPart),
        "input[].content[].detail": get_args(ImageDetail),
        "input[].output[].detail": get_args(ImageDetail),
        "input[].summary[].type": ("summary_text",),
        **PROVIDER_CHOICES,
    }
)

_SURFACE: Final = Surface(choices_for=_CHOICES.get, structured=_STRUCTURED_RE)
