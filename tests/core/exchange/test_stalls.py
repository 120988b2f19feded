"""A supplier that sends nothing: when the adapter's own timeout fires (``SupplierTimeout``)
the next offer serves; when the request's deadline (over all attempts) passes first, the
request ends 504, uncharged. A plain request waits on its one attempt up to the deadline."""

from __future__ import annotations

import asyncio

import pytest

from gridgate.errors import SupplierTimeout
from tests.core.exchange.harness import Offer, Stalls, chat, exchange, relay

CHEAP = Offer("cheap", 100_000_000, 400_000_000)
DEAR = Offer("dear", 300_000_000, 1_200_000_000)
DEADLINE = 0.05  # seconds: the exchange's real wait for a first byte, in these tests


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_a_stalled_supplier_whose_adapter_times_out_is_failed_over(stream: bool) -> None:
    stalled = Stalls()
    async with exchange(CHEAP, DEAR, behaviours={"cheap": stalled}) as h:
        if stream:
            serving = asyncio.create_task(h.open_stream(chat(stream=True)))
        else:
            serving = asyncio.create_task(h.complete(chat()))
        await h.adapter.reached("cheap")
        stalled.gate.set()  # its first-byte timeout fires
        result = await serving
        if stream:
            await relay(result)

        assert h.adapter.suppliers_called == ["cheap", "dear"]
        assert h.adapter.calls_to("cheap")[0].ended == "failed"
        cost = DEAR.price.cost(11, 5)
        assert [hold.charged for hold in h.billing.holds] == [0, cost]
        record = h.record()
        assert (record.supplier, record.outcome, record.cost) == ("dear", "ok", cost)


async def test_a_stream_stalled_past_the_request_deadline_is_a_504_and_not_charged() -> None:
    async with exchange(
        CHEAP, DEAR, behaviours={"cheap": Stalls()}, deadline_seconds=DEADLINE
    ) as h:
        opening = asyncio.create_task(h.open_stream(chat(stream=True)))
        await h.adapter.reached("cheap")
        h.clock.advance(1.0)  # the deadline has passed; the exchange sees it at its next look
        with pytest.raises(SupplierTimeout) as raised:
            await opening

        assert raised.value.status == 504
        assert "deadline" in raised.value.message and "not charged" in raised.value.message
        assert h.adapter.suppliers_called == ["cheap"]  # no time left for the next offer
        assert h.adapter.calls_to("cheap")[0].ended == "cancelled"
        assert [hold.charged for hold in h.billing.holds] == [0]
        record = h.record()
        assert (record.outcome, record.status, record.cost) == ("upstream_error", 504, 0)
        await h.close_leases()
        assert h.ledger.balance() == h.funded


async def test_a_plain_request_stalled_past_the_deadline_is_a_504_without_failover() -> None:
    """A plain attempt is awaited for all of the request's remaining time (the deadline is a
    real timeout here: ``DEADLINE`` of real time passes), so a supplier that never answers
    leaves none for the next offer."""
    async with exchange(
        CHEAP, DEAR, behaviours={"cheap": Stalls()}, deadline_seconds=DEADLINE
    ) as h:
        with pytest.raises(SupplierTimeout) as raised:
            await h.complete(chat())

        assert raised.value.status == 504
        assert h.adapter.suppliers_called == ["cheap"]
        assert h.adapter.calls_to("cheap")[0].ended == "cancelled"
        assert [hold.charged for hold in h.billing.holds] == [0]
        record = h.record()
        assert (record.outcome, record.status, record.cost) == ("upstream_error", 504, 0)
