"""The shape of Anthropic content blocks, checked as strictly as api.anthropic.com checks it.

The real API validates every block against a closed schema: an unknown block type, a missing
field or one it does not know ("Extra inputs are not permitted") is a 400 naming the path
(``messages.3.content.1.tool_use.text: Extra inputs are not permitted``). Those are exactly
the mistakes a translating gateway makes — an OpenAI ``detail`` left on an image, ``name`` on
a message, an empty text block for an assistant turn that only called tools — so the simulator
refuses them the same way. The fields allowed are the current API's (SDK 2.14 params).

Only the block types a gateway translates are known here (text, image, document, tool_use,
tool_result, thinking, redacted_thinking); the others the real API has (search results,
server tool blocks…) are refused as unknown tags.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gridgate.simulator.errors import SimulatorError

FIELDS: Mapping[str, frozenset[str]] = {
    "text": frozenset(("type", "text", "cache_control", "citations")),
    "image": frozenset(("type", "source", "cache_control", "transformations")),
    "document": frozenset(("type", "source", "cache_control", "title", "context", "citations")),
    "tool_use": frozenset(
        ("type", "id", "name", "input", "cache_control", "caller", "toolset_name")
    ),
    "tool_result": frozenset(
        ("type", "tool_use_id", "content", "is_error", "cache_control", "toolset_name")
    ),
    "thinking": frozenset(("type", "thinking", "signature")),
    "redacted_thinking": frozenset(("type", "data")),
}
_REQUIRED: Mapping[str, tuple[str, ...]] = {
    "text": ("text",),
    "image": ("source",),
    "document": ("source",),
    "tool_use": ("id", "name", "input"),
    "tool_result": ("tool_use_id",),
    "thinking": ("thinking", "signature"),
    "redacted_thinking": ("data",),
}
_STRINGS: Mapping[str, tuple[str, ...]] = {
    "text": ("text",),
    "tool_use": ("id", "name"),
    "tool_result": ("tool_use_id",),
    "thinking": ("thinking", "signature"),
    "redacted_thinking": ("data",),
}
_IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
_SOURCES: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "image": {"base64": ("media_type", "data"), "url": ("url",), "file": ("file_id",)},
    "document": {
        "base64": ("media_type", "data"),
        "text": ("media_type", "data"),
        "url": ("url",),
        "content": ("content",),
        "file": ("file_id",),
    },
}
_CACHE_CONTROL = frozenset(("type", "ttl"))
_TTLS = ("5m", "1h")


def refuse(message: str) -> SimulatorError:
    return SimulatorError(400, message)


def _tags(kinds: frozenset[str]) -> str:
    return ", ".join(f"'{kind}'" for kind in sorted(kinds))


def check_block(block: object, path: str, allowed: frozenset[str]) -> dict[str, Any]:
    """``block`` checked as one of the ``allowed`` types; 400 naming ``path`` otherwise."""
    if not isinstance(block, dict):
        raise refuse(f"{path}: Input should be a valid dictionary or object")
    kind = block.get("type")
    if not isinstance(kind, str) or kind not in FIELDS or kind not in allowed:
        raise refuse(
            f"{path}: Input tag '{kind}' found using 'type' does not match any of the "
            f"expected tags: {_tags(allowed)}"
        )
    where = f"{path}.{kind}"
    for name in block:
        if name not in FIELDS[kind]:
            raise refuse(f"{where}.{name}: Extra inputs are not permitted")
    for name in _REQUIRED[kind]:
        if name not in block:
            raise refuse(f"{where}.{name}: Field required")
    for name in _STRINGS.get(kind, ()):
        if not isinstance(block[name], str):
            raise refuse(f"{where}.{name}: Input should be a valid string")
    if kind == "text" and not block["text"].strip():
        raise refuse(f"{path}: text content blocks must contain non-whitespace text")
    if kind == "tool_use" and not isinstance(block["input"], dict):
        raise refuse(f"{where}.input: Input should be a valid dictionary")
    if kind == "tool_result" and "is_error" in block and not isinstance(block["is_error"], bool):
        raise refuse(f"{where}.is_error: Input should be a valid boolean")
    if kind in _SOURCES:
        _check_source(kind, block["source"], f"{where}.source")
    cache_ttl(block, where)
    return block


def cache_ttl(block: Mapping[str, Any], path: str) -> str | None:
    """The TTL of the block's ``cache_control`` breakpoint (``None``: not a breakpoint)."""
    control = block.get("cache_control")
    if control is None:
        return None
    where = f"{path}.cache_control" if path else "cache_control"
    if not isinstance(control, dict) or control.get("type") != "ephemeral":
        raise refuse(
            f"{where}: Input tag '{_type_of(control)}' found using 'type' does not match any of the expected tags: 'ephemeral'"
        )
    for name in control:
        if name not in _CACHE_CONTROL:
            raise refuse(f"{where}.ephemeral.{name}: Extra inputs are not permitted")
    ttl = control.get("ttl", "5m")
    if ttl not in _TTLS:
        raise refuse(f"{where}.ephemeral.ttl: Input should be '5m' or '1h'")
    return str(ttl)


def _type_of(value: object) -> object:
    return value.get("type") if isinstance(value, dict) else value


def _check_source(kind: str, source: object, path: str) -> None:
    variants = _SOURCES[kind]
    source_type = _type_of(source)
    if not isinstance(source, dict) or source_type not in variants:
        raise refuse(
            f"{path}: Input tag '{source_type}' found using 'type' does not match any of the "
            f"expected tags: {_tags(frozenset(variants))}"
        )
    for name in variants[str(source_type)]:
        if name not in source:
            raise refuse(f"{path}.{source_type}.{name}: Field required")
    media_type = source.get("media_type")
    if kind == "image" and source_type == "base64" and media_type not in _IMAGE_TYPES:
        allowed = ", ".join(f"'{media}'" for media in _IMAGE_TYPES)
        raise refuse(f"{path}.base64.media_type: Input should be {allowed}")
    if kind == "document" and source_type == "base64" and media_type != "application/pdf":
        raise refuse(f"{path}.base64.media_type: Input should be 'application/pdf'")
    if kind == "document" and source_type == "text" and media_type != "text/plain":
        raise refuse(f"{path}.text.media_type: Input should be 'text/plain'")
