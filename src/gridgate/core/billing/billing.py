"""Billing: the worst-case reservation before dispatch and the exact charge after.

The worst case of a request at an offer is the prompt's token upper bound at the input price
plus ``n × max output tokens`` at the output price, rounded up once. The upstream is always sent
that max output, so the supplier cannot run past the money. When the balance cannot cover the
worst case, the max output is clamped to what the balance affords, provided that leaves at least
``billing.min_output_tokens`` (or what the caller asked for, if less); otherwise 402.

Reservations and charges are made against per-process balance leases (``core/billing/leases.py``): in
memory on the hot path, with every lease an atomic hold in the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass

from gridgate.core.billing.leases import LeaseBook, Reservation
from gridgate.core.clock import Clock
from gridgate.core.outage import Outage
from gridgate.errors import InsufficientBalance, Unauthorized
from gridgate.money import Price, format_usd
from gridgate.settings import BillingSettings
from gridgate.storage.ports.ledger import LedgerStore


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
    def __init__(
        self,
        store: LedgerStore,
        clock: Clock,
        settings: BillingSettings,
        outage: Outage | None = None,
    ) -> None:
        self._settings = settings
        self.leases = LeaseBook(store, clock, settings, outage)

    async def reserve(
        self, *, account_id: str, key_id: str, quote: Quote, requested: int | None
    ) -> tuple[Reservation, Quote]:
        """Reserve the worst case, clamping max output to the balance when allowed. Returns the
        reservation and the quote it covers (possibly clamped)."""
        reservation, refusal = await self.leases.reserve(account_id, key_id, quote.amount)
        if reservation is not None:
            return reservation, quote
        if refusal is None or refusal.refused != "insufficient_balance":
            raise Unauthorized("API key revoked or expired", code="revoked_api_key")
        balance = refusal.balance
        affordable = quote.price.output_tokens_affordable(balance, quote.prompt_tokens_bound)
        per_choice = affordable // quote.n
        floor = min(self._settings.min_output_tokens, requested or self._settings.min_output_tokens)
        if floor <= per_choice < quote.max_output_tokens:
            clamped = Quote(quote.price, quote.prompt_tokens_bound, per_choice, quote.n)
            reservation, refusal = await self.leases.reserve(account_id, key_id, clamped.amount)
            if reservation is not None:
                return reservation, clamped
            if refusal is not None:
                balance = refusal.balance
        needed = quote.price.cost(
            quote.prompt_tokens_bound, quote.n * min(floor, quote.max_output_tokens)
        )
        raise InsufficientBalance(
            f"balance too low: this request needs up to ${format_usd(needed)}"
            f" and the account balance is ${format_usd(max(balance, 0))}"
        )

    def settle(self, reservation: Reservation, cost: int) -> int:
        """Charge the metered cost (never more than reserved); returns what was charged."""
        return self.leases.settle(reservation, cost)

    def release(self, reservation: Reservation) -> None:
        """A failed delivery: charge nothing."""
        self.leases.settle(reservation, 0)
