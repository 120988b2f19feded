"""The ledger: holds placed before a request and settled after it, balances, and the check
that every balance equals its entries.

Every method that moves money is a single atomic transaction; none of them lets a balance go
below zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, Protocol

import msgspec

from gridgate.storage.records import CapPeriod, CapUse, HoldRecord, LedgerEntry

HoldRefusal = Literal["insufficient_balance", "key_inactive", "account_missing", "cap_reached"]


class HoldResult(msgspec.Struct, frozen=True, kw_only=True):
    """Outcome of ``place_hold``: either ``hold`` is set, or ``refused`` says why."""

    hold: HoldRecord | None
    refused: HoldRefusal | None
    balance: int  # the account balance after the hold (or as found, when refused)
    # a capped hold: every cap it counted against, after it; refused ``cap_reached``: the cap
    # that refused, as found
    caps: tuple[CapUse, ...] = ()


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


class LedgerStore(Protocol):
    async def place_hold(
        self,
        *,
        hold_id: str,
        account_id: str,
        key_id: str | None,
        amount: int,
        expires_us: int,
        now_us: int,
        windows: Mapping[CapPeriod, int] | None = None,
    ) -> HoldResult:
        """Atomically: if the key (when given) is active at ``now_us`` and the balance covers
        ``amount``, subtract it, append a ``hold`` entry (−amount) and a hold row. Otherwise
        change nothing and say why. One transaction, no read-then-write race.

        With ``windows`` (each period's current window start) the hold is **capped**: in the
        same transaction, every spend cap of the account and of the key must have ``amount``
        left in its current window, and the hold is counted against each (``caps`` of the
        result); else nothing changes and it is refused ``cap_reached``."""

    async def settle_hold(
        self, hold_id: str, charge: int, *, now_us: int, capped: bool = False
    ) -> SettleResult:
        """Close a ``held`` hold: charge ``min(charge, hold.amount)``, append a ``settle`` entry
        of +(amount − charged), mark the hold settled — and, ``capped``, give what it did not
        charge back to the cap windows it counted against. Idempotent: a hold already closed
        returns what was done, changing nothing. Unknown → NotFoundInStore."""

    async def release_hold(
        self, hold_id: str, *, now_us: int, capped: bool = False
    ) -> SettleResult:
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
