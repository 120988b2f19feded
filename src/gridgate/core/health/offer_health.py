"""Offer health: which offers may be routed to, judged from what they actually delivered.

Every finished attempt at an offer is a ``Delivery``: its outcome, time to first token, output
tokens and generation time after the first token. ``verdict()`` judges one delivery against
its instrument's spec — that decides whether it is billed. ``OfferHealth`` keeps each offer's
recent deliveries in a ``DeliveryWindow``, runs one small state machine per offer, and says
which offers of a ranked candidate list a request may try (``eligible``). Pure and I/O free:
time is the injected clock's ``monotonic()``, measurements come from the caller, so tests
drive every decision. State is per process; ``WindowSummary`` is the form in which windows
can be shared and merged across processes.

The state machine of one offer::

                   circuit breaker, error rate, p90 TTFT or p50 throughput
      ┌─────────► healthy ─────────────────────────────────────────────► ejected ◄──┐
      │                                                                     │       │
      │ probation_successes in-spec                       cool-down elapsed │       │ a delivery
      │ deliveries in a row                                                 ▼       │ not in spec
      └─────────────────────────────────────────────────────────────── probation ───┘ (cool-down
                                                                                        doubles)

- **healthy** — eligible. After each delivery it is ejected when
  - its circuit breaker opens: ``breaker_failures`` failures (errors or timeouts) in a row,
    however few the samples; any answer closes the breaker again; or, once its window holds at
    least ``min_samples`` of the figure concerned,
  - more than ``max_error_rate`` of its deliveries failed (timeouts count as failures);
  - its p``ttft_percentile`` (90) TTFT is later than the instrument's ``ttft_ceiling_ms``;
  - its p``throughput_percentile`` (50) throughput is under ``throughput_floor_tps``.
- **ejected** — not eligible, for a cool-down of ``cooldown_s``; each failed probation doubles
  it, up to ``max_cooldown_s``; a return to healthy resets it. When the cool-down is over the
  offer is on probation (checked lazily, whenever the offer is looked at).
- **probation** — the window starts afresh (the offer is judged only on what it delivers from
  now on). Admitted only while a probe slot is free: at most ``probe_concurrency`` requests
  probe it at once (``eligible`` takes the slot, ``Eligibility.close`` gives it back; a slot not
  given back within ``probe_slot_ttl_s`` is reclaimed, so a leak cannot block probation
  forever). ``probation_successes`` in-spec deliveries in a row make it healthy; one delivery
  that is not in spec (a failure, a late first token, a slow answer) ejects it again.

An offer never goes from ejected to healthy without probation. Deliveries recorded while an
offer is ejected (requests already in flight, last-resort traffic) are kept in its window but
change nothing. A cancelled delivery (the caller went away) is not the supplier's fault and is
not recorded at all.

When **no** candidate is eligible (every one ejected, or on probation with no free probe
slot), ``eligible`` lists them all, in their ranked order, and says so (``Eligibility.fallback``;
the ejected offers' figures add "admitted as a last resort"): serving late beats not serving.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, fields
from types import TracebackType
from typing import Literal

from gridgate.core.catalog.catalog import PricedOffer
from gridgate.core.clock import Clock
from gridgate.core.health.figures import OfferFigures, OfferState
from gridgate.core.health.window import DeliveryWindow, Sample, WindowSummary
from gridgate.settings import HealthSettings
from gridgate.storage.records import InstrumentRecord

Outcome = Literal["ok", "error", "timeout", "cancelled"]


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    """The knobs of offer health. The defaults suit a gateway serving a few requests per
    second per offer; every one is validated here (``ValueError`` names the knob)."""

    window_size: int = 200  # deliveries kept per offer
    max_age_s: float = 300.0  # older deliveries leave the window
    min_samples: int = 20  # measured figures (rates, percentiles) eject only over this many
    max_error_rate: float = 0.5  # more than this share of failed deliveries ejects
    ttft_percentile: int = 90  # this percentile of TTFT must not exceed the ceiling
    throughput_percentile: int = 50  # this percentile of throughput must not fall under the floor
    breaker_failures: int = 5  # failures in a row that open the circuit breaker
    cooldown_s: float = 30.0  # first ejection; doubles on each failed probation…
    max_cooldown_s: float = 600.0  # …up to this
    probe_concurrency: int = 1  # requests probing an offer on probation at once
    probation_successes: int = 3  # in-spec deliveries in a row that end probation
    probe_slot_ttl_s: float = 600.0  # a probe slot not given back by then is reclaimed
    min_throughput_tokens: int = 32  # shorter answers get no throughput verdict

    @classmethod
    def from_settings(cls, settings: HealthSettings) -> HealthPolicy:
        """The policy the ``[health]`` config section describes, whose knobs
        ``HealthSettings.check`` has validated (with the same rules as ``__post_init__``)."""
        return cls(
            window_size=settings.window_size,
            max_age_s=settings.max_age_seconds,
            min_samples=settings.min_samples,
            max_error_rate=settings.max_error_rate,
            ttft_percentile=settings.ttft_percentile,
            throughput_percentile=settings.throughput_percentile,
            breaker_failures=settings.breaker_failures,
            cooldown_s=settings.cooldown_seconds,
            max_cooldown_s=settings.max_cooldown_seconds,
            probe_concurrency=settings.probe_concurrency,
            probation_successes=settings.probation_successes,
            min_throughput_tokens=settings.min_throughput_tokens,
        )

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value <= 0 and f.name != "max_error_rate":
                raise ValueError(f"offer health: {f.name} must be positive (got {value})")
        if not 0 <= self.max_error_rate <= 1:
            raise ValueError(
                f"offer health: max_error_rate must be between 0 and 1 (got {self.max_error_rate})"
            )
        for name in ("ttft_percentile", "throughput_percentile"):
            if getattr(self, name) > 100:
                raise ValueError(f"offer health: {name} is at most 100 (got {getattr(self, name)})")
        if self.min_samples > self.window_size:
            raise ValueError(
                f"offer health: min_samples ({self.min_samples}) exceeds window_size "
                f"({self.window_size}): measured figures could never eject"
            )
        if self.cooldown_s > self.max_cooldown_s:
            raise ValueError(
                f"offer health: cooldown_s ({self.cooldown_s}) exceeds max_cooldown_s "
                f"({self.max_cooldown_s})"
            )
        if self.min_throughput_tokens < 2:
            raise ValueError(
                "offer health: min_throughput_tokens must be at least 2 (throughput counts the "
                f"tokens after the first; got {self.min_throughput_tokens})"
            )


@dataclass(frozen=True, slots=True)
class Delivery:
    """What one attempt at an offer produced, as the exchange measured it.

    ``outcome``: ``ok`` (an answer), ``error`` (the supplier failed: 5xx, 429, connection, a
    stream broken after it began), ``timeout``, or ``cancelled`` (the caller went away — never
    recorded). Requests the upstream rejected as the caller's fault are no delivery at all.
    ``ttft_s``: seconds from this attempt's dispatch to its first token; None when no token
    came, or for an answer that was not streamed (whose TTFT is then not judged).
    ``generation_s``: seconds from the first token to the last; None when not streamed.
    """

    outcome: Outcome
    ttft_s: float | None = None
    output_tokens: int = 0
    generation_s: float | None = None

    def __post_init__(self) -> None:
        if self.ttft_s is not None and not self.ttft_s >= 0:
            raise ValueError(f"a delivery's ttft_s is at least 0 (got {self.ttft_s})")
        if self.generation_s is not None and not self.generation_s >= 0:
            raise ValueError(f"a delivery's generation_s is at least 0 (got {self.generation_s})")
        if self.output_tokens < 0:
            raise ValueError(f"a delivery's output_tokens is at least 0 (got {self.output_tokens})")

    def throughput_tps(self, min_tokens: int) -> float | None:
        """Output tokens per second after the first token — (tokens − 1) / generation time —
        for an answer of at least ``min_tokens`` tokens that took measurable time; else None."""
        seconds = self.generation_s
        if seconds is None or seconds <= 0 or self.output_tokens < min_tokens:
            return None
        return (self.output_tokens - 1) / seconds


@dataclass(frozen=True, slots=True)
class Verdict:
    """One delivery judged against its instrument's spec."""

    breach: str | None = None  # the spec the delivered answer broke, e.g. a late first token
    failure: str | None = None  # "upstream error" or "timed out"

    @property
    def in_spec(self) -> bool:
        """Delivered, and within the spec: what counts toward the in-spec fraction and ends
        probation."""
        return self.breach is None and self.failure is None

    @property
    def billable(self) -> bool:
        """Whether the spec allows charging what was delivered. An answer that broke the spec is
        not billed; a failed one is charged for what reached the caller, like any other
        (the exchange's rule), unless it broke the spec too."""
        return self.breach is None

    @property
    def reason(self) -> str | None:
        parts = [p for p in (self.failure, self.breach) if p is not None]
        return "; ".join(parts) if parts else None


