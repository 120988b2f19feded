"""Billing: the worst-case hold before dispatch and the exact settle after.

The hold is the worst case of the request at the chosen offer: the prompt's token upper bound at
the input price plus ``n × max output tokens`` at the output price, rounded up once. The upstream
is always sent that max output, so the supplier cannot run past the money. When the balance
cannot cover the worst case, the max output is clamped to what the balance affords, provided that
leaves at least ``billing.min_output_tokens`` (or what the caller asked for, if less); otherwise
the request is refused with 402.

Settle charges the metered cost (never more than the hold) and gives back the rest; it is
idempotent in the store. A failed delivery is released (charged nothing). A store failure while
settling leaves the hold to expire, which releases it: a consumer is never charged twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from gridgate.core.clock import Clock
from gridgate.errors import InsufficientBalance, Unauthorized
from gridgate.money import Price, format_usd
from gridgate.settings import BillingSettings
from gridgate.storage.ports import HoldResult, SettleResult, StorageError, Store
from gridgate.storage.records import HoldRecord

log = logging.getLogger("gridgate.billing")


@dataclass(frozen=True, slots=True)
class Quote:
    """The worst case of one request at one offer."""

    price: Price
    prompt_tokens_bound: int
    max_output_tokens: int  # per choice; what the upstream is told
    n: int

    @property
    def amount(self) -> int:
        return self.price.cost(self.prompt_tokens_bound, self.n * self.max_output_tokens)


class Billing:
    def __init__(self, store: Store, clock: Clock, settings: BillingSettings) -> None:
        self._store = store
        self._clock = clock
        self._settings = settings

    async def hold(
        self, *, hold_id: str, account_id: str, key_id: str, quote: Quote, requested: int | None
    ) -> tuple[HoldRecord, Quote]:
        """Reserve the worst case, clamping max output to the balance when allowed.
        Returns the hold and the quote it covers (possibly clamped)."""
        result = await self._place(hold_id, account_id, key_id, quote.amount)
        if result.hold is not None:
            return result.hold, quote
        if result.refused != "insufficient_balance":
            raise Unauthorized("API key revoked or expired", code="revoked_api_key")
        affordable = quote.price.output_tokens_affordable(result.balance, quote.prompt_tokens_bound)
        per_choice = affordable // quote.n
        floor = min(self._settings.min_output_tokens, requested or self._settings.min_output_tokens)
        if per_choice >= floor and per_choice < quote.max_output_tokens:
            clamped = Quote(quote.price, quote.prompt_tokens_bound, per_choice, quote.n)
            retry = await self._place(hold_id, account_id, key_id, clamped.amount)
            if retry.hold is not None:
                return retry.hold, clamped
            result = retry
        raise InsufficientBalance(
            f"balance too low: this request needs up to ${format_usd(self._floor_cost(quote, floor))}"
            f" and the account balance is ${format_usd(max(result.balance, 0))}"
        )

    @staticmethod
    def _floor_cost(quote: Quote, floor: int) -> int:
        return quote.price.cost(
            quote.prompt_tokens_bound, quote.n * min(floor, quote.max_output_tokens)
        )

    async def _place(self, hold_id: str, account_id: str, key_id: str, amount: int) -> HoldResult:
        now = self._clock.now_us()
        return await self._store.place_hold(
            hold_id=hold_id,
            account_id=account_id,
            key_id=key_id,
            amount=amount,
            expires_us=now + self._settings.hold_ttl_seconds * 1_000_000,
            now_us=now,
        )

    async def settle(self, hold_id: str, charge: int) -> SettleResult | None:
        try:
            return await self._store.settle_hold(hold_id, charge, now_us=self._clock.now_us())
        except StorageError:
            log.exception(
                "settle failed; the hold will expire and be released", extra={"hold_id": hold_id}
            )
            return None

    async def release(self, hold_id: str) -> SettleResult | None:
        try:
            return await self._store.release_hold(hold_id, now_us=self._clock.now_us())
        except StorageError:
            log.exception("release failed; the hold will expire", extra={"hold_id": hold_id})
            return None

    async def sweep(self) -> int:
        """Release expired holds (left by crashed processes); returns how many."""
        return len(await self._store.expire_holds(self._clock.now_us()))
