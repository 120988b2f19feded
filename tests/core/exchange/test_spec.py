"""Deliveries judged against the instrument's spec: a streamed answer whose first token came
later than the TTFT ceiling, or whose throughput fell under the floor, is recorded (out of spec,
with why) and not billed, unless the instrument bills out-of-spec deliveries. The clock is the
harness's: a slow supplier is slow because the test moved the clock."""

from __future__ import annotations

import asyncio

from gridgate.settings import HedgingSettings
from tests.core.exchange.harness import (
    Answers,
    Harness,
    Offer,
    SlowFirstToken,
    Stalls,
    chat,
    exchange,
    instrument,
    relay,
)

CHEAP = Offer("cheap", 100_000_000, 400_000_000)
DEAR = Offer("dear", 300_000_000, 1_200_000_000)
PROMPT_1S = instrument(ttft_ceiling_ms=1_000)


async def _stream_with_first_token_after(
    h: Harness, seconds: float, slow: SlowFirstToken, supplier: str = "cheap"
) -> list[bytes]:
    """Open a stream whose supplier's first token comes ``seconds`` after the request, and
    relay it to its end."""
    opening = asyncio.create_task(h.open_stream(chat(max_tokens=5, stream=True)))
    await h.adapter.reached(supplier)
    h.clock.advance(seconds)
    slow.gate.set()
    return await relay(await opening)


async def test_a_first_token_later_than_the_ceiling_is_recorded_but_not_billed() -> None:
    slow = SlowFirstToken()
    async with exchange(CHEAP, behaviours={"cheap": slow}, instrument_record=PROMPT_1S) as h:
        await _stream_with_first_token_after(h, 1.5, slow)

        record = h.record()
        assert (record.outcome, record.output_tokens) == ("ok", 5)  # the caller got its answer
        assert record.in_spec is False
        assert record.spec_note == "first token after 1500 ms > ceiling 1000 ms"
        assert (record.cost, record.billed) == (0, False)
        assert record.ttft_us == 1_500_000
        assert [hold.charged for hold in h.billing.holds] == [0]
        await h.close_leases()
        assert h.ledger.balance() == h.funded


async def test_a_first_token_within_the_ceiling_is_billed() -> None:
    slow = SlowFirstToken()
    async with exchange(CHEAP, behaviours={"cheap": slow}, instrument_record=PROMPT_1S) as h:
        await _stream_with_first_token_after(h, 0.9, slow)

        record = h.record()
        assert (record.in_spec, record.spec_note) == (True, None)
        assert (record.cost, record.billed) == (CHEAP.price.cost(11, 5), True)


async def test_an_instrument_that_bills_out_of_spec_deliveries_bills_them() -> None:
    billing_anyway = instrument(ttft_ceiling_ms=1_000, bill_out_of_spec=True)
    slow = SlowFirstToken()
    async with exchange(CHEAP, behaviours={"cheap": slow}, instrument_record=billing_anyway) as h:
        await _stream_with_first_token_after(h, 1.5, slow)

        record = h.record()
        assert record.in_spec is False
        assert (record.cost, record.billed) == (CHEAP.price.cost(11, 5), True)


async def test_a_throughput_under_the_floor_is_recorded_but_not_billed() -> None:
    """40 tokens, one batch a second on the exchange's clock: under 1 token/s after the first,
    against a floor of 10."""
    slow = Answers(tokens=40, seconds_per_batch=1.0)
    floored = instrument(throughput_floor_tps=10.0)
    async with exchange(CHEAP, behaviours={"cheap": slow}, instrument_record=floored) as h:
        await relay(await h.open_stream(chat(max_tokens=50, stream=True)))

        record = h.record()
        assert (record.outcome, record.output_tokens) == ("ok", 40)
        assert record.in_spec is False
        assert record.spec_note is not None
        assert record.spec_note.startswith("throughput ")
        assert record.spec_note.endswith("< floor 10 tok/s over 40 tokens")
        assert (record.cost, record.billed) == (0, False)
        assert record.generation_us == 43_000_000  # 40 tokens, finish, usage, [DONE]


async def test_the_callers_ttft_counts_from_the_request_failovers_included() -> None:
    """The first offer stalls 0.8 s until its first-byte timeout; the next answers 0.4 s after
    it was asked. That offer was quick, but the caller waited 1.2 s: not billed."""
    stalled, slow = Stalls(), SlowFirstToken()
    async with exchange(
        CHEAP,
        DEAR,
        behaviours={"cheap": stalled, "dear": slow},
        instrument_record=PROMPT_1S,
        hedging=HedgingSettings(enabled=False),
    ) as h:
        opening = asyncio.create_task(h.open_stream(chat(max_tokens=5, stream=True)))
        await h.adapter.reached("cheap")
        h.clock.advance(0.8)
        stalled.gate.set()
        await h.adapter.reached("dear")
        h.clock.advance(0.4)
        slow.gate.set()
        await relay(await opening)

        record = h.record()
        assert record.supplier == "dear"
        assert record.spec_note == "first token after 1200 ms > ceiling 1000 ms"
        assert (record.cost, record.billed) == (0, False)


async def test_a_plain_answer_is_not_judged_against_the_ttft_ceiling() -> None:
    """A whole answer has no first token to time: it is billed on success alone."""
    slow = SlowFirstToken()
    async with exchange(CHEAP, behaviours={"cheap": slow}, instrument_record=PROMPT_1S) as h:
        answering = asyncio.create_task(h.complete(chat(max_tokens=5)))
        await h.adapter.reached("cheap")
        h.clock.advance(5.0)
        slow.gate.set()
        await answering

        record = h.record()
        assert (record.in_spec, record.spec_note, record.ttft_us) == (None, None, None)
        assert (record.cost, record.billed) == (CHEAP.price.cost(11, 5), True)