def verdict(instrument: InstrumentRecord, delivery: Delivery, policy: HealthPolicy) -> Verdict:
    """Judge one delivery: a first token later than the TTFT ceiling, or a throughput under the
    floor on an answer of at least ``policy.min_throughput_tokens`` tokens, breaks the spec;
    exactly at the ceiling or the floor is within it. Figures not measured are not judged."""
    breaches: list[str] = []
    ceiling_ms = instrument.ttft_ceiling_ms
    ttft = delivery.ttft_s
    if ceiling_ms is not None and ttft is not None and ttft > ceiling_ms / 1000:
        breaches.append(
            f"first token after {_num(ttft * 1000, ceiling_ms)} ms > ceiling {ceiling_ms} ms"
        )
    floor = instrument.throughput_floor_tps
    tps = delivery.throughput_tps(policy.min_throughput_tokens)
    if floor is not None and tps is not None and tps < floor:
        breaches.append(
            f"throughput {_num(tps, floor)} tok/s < floor {_num(floor)} tok/s "
            f"over {delivery.output_tokens} tokens"
        )
    failure = {"error": "upstream error", "timeout": "timed out"}.get(delivery.outcome)
    return Verdict(breach="; ".join(breaches) or None, failure=failure)


class Eligibility:
    """The offers one request may try, in their ranked order, and the probe slots it holds.
    ``close()`` (or leaving the ``with`` block) gives the slots back; call it when the request's
    last attempt has ended — for a stream, when the stream ends. Closing twice is harmless."""

    __slots__ = ("_slots", "fallback", "offers")

    def __init__(
        self,
        offers: list[PricedOffer],
        slots: dict[str, tuple[_Book, int]],
        fallback: bool,
    ) -> None:
        self.offers = offers
        self.fallback = fallback  # nothing was admissible: every candidate is listed anyway
        self._slots = slots

    def probing(self, offer_id: str) -> bool:
        """Whether this request holds a live probe slot of ``offer_id``: one taken while it was
        on probation and not yet given back, reclaimed or voided by a change of its state."""
        held = self._slots.get(offer_id)
        return held is not None and held[1] in held[0].probes

    def close(self) -> None:
        for book, token in self._slots.values():
            book.probes.pop(token, None)
        self._slots.clear()

    def __enter__(self) -> Eligibility:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@dataclass(slots=True)
