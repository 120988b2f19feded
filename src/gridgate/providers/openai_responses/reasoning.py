"""A Responses-API reasoning item carried in the canonical form, and back (pure).

The canonical assistant message carries earlier reasoning as ``thinking_blocks``: a thinking
text and the ``signature`` its supplier needs back. A reasoning item of an ``openai-responses``
supplier becomes one ``thinking`` block: its text is the item's summary (parts joined by a blank
line; the raw ``content`` text when there is no summary, as open-weight servers send), and its
signature is ``oair1.`` + base64url of the item's JSON as the supplier sent it — ``id``,
``summary``, ``content`` and ``encrypted_content`` — so the item goes back to the supplier
byte-for-byte on the next turn, whichever surface the caller speaks.

A thinking block that does not carry such a signature (an Anthropic signature, or reasoning
text with no block at all) is not sent to this wire: the supplier could not read it, as OpenAI's
models never see another model's reasoning.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Final

import msgspec

from gridgate.protocol.openai_content import ReasoningBlock, ThinkingBlock

__all__ = ["SIGNATURE_PREFIX", "open_item", "reasoning_text", "seal_item", "thinking_block"]

SIGNATURE_PREFIX: Final = "oair1."
_encode: Final = msgspec.json.Encoder().encode
_decode: Final = msgspec.json.Decoder(dict[str, Any])


def seal_item(item: dict[str, Any]) -> str:
    """The signature carrying a reasoning item (``id``, ``summary``, ``content``,
    ``encrypted_content``; nothing else of it is needed back)."""
    kept: dict[str, Any] = {
        k: item[k] for k in ("id", "summary", "content", "encrypted_content") if k in item
    }
    kept["type"] = "reasoning"
    return SIGNATURE_PREFIX + base64.urlsafe_b64encode(_encode(kept)).decode("ascii")


def open_item(signature: str) -> dict[str, Any] | None:
    """The reasoning item ``seal_item`` sealed, or None for any other signature."""
    if not signature.startswith(SIGNATURE_PREFIX):
        return None
    try:
        item = _decode.decode(base64.urlsafe_b64decode(signature[len(SIGNATURE_PREFIX) :]))
    except (binascii.Error, ValueError, msgspec.DecodeError):
        return None
    if item.get("type") != "reasoning" or not isinstance(item.get("id"), str):
        return None
    return item


def reasoning_text(item: dict[str, Any]) -> str:
    """What the reasoning says: its summary texts (or its raw content texts) joined."""
    for key in ("summary", "content"):
        parts = item.get(key)
        if isinstance(parts, list):
            texts = [
                p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)
            ]
            if texts:
                return "\n\n".join(texts)
    return ""


def thinking_block(item: dict[str, Any], *, with_text: bool = True) -> dict[str, Any]:
    """The canonical ``thinking_blocks`` entry of a reasoning item (as JSON)."""
    return {
        "type": "thinking",
        "thinking": reasoning_text(item) if with_text else "",
        "signature": seal_item(item),
    }


def items_of(blocks: list[ReasoningBlock]) -> list[dict[str, Any]]:
    """The reasoning items sealed in an assistant message's thinking blocks (others skipped)."""
    items = []
    for block in blocks:
        if isinstance(block, ThinkingBlock) and isinstance(block.signature, str):
            item = open_item(block.signature)
            if item is not None:
                items.append(item)
    return items
