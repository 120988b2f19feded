"""Hedging for the TTFT promise: a stream whose first token has not come at ``fraction`` of its
instrument's TTFT ceiling starts the next offer too; the first to answer serves, the other is
cancelled, and the caller pays once, at the serving offer's price.

The instrument here promises a first token within 10 ms, so the exchange's own wait for the
hedge is 5 ms of real time; whether the hedge is due is read from the harness clock, which the
test moves past it once the first offer has the request."""

from __future__ import annotations

import asyncio

from tests.core.exchange.harness import (
    Offer,
    SlowFirstToken,
    Stalls,
    chat,
    content,
    exchange,
    instrument,
    relay,
)

LAGGARD = Offer("laggard", 100_000_000, 400_000_000)  # the cheapest: tried first
SPRINTER = Offer("sprinter", 300_000_000, 1_200_000_000)
PROMISED = instrument(ttft_ceiling_ms=10)
PAST_THE_HEDGE = 0.006  # seconds: past half the ceiling, within the ceiling


async def test_a_slow_first_token_starts_a_hedge_and_the_first_to_answer_serves() -> None:
    slow = SlowFirstToken()
    async with exchange(
        LAGGARD, SPRINTER, behaviours={"laggard": slow}, instrument_record=PROMISED
    ) as h:
        opening = asyncio.create_task(h.open_stream(chat(max_tokens=5, stream=True)))
        await h.adapter.reached("laggard")
        h.clock.advance(PAST_THE_HEDGE)
        session = await opening

        assert session.served.supplier == "sprinter"
        assert h.adapter.suppliers_called == ["laggard", "sprinter"]
        [loser] = h.adapter.calls_to("laggard")
        assert loser.ended == "cancelled" and loser.batches == 0  # stopped, sent nothing
        pieces = await relay(session)
        assert content(pieces) == ["tok "] * 5
        # paid once, at the serving offer's price; the loser's hold was given back
        cost = SPRINTER.price.cost(11, 5)
        assert [hold.charged for hold in h.billing.holds] == [0, cost]
        record = h.record()
        assert (record.supplier, record.outcome, record.cost, record.in_spec) == (
            "sprinter",
            "ok",
            cost,
            True,
        )
        assert record.ttft_us == int(PAST_THE_HEDGE * 1_000_000)
        await h.close_leases()
        assert h.ledger.balance() == h.funded - cost


async def test_the_first_offer_serves_if_it_answers_before_the_hedge() -> None:
    """Once the hedge has started, whichever answers first wins: here the slow first offer."""
    slow, stalled = SlowFirstToken(), Stalls()
    async with exchange(
        LAGGARD,
        SPRINTER,
        behaviours={"laggard": slow, "sprinter": stalled},
        instrument_record=PROMISED,
    ) as h:
        opening = asyncio.create_task(h.open_stream(chat(max_tokens=5, stream=True)))
        await h.adapter.reached("laggard")
        h.clock.advance(PAST_THE_HEDGE)
        await h.adapter.reached("sprinter")  # the hedge is out
        slow.gate.set()
        session = await opening

        assert session.served.supplier == "laggard"
        [loser] = h.adapter.calls_to("sprinter")
        assert loser.ended == "cancelled"
        await relay(session)
        cost = LAGGARD.price.cost(11, 5)
        # the hedge's larger hold replaced the first; the request is charged once, at the
        # winner's price
        assert [hold.charged for hold in h.billing.holds] == [0, cost]
        record = h.record()
        assert (record.supplier, record.cost) == ("laggard", cost)
        assert record.price_output_per_m == LAGGARD.output_per_m
