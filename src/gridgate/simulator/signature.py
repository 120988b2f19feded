"""Signatures on the reasoning the simulator emits, checked when a conversation sends it back.

Anthropic signs every ``thinking`` block and refuses a later request whose assistant turn
carries a thinking block that is not byte-for-byte what it returned ("Invalid `signature` in
`thinking` block"). A gateway that rebuilds conversations must therefore pass both the text and
the signature back intact; the simulator checks the same, so a test catches the gateway that
does not.

Scheme (version 1): ``base64(0x01 || blake2b-376(thinking text, key=secret))`` — 64 characters.
The secret comes from the simulator's name and seed salt: deterministic across restarts, and
the same for every simulator with the same identity, while a differently named one refuses it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

_VERSION = b"\x01"
_DIGEST_SIZE = 47  # with the version byte: 48 bytes, 64 base64 characters without padding


class ThinkingSigner:
    """Signs thinking text with one simulator's secret and checks signatures against it."""

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    @classmethod
    def for_identity(cls, name: str, salt: str) -> ThinkingSigner:
        digest = hashlib.blake2b(
            f"gridgate-sim-thinking-v1\x00{name}\x00{salt}".encode(), digest_size=32
        )
        return cls(digest.digest())

    def sign(self, thinking: str) -> str:
        mac = hashlib.blake2b(thinking.encode(), key=self._secret, digest_size=_DIGEST_SIZE)
        return base64.b64encode(_VERSION + mac.digest()).decode()

    def verify(self, thinking: str, signature: str) -> bool:
        return hmac.compare_digest(self.sign(thinking).encode(), signature.encode())
