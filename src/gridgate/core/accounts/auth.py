"""API keys on the hot path: the key a request presents, and the cached authenticator.

Keys are minted and hashed in ``core/credentials.py``.

A verified key is kept in a per-process cache for ``auth.cache_seconds`` (30 s by default), so a
request does not read its key from the database. What keeps a cached key honest:

- **SQLite** (one file, every process on this host): every revocation, by any process (the
  CLI, the dashboard, another worker), appends a byte to a marker file beside the database, and
  each request ``stat``s it (~1.5 µs): a cached key is read again once the marker has grown
  since it was verified, so a revocation fails the very next request, as without a cache —
  and commits of anything else (usage records, every 50 ms) cost no key read;
- **PostgreSQL**: a revocation reaches every process within ``changes.poll_seconds`` (0.25 s)
  through the change feed (``core/change_feed.py``); the cache lifetime only bounds it should
  the feed be unreadable (the database down: nothing can be revoked then either);
- an expiry is checked on every request, against the clock; a revocation made through this
  process's own management API or dashboard drops the key at once (``forget``).

``auth.cache_seconds = 0`` reads the key on every request. Every lease a process takes still
re-checks the key in the same transaction as the hold.
"""

from __future__ import annotations

import re
from typing import Literal

from gridgate.core.clock import Clock
from gridgate.core.credentials import hash_secret, looks_like_key
from gridgate.errors import Unauthorized
from gridgate.storage.ports.keys import KeyStore
from gridgate.storage.records import KeyRecord

_BEARER_RE = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr][ \t]+([^ \t]+)")
MAX_CACHED_KEYS = 100_000


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (RFC 7235: the scheme in any
    case, then one or more spaces or tabs, then the token), or None when there is no header.
    A header of another shape is ``Unauthorized`` "malformed Authorization header"."""
    if header is None or not header.strip(" \t"):
        return None
    match = _BEARER_RE.fullmatch(header.strip(" \t"))
    if match is None:
        raise Unauthorized(
            "malformed Authorization header: expected 'Bearer <key>'",
            code="malformed_authorization",
        )
    return match.group(1)


def presented_key(
    authorization: str | None, x_api_key: str | None, *, native: Literal["bearer", "x-api-key"]
) -> str | None:
    """The key a request presents, in ``Authorization: Bearer`` or ``x-api-key`` (clients of
    either surface send either). Given both, the surface's ``native`` header wins: Bearer on the
    OpenAI surface, ``x-api-key`` on the Anthropic one."""
    header_key = (x_api_key or "").strip(" \t") or None
    if native == "x-api-key" and header_key is not None:
        return header_key
    return bearer_token(authorization) or header_key


class Authenticator:
    """Secret → active KeyRecord, with a bounded per-process cache."""

    def __init__(self, store: KeyStore, clock: Clock, cache_seconds: float) -> None:
        self._store = store
        self._clock = clock
        self._ttl = cache_seconds
        # secret hash → (key, cached until, the store's ``keys_changed`` when it was read)
        self._cache: dict[str, tuple[KeyRecord, float, int | None]] = {}
        self._hashes: dict[str, str] = {}  # key id → secret hash, for forget()

    def forget(self, key_ids: list[str]) -> None:
        """Drop these keys from the cache (the change feed says they changed)."""
        for key_id in key_ids:
            digest = self._hashes.pop(key_id, None)
            if digest is not None:
                self._cache.pop(digest, None)

    async def authenticate(self, secret: str | None) -> KeyRecord:
        if secret is None:
            raise Unauthorized(
                "missing API key: send it as 'Authorization: Bearer <key>' (or 'x-api-key: <key>')",
                code="missing_api_key",
            )
        if not looks_like_key(secret):
            raise Unauthorized("malformed API key")
        digest = hash_secret(secret)
        now = self._clock.monotonic()
        cached = self._cache.get(digest)
        changed = self._store.keys_changed() if self._ttl > 0 else None
        if cached is not None and cached[1] > now and cached[2] == changed:
            key = cached[0]
        else:
            found = await self._store.get_key_by_hash(digest)
            if found is None:
                raise Unauthorized("unknown API key")
            key = found
            if self._ttl > 0:
                if len(self._cache) >= MAX_CACHED_KEYS:
                    self._cache.clear()
                    self._hashes.clear()
                self._cache[digest] = (key, now + self._ttl, changed)
                self._hashes[key.id] = digest
        if key.revoked_us is not None:
            raise Unauthorized("API key revoked", code="revoked_api_key")
        if key.expires_us is not None and key.expires_us <= self._clock.now_us():
            raise Unauthorized("API key expired", code="expired_api_key")
        return key
