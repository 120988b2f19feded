"""A reasoning item's ``encrypted_content``, as gridgate writes and reads it back.

OpenAI returns a reasoning item's ``encrypted_content`` (when the request's ``include`` asks for
``reasoning.encrypted_content``) so that a caller who stores nothing (``store: false``, as
Codex does) can send the reasoning back on its next turn. gridgate does the same with what the
canonical form carries: the reasoning blocks a supplier returned with their signatures
(``thinking_blocks``, which Anthropic-format suppliers need back to continue a turn that called
tools), sealed as ``gg1.`` + base64url of their JSON.

It is opaque to the caller but not encrypted: the blocks are the caller's own answer, and their
signatures are the supplier's own integrity check. A value gridgate did not write (OpenAI's own
encrypted reasoning) opens to ``None``, and the reasoning item is carried as text only.
"""

from __future__ import annotations

import base64
import binascii
from typing import Final

import msgspec

from gridgate.protocol.openai_content import ReasoningBlock

__all__ = ["open_reasoning", "seal_reasoning"]

_PREFIX: Final = "gg1."
_encode: Final = msgspec.json.Encoder().encode
_decode: Final = msgspec.json.Decoder(list[ReasoningBlock])


def seal_reasoning(blocks: list[ReasoningBlock]) -> str:
    return _PREFIX + base64.urlsafe_b64encode(_encode(blocks)).decode("ascii")


def open_reasoning(sealed: str) -> list[ReasoningBlock] | None:
    """The blocks ``seal_reasoning`` sealed, or None for anything else."""
    if not sealed.startswith(_PREFIX):
        return None
    try:
        return _decode.decode(base64.urlsafe_b64decode(sealed[len(_PREFIX) :]))
    except (binascii.Error, ValueError, msgspec.DecodeError):
        return None
