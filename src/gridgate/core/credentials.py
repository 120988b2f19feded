"""Credentials: minting and hashing the secrets gridgate hands out (API keys, management tokens).

A key is ``gg_`` followed by 43 URL-safe base64 characters (32 random bytes, 256 bits). Only its
SHA-256 is stored (a fast hash is right here: the secret has 256 bits of entropy, so there is
nothing to brute-force), together with a visible prefix (``gg_`` + 8 characters) that identifies it
in listings. The secret is returned once, at creation.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass

KEY_PREFIX = "gg_"
_SECRET_BODY_RE = re.compile(r"[A-Za-z0-9_-]{43}")  # 32 random bytes, URL-safe base64
VISIBLE_CHARS = 8  # of the random part, shown after the prefix in listings
VISIBLE_PREFIX_CHARS = len(KEY_PREFIX) + VISIBLE_CHARS


@dataclass(frozen=True, slots=True)
class MintedKey:
    secret: str
    prefix: str
    secret_hash: str


def mint_key(prefix: str = KEY_PREFIX) -> MintedKey:
    """A new secret: ``prefix`` + 43 URL-safe characters (256 bits). Management tokens use
    this too, with their own prefix (``core/people/directory.py``)."""
    raw = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode("ascii")
    secret = prefix + raw
    return MintedKey(secret, secret[: len(prefix) + VISIBLE_CHARS], hash_secret(secret))


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def looks_like_key(secret: str, prefix: str = KEY_PREFIX) -> bool:
    """Whether ``secret`` has the shape ``mint_key(prefix)`` gives."""
    return secret.startswith(prefix) and _SECRET_BODY_RE.fullmatch(secret, len(prefix)) is not None
