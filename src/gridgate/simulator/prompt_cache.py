"""Prompt caching as the Anthropic wire reports it: which prompt tokens were written to the
cache, which were read from it.

A request marks cache breakpoints with ``cache_control`` on blocks (tools, then system, then
messages: the prefix order). Every block ends a *boundary*: the prefix up to and including it,
with its digest and its prompt-token count (:mod:`.transcript` computes them with the same
count as :mod:`.prompt`, so the three usage fields add up to the OpenAI wire's
``prompt_tokens``). Per request:

- **read**: the longest prefix the cache holds, looked up at each breakpoint and at the
  ``LOOKBACK`` boundaries before it (Anthropic's automatic prefix check, which lets a growing
  conversation reuse the previous turn's breakpoint);
- **written**: from there to the last breakpoint; each piece is attributed to the TTL of the
  breakpoint that ends it (``ephemeral_5m_input_tokens`` / ``ephemeral_1h_input_tokens``);
- the prefix at every breakpoint is then remembered.

No breakpoint: nothing is read or written. Simplifications: entries never expire (a TTL only
labels the tokens), there is no minimum cacheable length, and the cache is the simulator's,
not per API key. ``POST /sim/reset`` empties it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

LOOKBACK = 20
"""How many boundaries before a breakpoint are checked for a hit."""
_CAPACITY = 100_000


@dataclass(frozen=True, slots=True)
class Boundary:
    digest: bytes
    """Digest of the prefix that ends with this block (model, tools, system, messages)."""
    tokens: int
    """Prompt tokens of that prefix."""
    ttl: str | None = None
    """``"5m"`` or ``"1h"`` when the block is a cache breakpoint."""


@dataclass(frozen=True, slots=True)
class CacheUse:
    read: int = 0
    written_5m: int = 0
    written_1h: int = 0

    @property
    def written(self) -> int:
        return self.written_5m + self.written_1h


NO_CACHE = CacheUse()


class PromptCache:
    """The prefixes one simulator has cached (most recently used last, bounded)."""

    def __init__(self, capacity: int = _CAPACITY) -> None:
        self._capacity = capacity
        self._entries: dict[bytes, None] = {}

    def clear(self) -> None:
        self._entries.clear()

    def use(self, boundaries: Sequence[Boundary]) -> CacheUse:
        """Account one request's prompt: read what is cached, write up to the last breakpoint."""
        breakpoints = [i for i, boundary in enumerate(boundaries) if boundary.ttl is not None]
        if not breakpoints:
            return NO_CACHE
        hit = -1
        for position in breakpoints:
            for i in range(position, max(position - LOOKBACK, 0) - 1, -1):
                if boundaries[i].digest in self._entries:
                    hit = max(hit, i)
                    break
        read = boundaries[hit].tokens if hit >= 0 else 0
        written = {"5m": 0, "1h": 0}
        start = read
        for position in breakpoints:
            boundary = boundaries[position]
            if boundary.tokens > start:
                written["1h" if boundary.ttl == "1h" else "5m"] += boundary.tokens - start
                start = boundary.tokens
        if hit >= 0:
            self._remember(boundaries[hit].digest)
        for position in breakpoints:
            self._remember(boundaries[position].digest)
        return CacheUse(read=read, written_5m=written["5m"], written_1h=written["1h"])

    def _remember(self, digest: bytes) -> None:
        self._entries.pop(digest, None)
        self._entries[digest] = None
        if len(self._entries) > self._capacity:
            del self._entries[next(iter(self._entries))]
