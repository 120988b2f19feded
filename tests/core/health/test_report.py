"""Offer status from usage records: figures, verdicts at their boundaries, which records count,
the recorded verdict against one judged now, and agreement with the in-process health book."""

from __future__ import annotations

import dataclasses

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridgate.core.health.offer_health import Delivery, HealthPolicy, OfferHealth
from gridgate.core.health.report import (
    OfferStatus,
    delivery_of,
    offer_report,
    offer_status_json,
)
from gridgate.storage.records import DeliveryRow, InstrumentRecord, OfferRecord

NOW = 1_700_000_000_000_000
POLICY = HealthPolicy()

PRIME = InstrumentRecord(
    id="text-prime",
    display_name="Text Prime",
    quality_floor=38,
    ttft_ceiling_ms=4620,
    throughput_floor_tps=40,
    context_floor=128_000,
    max_output_floor=30_000,
    context_length=196_608,
    max_input_tokens=120_000,
    max_completion_tokens=131_072,
)
LOOSE = msgspec.structs.replace(
    PRIME, id="text-loose", ttft_ceiling_ms=None, throughput_floor_tps=None
)


def offer(offer_id: str, instrument: str = "text-prime", *, enabled: bool = True) -> OfferRecord:
    return OfferRecord(
        id=offer_id,
        supplier=offer_id.split("/")[0],
        instrument=instrument,
        model="m",
        input_per_m=1,
        output_per_m=2,
        quality=40,
        context=200_000,
        max_output=32_000,
        enabled=enabled,
    )


_ids = iter(range(1_000_000))


def row(
    offer_id: str = "a/text-prime",
    *,
    ttft_ms: float | None = 1_000,
    tokens: int = 101,
    generation_s: float | None = 1.0,
    outcome: str = "ok",
    stream: bool = True,
    in_spec: bool | None = None,
    at: int = 0,
) -> DeliveryRow:
    n = next(_ids)
    return DeliveryRow(
        request_id=f"r{n:06d}",
        offer_id=offer_id,
        instrument="text-prime",
        outcome=outcome,
        status=200 if outcome == "ok" else 502,
        stream=stream,
        created_us=NOW + at,
        output_tokens=tokens,
        ttft_us=None if ttft_ms is None else round(ttft_ms * 1000),
        generation_us=None if generation_s is None else round(generation_s * 1_000_000),
        in_spec=in_spec,
    )


def one(rows: list[DeliveryRow], instrument: InstrumentRecord = PRIME) -> OfferStatus:
    [status] = offer_report([offer("a/text-prime", instrument.id)], [instrument], rows, POLICY)
    return status


# -- figures ----------------------------------------------------------------------------------


def test_an_offer_without_deliveries_is_not_measured() -> None:
    status = one([])
    assert status.verdict == "not measured" and status.breaches == ()
    assert offer_status_json(status) == {
        "offer_id": "a/text-prime",
        "supplier": "a",
        "instrument": "text-prime",
        "model": "m",
        "enabled": True,
        "spec": {"ttft_ceiling_ms": 4620, "throughput_floor_tps": 40, "bill_out_of_spec": False},
        "deliveries": 0,
        "failures": 0,
        "error_rate": 0.0,
        "ttft_samples": 0,
        "ttft_p50_ms": None,
        "ttft_p90_ms": None,
        "throughput_samples": 0,
        "throughput_p50_tps": None,
        "in_spec_fraction": None,
        "verdict": "not measured",
        "breaches": [],
    }


def test_figures_are_nearest_rank_over_the_measured_deliveries() -> None:
    rows = [
        row(ttft_ms=100.0 * (i + 1), tokens=101, generation_s=100 / (50 + i)) for i in range(10)
    ]
    rows += [
        row(ttft_ms=None, stream=False, generation_s=None),  # not streamed: no TTFT, no tok/s
        row(ttft_ms=50, tokens=31, generation_s=0.01),  # too short for a throughput
    ]
    status = one(rows)
    document = offer_status_json(status)
    assert document["deliveries"] == 12 and document["failures"] == 0
    assert document["ttft_samples"] == 11 and document["throughput_samples"] == 10
    # TTFTs 50, 100, 200 … 1000 ms: p50 is the 6th smallest, p90 the 10th
    assert (document["ttft_p50_ms"], document["ttft_p90_ms"]) == (500.0, 900.0)
    # throughputs 50 … 59 tok/s ((101 − 1) tokens over 100/(50+i) s): p50 is the 5th smallest
    assert document["throughput_p50_tps"] == 54.0
    assert document["in_spec_fraction"] == 1.0 and document["error_rate"] == 0.0
    assert status.verdict == "in spec"


def test_the_first_token_exactly_at_the_ceiling_is_in_spec_and_just_after_is_not() -> None:
    assert one([row(ttft_ms=4620)] * 10).verdict == "in spec"
    late = one([row(ttft_ms=1_000)] * 8 + [row(ttft_ms=4620.1)] * 2)
    assert late.verdict == ("out of spec: p90 TTFT 4620.1 ms > ceiling 4620 ms over 10 deliveries")
    # one late answer in ten is the p90 no more: p90 is the 9th smallest
    assert one([row(ttft_ms=1_000)] * 9 + [row(ttft_ms=9_000)]).verdict == "in spec"


