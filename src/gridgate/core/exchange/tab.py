"""A request's tab: what one request holds and owes across all its attempts, and the steps that
close it.

A ``Tab`` is opened when a request is planned and lives until its answer is settled (or it
fails). It carries the request's rate-limit pass, its hold of money (re-sized as failover moves
between offers), the probe slots offer health gave it, and what each attempt went wrong with.
Its methods are the bookkeeping of one request:

    admit ─► (failover: hold, attempt, …) ─► settle | fail ─► end
                                   checkpoint (a long stream, while it runs)

``settle`` and ``fail`` queue the usage record (``record``); ``end`` gives back what the request
held besides money (probe slots, the rate-limit pass). A ``Desk`` is what every tab of one
exchange shares: billing, the usage writer, the clock, the rate guard and offer health.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from gridgate.core.billing.billing import Billing, Quote, cap_headers
from gridgate.core.billing.leases import Reservation
from gridgate.core.billing.usage_writer import UsageWriter
from gridgate.core.catalog.catalog import PricedOffer
from gridgate.core.clock import Clock
from gridgate.core.exchange.plan import Plan
from gridgate.core.exchange.usage_error import error_summary, summary
from gridgate.core.health.offer_health import (
    Delivery,
    Eligibility,
    HealthPolicy,
    OfferHealth,
    Verdict,
    verdict,
)
from gridgate.core.limits.guard import Pass, RateGuard
from gridgate.errors import (
    GridgateError,
    SupplierFailed,
    Untranslatable,
    UpstreamRejected,
    http_status,
)
from gridgate.protocol.openai_chat import ChatRequest
from gridgate.providers.base import Usage
from gridgate.storage.records import KeyRecord, UsageRecord

NO_LIMITS: Mapping[str, str] = MappingProxyType({})


@dataclass(slots=True)
class Served:
    """Who served an answer (for response headers)."""

    supplier: str
    offer_id: str
    model: str


@dataclass(frozen=True, slots=True)
class Ending:
    """How a request ended (or, for a checkpoint, stands), as its usage record says it."""

    outcome: str  # ok, cut_at_hold, stream_error, cancelled, rejected, upstream_error, …
    status: int  # the HTTP status the caller saw (499: the caller went away)
    error: str | None = None
    ttft_us: int | None = None  # from the request's start to its first chunk
    generation_us: int | None = None  # from the first chunk to the last
    judged: Verdict | None = None  # the delivery against the instrument's spec


_CANCELLED = Ending("cancelled", 499)


class Desk:
    """What every tab of one exchange works with."""

    __slots__ = (
        "billing",
        "checkpoint_seconds",
        "clock",
        "deadline",
        "guard",
        "health",
        "policy",
        "usage",
    )

    def __init__(
        self,
        *,
        billing: Billing,
        usage: UsageWriter,
        clock: Clock,
        deadline: float,
        checkpoint_seconds: float,
        guard: RateGuard | None,
        health: OfferHealth | None,
        policy: HealthPolicy,
    ) -> None:
        self.billing = billing
        self.usage = usage
        self.clock = clock
        self.deadline = deadline  # seconds for a first byte, over all attempts
        self.checkpoint_seconds = checkpoint_seconds  # a running stream's usage record, this often
        self.guard = guard  # rate limits (None: no limits configured)
        self.health = health  # measured offer health (None: switched off)
        self.policy = policy  # how deliveries are judged against the spec


@dataclass(slots=True)
class Tab:
    """One request across its attempts: its hold and what it has cost so far."""

    desk: Desk
    request_id: str
    caller: KeyRecord
    request: ChatRequest
    plan: Plan
    started: float  # the clock's monotonic time when the request was planned
    created_us: int
    stream: bool
    # the rate-limit headers, once admitted (the factory hands out the one shared empty mapping)
    limits: Mapping[str, str] = field(default_factory=lambda: NO_LIMITS)
    reservation: Reservation | None = None
    quote: Quote | None = None
    attempts: int = 0
    hold_id: str | None = None  # the lease the last reservation was on, for the usage record
    charged: int = 0  # nano-dollars, once settled: what the answer says as ``usage.cost``
    errors: list[str] = field(default_factory=list)
    untranslatable: Untranslatable | None = None  # the first offer whose wire could not carry it
    deadline_passed: bool = False
    eligibility: Eligibility | None = None  # the offers health allows, and probe slots taken
    rate_pass: Pass | None = None  # the rate-limit pass, given back when the request ends
    used_tokens: int = 0  # input + output of the settled answer (corrects the rate-limit pass)
    endpoint: str | None = None  # the surface that serves it (for its usage receipt)
    request_hash: str | None = None  # hex sha256 of the request body (for a signed receipt)

    def mark(self, endpoint: str, body: bytes) -> None:
        """The surface that serves it and the sha256 of its body as received, for its usage
        receipt (measured: ~2 µs for a 1 KB body, ~18 µs for 16 KB, ~75 µs for 64 KB)."""
        self.endpoint = endpoint
        self.request_hash = hashlib.sha256(body).hexdigest()

    def elapsed_us(self) -> int:
        return int((self.desk.clock.monotonic() - self.started) * 1_000_000)

    def remaining(self) -> float:
        """Seconds left before the request's deadline (for its first byte, over all attempts)."""
        return self.started + self.desk.deadline - self.desk.clock.monotonic()

    async def admit(self) -> None:
        """Admit the request against its rate limits, its tokens at the worst case (the
        prompt's upper bound and the most output any candidate may give), or raise
        ``RateLimited``: then nothing is held and no usage is recorded."""
        guard = self.desk.guard
        if guard is None:
            return
        plan = self.plan
        limits = guard.limits(self.caller, plan.instrument.id)
        if not limits:
            return  # none applies: nothing to count
        cap = max(
            (
                min(o.offer.max_output, plan.instrument.max_completion_tokens)
                for o in plan.candidates
            ),
            default=plan.instrument.max_completion_tokens,
        )
        per_choice = min(plan.requested_max, cap) if plan.requested_max is not None else cap
        tokens = plan.prompt_bound + plan.n * per_choice
        self.rate_pass = await guard.admit(
            self.request_id, self.caller, plan.instrument.id, tokens, limits
        )
        if self.rate_pass is not None:
            self.limits = self.rate_pass.headers

    def observe(self, offer: PricedOffer, delivery: Delivery) -> None:
        """Tell offer health what one attempt delivered (a caller's cancellation is ignored)."""
        health = self.desk.health
        if health is not None:
            health.record(offer.offer.id, self.plan.instrument, delivery)

    def judge(self, delivery: Delivery) -> Verdict:
        """The delivery judged against the instrument's spec as the caller saw it (its TTFT
        counts from the request, failovers included)."""
        return verdict(self.plan.instrument, delivery, self.desk.policy)

    def settle(self, offer: PricedOffer, usage: Usage, ending: Ending, delivered: bool) -> None:
        """Charge what ``usage`` costs at ``offer``'s price (never more than the hold), release
        the rest, and queue the usage record. A delivery that gave the caller nothing (not
        ``delivered``) is not charged; nor is one judged out of spec, unless its instrument
        bills out-of-spec deliveries."""
        assert self.reservation is not None
        reservation, self.reservation = self.reservation, None
        cost = offer.price.cost(usage.prompt_tokens, usage.completion_tokens)
        if not delivered:
            cost = 0
        judged = ending.judged
        if judged is not None and not judged.billable and not self.plan.instrument.bill_out_of_spec:
            cost = 0
        charged = self.desk.billing.settle(reservation, cost)
        if reservation.caps:
            self.note_caps(reservation, reservation.amount - charged)
        self.used_tokens = usage.prompt_tokens + usage.completion_tokens
        self.record(offer, usage, charged, ending)
        self.charged = charged

    def note_caps(self, reservation: Reservation, unspent: int = 0) -> None:
        """Put the spend cap with the least left in the answer's headers (``limits``): after
        the hold, and after the settle (``unspent``: held and not charged) for a whole answer."""
        tightest = min(reservation.caps, key=lambda use: use.remaining)
        self.limits = {**self.limits, **cap_headers(tightest, unspent)}

    def checkpoint(
        self, offer: PricedOffer, usage: Usage, *, ttft_us: int | None, delivered: bool
    ) -> None:
        """Record what a stream has delivered so far (outcome ``in_progress``, cost capped at its
        reservation; nothing while no content has reached the caller). The final record
        replaces it; if the process dies first, the expiry of the lease charges this and marks
        the record ``interrupted``."""
        assert self.reservation is not None
        cost = offer.price.cost(usage.prompt_tokens, usage.completion_tokens) if delivered else 0
        ending = Ending("in_progress", 200, ttft_us=ttft_us)
        self.record(offer, usage, min(cost, self.reservation.amount), ending)

    def fail(self, error: GridgateError | None) -> None:
        """Release the hold (charging nothing) and record the failure; ``error`` (None: the
        caller went away) carries the request's rate-limit headers too."""
        if self.reservation is not None:
            reservation, self.reservation = self.reservation, None
            self.desk.billing.release(reservation)
        if error is None:
            ending = _CANCELLED
        else:
            self.stamp(error)
            if isinstance(error, UpstreamRejected):
                outcome = "upstream_rejected"
            elif isinstance(error, SupplierFailed):
                outcome = "upstream_error"
            else:
                outcome = "rejected"
            ending = Ending(outcome, http_status(error), error=error_summary(error))
        self.record(None, Usage(), 0, ending)

    def stamp(self, error: GridgateError) -> None:
        """Give ``error`` the request's rate-limit headers (its own take precedence: a 429's
        name the limit that refused)."""
        for name, value in self.limits.items():
            error.headers.setdefault(name, value)

    def end(self) -> None:
        """The request is over: give back any probe slot and its rate-limit pass."""
        if self.eligibility is not None:
            self.eligibility.close()
            self.eligibility = None
        guard = self.desk.guard
        if self.rate_pass is not None and guard is not None:
            rate_pass, self.rate_pass = self.rate_pass, None
            guard.release(rate_pass, self.used_tokens)

    async def finish(self) -> None:
        """``end``, then wait for its rate-limit release to leave the process: the answer's
        last bytes go after it, so the caller's next request finds its slot free."""
        released = self.rate_pass is not None and self.rate_pass.ticket is not None
        self.end()
        guard = self.desk.guard
        if released and guard is not None:
            await guard.sent()

    def record(self, offer: PricedOffer | None, usage: Usage, charged: int, ending: Ending) -> None:
        """Queue the request's usage record (a later one of the same request replaces it)."""
        judged = ending.judged
        self.desk.usage.submit(
            UsageRecord(
                request_id=self.request_id,
                created_us=self.created_us,
                account_id=self.caller.account_id,
                key_id=self.caller.id,
                instrument=self.plan.instrument.id,
                supplier=offer.supplier.name if offer else None,
                offer_id=offer.offer.id if offer else None,
                upstream_model=offer.offer.model if offer else None,
                stream=self.stream,
                input_tokens=usage.prompt_tokens,
                output_tokens=usage.completion_tokens,
                reasoning_tokens=usage.reasoning_tokens,
                cached_tokens=usage.cached_tokens,
                usage_estimated=usage.estimated,
                price_input_per_m=offer.price.input_per_m if offer else 0,
                price_output_per_m=offer.price.output_per_m if offer else 0,
                cost=charged,
                hold_id=self.hold_id,
                ttft_us=ending.ttft_us,
                generation_us=ending.generation_us,
                duration_us=self.elapsed_us(),
                outcome=ending.outcome,
                status=ending.status,
                billed=charged > 0,
                in_spec=None if judged is None else judged.in_spec,
                spec_note=None if judged is None else (judged.breach or judged.failure),
                error=summary(ending.error),  # bounded and redacted, whatever the caller passed
                endpoint=self.endpoint,
                request_hash=self.request_hash,
            )
        )
