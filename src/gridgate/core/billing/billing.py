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

from collections.abc import Callable
from dataclasses import dataclass

from gridgate.core.billing import cap_windows
from gridgate.core.billing.leases import LeaseBook, Reservation
from gridgate.core.clock import Clock
from gridgate.core.outage import Outage
from gridgate.errors import InsufficientBalance, SpendCapReached, Unauthorized
from gridgate.money import Price, format_usd
from gridgate.settings import BillingSettings
from gridgate.storage.ports.ledger import HoldResult, LedgerStore
from gridgate.storage.records import CapUse


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
        # told of a spend cap that refused a request (the webhook outbox's ``cap.reached``)
        self.on_cap_reached: Callable[[CapUse], None] | None = None

    async def reserve(
        self,
        *,
        account_id: str,
        key_id: str,
        quote: Quote,
        requested: int | None,
        capped: bool = False,
    ) -> tuple[Reservation, Quote]:
        """Reserve the worst case, clamping max output to the balance (and, ``capped``, to the
        spend caps) when allowed. Returns the reservation and the quote it covers (possibly
        clamped). A capped request holds in the ledger itself (``LeaseBook.reserve_capped``)."""
        if not capped:  # the hot path: the open lease covers it, in memory, no await
            fast = self.leases.try_reserve(account_id, quote.amount)
            if fast is not None:
                return fast, quote

        async def hold(amount: int) -> tuple[Reservation | None, HoldResult | None]:
            if capped:
                return await self.leases.reserve_capped(account_id, key_id, amount)
            return await self.leases.reserve(account_id, key_id, amount)

        reservation, refusal = await hold(quote.amount)
        if reservation is not None:
            return reservation, quote
        room = _room(refusal)
        affordable = quote.price.output_tokens_affordable(room, quote.prompt_tokens_bound)
        per_choice = affordable // quote.n
        floor = min(self._settings.min_output_tokens, requested or self._settings.min_output_tokens)
        if floor <= per_choice < quote.max_output_tokens:
            clamped = Quote(quote.price, quote.prompt_tokens_bound, per_choice, quote.n)
            reservation, second = await hold(clamped.amount)
            if reservation is not None:
                return reservation, clamped
            refusal = second or refusal
            _room(refusal)  # a key revoked meanwhile is 401, not 402
        needed = quote.price.cost(
            quote.prompt_tokens_bound, quote.n * min(floor, quote.max_output_tokens)
        )
        assert refusal is not None
        if refusal.refused == "cap_reached":
            if self.on_cap_reached is not None:
                self.on_cap_reached(refusal.caps[0])
            raise cap_reached(refusal.caps[0], needed)
        raise InsufficientBalance(
            f"balance too low: this request needs up to ${format_usd(needed)}"
            f" and the account balance is ${format_usd(max(refusal.balance, 0))}"
        )

    def settle(self, reservation: Reservation, cost: int) -> int:
        """Charge the metered cost (never more than reserved); returns what was charged."""
        return self.leases.settle(reservation, cost)

    def release(self, reservation: Reservation) -> None:
        """A failed delivery: charge nothing."""
        self.leases.settle(reservation, 0)


def _room(refusal: HoldResult | None) -> int:
    """What a refused hold could have had: the balance, or what its cap had left. A revoked or
    expired key (or a vanished account) is ``Unauthorized``."""
    if refusal is None or refusal.refused not in ("insufficient_balance", "cap_reached"):
        raise Unauthorized("API key revoked or expired", code="revoked_api_key")
    if refusal.refused == "cap_reached":
        return refusal.caps[0].remaining
    return refusal.balance


def cap_reached(use: CapUse, needed: int) -> SpendCapReached:
    """The 402 of a request its spend cap cannot cover: which cap, what is left, when it resets
    (the headers say the same for programs)."""
    cap = use.cap
    whose = "this API key's" if cap.scope == "key" else "the account's"
    resets = cap_windows.resets_at(cap.period, use.window_start_us)
    when = "it never resets" if resets is None else f"it resets at {cap_windows.iso(resets)}"
    error = SpendCapReached(
        f"spend cap reached: {whose} {cap.period} cap ({cap.id}) is ${format_usd(cap.limit)},"
        f" ${format_usd(use.remaining)} of it is left and this request needs up to"
        f" ${format_usd(needed)}; {when}"
    )
    error.headers.update(cap_headers(use))
    return error


def cap_headers(use: CapUse, unspent: int = 0) -> dict[str, str]:
    """``x-gridgate-spend-cap-remaining`` (USD) and, unless lifetime, ``…-reset`` (ISO 8601) of
    the cap with the least left; ``unspent``: what the request held and did not charge."""
    headers = {"x-gridgate-spend-cap-remaining": format_usd(use.remaining + unspent)}
    resets = cap_windows.resets_at(use.cap.period, use.window_start_us)
    if resets is not None:
        headers["x-gridgate-spend-cap-reset"] = cap_windows.iso(resets)
    return headers
