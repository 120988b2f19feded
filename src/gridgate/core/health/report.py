"""Offer status: each offer's measured figures beside its instrument's spec, built from usage
records.

The usage table is shared by every gateway process, so a report built from it is the status as
all of them measured it (the in-process health book sees only its own process's deliveries).
Pure: the caller reads the rows (``Store.offer_deliveries``) and the catalog; this module turns
them into one ``OfferStatus`` per offer, with the same rules as offer health — a usage record
becomes a ``Delivery``, is judged by ``verdict()`` when the record carries no verdict of its
own, and goes into a ``DeliveryWindow`` whose nearest-rank tests decide the report's verdict:

- **out of spec: …** — more than ``max_error_rate`` of the deliveries failed, the
  p``ttft_percentile`` TTFT is later than the ceiling, or the p``throughput_percentile``
  throughput is under the floor (each breach named, with its figure);
- **not measured** — no delivery in the window, or none that measured a figure the spec
  limits (e.g. only answers that were not streamed, for a spec of TTFT and throughput);
- **in spec** — otherwise.

Unlike offer health, a verdict here needs no minimum number of deliveries: it states what was
measured, and ``deliveries`` says over how many.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from gridgate.core.access import Actor, require_operator
from gridgate.core.clock import Clock
from gridgate.core.health.figures import OfferFigures
from gridgate.core.health.offer_health import Delivery, HealthPolicy, Outcome, _num, verdict
from gridgate.core.health.window import DeliveryWindow, Sample, WindowSummary
from gridgate.storage.ports.catalog import CatalogStore
from gridgate.storage.ports.usage import UsageStore
from gridgate.storage.records import DeliveryRow, InstrumentRecord, OfferRecord

IN_SPEC = "in spec"
NOT_MEASURED = "not measured"
OUT_OF_SPEC = "out of spec"

# A usage record's outcome as offer health sees it; None: not the supplier's doing, not
# counted (the caller went away, or the upstream refused the caller's request).
_OUTCOMES: dict[str, Outcome | None] = {
    "ok": "ok",
    "cut_at_hold": "ok",  # delivered, ended where the caller's money did
    "cancelled": None,
    "upstream_rejected": None,
    "interrupted": None,  # the gateway process died mid-stream
}


@dataclass(frozen=True, slots=True)
class OfferStatus:
    """One offer's measured figures against its instrument's spec."""

    offer: OfferRecord
    instrument: InstrumentRecord | None  # None: the catalog has no such instrument
    summary: WindowSummary  # mergeable, e.g. with another source's
    figures: OfferFigures  # ``state`` is not known here: it stays "healthy"
    breaches: tuple[str, ...]  # the spec figures it breaks, each with its measurement
    verdict: str  # "in spec", "out of spec: <breaches>" or "not measured"


def delivery_of(row: DeliveryRow) -> Delivery | None:
    """The delivery a usage record describes; None when it does not count as one. TTFT is
    judged on streamed answers only; an outcome not known to be an answer is a failure
    (one mentioning a timeout is a timeout)."""
    outcome = _OUTCOMES.get(row.outcome, "timeout" if "timeout" in row.outcome else "error")
    if outcome is None:
        return None
    return Delivery(
        outcome=outcome,
        ttft_s=_seconds(row.ttft_us) if row.stream else None,
        output_tokens=max(row.output_tokens, 0),
        generation_s=_seconds(row.generation_us),
    )


def offer_report(
    offers: Iterable[OfferRecord],
    instruments: Iterable[InstrumentRecord],
    deliveries: Iterable[DeliveryRow],
    policy: HealthPolicy,
) -> list[OfferStatus]:
    """One status per offer, by offer id. ``deliveries`` are the window's rows (any order;
    rows of offers not listed are ignored); ``instruments`` are matched case-insensitively."""
    by_instrument = {i.id.lower(): i for i in instruments}
    rows: dict[str, list[DeliveryRow]] = {}
    for row in deliveries:
        rows.setdefault(row.offer_id, []).append(row)
    return [
        _status(offer, by_instrument.get(offer.instrument.lower()), rows.get(offer.id, []), policy)
        for offer in sorted(offers, key=lambda o: o.id)
    ]


class OfferSpecView(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """The parts of the instrument's spec an offer's measurements are held to."""

    ttft_ceiling_ms: int | None
    throughput_floor_tps: float | None
    bill_out_of_spec: bool


class OfferStatusView(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """An offer's status as the status endpoint sends it (and ``gridgate offers status
    --json`` prints it); ``spec`` is null when the catalog has no such instrument."""

    offer_id: str
    supplier: str
    instrument: str
    model: str
    enabled: bool
    spec: OfferSpecView | None
    deliveries: int
    failures: int
    error_rate: float
    ttft_samples: int
    ttft_p50_ms: float | None
    ttft_p90_ms: float | None
    throughput_samples: int
    throughput_p50_tps: float | None
    in_spec_fraction: float | None
    verdict: str
    breaches: list[str]

    @classmethod
    def of(cls, status: OfferStatus) -> OfferStatusView:
        figures, summary, instrument = status.figures, status.summary, status.instrument
        return cls(
            offer_id=status.offer.id,
            supplier=status.offer.supplier,
            instrument=status.offer.instrument,
            model=status.offer.model,
            enabled=status.offer.enabled and status.offer.disabled_us is None,
            spec=None
            if instrument is None
            else OfferSpecView(
                ttft_ceiling_ms=instrument.ttft_ceiling_ms,
                throughput_floor_tps=instrument.throughput_floor_tps,
                bill_out_of_spec=instrument.bill_out_of_spec,
            ),
            deliveries=summary.deliveries,
            failures=summary.failures,
            error_rate=round(figures.error_rate, 4),
            ttft_samples=len(summary.ttft_s),
            ttft_p50_ms=_round(figures.ttft_p50_ms, 3),
            ttft_p90_ms=_round(figures.ttft_p90_ms, 3),
            throughput_samples=len(summary.throughput_tps),
            throughput_p50_tps=_round(figures.throughput_p50_tps, 3),
            in_spec_fraction=_round(figures.in_spec_fraction, 4),
            verdict=status.verdict,
            breaches=list(status.breaches),
        )


def offer_status_json(status: OfferStatus) -> dict[str, Any]:
    """The status as plain dicts and lists (for json.dumps and the dashboard's templates)."""
    out: dict[str, Any] = msgspec.to_builtins(OfferStatusView.of(status))
    return out


def _status(
    offer: OfferRecord,
    instrument: InstrumentRecord | None,
    rows: list[DeliveryRow],
    policy: HealthPolicy,
) -> OfferStatus:
    window = DeliveryWindow(max(len(rows), 1), float("inf"))  # the rows are the window
    ceiling_ms = None if instrument is None else instrument.ttft_ceiling_ms
    floor_tps = None if instrument is None else instrument.throughput_floor_tps
    window.limits(None if ceiling_ms is None else ceiling_ms / 1000, floor_tps)
    for row in sorted(rows, key=lambda r: (r.created_us, r.request_id)):
        delivery = delivery_of(row)
        if delivery is not None:
            window.add(_sample(row, delivery, instrument, policy))
    breaches = _breaches(window, ceiling_ms, floor_tps, policy)
    summary = window.summary()
    if breaches:
        judged = f"{OUT_OF_SPEC}: {'; '.join(breaches)}"
    elif window.deliveries == 0:
        judged = NOT_MEASURED
    elif (ceiling_ms is not None or floor_tps is not None) and not (
        (ceiling_ms is not None and window.ttft_samples)
        or (floor_tps is not None and window.throughput_samples)
    ):
        judged = NOT_MEASURED  # delivered, but nothing the spec limits was measured
    else:
        judged = IN_SPEC
    return OfferStatus(
        offer=offer,
        instrument=instrument,
        summary=summary,
        figures=summary.figures(offer.id),
        breaches=tuple(breaches),
        verdict=judged,
    )


def _sample(
    row: DeliveryRow,
    delivery: Delivery,
    instrument: InstrumentRecord | None,
    policy: HealthPolicy,
) -> Sample:
    failed = delivery.outcome != "ok"
    if row.in_spec is not None:  # the verdict the delivery was billed by
        in_spec = row.in_spec and not failed
    elif instrument is not None:  # not judged when written: judge it now, as health would
        in_spec = verdict(instrument, delivery, policy).in_spec
    else:
        in_spec = not failed
    return Sample(
        at=row.created_us / 1_000_000,
        failed=failed,
        timed_out=delivery.outcome == "timeout",
        in_spec=in_spec,
        ttft_s=delivery.ttft_s,
        throughput_tps=delivery.throughput_tps(policy.min_throughput_tokens),
    )


def _breaches(
    window: DeliveryWindow,
    ceiling_ms: int | None,
    floor_tps: float | None,
    policy: HealthPolicy,
) -> list[str]:
    found: list[str] = []
    n, failures = window.deliveries, window.failures
    if n and failures > policy.max_error_rate * n:
        found.append(
            f"error rate {failures / n:.0%} > {policy.max_error_rate:.0%} "
            f"({failures} of {n} deliveries failed)"
        )
    p = policy.ttft_percentile
    if ceiling_ms is not None and window.ttft_over_ceiling(p):
        value = (window.ttft_percentile(p) or 0.0) * 1000
        found.append(
            f"p{p} TTFT {_num(value, ceiling_ms)} ms > ceiling {ceiling_ms} ms "
            f"over {window.ttft_samples} deliveries"
        )
    p = policy.throughput_percentile
    if floor_tps is not None and window.throughput_under_floor(p):
        value = window.throughput_percentile(p) or 0.0
        found.append(
            f"p{p} throughput {_num(value, floor_tps)} tok/s < floor {_num(floor_tps)} tok/s "
            f"over {window.throughput_samples} deliveries"
        )
    return found


def _seconds(us: int | None) -> float | None:
    return None if us is None or us < 0 else us / 1_000_000


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


class BoardStore(CatalogStore, UsageStore, Protocol):
    """The catalog's offers, and the deliveries the usage records show."""


class OfferBoard:
    """The fleet's offer status, read from the usage records every process writes (what the
    management API, the dashboard and ``gridgate offers status`` show)."""

    def __init__(
        self,
        store: BoardStore,
        clock: Clock,
        policy: HealthPolicy,
        *,
        window_seconds: float,
        window_size: int,
    ) -> None:
        self._store = store
        self._clock = clock
        self._policy = policy
        self._window_seconds = window_seconds
        self._window_size = window_size

    async def status(
        self, actor: Actor, *, window_seconds: float | None = None
    ) -> list[OfferStatus]:
        """Every offer's status over the last ``window_seconds`` (default: the health
        window), at most ``health.window_size`` deliveries per offer."""
        require_operator(actor)
        seconds = self._window_seconds if window_seconds is None else window_seconds
        since_us = self._clock.now_us() - int(seconds * 1_000_000)
        instruments, _, offers = await self._store.load_catalog()
        rows = await self._store.offer_deliveries(since_us, self._window_size)
        return offer_report(offers, instruments, rows, self._policy)
