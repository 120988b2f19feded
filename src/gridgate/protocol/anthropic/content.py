"""The conversation half of the Anthropic Messages request: messages (tagged by ``role``), their
content blocks (tagged by ``type``) and the sources of images and documents.

``request.py`` holds the request around them (tools, tool choice, thinking, output format,
``MessagesRequest``), its decoding and its validation, and re-exports every name here. The
media types are plain strings on the wire, checked by the request's Python pass, where the kind
of block is known. ``Wire`` is the base of every struct of the request: unknown fields are
accepted and dropped.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
from msgspec import UNSET, UnsetType

from gridgate.protocol.openai_content import CacheControl

__all__ = [
    "DOCUMENT_MEDIA_TYPE",
    "IMAGE_MEDIA_TYPES",
    "TEXT_MEDIA_TYPE",
    "AssistantMessage",
    "Base64Source",
    "ContentBlock",
    "ContentSource",
    "DocumentBlock",
    "DocumentSource",
    "FileSource",
    "ImageBlock",
    "ImageSource",
    "InputMessage",
    "PlainTextSource",
    "RedactedThinkingBlock",
    "SystemMessage",
    "TextBlock",
    "ThinkingBlock",
    "ToolResultBlock",
    "ToolResultContent",
    "ToolUseBlock",
    "URLSource",
    "UserMessage",
    "Wire",
]

IMAGE_MEDIA_TYPES: Final = ("image/jpeg", "image/png", "image/gif", "image/webp")
DOCUMENT_MEDIA_TYPE: Final = "application/pdf"
TEXT_MEDIA_TYPE: Final = "text/plain"


class Wire(
    msgspec.Struct,
    forbid_unknown_fields=False,
    omit_defaults=True,
    kw_only=True,
):
    """Base of every wire struct: unknown fields are accepted and dropped."""


# --------------------------------------------------------------------------------------------
# Sources of images and documents (tagged by ``type``)


class Base64Source(Wire, tag="base64", tag_field="type"):
    """Inline data. ``media_type`` is an image type for images, ``application/pdf`` for
    documents (checked by the Python pass, which knows the block)."""

    media_type: str
    data: str


class URLSource(Wire, tag="url", tag_field="type"):
    url: str


class FileSource(Wire, tag="file", tag_field="type"):
    """A file uploaded to Anthropic's Files API (decoded here; the canonical form cannot carry
    it, so the translation refuses it)."""

    file_id: str


class PlainTextSource(Wire, tag="text", tag_field="type"):
    media_type: str  # text/plain
    data: str


# --------------------------------------------------------------------------------------------
# Content blocks (tagged by ``type``)


class TextBlock(Wire, tag="text", tag_field="type"):
    text: str
    cache_control: CacheControl | UnsetType | None = UNSET
    # ``citations`` (of an earlier answer) is ignored.


class ImageBlock(Wire, tag="image", tag_field="type"):
    source: ImageSource
    cache_control: CacheControl | UnsetType | None = UNSET


class ContentSource(Wire, tag="content", tag_field="type"):
    """A document given as content blocks (custom content documents)."""

    content: str | list[TextBlock | ImageBlock]


class DocumentBlock(Wire, tag="document", tag_field="type"):
    source: DocumentSource
    title: str | UnsetType | None = UNSET
    context: str | UnsetType | None = UNSET
    cache_control: CacheControl | UnsetType | None = UNSET
    # ``citations`` (a config asking for cited answers) is ignored.


class ToolUseBlock(Wire, tag="tool_use", tag_field="type"):
    id: str
    name: str
    input: dict[str, Any]
    cache_control: CacheControl | UnsetType | None = UNSET


ToolResultContent = TextBlock | ImageBlock


class ToolResultBlock(Wire, tag="tool_result", tag_field="type"):
    tool_use_id: str
    content: str | list[ToolResultContent] | UnsetType = UNSET
    is_error: bool | UnsetType = UNSET
    cache_control: CacheControl | UnsetType | None = UNSET


class ThinkingBlock(Wire, tag="thinking", tag_field="type"):
    thinking: str
    signature: str


class RedactedThinkingBlock(Wire, tag="redacted_thinking", tag_field="type"):
    data: str


ImageSource = Base64Source | URLSource | FileSource
DocumentSource = Base64Source | PlainTextSource | URLSource | ContentSource | FileSource
ContentBlock = (
    TextBlock
    | ImageBlock
    | DocumentBlock
    | ToolUseBlock
    | ToolResultBlock
    | ThinkingBlock
    | RedactedThinkingBlock
)

# --------------------------------------------------------------------------------------------
# Messages (tagged by ``role``)


class UserMessage(Wire, tag="user", tag_field="role"):
    content: str | list[ContentBlock]  # blocks: text, image, document, tool_result


class AssistantMessage(Wire, tag="assistant", tag_field="role"):
    content: str | list[ContentBlock]  # blocks: text, thinking, redacted_thinking, tool_use


class SystemMessage(Wire, tag="system", tag_field="role"):
    """A mid-conversation system message (current Anthropic API): text only."""

    content: str | list[ContentBlock]


InputMessage = UserMessage | AssistantMessage | SystemMessage
