"""Identifiers in Anthropic's style: ``msg_01…``, ``toolu_01…``, ``req_011C…``.

Anthropic's ids are base62-looking strings of fixed length after a typed prefix; clients only
compare them, but a gateway that parses or stores them should meet the real shape.
"""

from __future__ import annotations

import hashlib
import os

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_WIDTH = 22


def _base62(value: int, width: int = _WIDTH) -> str:
    digits = []
    while value:
        value, digit = divmod(value, 62)
        digits.append(_ALPHABET[digit])
    return "".join(reversed(digits)).rjust(width, _ALPHABET[0])[-width:]


def new_message_id() -> str:
    return "msg_01" + _base62(int.from_bytes(os.urandom(16), "big"))


def new_request_id() -> str:
    return "req_011C" + _base62(int.from_bytes(os.urandom(16), "big"), 20)


def tool_use_id(call_id: str) -> str:
    """The ``toolu_…`` id of a planned call: as deterministic as the plan's ``call_…`` id."""
    digest = hashlib.blake2b(call_id.encode(), digest_size=16).digest()
    return "toolu_01" + _base62(int.from_bytes(digest, "big"))