def test_a_p50_throughput_under_the_floor_is_out_of_spec() -> None:
    slow = [row(tokens=101, generation_s=100 / 39.5)] * 5 + [row(tokens=101, generation_s=1)] * 4
    status = one(slow)
    assert status.breaches == ("p50 throughput 39.5 tok/s < floor 40 tok/s over 9 deliveries",)
    assert status.verdict == f"out of spec: {status.breaches[0]}"
    assert one([row(tokens=101, generation_s=100 / 40)]).verdict == "in spec"  # at the floor


def test_an_error_rate_over_the_policy_is_out_of_spec_with_every_breach_named() -> None:
    rows = [row(outcome="stream_error", ttft_ms=6_000)] * 3 + [row(ttft_ms=6_000)] * 2
    status = one(rows)
    assert status.breaches == (
        "error rate 60% > 50% (3 of 5 deliveries failed)",
        "p90 TTFT 6000 ms > ceiling 4620 ms over 5 deliveries",
    )
    assert status.verdict == "out of spec: " + "; ".join(status.breaches)
    assert one([row(outcome="upstream_error"), row()]).verdict == "in spec"  # 50% is not over


def test_which_usage_records_count_as_deliveries() -> None:
    assert delivery_of(row(outcome="cut_at_hold", ttft_ms=10, generation_s=2, tokens=5)) == (
        Delivery(outcome="ok", ttft_s=0.01, output_tokens=5, generation_s=2.0)
    )
    assert delivery_of(row(outcome="cancelled")) is None  # the caller went away
    assert delivery_of(row(outcome="upstream_rejected")) is None  # the caller's fault
    assert delivery_of(row(outcome="upstream_timeout", ttft_ms=None)) == Delivery(
        outcome="timeout", output_tokens=101, generation_s=1.0
    )
    assert delivery_of(row(outcome="stream_error")).outcome == "error"  # type: ignore[union-attr]
    assert delivery_of(row(stream=False)).ttft_s is None  # type: ignore[union-attr]
    status = one([row(outcome="cancelled"), row(outcome="upstream_rejected"), row()])
    assert status.summary.deliveries == 1


def test_the_recorded_verdict_counts_and_an_unjudged_record_is_judged_now() -> None:
    rows = [
        row(in_spec=False),  # billed as out of spec (by the spec of its day): stays so
        row(in_spec=True),
        row(ttft_ms=5_000),  # not judged when written; late by today's spec
        row(ttft_ms=1_000),  # not judged; fine
        row(outcome="upstream_error", in_spec=True),  # a failure is never in spec
    ]
    status = one(rows)
    assert status.figures.in_spec_fraction == pytest.approx(2 / 5)
    assert offer_status_json(status)["in_spec_fraction"] == 0.4


def test_only_answers_that_were_not_streamed_leave_a_limited_spec_not_measured() -> None:
    plain = [row(stream=False, ttft_ms=None, generation_s=None)] * 3
    status = one(plain)
    assert status.verdict == "not measured"
    assert (status.summary.deliveries, status.figures.in_spec_fraction) == (3, 1.0)
    assert one(plain, LOOSE).verdict == "in spec"  # nothing to measure against: delivered
    # failures decide even when nothing else is measured
    failing = [row(stream=False, ttft_ms=None, generation_s=None, outcome="upstream_error")] * 2
    assert one(failing).verdict.startswith("out of spec: error rate 100%")


def test_offers_are_reported_by_id_with_their_own_instruments_rows() -> None:
    lite_offer = offer("b/text-lite", "TEXT-LOOSE")
    orphan = offer("c/gone", "text-gone", enabled=False)
    statuses = offer_report(
        [orphan, lite_offer, offer("a/text-prime")],
        [LOOSE, msgspec.structs.replace(PRIME, bill_out_of_spec=True)],
        [row("b/text-lite", ttft_ms=99_000), row("a/text-prime"), row("z/not-in-catalog")],
        POLICY,
    )
    assert [s.offer.id for s in statuses] == ["a/text-prime", "b/text-lite", "c/gone"]
    prime, lite, gone = (offer_status_json(s) for s in statuses)
    assert prime["spec"]["bill_out_of_spec"] is True and prime["deliveries"] == 1
    assert lite["spec"] == {
        "ttft_ceiling_ms": None,
        "throughput_floor_tps": None,
        "bill_out_of_spec": False,
    }
    assert lite["verdict"] == "in spec" and lite["ttft_p90_ms"] == 99_000.0  # no ceiling
    assert gone["spec"] is None and gone["enabled"] is False
    assert gone["verdict"] == "not measured"


# -- the same rules as the health book ---------------------------------------------------------


class _Clock:
    def now_us(self) -> int:
        return NOW

    def monotonic(self) -> float:
        return 0.0


_rows = st.builds(
    row,
    ttft_ms=st.none() | st.floats(0, 10_000),
    tokens=st.integers(0, 400),
    generation_s=st.none() | st.floats(0, 20),
    outcome=st.sampled_from(["ok", "cut_at_hold", "stream_error", "upstream_error", "cancelled"]),
    stream=st.booleans(),
)


@given(st.lists(_rows, max_size=40))
def test_figures_equal_the_health_books_for_the_same_deliveries(rows: list[DeliveryRow]) -> None:
    health = OfferHealth(POLICY, _Clock())
    for r in rows:
        delivery = delivery_of(r)
        if delivery is not None:
            health.record("a/text-prime", PRIME, delivery)
    status = one(rows)
    assert status.summary == health.summary("a/text-prime")
    # the report knows no routing state: the book's may be "ejected" by now
    live = dataclasses.replace(health.figures("a/text-prime"), state="healthy", reason=None)
    assert status.figures == live
