"""Offer health: verdicts at their boundaries, percentiles, ejection, cool-down and probation,
probe slots, windows aging out, the last-resort fallback — all on a clock that moves only when
told to."""

from __future__ import annotations

import math

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from gridgate.core.catalog.catalog import PricedOffer
from gridgate.core.health.figures import OfferState
from gridgate.core.health.offer_health import (
    Delivery,
    Eligibility,
    HealthPolicy,
    OfferHealth,
    Verdict,
    verdict,
)
from gridgate.core.health.window import (
    DeliveryWindow,
    Sample,
    WindowSummary,
    percentile,
    rank,
)
from gridgate.money import Price
from gridgate.storage.records import InstrumentRecord, OfferRecord, SupplierRecord

# -- fixtures ---------------------------------------------------------------------------------


class ManualClock:
    """Wall and monotonic time that move only when told to."""

    def __init__(self) -> None:
        self.seconds = 1_000.0

    def now_us(self) -> int:
        return int(self.seconds * 1_000_000)

    def monotonic(self) -> float:
        return self.seconds

    def advance(self, seconds: float) -> None:
        self.seconds += seconds


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
LOOSE = msgspec.structs.replace(PRIME, ttft_ceiling_ms=None, throughput_floor_tps=None)
SUPPLIER = SupplierRecord(name="s", wire="openai", base_url="http://s.invalid/v1")


def priced(offer_id: str) -> PricedOffer:
    record = OfferRecord(
        id=offer_id,
        supplier="s",
        instrument="text-prime",
        model="m",
        input_per_m=1,
        output_per_m=1,
        quality=40,
        context=196_608,
        max_output=65_536,
    )
    return PricedOffer(record, SUPPLIER, Price(1, 1))


A, B, C = priced("a"), priced("b"), priced("c")

# deliveries: (tokens - 1) / generation seconds is the throughput
OK = Delivery("ok", ttft_s=1.0, output_tokens=101, generation_s=1.0)  # 1000 ms, 100 tok/s
LATE = Delivery("ok", ttft_s=5.0, output_tokens=101, generation_s=1.0)  # 5000 ms
SLOW = Delivery("ok", ttft_s=1.0, output_tokens=101, generation_s=4.0)  # 25 tok/s
ERROR = Delivery("error")
TIMEOUT = Delivery("timeout")
CANCELLED = Delivery("cancelled")


def health(**knobs: float) -> tuple[OfferHealth, ManualClock]:
    clock = ManualClock()
    return OfferHealth(HealthPolicy(**knobs), clock), clock  # type: ignore[arg-type]


def record(book: OfferHealth, offer_id: str, *deliveries: Delivery) -> None:
    for delivery in deliveries:
        book.record(offer_id, PRIME, delivery)


def ids(admission: Eligibility) -> list[str]:
    return [o.offer.id for o in admission.offers]


def eject_by_breaker(book: OfferHealth, offer_id: str) -> None:
    record(book, offer_id, *[ERROR] * book.policy.breaker_failures)
    assert book.state(offer_id) == "ejected"


def to_probation(book: OfferHealth, clock: ManualClock, offer_id: str) -> None:
    eject_by_breaker(book, offer_id)
    clock.advance(book.policy.cooldown_s)
    assert book.state(offer_id) == "probation"


# -- percentiles and the window ----------------------------------------------------------------


def test_nearest_rank_percentiles() -> None:
    values = [float(v) for v in range(1, 11)]
    assert percentile(values, 50) == 5
    assert percentile(values, 90) == 9
    assert percentile(values, 10) == 1
    assert percentile(values, 1) == 1
    assert percentile(values, 100) == 10
    assert percentile([7.0], 90) == 7
    assert percentile([], 50) is None


def test_rank() -> None:
    assert rank(90, 20) == 18
    assert rank(50, 20) == 10
    assert rank(50, 21) == 11
    assert rank(10, 7) == 1
    assert rank(10, 30) == 3  # exact integer arithmetic: no 3.0000000000000004 → 4
    assert rank(100, 13) == 13
    assert rank(1, 1) == 1


def sample(
    at: float = 0.0,
    *,
    ttft: float | None = None,
    tps: float | None = None,
    failed: bool = False,
    timed_out: bool = False,
    in_spec: bool = True,
) -> Sample:
    return Sample(
        at=at,
        failed=failed or timed_out,
        timed_out=timed_out,
        in_spec=in_spec,
        ttft_s=ttft,
        throughput_tps=tps,
    )


