"""Idempotency keys: the claim of the first request with a key, and the answer kept for its
duplicates.

A key (1 to 255 printable ASCII characters, ``check_key``) is scoped to the caller's account.
The first request claims it in the store (``claim``: an insert that only one request can land,
in any process), with the SHA-256 of its endpoint and body. Its answer is then kept (``finish``)
for 24 h (``WINDOW_US``), or its claim released (``release``) when it kept none: the caller
decides which (``api/consumption/idempotency.py``). A duplicate with the same endpoint and body
gets the kept answer; with another, ``IdempotencyKeyReused`` (409). A duplicate of a request
still running in another process waits for its answer (``settled``), ``wait_seconds`` at most,
then gets ``IdempotencyKeyInUse`` (409).

Stored answers follow the stored-response retention rules and are swept with them: with
``responses.retention_days = 0`` (nothing stored) a key is still claimed and remembered for
24 h, but no answer's content is kept, and a duplicate that arrives once the answer has ended is
``IdempotencyAnswerNotKept`` (409): never charged twice, never given an answer nobody kept. A
running claim older than ``STALE_US`` is taken over by a duplicate (its process is presumed
dead). Nothing here logs an answer's content.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import msgspec

from gridgate.core.clock import Clock
from gridgate.core.idempotency.flights import Answer, Flights
from gridgate.errors import BadRequest, GridgateError
from gridgate.storage.ports.idempotency import IdempotencyRecord, IdempotencyStore

__all__ = [
    "Claim",
    "IdempotencyAnswerNotKept",
    "IdempotencyKeyInUse",
    "IdempotencyKeyReused",
    "IdempotencyKeys",
    "check_key",
    "request_hash",
]

log = logging.getLogger("gridgate")

WINDOW_US: Final = 24 * 3_600_000_000  # how long a key and its answer are kept
STALE_US: Final = 3_600_000_000  # a running claim this old is abandoned (its process died)
WAIT_SECONDS: Final = 30.0  # a duplicate of a request running in another process waits this
POLL_SECONDS: Final = 0.1
SWEEP_BATCH: Final = 500
_SWEEP_BATCHES: Final = 20
_KEY: Final = re.compile(r"[\x20-\x7e]{1,255}")
_headers_decoder: Final = msgspec.json.Decoder(dict[str, str])


class IdempotencyKeyInUse(GridgateError):
    """409 on every surface: the key's first request is still being served."""

    status = 409
    openai_type = "invalid_request_error"
    anthropic_type = "invalid_request_error"
    default_code = "idempotency_key_in_use"


class IdempotencyKeyReused(IdempotencyKeyInUse):
    """409: the key was claimed by a request with another endpoint or body."""

    default_code = "idempotency_key_reused"


class IdempotencyAnswerNotKept(IdempotencyKeyInUse):
    default_code = "idempotency_answer_not_kept"


def check_key(value: str) -> str:
    """The key as given, when it is 1 to 255 printable ASCII characters; else 400."""
    if _KEY.fullmatch(value) is None:
        raise BadRequest(
            "Idempotency-Key must be 1 to 255 printable ASCII characters",
            code="invalid_idempotency_key",
        )
    return value


def request_hash(endpoint: str, body: bytes) -> str:
    """What a duplicate must repeat: the endpoint and the body's bytes."""
    return hashlib.sha256(endpoint.encode() + b"\n" + body).hexdigest()


@dataclass(frozen=True, slots=True)
class Claim:
    """A key this request holds: it serves the answer, then keeps or releases it."""

    account_id: str
    key: str
    owner: str


