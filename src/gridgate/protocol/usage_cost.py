"""``usage.cost``: what a request was charged, written into the canonical answer's ``usage``.

The cost is a decimal string of USD with exactly 9 places (``money.format_usd_fixed``:
``"0.000123450"``; ``"0.000000000"`` for an answer that was not billed). Core adds it once the
charge is settled: to a whole answer's body (``with_cost``) and to a stream's last usage chunk
(``event_with_cost``); the Anthropic and Responses translations carry it over from there.

A whole answer is usually the supplier's own bytes, relayed without re-encoding, so the cost is
spliced in rather than the body decoded and encoded again (~2 µs against ~7 µs for a 700-byte
body; the README's "Cost inline" gives the figures). The splice is exact, not a guess:

1. one msgspec pass reads the top-level ``usage`` value as ``msgspec.Raw``: ``U``, the exact
   bytes of that value as they stand in the body;
2. those bytes occur in the body at least once (where the value stands). When a tail ``S`` of
   ``U`` occurs exactly once in the body, ``U`` does too (each occurrence of ``U`` holds one
   of ``S`` at the same offset), so that one occurrence is the top-level value and its closing
   brace is the last byte of ``S``;
3. ``,"cost":"…"`` goes in before that brace (without the comma in an empty object).

Anything else — ``usage`` that is not an object, a tail that occurs twice, a ``usage`` that
already has a ``cost`` (a supplier's own figure, which is replaced) — takes the slow path:
decode, set, encode.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from gridgate.protocol.sse import SSEParser, encode_event

__all__ = ["event_with_cost", "with_cost"]


class _Top(msgspec.Struct, gc=False):
    usage: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)


_top_decoder: Final = msgspec.json.Decoder(_Top)
_document_decoder: Final = msgspec.json.Decoder(dict[str, Any])
_encode: Final = msgspec.json.Encoder().encode
_TAIL: Final = 32  # bytes of ``usage``'s end searched for: a short needle searches fastest
_COST_KEY: Final = b'"cost"'


def with_cost(document: bytes, cost: str) -> bytes:
    """``document`` (a JSON object) with ``cost`` as its ``usage.cost``; unchanged when it has
    no ``usage`` object. Raises ``msgspec.DecodeError`` for a document that is not JSON."""
    usage = bytes(_top_decoder.decode(document).usage)
    if usage[:1] != b"{" or _COST_KEY in usage:
        return _decoded_with_cost(document, cost)
    tail = usage[-_TAIL:]
    at = document.rfind(tail)
    if document.find(tail, 0, at + len(tail) - 1) >= 0:  # another one, before or overlapping
        return _decoded_with_cost(document, cost)
    end = at + len(tail) - 1  # the closing brace of the top-level ``usage``
    head = b',"cost":"' if usage[1:-1].strip() else b'"cost":"'
    return b"".join((document[:end], head, cost.encode(), b'"', document[end:]))


def _decoded_with_cost(document: bytes, cost: str) -> bytes:
    parsed = _document_decoder.decode(document)
    usage = parsed.get("usage")
    if not isinstance(usage, dict):
        return document
    usage["cost"] = cost
    return _encode(parsed)


def event_with_cost(raw: bytes, cost: str) -> bytes:
    """One SSE event of a canonical stream (a chunk carrying ``usage``) with ``cost`` as its
    ``usage.cost``; unchanged when it is not one event holding a JSON object with ``usage``.
    The event is written again (``data:`` and its ``event`` name; comments and ``id`` before
    it are dropped)."""
    parser = SSEParser()
    events = parser.feed(raw) or parser.flush()
    if len(events) != 1 or not events[0].data.startswith(b"{"):
        return raw
    event = events[0]
    try:
        document = with_cost(event.data, cost)
    except msgspec.DecodeError:
        return raw
    if document is event.data:
        return raw
    return encode_event(document, event.event)