finite = st.floats(min_value=0, max_value=1_000, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(
    ttfts=st.lists(finite, min_size=1, max_size=60),
    rates=st.lists(finite, min_size=1, max_size=60),
    ceiling=finite,
    floor=finite,
    p=st.integers(min_value=1, max_value=100),
)
def test_counted_percentile_rule_equals_sorting(
    ttfts: list[float], rates: list[float], ceiling: float, floor: float, p: int
) -> None:
    window = DeliveryWindow(size=200, max_age_s=300)
    window.limits(ceiling, floor)
    for v in ttfts:
        window.add(sample(ttft=v))
    for v in rates:
        window.add(sample(tps=v))
    assert window.ttft_over_ceiling(p) == (percentile(sorted(ttfts), p) > ceiling)  # type: ignore[operator]
    assert window.throughput_under_floor(p) == (percentile(sorted(rates), p) < floor)  # type: ignore[operator]
    assert window.ttft_percentile(p) == percentile(sorted(ttfts), p)
    assert window.throughput_percentile(p) == percentile(sorted(rates), p)


def test_window_drops_the_oldest_when_full_and_keeps_counts() -> None:
    window = DeliveryWindow(size=3, max_age_s=300)
    window.limits(4.62, 40)
    window.add(sample(ttft=9.0, failed=True))  # late, failed: evicted below
    window.add(sample(ttft=1.0, tps=10.0))
    window.add(sample(ttft=2.0, tps=50.0, timed_out=True))
    window.add(sample(ttft=3.0, tps=60.0))
    summary = window.summary()
    assert summary == WindowSummary(
        deliveries=3,
        failures=1,
        timeouts=1,
        in_spec=3,
        ttft_s=(1.0, 2.0, 3.0),
        throughput_tps=(10.0, 50.0, 60.0),
    )
    assert not window.ttft_over_ceiling(100)  # the late one left with the oldest
    assert window.throughput_under_floor(10)


def test_window_expires_by_age_inclusive_of_the_limit() -> None:
    window = DeliveryWindow(size=10, max_age_s=300)
    window.add(sample(0.0, ttft=1.0))
    window.add(sample(100.0, ttft=2.0))
    window.expire(300.0)
    assert window.deliveries == 2  # exactly 300 s old is still in
    window.expire(300.5)
    assert window.deliveries == 1
    assert window.ttft_percentile(50) == 2.0
    window.expire(1_000.0)
    assert window.deliveries == 0
    assert window.ttft_percentile(50) is None


def test_new_limits_recount_the_window() -> None:
    window = DeliveryWindow(size=10, max_age_s=300)
    window.limits(6.0, 10.0)
    for _ in range(5):
        window.add(sample(ttft=5.0, tps=30.0))
    assert not window.ttft_over_ceiling(90)
    assert not window.throughput_under_floor(50)
    window.limits(4.62, 40.0)
    assert window.ttft_over_ceiling(90)
    assert window.throughput_under_floor(50)
    window.limits(None, None)
    assert not window.ttft_over_ceiling(90)
    assert not window.throughput_under_floor(50)


def test_window_rejects_a_size_of_zero() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        DeliveryWindow(size=0, max_age_s=300)


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.tuples(finite, finite, st.booleans()), max_size=40),
    cut=st.integers(min_value=0, max_value=40),
)
def test_summaries_merge_exactly(values: list[tuple[float, float, bool]], cut: int) -> None:
    whole, left, right = (DeliveryWindow(size=100, max_age_s=300) for _ in range(3))
    for i, (ttft, tps, failed) in enumerate(values):
        s = sample(ttft=ttft, tps=tps, failed=failed, in_spec=not failed)
        whole.add(s)
        (left if i < cut else right).add(s)
    merged = left.summary().merge(right.summary())
    assert merged == whole.summary()
    assert merged.figures("x") == whole.summary().figures("x")
    assert merged.merge() == merged
    assert WindowSummary().merge(merged, WindowSummary()) == merged


def test_a_summary_crosses_a_process_boundary_as_msgspec() -> None:
    window = DeliveryWindow(size=10, max_age_s=300)
    window.add(sample(ttft=0.5, tps=80.0))
    window.add(sample(timed_out=True, in_spec=False))
    summary = window.summary()
    wire = msgspec.json.encode(summary)
    assert msgspec.json.decode(wire, type=WindowSummary) == summary


# -- verdicts -------------------------------------------------------------------------------------

POLICY = HealthPolicy()