class _Book:
    """What offer health keeps of one offer."""

    window: DeliveryWindow
    cooldown_s: float  # of the current (or next) ejection
    state: OfferState = "healthy"
    cause: str | None = None  # why it was last ejected
    retry_at: float = 0.0  # when ejected: when probation opens
    failures_in_row: int = 0  # the circuit breaker's count
    probe_successes: int = 0
    probes: dict[int, float] = field(default_factory=dict)  # slot token → taken at
    last_resort: bool = False  # listed although ejected, because nothing else was
    fresh_since_us: int = 0  # wall clock of its last probation: older fleet figures are stale


class OfferHealth:
    """Every offer's window and state, in one process. Offers never seen are healthy."""

    def __init__(self, policy: HealthPolicy, clock: Clock) -> None:
        self._policy = policy
        self._clock = clock
        self._books: dict[str, _Book] = {}
        self._tokens = itertools.count(1)
        # called on each ejection with the offer and the cause (webhooks' offer.ejected)
        self.on_eject: Callable[[str, str], None] | None = None

    @property
    def policy(self) -> HealthPolicy:
        return self._policy

    def record(self, offer_id: str, instrument: InstrumentRecord, delivery: Delivery) -> Verdict:
        """Judge a finished attempt at ``offer_id`` (of ``instrument``), add it to the offer's
        window and move the offer's state. Returns the verdict. O(1) amortized."""
        policy = self._policy
        judged = verdict(instrument, delivery, policy)
        if delivery.outcome == "cancelled":
            return judged
        now = self._clock.monotonic()
        book = self._book(offer_id)
        self._refresh(book, now)
        window = book.window
        ceiling_ms = instrument.ttft_ceiling_ms
        window.limits(
            None if ceiling_ms is None else ceiling_ms / 1000, instrument.throughput_floor_tps
        )
        window.expire(now)
        failed = delivery.outcome != "ok"
        window.add(
            Sample(
                at=now,
                failed=failed,
                timed_out=delivery.outcome == "timeout",
                in_spec=judged.in_spec,
                ttft_s=delivery.ttft_s,
                throughput_tps=delivery.throughput_tps(policy.min_throughput_tokens),
            )
        )
        book.failures_in_row = book.failures_in_row + 1 if failed else 0
        if book.state == "healthy":
            cause = self._ejection_cause(book, instrument, judged)
            if cause is not None:
                self._eject(offer_id, book, now, cause)
        elif book.state == "probation":
            if not judged.in_spec:
                book.cooldown_s = min(book.cooldown_s * 2, policy.max_cooldown_s)
                self._eject(offer_id, book, now, f"failed probation: {judged.reason}")
            else:
                book.probe_successes += 1
                if book.probe_successes >= policy.probation_successes:
                    self._enter(book, "healthy")
                    book.cooldown_s = policy.cooldown_s
                    book.cause = None
        return judged

    def eligible(self, offers: Sequence[PricedOffer], *, limit: int | None = None) -> Eligibility:
        """The offers of a ranked candidate list that may be tried, in the same order: healthy
        ones, and ones on probation whose probe slot this takes. ``limit`` stops after that
        many (the exchange's max attempts), so no slot is taken for an offer never tried.
        When none is eligible, all of them (up to ``limit``) are, with ``fallback`` set.
        O(len(offers)); close the result to give its probe slots back."""
        now = self._clock.monotonic()
        chosen: list[PricedOffer] = []
        slots: dict[str, tuple[_Book, int]] = {}
        for offer in offers:
            if limit is not None and len(chosen) >= limit:
                break
            offer_id = offer.offer.id
            book = self._books.get(offer_id)
            if book is None:
                chosen.append(offer)
                continue
            self._refresh(book, now)
            if book.state == "healthy":
                chosen.append(offer)
            elif book.state == "probation" and offer_id not in slots and self._free_slot(book, now):
                token = next(self._tokens)
                book.probes[token] = now
                slots[offer_id] = (book, token)
                chosen.append(offer)
        if chosen or not offers:
            return Eligibility(chosen, slots, fallback=False)
        everyone = list(offers if limit is None else offers[:limit])
        for offer in everyone:
            book = self._books.get(offer.offer.id)
            if book is not None and book.state == "ejected":
                book.last_resort = True
        return Eligibility(everyone, {}, fallback=True)

    def state(self, offer_id: str) -> OfferState:
        book = self._books.get(offer_id)
        if book is None:
            return "healthy"
        self._refresh(book, self._clock.monotonic())
        return book.state

    def figures(self, offer_id: str) -> OfferFigures:
        """What is measured of ``offer_id`` now, with its state and why."""
        book = self._books.get(offer_id)
        if book is None:
            return WindowSummary().figures(offer_id)
        now = self._clock.monotonic()
        self._refresh(book, now)
        book.window.expire(now)
        return book.window.summary().figures(offer_id, book.state, self._reason(book, now))

    def snapshot(self) -> list[OfferFigures]:
        """The figures of every offer seen, by offer id (for the status endpoint)."""
        return [self.figures(offer_id) for offer_id in sorted(self._books)]

    def summary(self, offer_id: str) -> WindowSummary:
        """The offer's window in mergeable form (to share with other processes)."""
        book = self._books.get(offer_id)
        if book is None:
            return WindowSummary()
        book.window.expire(self._clock.monotonic())
        return book.window.summary()

    def fresh_since_us(self, offer_id: str) -> int:
        """Wall-clock µs from which other processes' deliveries of ``offer_id`` still count
        (its last probation began then; 0 if it never had one)."""
        book = self._books.get(offer_id)
        return 0 if book is None else book.fresh_since_us

    def absorb(self, offer_id: str, fleet: WindowSummary, breaches: Sequence[str]) -> None:
        """What every process measured of ``offer_id`` (from the shared usage records), and
        the spec figures that breaks: a healthy offer whose fleet-wide window holds at least
        ``min_samples`` deliveries and breaks the spec is ejected here too, so one process's
        bad experience spares the others theirs. The breaker and probation stay local."""
        book = self._books.get(offer_id)
        if fleet.deliveries < self._policy.min_samples or not breaches:
            return
        book = book or self._book(offer_id)
        now = self._clock.monotonic()
        self._refresh(book, now)
        if book.state == "healthy":
            shown = "; ".join(breaches)
            self._eject(
                offer_id, book, now, f"across processes ({fleet.deliveries} deliveries): {shown}"
            )

    def prune(self, keep: Collection[str]) -> None:
        """Forget every offer not in ``keep`` (after a catalog reload removed some)."""
        for offer_id in [o for o in self._books if o not in keep]:
            del self._books[offer_id]

    # -- the state machine ---------------------------------------------------------------
    def _book(self, offer_id: str) -> _Book:
        book = self._books.get(offer_id)
        if book is None:
            policy = self._policy
            book = _Book(DeliveryWindow(policy.window_size, policy.max_age_s), policy.cooldown_s)
            self._books[offer_id] = book
        return book

    def _refresh(self, book: _Book, now: float) -> None:
        """An ejected offer whose cool-down is over goes on probation, with a fresh window."""
        if book.state == "ejected" and now >= book.retry_at:
            self._enter(book, "probation")
            book.window.clear()
            book.fresh_since_us = self._clock.now_us()

    def _enter(self, book: _Book, state: OfferState) -> None:
        book.state = state
        book.failures_in_row = 0
        book.probe_successes = 0
        book.probes.clear()
        book.last_resort = False

    def _eject(self, offer_id: str, book: _Book, now: float, cause: str) -> None:
        self._enter(book, "ejected")
        book.cause = cause
        book.retry_at = now + book.cooldown_s
        if self.on_eject is not None:  # webhooks: offer.ejected
            self.on_eject(offer_id, cause)

    def _ejection_cause(
        self, book: _Book, instrument: InstrumentRecord, judged: Verdict
    ) -> str | None:
        policy = self._policy
        window = book.window
        if book.failures_in_row >= policy.breaker_failures:
            return (
                f"circuit open: {book.failures_in_row} failures in a row (last: {judged.failure})"
            )
        n = window.deliveries
        if n >= policy.min_samples and window.failures > policy.max_error_rate * n:
            return (
                f"{window.failures} of {n} deliveries failed "
                f"({window.failures / n:.0%} > {policy.max_error_rate:.0%})"
            )
        p = policy.ttft_percentile
        if window.ttft_samples >= policy.min_samples and window.ttft_over_ceiling(p):
            value = window.ttft_percentile(p) or 0.0
            ceiling = instrument.ttft_ceiling_ms
            return (
                f"p{p} TTFT {_num(value * 1000, ceiling)} ms > ceiling {ceiling} ms "
                f"over {window.ttft_samples} deliveries"
            )
        p = policy.throughput_percentile
        if window.throughput_samples >= policy.min_samples and window.throughput_under_floor(p):
            value = window.throughput_percentile(p) or 0.0
            floor = instrument.throughput_floor_tps or 0.0
            return (
                f"p{p} throughput {_num(value, floor)} tok/s < floor {_num(floor)} tok/s "
                f"over {window.throughput_samples} deliveries"
            )
        return None

    def _free_slot(self, book: _Book, now: float) -> bool:
        ttl = self._policy.probe_slot_ttl_s
        for token in [t for t, taken in book.probes.items() if now - taken >= ttl]:
            del book.probes[token]
        return len(book.probes) < self._policy.probe_concurrency

    def _reason(self, book: _Book, now: float) -> str | None:
        if book.state == "healthy":
            return None
        if book.state == "probation":
            return (
                f"probation: {book.probe_successes} of {self._policy.probation_successes} "
                f"in-spec deliveries so far (ejected for: {book.cause})"
            )
        reason = f"{book.cause}; probation in {math.ceil(book.retry_at - now)} s"
        if book.last_resort:
            reason += "; admitted as a last resort (every candidate was ejected)"
        return reason


def _num(value: float, versus: float | None = None) -> str:
    """A measured figure for a message: two decimals (none when whole), or as many more (up to
    six) as it takes not to read as equal to the limit ``versus`` it is compared with."""
    rounded = round(value, 2)
    for digits in range(3, 7):
        if rounded != versus:
            break
        rounded = round(value, digits)
    return repr(rounded).removesuffix(".0")