class IdempotencyKeys:
    """The idempotency keys of the inference endpoints (``AppState.idempotency``)."""

    def __init__(
        self,
        store: IdempotencyStore,
        clock: Clock,
        *,
        keep_answers: bool,
        wait_seconds: float = WAIT_SECONDS,
        poll_seconds: float = POLL_SECONDS,
        sweep_batch: int = SWEEP_BATCH,
    ) -> None:
        """``keep_answers``: whether an answer's content is stored (``retention_days`` above
        0)."""
        self._store = store
        self._clock = clock
        self._keep = keep_answers
        self._wait = wait_seconds
        self._poll = poll_seconds
        self._sweep_batch = sweep_batch
        self.flights = Flights()

    async def claim(
        self, account_id: str, key: str, endpoint: str, digest: str, *, stream: bool
    ) -> Claim | IdempotencyRecord:
        """The claim, when this request is the first with the key; else the row holding it."""
        now = self._clock.now_us()
        owner = secrets.token_hex(12)
        record = IdempotencyRecord(
            account_id=account_id,
            key=key,
            request_hash=digest,
            endpoint=endpoint,
            status="running",
            stream=stream,
            owner=owner,
            created_us=now,
            expires_us=now + WINDOW_US,
            stale_us=now + STALE_US,
        )
        held = await self._store.claim_idempotency_key(record, now)
        return Claim(account_id, key, owner) if held is None else held

    async def finish(self, claim: Claim, answer: Answer) -> None:
        """Keep ``answer`` for the key's duplicates (its content only when answers are kept). A
        store failure is logged (by type only): the answer still goes out."""
        try:
            await self._store.finish_idempotency_key(
                claim.account_id,
                claim.key,
                claim.owner,
                response_status=answer.status,
                response_headers=msgspec.json.encode(dict(answer.headers)).decode(),
                response_body=answer.body.decode("utf-8", "replace") if self._keep else None,
            )
        except Exception as exc:
            log.error("could not keep an idempotent answer: %s", type(exc).__name__)

    async def release(self, claim: Claim) -> None:
        """Give the key back: this request kept no answer, and a retry may run."""
        try:
            await self._store.release_idempotency_key(claim.account_id, claim.key, claim.owner)
        except Exception as exc:  # its claim goes stale, then a duplicate takes it over
            log.error("could not release an idempotency key: %s", type(exc).__name__)

    async def settled(self, held: IdempotencyRecord, endpoint: str, digest: str) -> Answer | None:
        """The answer kept under ``held``'s key, once done (waiting ``wait_seconds`` at most
        for one running elsewhere); None when the key was released meanwhile (claim it)."""
        deadline = self._clock.monotonic() + self._wait
        record: IdempotencyRecord | None = held
        while record is not None:
            check_same(record.endpoint, record.request_hash, endpoint, digest)
            if record.status == "done":
                return _answer(record)
            if self._clock.monotonic() >= deadline:
                raise IdempotencyKeyInUse(
                    "a request with this Idempotency-Key is still being served; "
                    "retry once it has ended"
                )
            await asyncio.sleep(self._poll)
            record = await self._store.get_idempotency_key(
                held.account_id, held.key, self._clock.now_us()
            )
        return None

    async def sweep(self) -> int:
        """Delete expired keys and their answers, a batch at a time; how many."""
        removed = 0
        for _ in range(_SWEEP_BATCHES):
            batch = await self._store.delete_expired_idempotency_keys(
                self._clock.now_us(), batch=self._sweep_batch
            )
            removed += batch
            if batch < self._sweep_batch:
                break
        return removed


def check_same(held_endpoint: str, held_digest: str, endpoint: str, digest: str) -> None:
    """409 when a duplicate is not the request that claimed the key."""
    if held_digest == digest:
        return
    what = "endpoint" if held_endpoint != endpoint else "body"
    raise IdempotencyKeyReused(
        f"this Idempotency-Key was used with a different request {what}"
        + (f" ({held_endpoint})" if what == "endpoint" else "")
        + "; use a new key for a different request"
    )


def _answer(record: IdempotencyRecord) -> Answer:
    if record.response_body is None or record.response_status is None:
        raise IdempotencyAnswerNotKept(
            "the request with this Idempotency-Key has been served, and this exchange keeps no "
            "answers to replay (responses.retention_days = 0)"
        )
    headers: Mapping[str, str] = _headers_decoder.decode(record.response_headers or "{}")
    return Answer(record.response_status, headers, record.response_body.encode(), record.stream)
