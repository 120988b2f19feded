"""The storage ports: what ``core`` and the CLI need from a store, and nothing of how.

One SQL implementation (``storage/sql.py``) serves SQLite and PostgreSQL. Every method that
moves money is a single atomic transaction; none of them lets a balance go below zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

import msgspec

from gridgate.storage.records import (
    AccountRecord,
    AuditEntry,
    AuditNote,
    ChangeRecord,
    DailyUsage,
    DeliveryRow,
    HoldRecord,
    InstrumentRecord,
    KeyRecord,
    LedgerEntry,
    LimitOverride,
    LimitScope,
    ManagementTokenRecord,
    OfferRecord,
    PricePoint,
    Role,
    SessionRecord,
    SupplierRecord,
    UsageRecord,
    UserRecord,
)


class StorageError(Exception):
    """A store failed (unreachable, constraint broken unexpectedly). Never shown raw to a client."""


class StoreUnavailable(StorageError):
    """The database cannot be reached right now (refused, dropped or timed-out connections,
    a server shutting down): nothing was written, and the same call may succeed later."""


class NotFoundInStore(StorageError):
    """The named account / key / hold does not exist."""


class Conflict(StorageError):
    """A value that must be unique (a user's email) is already taken."""


class IdempotencyConflict(StorageError):
    """An idempotency key was reused with different parameters."""


HoldRefusal = Literal["insufficient_balance", "key_inactive", "account_missing"]


class HoldResult(msgspec.Struct, frozen=True, kw_only=True):
    """Outcome of ``place_hold``: either ``hold`` is set, or ``refused`` says why."""

    hold: HoldRecord | None
    refused: HoldRefusal | None
    balance: int  # the account balance after the hold (or as found, when refused)


class SettleResult(msgspec.Struct, frozen=True, kw_only=True):
    hold_id: str
    charged: int  # what was charged by this or an earlier settle of the same hold
    released: int  # the part of the hold given back
    already_settled: bool  # True when a previous settle/release had already closed the hold


# The ids of the holds requests are served from (``core/billing/leases.py``): each request charges its
# lease exactly what its usage record says it cost.
LEASE_ID_PREFIX = "lease_"


class HoldMismatch(msgspec.Struct, frozen=True, kw_only=True):
    """A closed lease whose charge is not what the usage records against it cost (capped at the
    hold): a request served without its record, or a record without its charge."""

    hold_id: str
    account_id: str
    charged: int
    recorded: int  # what its usage records cost, capped at the hold's amount


class VerifyReport(msgspec.Struct, frozen=True, kw_only=True):
    accounts_checked: int
    mismatches: tuple[tuple[str, int, int], ...]  # (account_id, balance column, sum of entries)
    negative: tuple[str, ...]  # accounts whose balance is below zero
    holds_checked: int = 0
    holds: tuple[HoldMismatch, ...] = ()  # closed holds not matching their usage records

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.negative and not self.holds


class AccountBalance(msgspec.Struct, frozen=True, kw_only=True):
    """An account's money as the store knows it.

    ``ledger`` is the balance column (= the sum of ledger entries): what new holds can take.
    ``held`` is the total of the account's open (``held``) holds — per-process leases included.
    ``recorded`` is the cost of the usage records already written against those open holds:
    money spent but not yet settled into the ledger. What the account has spent is therefore
    exact as soon as a request's usage record is written, whichever process holds the lease.
    """

    account_id: str
    ledger: int
    held: int
    recorded: int

    @property
    def effective(self) -> int:
        """The balance a person should see: credits minus everything charged or recorded."""
        return self.ledger + self.held - self.recorded


class SpoolChunk(msgspec.Struct, frozen=True):
    """Usage records read back from the spool, and where the next read starts."""

    path: str
    records: list[UsageRecord]
    end: int  # byte offset after the last line read
    last: bool  # nothing after ``end``: once written, the file is done


class UsageSpool(Protocol):
    """Local, durable room for usage records the database cannot take right now
    (``storage/usage_spool.py``). Every method does blocking file I/O: call it off the loop."""

    @property
    def holding(self) -> bool:
        """Whether this process's own spilled records are not all written yet."""

    def spill(self, records: Sequence[UsageRecord]) -> None:
        """Append durably, after everything spilled before."""

    def read_own(self, limit: int) -> SpoolChunk | None:
        """The oldest of this process's spilled records not yet written, at most ``limit``."""

    def claim_orphan(self) -> str | None:
        """A spool file that no living process holds, now ours to write; None if none."""

    def read_orphan(self, path: str, offset: int, limit: int) -> SpoolChunk: ...

    def written(self, chunk: SpoolChunk) -> None:
        """``chunk`` is in the database: move past it (and finish its file when it is the last)."""

    def close(self) -> None:
        """Release the files; what is still unwritten stays for the next process."""


class Store(Protocol):
    """Everything persistent. Implementations are safe to share across tasks of one process and
    across processes on the same database.

    A method that changes something a person may change takes ``audit``: the note is written to
    the audit log in the change's own transaction (about the id of what changed), so no change
    is made without its audit entry, nor the other way round. A call that changes nothing (a
    replayed credit, a second revoke) writes no note.
    """

    async def open(self) -> None:
        """Connect and apply pending migrations (idempotent)."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """One trivial round trip to the database (readiness); raises ``StorageError``."""

    # -- accounts --------------------------------------------------------------------------
    async def create_account(
        self, name: str, *, audit: AuditNote | None = None
    ) -> AccountRecord: ...

    async def get_account(self, account_id: str) -> AccountRecord | None: ...

    async def list_accounts(self) -> list[AccountRecord]: ...

    async def credit(
        self,
        account_id: str,
        amount: int,
        *,
        idempotency_key: str | None = None,
        memo: str | None = None,
        kind: Literal["credit", "adjustment"] = "credit",
        audit: AuditNote | None = None,
    ) -> LedgerEntry:
        """Append a credit (amount > 0) or adjustment (any sign; may not take the balance below
        zero → ValueError). A repeated idempotency key with the same account/amount/kind returns
        the original entry and changes nothing; with different parameters → IdempotencyConflict.
        Unknown account → NotFoundInStore."""

    # -- keys ------------------------------------------------------------------------------
    async def create_key(
        self,
        *,
        account_id: str,
        name: str,
        prefix: str,
        secret_hash: str,
        expires_us: int | None,
        audit: AuditNote | None = None,
    ) -> KeyRecord:
        """Unknown account → NotFoundInStore."""

    async def get_key_by_hash(self, secret_hash: str) -> KeyRecord | None:
        """On the hot path for every request: must be cheap (on SQLite an indexed read in the
        calling thread, no hop to a worker thread)."""

    async def get_key(self, key_id: str) -> KeyRecord | None: ...

    async def list_keys(self, account_id: str | None = None) -> list[KeyRecord]: ...

    async def revoke_key(self, key_id: str, *, audit: AuditNote | None = None) -> KeyRecord:
        """Idempotent (a second revoke keeps the first time). Unknown → NotFoundInStore.
        Announced on the change feed (kind ``key``)."""

    async def rename_key(
        self, key_id: str, name: str, *, audit: AuditNote | None = None
    ) -> KeyRecord:
        """Unknown → NotFoundInStore."""

    async def touch_keys(self, last_used: dict[str, int]) -> None:
        """Batch update of last_used_us (only ever moves forward)."""

    # -- ledger ----------------------------------------------------------------------------
    async def place_hold(
        self,
        *,
        hold_id: str,
        account_id: str,
        key_id: str | None,
        amount: int,
        expires_us: int,
        now_us: int,
    ) -> HoldResult:
        """Atomically: if the key (when given) is active at ``now_us`` and the balance covers
        ``amount``, subtract it, append a ``hold`` entry (−amount) and a hold row. Otherwise
        change nothing and say why. One transaction, no read-then-write race."""

    async def settle_hold(self, hold_id: str, charge: int, *, now_us: int) -> SettleResult:
        """Close a ``held`` hold: charge ``min(charge, hold.amount)``, append a ``settle`` entry
        of +(amount − charged), mark the hold settled. Idempotent: a hold already closed returns
        what was done, changing nothing. Unknown → NotFoundInStore."""

    async def release_hold(self, hold_id: str, *, now_us: int) -> SettleResult:
        """Close a ``held`` hold charging nothing (entry kind ``release``). Idempotent."""

    async def expire_holds(self, now_us: int, *, limit: int = 1000) -> list[SettleResult]:
        """Close every ``held`` hold whose ``expires_us`` ≤ now (status ``expired``), charging
        what the usage records written against it cost (capped at the hold; kind ``settle``,
        memo ``expired``) and releasing the rest: a crashed process's delivered work is still
        paid for, and nothing else."""

    async def extend_holds(self, hold_ids: Sequence[str], expires_us: int) -> int:
        """Move the expiry of those holds that are still ``held`` to ``expires_us`` (a process
        renewing its leases while it lives). Returns how many were extended."""

    async def account_balance(self, account_id: str) -> AccountBalance | None:
        """The account's ledger balance, open holds and usage recorded against them."""

    async def get_hold(self, hold_id: str) -> HoldRecord | None: ...

    async def entries(
        self,
        account_id: str,
        *,
        since_us: int | None = None,
        until_us: int | None = None,
    ) -> list[LedgerEntry]: ...

    async def verify_ledger(self) -> VerifyReport: ...

    # -- usage -----------------------------------------------------------------------------
    async def insert_usage(self, records: Sequence[UsageRecord]) -> None:
        """Batch write: a record replaces an earlier one of the same request_id (the last one
        wins, so a stream's provisional checkpoints give way to its final record); writing the
        same batch twice changes nothing."""

    async def list_usage(
        self,
        *,
        account_id: str | None = None,
        since_us: int | None = None,
        until_us: int | None = None,
        limit: int | None = 100,
        key_id: str | None = None,
        instrument: str | None = None,
        before: tuple[int, str] | None = None,
    ) -> list[UsageRecord]:
        """Newest first (by ``created_us``, then ``request_id``); ``since_us`` inclusive,
        ``until_us`` exclusive; ``limit=None`` returns every matching record; ``before`` keeps
        only the records that come after that ``(created_us, request_id)`` in this order (a
        page's cursor)."""

    async def usage_daily(
        self,
        *,
        account_id: str | None = None,
        since_us: int | None = None,
        until_us: int | None = None,
        key_id: str | None = None,
        instrument: str | None = None,
    ) -> list[DailyUsage]:
        """The matching usage records summed per UTC day and instrument, oldest first."""

    async def offer_deliveries(self, since_us: int, limit_per_offer: int) -> list[DeliveryRow]:
        """Every offer's latest deliveries as the usage records of all processes have them: at
        most ``limit_per_offer`` per offer, none created before ``since_us`` (inclusive). A
        delivery is a record with an offer and an outcome other than ``in_progress`` (a
        stream's checkpoint) or ``rejected``. Ordered by offer id, each offer's newest first.
        ``limit_per_offer`` < 1 → ValueError."""

    # -- catalog ---------------------------------------------------------------------------
    async def upsert_catalog(
        self,
        instruments: Sequence[InstrumentRecord],
        suppliers: Sequence[SupplierRecord],
        offers: Sequence[OfferRecord],
    ) -> None:
        """Insert or replace by primary key (instrument id, supplier name, offer id)."""

    async def load_catalog(
        self,
    ) -> tuple[list[InstrumentRecord], list[SupplierRecord], list[OfferRecord]]: ...

    async def set_offer_disabled(
        self, offer_id: str, disabled: bool, *, audit: AuditNote | None = None
    ) -> OfferRecord:
        """An operator's disable (keeps the first time) or re-enable of an offer; seeding the
        catalog from config never undoes it. Announced (kind ``offer``). Unknown →
        NotFoundInStore."""

    async def save_instrument(
        self, record: InstrumentRecord, *, create: bool, audit: AuditNote | None = None
    ) -> InstrumentRecord:
        """An operator's run-time create (an id taken → Conflict) or replacement (unknown →
        NotFoundInStore), stamped ``edited_us``: seeding from config leaves it alone from then
        on. Announced (kind ``catalog``)."""

    async def save_supplier(
        self, record: SupplierRecord, *, create: bool, audit: AuditNote | None = None
    ) -> SupplierRecord:
        """As ``save_instrument``, by name."""

    async def save_offer(
        self, record: OfferRecord, *, create: bool, audit: AuditNote | None = None
    ) -> OfferRecord:
        """As ``save_instrument``; the record's ``disabled_us`` is ignored (only
        ``set_offer_disabled`` moves it). Announced (kind ``offer``)."""

    async def price_history(self, instrument: str) -> list[PricePoint]:
        """Every price-history row of the instrument's offers, oldest first. Every write to the
        catalog (seeding included) appends a row for each offer whose price or availability
        changed, in its own transaction."""

    # -- limits and the change feed ------------------------------------------------------------
    async def set_limits(
        self, override: LimitOverride, *, audit: AuditNote | None = None
    ) -> LimitOverride:
        """Replace the overrides of one subject (``"*"``: every subject of the scope); an empty
        override removes them. Announced (kind ``limits``, subject ``<scope>:<subject>``).
        A key, account or instrument that does not exist → NotFoundInStore."""

    async def get_limits(self, scope: LimitScope, subject: str) -> LimitOverride | None: ...

    async def list_limits(self) -> list[LimitOverride]: ...

    async def changes_since(self, since_us: int) -> list[ChangeRecord]:
        """Change-feed entries created at or after ``since_us``, by id. Every change a process
        may have cached is announced in the transaction that makes it: revoked keys, limits,
        offers disabled or enabled, catalog seeding. (Read by time, not by id: ids of
        concurrent transactions may commit out of order.)"""

    async def prune_changes(self, before_us: int) -> int:
        """Delete feed entries created before ``before_us``; returns how many."""

    # -- people and access ---------------------------------------------------------------------
    async def create_user(
        self,
        *,
        email: str,
        name: str,
        role: Role,
        account_id: str | None,
        password_hash: str,
        audit: AuditNote | None = None,
    ) -> UserRecord:
        """``email`` is stored lower-case. Unknown account → NotFoundInStore; an email already
        taken → Conflict."""

    async def get_user(self, user_id: str) -> UserRecord | None: ...

    async def get_user_by_email(self, email: str) -> UserRecord | None:
        """Matched lower-case."""

    async def list_users(self, account_id: str | None = None) -> list[UserRecord]: ...

    async def set_user_disabled(
        self, user_id: str, disabled: bool, *, audit: AuditNote | None = None
    ) -> UserRecord:
        """Disable (keeps the first time) or re-enable a user; disabling also ends every session
        of the user, in the same transaction. Unknown → NotFoundInStore."""

    async def set_password_hash(
        self, user_id: str, password_hash: str, *, audit: AuditNote | None = None
    ) -> UserRecord:
        """Unknown → NotFoundInStore."""

    async def create_session(self, session: SessionRecord) -> SessionRecord:
        """Unknown user → NotFoundInStore."""

    async def get_session_by_hash(self, id_hash: str) -> SessionRecord | None: ...

    async def touch_session(self, id_hash: str, *, last_seen_us: int, expires_us: int) -> bool:
        """Move a session's last-seen and expiry forward (never back). False when it is gone."""

    async def delete_session(self, id_hash: str) -> bool:
        """True when there was such a session."""

    async def delete_expired_sessions(self, now_us: int) -> int:
        """Delete sessions whose ``expires_us`` ≤ now; returns how many."""

    async def create_management_token(
        self,
        *,
        user_id: str,
        name: str,
        prefix: str,
        secret_hash: str,
        expires_us: int | None,
        audit: AuditNote | None = None,
    ) -> ManagementTokenRecord:
        """Unknown user → NotFoundInStore."""

    async def get_management_token_by_hash(
        self, secret_hash: str
    ) -> ManagementTokenRecord | None: ...

    async def get_management_token(self, token_id: str) -> ManagementTokenRecord | None: ...

    async def list_management_tokens(self, user_id: str) -> list[ManagementTokenRecord]: ...

    async def revoke_management_token(
        self, token_id: str, *, audit: AuditNote | None = None
    ) -> ManagementTokenRecord:
        """Idempotent (a second revoke keeps the first time). Unknown → NotFoundInStore."""

    async def touch_management_token(self, token_id: str, now_us: int) -> None:
        """Set last_used_us (only ever moves forward)."""

    async def append_audit(
        self, actor: str, action: str, subject: str, detail: Mapping[str, Any]
    ) -> AuditEntry:
        """Append one audit entry; ``detail`` must be JSON-encodable (and hold no secret)."""

    async def list_audit(
        self,
        *,
        since_us: int | None = None,
        until_us: int | None = None,
        limit: int = 100,
        subject: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        before_id: int | None = None,
    ) -> list[AuditEntry]:
        """Newest first (by id); ``since_us`` inclusive, ``until_us`` exclusive; ``before_id``:
        only entries with a smaller id (a page's cursor)."""
