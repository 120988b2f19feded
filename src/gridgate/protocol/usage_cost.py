"""``usage.cost``: what a request was charged, written into the canonical answer's ``usage``.

The cost is a decimal string of USD with exactly 9 places (``money.format_usd_fixed``:
``"0.000123450"``; ``"0.000000000"`` for an answer that was not billed). Core adds it once the
charge is settled: to a whole answer's body (``with_cost``) and to a stream's last usage chunk
(``event_with_cost``); the Anthropic and Responses translations carry it over from there.

A whole answer is usually the supplier's own bytes, relayed without re-encoding, so the cost is
spliced in rather than the body decoded and encoded again (the README's "What a request cost"
gives the figures). The splice is exact, not a guess:

1. msgspec reads the top-level ``usage`` value as ``msgspec.Raw``: ``U``, the exact bytes of
   that value as they stand in the body (the OpenAI adapter reads it so while metering the
   answer, and hands over where it ends as ``Completion.usage_at``; otherwise ``with_cost``
   makes that pass itself);
2. ``U`` occurs in the body at least once (where the value stands). When a tail ``S`` of ``U``
   occurs exactly once in the body, ``U`` does too (each occurrence of ``U`` holds one of ``S``
   at the same offset), so that one occurrence is the top-level value and its closing brace is
   the last byte of ``S`` (``usage_end``);
3. ``,"cost":"…"`` goes in before that brace.

Anything else — ``usage`` that is not an object or is empty, a tail that occurs twice, a
``usage`` that already has a ``cost`` (a supplier's own figure, which is replaced) — takes the
slow path: decode, set, encode (``usage`` with any escape too: ``"co\\u0073t"`` is a ``cost``).
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from gridgate.protocol.sse import SSEParser, encode_event

__all__ = ["costless", "event_with_cost", "usage_end", "with_cost"]


class _Top(msgspec.Struct, gc=False):
    usage: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)


_top_decoder: Final = msgspec.json.Decoder(_Top)
_document_decoder: Final = msgspec.json.Decoder(dict[str, Any])
_encode: Final = msgspec.json.Encoder().encode
_TAIL: Final = 32  # bytes of ``usage``'s end searched for: a short needle searches fastest
_COST_KEY: Final = b'"cost"'


def usage_end(document: bytes, usage: bytes) -> int:
    """Where the closing brace of ``document``'s top-level ``usage`` object is, given that
    value's exact bytes (``usage``, as ``msgspec.Raw`` read them) and that it has no key
    ``cost`` (``costless``, or the caller's own decoding, says so); -1 when the splice cannot
    be proved right or would need another comma rule (an empty object)."""
    if usage[:2] != b'{"' and (usage[:1] != b"{" or not usage[1:-1].strip()):
        return -1  # not an object, or an empty one
    tail = usage[-_TAIL:]
    at = document.rfind(tail)
    if at < 0 or document.find(tail, 0, at + len(tail) - 1) >= 0:  # before it, or overlapping
        return -1
    return at + len(tail) - 1


def costless(usage: bytes) -> bool:
    """No key of the object ``usage`` is ``cost``: not the key, nor an escape that could
    spell it (``"co\\u0073t"``)."""
    return _COST_KEY not in usage and b"\\" not in usage


def with_cost(document: bytes, cost: str, usage_at: int = -1) -> bytes:
    """``document`` (a JSON object) with ``cost`` as its ``usage.cost``; unchanged when it has
    no ``usage`` object. ``usage_at``: ``usage_end`` of it, when known. Raises
    ``msgspec.DecodeError`` for a document that is not JSON."""
    if usage_at < 0 or document[usage_at : usage_at + 1] != b"}":
        usage = bytes(_top_decoder.decode(document).usage)
        usage_at = usage_end(document, usage) if costless(usage) else -1
        if usage_at < 0:
            return _decoded_with_cost(document, cost)
    return b"".join((document[:usage_at], b',"cost":"', cost.encode(), b'"', document[usage_at:]))


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
    if raw[:6] == b"data: " and raw[-2:] == b"\n\n" and raw.count(b"\n") == 2 and b"\r" not in raw:
        # the canonical form, one ``data:`` line: no parser needed
        try:
            document = with_cost(raw[6:-2], cost)
        except msgspec.DecodeError:
            return raw
        return b"data: " + document + b"\n\n"
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
