"""Failover before the first byte: the caller never sees a supplier that failed before it sent
anything; that attempt's hold is given back and only the serving offer is charged, once."""

from __future__ import annotations

import json

import pytest

from gridgate.errors import SupplierFailed, UpstreamRejected
from tests.core.exchange.harness import (
    FailsBeforeFirstByte,
    Offer,
    Rejects,
    chat,
    content,
    events,
    exchange,
    relay,
)

CHEAP = Offer("cheap", 100_000_000, 400_000_000)  # $0.10 / $0.40 per 1M tokens
DEAR = Offer("dear", 300_000_000, 1_200_000_000)
DEAREST = Offer("dearest", 900_000_000, 3_600_000_000)


async def test_a_plain_request_fails_over_to_the_next_offer_which_alone_is_charged() -> None:
    async with exchange(CHEAP, DEAR, behaviours={"cheap": FailsBeforeFirstByte()}) as h:
        answer, served = await h.complete(chat(max_tokens=50))

        assert h.adapter.suppliers_called == ["cheap", "dear"]
        assert (served.supplier, served.offer_id) == ("dear", DEAR.id)
        body = json.loads(answer.body)
        assert body["choices"][0]["message"]["content"] == "tok " * 5
        # the failed attempt's hold was given back uncharged; the serving one charged its cost
        cost = DEAR.price.cost(11, 5)
        cheap_hold, dear_hold = h.billing.holds
        assert cheap_hold.charged == 0
        assert dear_hold.charged == cost
        record = h.record()  # exactly one record, for the served request
        assert (record.supplier, record.offer_id, record.outcome, record.status) == (
            "dear",
            DEAR.id,
            "ok",
            200,
        )
        assert (record.input_tokens, record.output_tokens) == (11, 5)
        assert (record.cost, record.billed) == (cost, True)
        assert (record.price_input_per_m, record.price_output_per_m) == (
            DEAR.input_per_m,
            DEAR.output_per_m,
        )
        await h.close_leases()
        assert h.ledger.balance() == h.funded - cost
        assert not h.ledger.open_holds()


async def test_a_stream_fails_over_to_the_next_offer_which_alone_is_charged() -> None:
    async with exchange(CHEAP, DEAR, behaviours={"cheap": FailsBeforeFirstByte()}) as h:
        session = await h.open_stream(chat(max_tokens=50, stream=True))
        assert session.served.supplier == "dear"
        pieces = await relay(session)

        assert content(pieces) == ["tok "] * 5
        assert events(pieces)[-1] == "[DONE]"
        assert h.adapter.suppliers_called == ["cheap", "dear"]
        [failed] = h.adapter.calls_to("cheap")
        assert failed.ended == "failed" and failed.batches == 0
        cost = DEAR.price.cost(11, 5)
        assert [hold.charged for hold in h.billing.holds] == [0, cost]
        record = h.record()
        assert (record.supplier, record.outcome, record.cost, record.stream) == (
            "dear",
            "ok",
            cost,
            True,
        )
        await h.close_leases()
        assert h.ledger.balance() == h.funded - cost


async def test_failover_stops_at_max_attempts_and_every_failure_is_a_502_not_charged() -> None:
    failing = {name: FailsBeforeFirstByte() for name in ("cheap", "dear", "dearest")}
    async with exchange(CHEAP, DEAR, DEAREST, behaviours=failing, max_attempts=2) as h:
        with pytest.raises(SupplierFailed) as raised:
            await h.complete(chat())

        assert raised.value.status == 502
        assert "2 tried" in raised.value.message and "not charged" in raised.value.message
        assert h.adapter.suppliers_called == ["cheap", "dear"]
        assert [hold.charged for hold in h.billing.holds] == [0, 0]
        record = h.record()
        assert (record.outcome, record.status, record.cost, record.billed) == (
            "upstream_error",
            502,
            0,
            False,
        )
        assert record.supplier is None
        await h.close_leases()
        assert h.ledger.balance() == h.funded


async def test_a_stream_whose_every_offer_fails_before_its_first_byte_is_a_502() -> None:
    failing = {"cheap": FailsBeforeFirstByte(), "dear": FailsBeforeFirstByte()}
    async with exchange(CHEAP, DEAR, behaviours=failing) as h:
        with pytest.raises(SupplierFailed):
            await h.open_stream(chat(stream=True))

        assert h.adapter.suppliers_called == ["cheap", "dear"]
        assert all(hold.charged == 0 for hold in h.billing.holds)
        assert h.record().outcome == "upstream_error"


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_a_supplier_rejecting_the_request_as_the_callers_fault_is_not_failed_over(
    stream: bool,
) -> None:
    """``UpstreamRejected`` is the caller's fault: surfaced with its status, no next offer."""
    async with exchange(CHEAP, DEAR, behaviours={"cheap": Rejects()}) as h:
        with pytest.raises(UpstreamRejected):
            await h.serve(chat(stream=stream))

        assert h.adapter.suppliers_called == ["cheap"]
        record = h.record()
        assert (record.outcome, record.status, record.cost) == ("upstream_rejected", 400, 0)
        assert [hold.charged for hold in h.billing.holds] == [0]
