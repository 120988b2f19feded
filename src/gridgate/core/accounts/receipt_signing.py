"""Signed usage receipts: an Ed25519 signature over a canonical encoding of what a request
was, how it was served and judged, and what it cost, and the public keys to verify it with.

The canonical bytes are the payload as JSON with sorted keys, no whitespace, UTF-8
(``canonical``); the signature is over exactly those bytes, and both are sent base64url
(no padding), so a verifier checks the bytes it was given and never re-encodes anything.

The signing key is one for the whole fleet: made once by whichever process signs first and
kept in the database (``receipt_keys``; two processes racing to make it both end up with the
first one stored), read once per process. Its public half is served at
``/.well-known/gridgate-receipt-keys`` as a JWKS-like document.
"""

from __future__ import annotations

import base64
import hashlib
import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from gridgate.core.accounts.receipt_view import (
    CURRENCY,
    cost_status_of,
    iso_time,
    plain,
    price_per_token,
    tokens_per_second,
)
from gridgate.core.clock import Clock
from gridgate.money import format_usd_fixed
from gridgate.storage.ports.errors import StorageError
from gridgate.storage.ports.receipts import ReceiptStore, SigningKey
from gridgate.storage.records import InstrumentRecord, UsageRecord

if TYPE_CHECKING:  # imported when first used: a worker that never signs never loads it (~70 ms)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ALGORITHM = "Ed25519"
PAYLOAD_VERSION = 1


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def canonical(payload: dict[str, Any]) -> bytes:
    """Sorted keys, no whitespace, UTF-8; only strings, integers, booleans and null inside
    (every non-integer number is a decimal string), so any JSON library reads it the same."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _spec(instrument: InstrumentRecord | None) -> dict[str, Any] | None:
    """The instrument's spec as the catalog has it when the receipt is signed."""
    if instrument is None:
        return None
    floor = instrument.throughput_floor_tps
    return {
        "quality_floor": plain_float(instrument.quality_floor),
        "ttft_ceiling_ms": instrument.ttft_ceiling_ms,
        "throughput_floor_tps": None if floor is None else plain_float(floor),
        "context_floor": instrument.context_floor,
        "max_output_floor": instrument.max_output_floor,
        "bill_out_of_spec": instrument.bill_out_of_spec,
    }


def plain_float(value: float) -> str:
    """A measured number as a decimal string (its shortest repr: the same in every language)."""
    return plain(Decimal(repr(value)))


def signed_payload(
    record: UsageRecord, instrument: InstrumentRecord | None, closing_entry: int | None
) -> dict[str, Any]:
    """What a signed receipt attests."""
    tps = tokens_per_second(record)
    return {
        "v": PAYLOAD_VERSION,
        "request_id": record.request_id,
        "request_hash": None if record.request_hash is None else f"sha256:{record.request_hash}",
        "account_id": record.account_id,
        "api_key_id": record.key_id,
        "endpoint": record.endpoint,
        "created_at": iso_time(record.created_us),
        "instrument": {"id": record.instrument, "spec": _spec(instrument)},
        "supplier": record.supplier,
        "offer": record.offer_id,
        "serving_model": record.upstream_model,
        "measured": {
            "ttft_ms": None if record.ttft_us is None else plain_float(record.ttft_us / 1000),
            "tokens_per_second": None if tps is None else plain_float(tps),
            "duration_ms": plain_float(record.duration_us / 1000),
        },
        "in_spec": record.in_spec,
        "spec_note": record.spec_note,
        "tokens": {
            "input": record.input_tokens,
            "output": record.output_tokens,
            "cached": record.cached_tokens,
            "reasoning": record.reasoning_tokens,
        },
        "unit_prices": {
            "input_per_token": price_per_token(record.price_input_per_m),
            "output_per_token": price_per_token(record.price_output_per_m),
        },
        "amount": format_usd_fixed(record.cost),
        "amount_nanos": record.cost,
        "currency": CURRENCY,
        "cost_status": cost_status_of(record),
        # gridgate bills per-process leases: the request's charge is in its lease, and the
        # lease's ledger entries are its hold and, once it is closed, its settle
        "ledger": {"hold_id": record.hold_id, "settle_entry_id": closing_entry},
    }


def _kid(public: bytes) -> str:
    return "grk_" + hashlib.sha256(public).hexdigest()[:16]


def _new_key(now_us: int) -> SigningKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        PublicFormat,
    )

    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return SigningKey(
        kid=_kid(public),
        private_key=b64url(seed),
        public_key=b64url(public),
        created_us=now_us,
        active=True,
    )


class ReceiptSigner:
    def __init__(self, store: ReceiptStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._key: tuple[str, Ed25519PrivateKey] | None = None  # this process's copy

    async def _signing_key(self) -> tuple[str, Ed25519PrivateKey]:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        if self._key is None:
            active = next((k for k in await self._store.receipt_keys() if k.active), None)
            if active is None:
                try:
                    active = await self._store.add_receipt_key(_new_key(self._clock.now_us()))
                except StorageError:  # another process stored its key first: use that one
                    active = next(k for k in await self._store.receipt_keys() if k.active)
            seed = unb64url(active.private_key)
            self._key = (active.kid, Ed25519PrivateKey.from_private_bytes(seed))
        return self._key

    async def sign(
        self, record: UsageRecord, instrument: InstrumentRecord | None
    ) -> dict[str, Any]:
        closing = (
            None
            if record.hold_id is None
            else await self._store.lease_closing_entry(record.hold_id)
        )
        payload = canonical(signed_payload(record, instrument, closing))
        kid, key = await self._signing_key()
        return {
            "alg": ALGORITHM,
            "kid": kid,
            "value": b64url(key.sign(payload)),
            "payload": b64url(payload),
        }

    async def public_keys(self) -> dict[str, Any]:
        """Every key receipts were signed with (the active one first), made if none is yet."""
        await self._signing_key()
        return {
            "keys": [
                {
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "alg": "EdDSA",
                    "use": "sig",
                    "kid": k.kid,
                    "x": k.public_key,
                }
                for k in await self._store.receipt_keys()
            ]
        }