def test_first_token_exactly_at_the_ceiling_is_in_spec() -> None:
    judged = verdict(PRIME, Delivery("ok", ttft_s=4.62), POLICY)
    assert judged == Verdict()
    assert judged.in_spec
    assert judged.billable
    assert judged.reason is None


def test_first_token_after_the_ceiling_is_out_of_spec_and_not_billed() -> None:
    judged = verdict(PRIME, Delivery("ok", ttft_s=4.6200001), POLICY)
    assert not judged.in_spec
    assert not judged.billable
    assert judged.breach == "first token after 4620.0001 ms > ceiling 4620 ms"
    assert verdict(PRIME, Delivery("ok", ttft_s=4.7), POLICY).breach == (
        "first token after 4700 ms > ceiling 4620 ms"
    )


def test_throughput_exactly_at_the_floor_is_in_spec() -> None:
    # 41 tokens: 40 after the first, in 1 s
    assert verdict(PRIME, Delivery("ok", ttft_s=1, output_tokens=41, generation_s=1), POLICY) == (
        Verdict()
    )


def test_throughput_under_the_floor_is_out_of_spec() -> None:
    judged = verdict(PRIME, Delivery("ok", ttft_s=1, output_tokens=41, generation_s=1.001), POLICY)
    assert not judged.billable
    assert judged.breach == "throughput 39.96 tok/s < floor 40 tok/s over 41 tokens"


def test_throughput_is_judged_only_on_a_long_enough_answer() -> None:
    short = Delivery("ok", ttft_s=1, output_tokens=31, generation_s=1)  # 30 tok/s, 31 tokens
    assert verdict(PRIME, short, POLICY).in_spec
    assert short.throughput_tps(32) is None
    enough = Delivery("ok", ttft_s=1, output_tokens=32, generation_s=1)  # 31 tok/s, 32 tokens
    assert verdict(PRIME, enough, POLICY).breach == (
        "throughput 31 tok/s < floor 40 tok/s over 32 tokens"
    )
    assert verdict(PRIME, enough, HealthPolicy(min_throughput_tokens=33)).in_spec


def test_figures_not_measured_are_not_judged() -> None:
    # a non-streamed answer: no TTFT, no generation time
    assert verdict(PRIME, Delivery("ok", output_tokens=5_000), POLICY).in_spec
    # all tokens at once: no measurable generation time
    assert verdict(PRIME, Delivery("ok", ttft_s=1, output_tokens=100, generation_s=0), POLICY)
    assert Delivery("ok", ttft_s=1, output_tokens=100, generation_s=0).throughput_tps(32) is None
    # an instrument without ceiling or floor
    assert verdict(LOOSE, Delivery("ok", ttft_s=60, output_tokens=100, generation_s=99), POLICY)


def test_both_breaches_are_named() -> None:
    judged = verdict(PRIME, Delivery("ok", ttft_s=5, output_tokens=101, generation_s=4), POLICY)
    assert judged.breach == (
        "first token after 5000 ms > ceiling 4620 ms; "
        "throughput 25 tok/s < floor 40 tok/s over 101 tokens"
    )


def test_failures_are_not_in_spec_but_billed_for_what_was_delivered() -> None:
    error = verdict(PRIME, ERROR, POLICY)
    assert (error.in_spec, error.billable, error.reason) == (False, True, "upstream error")
    timeout = verdict(PRIME, TIMEOUT, POLICY)
    assert (timeout.in_spec, timeout.billable, timeout.reason) == (False, True, "timed out")
    broken_late = verdict(PRIME, Delivery("error", ttft_s=5, output_tokens=3), POLICY)
    assert not broken_late.billable
    assert broken_late.reason == "upstream error; first token after 5000 ms > ceiling 4620 ms"


