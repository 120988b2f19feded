"""The Anthropic Messages wire itself: the request gridgate sends and the answer it reads.

msgspec structs only, no mapping. The request structs hold only what gridgate sends (encoded
with defaults omitted); the answer structs are read leniently — every field optional, checked
where it is used. The names keep their underscore: they are the package's, not its API.
"""

from __future__ import annotations

import re
from typing import Any, Final, Literal

import msgspec

from gridgate.protocol.openai_chat import UNSET, CacheControl, UnsetType

ANTHROPIC_VERSION: Final = "2023-06-01"
MIN_THINKING_BUDGET: Final = 1024
_IMAGE_TYPES: Final = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_TOOL_ID: Final = re.compile(r"[a-zA-Z0-9_-]+")
_encoder: Final = msgspec.json.Encoder()


# -- the Anthropic request (only what gridgate sends) ----------------------------------------
class _Out(msgspec.Struct, omit_defaults=True, kw_only=True):
    pass


class _Base64Source(_Out, tag="base64", tag_field="type"):
    media_type: str
    data: str


class _URLSource(_Out, tag="url", tag_field="type"):
    url: str


class _TextSource(_Out, tag="text", tag_field="type"):
    media_type: str
    data: str


class _Text(_Out, tag="text", tag_field="type"):
    text: str
    cache_control: CacheControl | UnsetType = UNSET


class _Image(_Out, tag="image", tag_field="type"):
    source: _Base64Source | _URLSource
    cache_control: CacheControl | UnsetType = UNSET


class _Document(_Out, tag="document", tag_field="type"):
    source: _Base64Source | _TextSource
    title: str | UnsetType = UNSET
    cache_control: CacheControl | UnsetType = UNSET


class _Thinking(_Out, tag="thinking", tag_field="type"):
    thinking: str
    signature: str


class _RedactedThinking(_Out, tag="redacted_thinking", tag_field="type"):
    data: str


class _ToolUse(_Out, tag="tool_use", tag_field="type"):
    id: str
    name: str
    input: dict[str, Any]


_ResultPart = _Text | _Image | _Document


class _ToolResult(_Out, tag="tool_result", tag_field="type"):
    tool_use_id: str
    content: str | list[_ResultPart] | UnsetType = UNSET
    is_error: bool | UnsetType = UNSET


_Block = _Text | _Image | _Document | _Thinking | _RedactedThinking | _ToolUse | _ToolResult


class _Message(_Out):
    role: Literal["user", "assistant"]
    content: str | list[_Block]


class _Tool(_Out, kw_only=True):
    name: str
    description: str | UnsetType = UNSET
    input_schema: dict[str, Any]
    strict: bool | UnsetType = UNSET
    cache_control: CacheControl | UnsetType = UNSET


class _ToolChoice(_Out):
    type: Literal["auto", "any", "tool", "none"]
    name: str | UnsetType = UNSET
    disable_parallel_tool_use: bool | UnsetType = UNSET


class _ThinkingConfig(_Out):
    type: Literal["enabled", "disabled"]
    budget_tokens: int | UnsetType = UNSET


class _Metadata(_Out):
    user_id: str


class _Body(_Out, kw_only=True):
    model: str
    max_tokens: int
    system: str | list[_Text] | UnsetType = UNSET
    messages: list[_Message]
    stop_sequences: list[str] | UnsetType = UNSET
    temperature: float | UnsetType = UNSET
    top_p: float | UnsetType = UNSET
    top_k: int | UnsetType = UNSET
    metadata: _Metadata | UnsetType = UNSET
    tools: list[_Tool] | UnsetType = UNSET
    tool_choice: _ToolChoice | UnsetType = UNSET
    thinking: _ThinkingConfig | UnsetType = UNSET
    stream: bool | UnsetType = UNSET


# -- the Anthropic answer (read leniently: every field optional, checked where used) ----------
class _OutputDetails(msgspec.Struct):
    thinking_tokens: int | None = None


class _Usage(msgspec.Struct):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    output_tokens_details: _OutputDetails | None = None


class _ContentBlock(msgspec.Struct):
    type: str
    text: str | None = None
    thinking: str | None = None
    signature: str | None = None
    data: str | None = None
    id: str | None = None
    name: str | None = None
    input: dict[str, Any] | None = None


class _AnswerMessage(msgspec.Struct):
    id: str
    model: str
    content: list[_ContentBlock]
    type: str = "message"
    stop_reason: str | None = None
    stop_sequence: str | None = None
    usage: _Usage | None = None


class _Delta(msgspec.Struct):
    type: str | None = None
    text: str | None = None
    partial_json: str | None = None
    thinking: str | None = None
    signature: str | None = None
    stop_reason: str | None = None
    stop_sequence: str | None = None


class _StartMessage(msgspec.Struct):
    id: str
    model: str
    usage: _Usage | None = None


class _StreamError(msgspec.Struct):
    type: str = "error"


class _Event(msgspec.Struct):
    type: str
    message: _StartMessage | None = None
    index: int | None = None
    content_block: _ContentBlock | None = None
    delta: _Delta | None = None
    usage: _Usage | None = None
    error: _StreamError | None = None


_answer_decoder: Final = msgspec.json.Decoder(_AnswerMessage)
_event_decoder: Final = msgspec.json.Decoder(_Event)
