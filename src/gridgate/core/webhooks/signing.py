"""How a webhook delivery is signed (Stripe / Standard-Webhooks style), and how a receiver
checks it.

Every delivery is a ``POST`` of a JSON body ``{"id", "type", "created_at", "data"}`` with:

- ``Gridgate-Webhook-Id``: the event id (the same on every retry and replay: deduplicate on it);
- ``Gridgate-Webhook-Timestamp``: unix seconds when this attempt was sent;
- ``Gridgate-Webhook-Signature``: ``v1=`` and the hex HMAC-SHA256, keyed with the endpoint's
  secret, of ``f"{timestamp}.{body}"`` (the body's exact bytes).

A receiver recomputes the HMAC over the raw body, compares in constant time, and refuses a
timestamp too far from its own clock (a replayed capture)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

ID_HEADER = "Gridgate-Webhook-Id"
TIMESTAMP_HEADER = "Gridgate-Webhook-Timestamp"
SIGNATURE_HEADER = "Gridgate-Webhook-Signature"
DEFAULT_TOLERANCE_SECONDS = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``v1=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def signed_headers(event_id: str, secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        ID_HEADER: event_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(secret, timestamp, body),
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now_s: int,
    tolerance_s: int = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """What a receiver does: the signature matches and the timestamp is recent."""
    try:
        timestamp = int(headers[TIMESTAMP_HEADER])
        given = headers[SIGNATURE_HEADER]
    except (KeyError, ValueError):
        return False
    if abs(now_s - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(given, signature(secret, timestamp, body))