def test_a_cancellation_is_not_a_failure() -> None:
    assert verdict(PRIME, CANCELLED, POLICY) == Verdict()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"ttft_s": -0.1}, "ttft_s"),
        ({"ttft_s": math.nan}, "ttft_s"),
        ({"generation_s": -1.0}, "generation_s"),
        ({"output_tokens": -1}, "output_tokens"),
    ],
)
def test_a_delivery_rejects_impossible_measurements(fields: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Delivery("ok", **fields)  # type: ignore[arg-type]


# -- the policy ------------------------------------------------------------------------------------


def test_policy_defaults_are_the_documented_ones() -> None:
    assert HealthPolicy() == HealthPolicy(
        window_size=200,
        max_age_s=300.0,
        min_samples=20,
        max_error_rate=0.5,
        ttft_percentile=90,
        throughput_percentile=50,
        breaker_failures=5,
        cooldown_s=30.0,
        max_cooldown_s=600.0,
        probe_concurrency=1,
        probation_successes=3,
        probe_slot_ttl_s=600.0,
        min_throughput_tokens=32,
    )


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"window_size": 0}, "window_size must be positive"),
        ({"max_age_s": 0}, "max_age_s must be positive"),
        ({"min_samples": 0}, "min_samples must be positive"),
        ({"min_samples": 201}, "min_samples .201. exceeds window_size"),
        ({"max_error_rate": 1.5}, "max_error_rate must be between 0 and 1"),
        ({"max_error_rate": -0.1}, "max_error_rate must be between 0 and 1"),
        ({"ttft_percentile": 0}, "ttft_percentile must be positive"),
        ({"throughput_percentile": 101}, "throughput_percentile is at most 100"),
        ({"breaker_failures": 0}, "breaker_failures must be positive"),
        ({"cooldown_s": 700}, "cooldown_s .700. exceeds max_cooldown_s"),
        ({"probe_concurrency": 0}, "probe_concurrency must be positive"),
        ({"probation_successes": 0}, "probation_successes must be positive"),
        ({"probe_slot_ttl_s": -1}, "probe_slot_ttl_s must be positive"),
        ({"min_throughput_tokens": 1}, "min_throughput_tokens must be at least 2"),
    ],
)
def test_policy_rejects_bad_knobs_by_name(knobs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HealthPolicy(**knobs)  # type: ignore[arg-type]


def test_a_zero_error_rate_threshold_is_allowed() -> None:
    book, _ = health(max_error_rate=0.0, min_samples=2)
    record(book, "a", OK, ERROR)
    assert book.state("a") == "ejected"


# -- ejection -----------------------------------------------------------------------------------


def test_p90_ttft_allows_two_late_in_twenty() -> None:
    book, _ = health()
    record(book, "a", LATE, LATE, *[OK] * 18)
    assert book.state("a") == "healthy"
    assert book.figures("a").ttft_p90_ms == 1000


def test_p90_ttft_over_the_ceiling_ejects() -> None:
    book, _ = health()
    record(book, "a", LATE, LATE, *[OK] * 17)
    assert book.state("a") == "healthy"
    record(book, "a", LATE)
    figures = book.figures("a")
    assert figures.state == "ejected"
    assert figures.reason == (
        "p90 TTFT 5000 ms > ceiling 4620 ms over 20 deliveries; probation in 30 s"
    )


def test_measured_ttft_ejects_only_after_min_samples() -> None:
    book, _ = health()
    record(book, "a", *[LATE] * 19)
    assert book.state("a") == "healthy"
    assert book.figures("a").in_spec_fraction == 0.0
    record(book, "a", LATE)
    assert book.state("a") == "ejected"


def test_min_samples_is_a_knob() -> None:
    book, _ = health(min_samples=3)
    record(book, "a", LATE, LATE)
    assert book.state("a") == "healthy"
    record(book, "a", LATE)
    assert book.state("a") == "ejected"


def test_p50_throughput_under_the_floor_ejects() -> None:
    book, _ = health()
    record(book, "a", *[OK] * 10, *[SLOW] * 9)
    assert book.state("a") == "healthy"
    record(book, "a", SLOW)
    figures = book.figures("a")
    assert figures.state == "ejected"
    assert figures.reason is not None
    assert figures.reason.startswith("p50 throughput 25 tok/s < floor 40 tok/s over 20 deliveries")


def test_p50_throughput_allows_a_slow_minority() -> None:
    book, _ = health()
    record(book, "a", *[OK] * 11, *[SLOW] * 9)
    assert book.state("a") == "healthy"
    assert book.figures("a").throughput_p10_tps == 25


def test_short_answers_do_not_count_toward_throughput() -> None:
    book, _ = health()
    short_and_slow = Delivery("ok", ttft_s=1, output_tokens=10, generation_s=9)
    record(book, "a", *[short_and_slow] * 40)
    assert book.state("a") == "healthy"
    assert book.figures("a").throughput_p50_tps is None


def test_error_rate_at_the_threshold_stays_and_over_it_ejects() -> None:
    book, _ = health()
    record(book, "a", *[ERROR, OK] * 10)  # 10 of 20: 50 %, not over
    assert book.state("a") == "healthy"
    record(book, "a", TIMEOUT)  # 11 of 21
    figures = book.figures("a")
    assert figures.state == "ejected"
    assert figures.reason is not None
    assert figures.reason.startswith("11 of 21 deliveries failed (52% > 50%)")


def test_timeouts_count_as_failures() -> None:
    book, _ = health()
    record(book, "a", *[TIMEOUT, OK, ERROR, OK] * 4, TIMEOUT, OK, TIMEOUT, OK)
    figures = book.figures("a")
    assert (figures.samples, figures.error_rate, figures.timeout_rate) == (20, 0.5, 0.3)
    assert figures.state == "healthy"


def test_breaker_opens_after_consecutive_failures_with_few_samples() -> None:
    book, _ = health()
    record(book, "a", ERROR, TIMEOUT, ERROR, ERROR)
    assert book.state("a") == "healthy"
    record(book, "a", TIMEOUT)
    figures = book.figures("a")
    assert figures.samples == 5
    assert figures.reason == (
        "circuit open: 5 failures in a row (last: timed out); probation in 30 s"
    )


def test_any_answer_closes_the_breaker() -> None:
    book, _ = health()
    record(book, "a", *[ERROR] * 4, LATE, *[ERROR] * 4, OK, *[ERROR] * 4)
    assert book.state("a") == "healthy"


def test_cancellations_are_not_recorded() -> None:
    book, _ = health()
    assert book.record("a", PRIME, CANCELLED) == Verdict()
    assert book.snapshot() == []
    record(book, "a", *[ERROR] * 4, CANCELLED, ERROR)  # a cancellation does not close the breaker
    assert book.state("a") == "ejected"
    assert book.figures("a").samples == 5


def test_record_returns_the_verdict() -> None:
    book, _ = health()
    assert book.record("a", PRIME, LATE).breach == "first token after 5000 ms > ceiling 4620 ms"
    assert book.record("a", PRIME, OK).in_spec


def test_an_instrument_without_limits_ejects_only_on_failures() -> None:
    book, _ = health()
    for _ in range(50):
        book.record("a", LOOSE, Delivery("ok", ttft_s=60, output_tokens=100, generation_s=99))
    assert book.state("a") == "healthy"


def test_a_tightened_instrument_is_applied_to_the_whole_window() -> None:
    book, _ = health()
    relaxed = msgspec.structs.replace(PRIME, ttft_ceiling_ms=6000)
    for _ in range(25):
        book.record("a", relaxed, LATE)
    assert book.state("a") == "healthy"
    book.record("a", PRIME, OK)
    figures = book.figures("a")
    assert figures.state == "ejected"
    assert figures.reason is not None
    assert figures.reason.startswith("p90 TTFT 5000 ms > ceiling 4620 ms over 26 deliveries")


# -- windows ---------------------------------------------------------------------------------------


def test_old_deliveries_age_out() -> None:
    book, clock = health()
    record(book, "a", *[LATE] * 19)
    clock.advance(300.001)
    record(book, "a", LATE)
    assert book.state("a") == "healthy"
    assert book.figures("a").samples == 1


def test_a_delivery_exactly_max_age_old_still_counts() -> None:
    book, clock = health()
    record(book, "a", *[LATE] * 19)
    clock.advance(300)
    record(book, "a", LATE)
    assert book.state("a") == "ejected"


def test_figures_age_out_without_new_deliveries() -> None:
    book, clock = health()
    record(book, "a", OK, ERROR, TIMEOUT)
    clock.advance(301)
    figures = book.figures("a")
    assert (figures.samples, figures.error_rate, figures.ttft_p50_ms) == (0, 0.0, None)
    assert book.summary("a") == WindowSummary()


def test_window_keeps_the_last_window_size_deliveries() -> None:
    book, _ = health(window_size=20)
    record(book, "a", *[OK] * 300)
    assert book.figures("a").samples == 20
    # the early late ones leave as newer ones come: two late stay within p90
    record(book, "a", LATE, LATE, *[OK] * 18, LATE, LATE)
    assert book.state("a") == "healthy"
    record(book, "a", LATE)
    assert book.state("a") == "ejected"


# -- cool-down and probation ----------------------------------------------------------------------


def test_an_ejected_offer_is_not_admitted_until_its_cool_down_ends() -> None:
    book, clock = health()
    eject_by_breaker(book, "a")
    assert ids(book.eligible([A, B])) == ["b"]
    clock.advance(29.999)
    assert book.state("a") == "ejected"
    assert book.figures("a").reason == (
        "circuit open: 5 failures in a row (last: upstream error); probation in 1 s"
    )
    assert ids(book.eligible([A, B])) == ["b"]
    clock.advance(0.001)
    assert book.state("a") == "probation"


def test_probation_starts_with_a_fresh_window() -> None:
    book, clock = health()
    to_probation(book, clock, "a")
    figures = book.figures("a")
    assert (figures.samples, figures.state) == (0, "probation")
    assert figures.reason == (
        "probation: 0 of 3 in-spec deliveries so far "
        "(ejected for: circuit open: 5 failures in a row (last: upstream error))"
    )


def test_a_second_concurrent_probe_is_refused_until_the_first_slot_is_released() -> None:
    book, clock = health()
    to_probation(book, clock, "a")
    first = book.eligible([A, B])
    assert ids(first) == ["a", "b"]
    assert first.probing("a")
    assert not first.probing("b")
    second = book.eligible([A, B])
    assert ids(second) == ["b"]
    assert not second.probing("a")
    first.close()
    first.close()  # harmless
    with book.eligible([A, B]) as third:
        assert ids(third) == ["a", "b"]
        assert ids(book.eligible([A, B])) == ["b"]
    assert ids(book.eligible([A, B])) == ["a", "b"]


def test_probe_concurrency_is_a_knob() -> None:
    book, clock = health(probe_concurrency=2)
    to_probation(book, clock, "a")
    held = [book.eligible([A]), book.eligible([A])]
    assert [ids(h) for h in held] == [["a"], ["a"]]
    assert book.eligible([A, B]).offers == [B]
    held[0].close()
    assert ids(book.eligible([A, B])) == ["a", "b"]


def test_a_leaked_probe_slot_is_reclaimed_after_its_ttl() -> None:
    book, clock = health(probe_slot_ttl_s=120)
    to_probation(book, clock, "a")
    leaked = book.eligible([A])  # never closed
    clock.advance(119.999)
    assert ids(book.eligible([A, B])) == ["b"]
    clock.advance(0.001)
    assert ids(book.eligible([A, B])) == ["a", "b"]
    assert not leaked.probing("a")


def test_limit_takes_no_slot_for_an_offer_it_will_not_try() -> None:
    book, clock = health()
    to_probation(book, clock, "a")
    assert ids(book.eligible([B, A], limit=1)) == ["b"]
    probe = book.eligible([A, B], limit=1)
    assert ids(probe) == ["a"]
    assert probe.probing("a")


def test_in_spec_probes_readmit_the_offer() -> None:
    book, clock = health()
    to_probation(book, clock, "a")
    with book.eligible([A]):
        record(book, "a", OK, OK)
    assert book.state("a") == "probation"
    assert book.figures("a").reason is not None
    assert book.figures("a").reason.startswith("probation: 2 of 3 in-spec deliveries")  # type: ignore[union-attr]
    record(book, "a", OK)
    figures = book.figures("a")
    assert (figures.state, figures.reason, figures.samples) == ("healthy", None, 3)
    assert ids(book.eligible([A, B])) == ["a", "b"]


def test_a_failed_probe_ejects_again_with_a_doubled_cool_down_up_to_the_cap() -> None:
    book, clock = health()
    to_probation(book, clock, "a")
    for cooldown in (60, 120, 240, 480, 600, 600):
        record(book, "a", ERROR)
        assert book.state("a") == "ejected"
        assert book.figures("a").reason == (
            f"failed probation: upstream error; probation in {cooldown} s"
        )
        clock.advance(cooldown - 0.001)
        assert book.state("a") == "ejected"
        clock.advance(0.001)
        assert book.state("a") == "probation"


def test_an_out_of_spec_probe_fails_probation() -> None:
    book, clock = health()
    to_probation(book, clock, "a")
    record(book, "a", OK, LATE)
    assert book.figures("a").reason == (
        "failed probation: first token after 5000 ms > ceiling 4620 ms; probation in 60 s"
    )


def test_cancellations_during_probation_count_neither_way() -> None:
    book, clock = health()
    to_probation(book, clock, "a")
    record(book, "a", OK, CANCELLED, OK, CANCELLED, OK)
    assert book.state("a") == "healthy"


def test_a_readmitted_offer_starts_again_from_the_base_cool_down() -> None:
    book, clock = health()
    to_probation(book, clock, "a")
    record(book, "a", ERROR)  # cool-down 60
    clock.advance(60)
    record(book, "a", OK, OK, OK)
    assert book.state("a") == "healthy"
    eject_by_breaker(book, "a")
    clock.advance(30)
    assert book.state("a") == "probation"


def test_deliveries_while_ejected_change_nothing() -> None:
    book, clock = health()
    eject_by_breaker(book, "a")
    record(book, "a", *[OK] * 10)
    assert book.state("a") == "ejected"
    assert book.figures("a").samples == 15  # kept, for the figures
    clock.advance(30)
    assert book.state("a") == "probation"


def test_a_slot_released_after_the_offer_moved_on_is_harmless() -> None:
    book, clock = health()
    to_probation(book, clock, "a")
    admission = book.eligible([A])
    assert admission.probing("a")
    record(book, "a", OK, OK, OK)
    assert book.state("a") == "healthy"
    assert not admission.probing("a")  # voided by the change of state
    eject_by_breaker(book, "a")
    clock.advance(30)
    fresh = book.eligible([A])
    assert fresh.probing("a")
    admission.close()  # an old slot: does not free the new probe's
    assert ids(book.eligible([A, B])) == ["b"]


def test_the_readmission_does_not_carry_old_samples() -> None:
    book, clock = health(min_samples=3)
    record(book, "a", LATE, LATE, LATE)
    assert book.state("a") == "ejected"
    clock.advance(30)
    record(book, "a", OK, OK, OK)
    record(book, "a", OK, OK)
    assert book.state("a") == "healthy"


# -- admission ------------------------------------------------------------------------------------


def test_unknown_offers_are_healthy_and_admitted_in_order() -> None:
    book, _ = health()
    admission = book.eligible([C, A, B])
    assert ids(admission) == ["c", "a", "b"]
    assert not admission.fallback
    assert book.state("zzz") == "healthy"


def test_when_every_offer_is_ejected_all_are_admitted_in_ranked_order() -> None:
    book, _ = health()
    eject_by_breaker(book, "a")
    eject_by_breaker(book, "b")
    admission = book.eligible([B, A])
    assert ids(admission) == ["b", "a"]
    assert admission.fallback
    assert not admission.probing("a")
    reason = book.figures("a").reason
    assert reason is not None
    assert reason.endswith("; admitted as a last resort (every candidate was ejected)")
    assert ids(book.eligible([B, A], limit=1)) == ["b"]


def test_one_admissible_offer_means_no_fallback() -> None:
    book, _ = health()
    eject_by_breaker(book, "a")
    admission = book.eligible([A, B])
    assert (ids(admission), admission.fallback) == (["b"], False)
    assert "last resort" not in (book.figures("a").reason or "")


def test_fallback_also_covers_probation_without_a_free_slot() -> None:
    book, clock = health()
    to_probation(book, clock, "a")
    eject_by_breaker(book, "b")
    probe = book.eligible([A, B])
    assert ids(probe) == ["a"]
    fallback = book.eligible([A, B])
    assert (ids(fallback), fallback.fallback) == (["a", "b"], True)


def test_no_candidates_admit_nothing() -> None:
    book, _ = health()
    admission = book.eligible([])
    assert (admission.offers, admission.fallback) == ([], False)


# -- figures ---------------------------------------------------------------------------------------


def test_figures_report_percentiles_rates_and_in_spec_fraction() -> None:
    book, _ = health()
    for i in range(1, 11):  # TTFT 0.1 … 1.0 s; throughput 10 … 100 tok/s
        record(book, "a", Delivery("ok", ttft_s=i / 10, output_tokens=100 * i + 1, generation_s=10))
    record(book, "a", ERROR, TIMEOUT)
    figures = book.figures("a")
    assert figures.samples == 12
    assert figures.ttft_p50_ms == pytest.approx(500)
    assert figures.ttft_p90_ms == pytest.approx(900)
    assert figures.throughput_p50_tps == pytest.approx(50)
    assert figures.throughput_p10_tps == pytest.approx(10)
    assert figures.error_rate == pytest.approx(2 / 12)
    assert figures.timeout_rate == pytest.approx(1 / 12)
    assert figures.in_spec_fraction == pytest.approx(7 / 12)  # 10, 20, 30 tok/s are slow
    assert (figures.state, figures.reason) == ("healthy", None)


def test_figures_of_an_unknown_offer() -> None:
    book, _ = health()
    figures = book.figures("new")
    assert (figures.offer_id, figures.samples, figures.state) == ("new", 0, "healthy")
    assert (figures.ttft_p50_ms, figures.throughput_p50_tps, figures.in_spec_fraction) == (
        None,
        None,
        None,
    )
    assert (figures.error_rate, figures.timeout_rate) == (0.0, 0.0)
    assert book.summary("new") == WindowSummary()


def test_snapshot_lists_every_offer_by_id_and_prune_forgets() -> None:
    book, _ = health()
    record(book, "c", OK)
    record(book, "a", ERROR)
    record(book, "b", OK)
    assert [f.offer_id for f in book.snapshot()] == ["a", "b", "c"]
    book.prune({"b", "z"})
    assert [f.offer_id for f in book.snapshot()] == ["b"]


def test_two_processes_summaries_merge_into_fleet_figures() -> None:
    one, _ = health()
    two, _ = health()
    record(one, "a", OK, LATE)
    record(two, "a", ERROR, SLOW)
    fleet = one.summary("a").merge(two.summary("a")).figures("a")
    assert fleet.samples == 4
    assert fleet.ttft_p90_ms == 5000
    assert fleet.error_rate == 0.25
    assert fleet.in_spec_fraction == 0.25


# -- properties ---------------------------------------------------------------------------------

ALLOWED: dict[OfferState, set[OfferState]] = {
    "healthy": {"healthy", "ejected"},
    "ejected": {"ejected", "probation"},
    "probation": {"probation", "healthy", "ejected"},
}
OFFERS = [priced(name) for name in "abcd"]
# mostly answers in spec (so probation can succeed), failures often enough to eject
DELIVERIES = [OK, OK, OK, LATE, SLOW, ERROR, ERROR, TIMEOUT, CANCELLED]


class HealthMachine(RuleBasedStateMachine):
    """Random deliveries, clock moves, admissions and releases against a few offers. After every
    step: no offer skipped probation, and no offer on probation has more probes out than
    allowed. Every admission: a subsequence of what was given, ejected offers only as a last
    resort."""

    def __init__(self) -> None:
        super().__init__()
        self.configure(1)

    def configure(self, probes: int) -> None:
        self.policy = HealthPolicy(
            window_size=8,
            min_samples=3,
            breaker_failures=2,
            cooldown_s=1.0,
            max_cooldown_s=8.0,
            probation_successes=2,
            probe_concurrency=probes,
            probe_slot_ttl_s=1e9,
        )
        self.clock = ManualClock()
        self.book = OfferHealth(self.policy, self.clock)
        self.open: list[Eligibility] = []
        self.states: dict[str, OfferState] = {}
        self.transitions: set[tuple[OfferState, OfferState]] = set()

    @initialize(probes=st.integers(1, 2))
    def start(self, probes: int) -> None:
        self.configure(probes)

    @rule(seconds=st.sampled_from([0.0, 0.5, 1.0, 3.0, 10.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(which=st.integers(0, 2), delivery=st.sampled_from(DELIVERIES))
    def deliver(self, which: int, delivery: Delivery) -> None:
        self.book.record(OFFERS[which].offer.id, PRIME, delivery)

    @rule(
        picks=st.lists(st.integers(0, 3), max_size=6),  # may repeat and reorder
        limit=st.one_of(st.none(), st.integers(1, 4)),
    )
    def admit(self, picks: list[int], limit: int | None) -> None:
        offers = [OFFERS[i] for i in picks]
        states = {o.offer.id: self.book.state(o.offer.id) for o in offers}
        admission = self.book.eligible(offers, limit=limit)
        rest = iter(offers)  # a subsequence of what was given, by identity, in order
        assert all(any(o is g for g in rest) for o in admission.offers)
        assert limit is None or len(admission.offers) <= limit
        if admission.fallback:
            assert admission.offers == offers[:limit]
            assert "healthy" not in states.values()
        else:
            assert all(states[o.offer.id] != "ejected" for o in admission.offers)
            if limit is None:  # every healthy offer given was admitted
                healthy = [o for o in offers if states[o.offer.id] == "healthy"]
                assert all(any(o is h for o in admission.offers) for h in healthy)
        self.open.append(admission)

    @precondition(lambda self: bool(self.open))
    @rule(which=st.integers(0, 50))
    def close(self, which: int) -> None:
        self.open.pop(which % len(self.open)).close()

    @invariant()
    def never_skips_probation_nor_over_probes(self) -> None:
        for offer in OFFERS:
            offer_id = offer.offer.id
            now = self.book.state(offer_id)
            before = self.states.get(offer_id, "healthy")
            assert now in ALLOWED[before], f"{offer_id}: {before} → {now}"
            if now != before:
                self.transitions.add((before, now))
            self.states[offer_id] = now
            if now == "probation":
                probing = sum(a.probing(offer_id) for a in self.open)
                assert probing <= self.policy.probe_concurrency


TestHealthMachine = HealthMachine.TestCase
TestHealthMachine.settings = settings(max_examples=100, stateful_step_count=50, deadline=None)
