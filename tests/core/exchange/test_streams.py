"""A stream after its first chunk: however it ends (the answer's end, the consumer stopping or
going away, the supplier failing or going silent), it is settled exactly once, for what was
delivered to the caller."""

from __future__ import annotations

import asyncio

import pytest

from tests.core.exchange.harness import (
    Answers,
    FailsMidStream,
    Offer,
    Stalls,
    chat,
    content,
    events,
    exchange,
    prompt,
    relay,
)

CHEAP = Offer("cheap", 100_000_000, 400_000_000)
DEAR = Offer("dear", 300_000_000, 1_200_000_000)


async def test_a_whole_stream_is_charged_the_suppliers_usage_once() -> None:
    async with exchange(CHEAP, behaviours={"cheap": Answers(tokens=7)}) as h:
        session = await h.open_stream(chat(max_tokens=50, stream=True))
        pieces = await relay(session)

        assert session.ended
        assert content(pieces) == ["tok "] * 7
        assert events(pieces)[-1] == "[DONE]"
        # without include_usage the supplier's usage chunk is not relayed
        assert not any(isinstance(e, dict) and e.get("usage") for e in events(pieces))
        [call] = h.adapter.calls
        assert call.call.max_output_tokens == 50
        # every batch was read, to [DONE]; there the exchange settles and closes the upstream
        # without reading on (the supplier's iterator never sees its own end)
        assert (call.batches, call.ended) == (11, "closed")
        record = h.record()
        cost = CHEAP.price.cost(11, 7)
        assert (record.outcome, record.status, record.cost, record.billed) == (
            "ok",
            200,
            cost,
            True,
        )
        assert (record.input_tokens, record.output_tokens, record.usage_estimated) == (11, 7, False)
        assert [hold.charged for hold in h.billing.holds] == [cost]


async def test_a_stream_the_consumer_stops_mid_way_is_settled_once_for_what_was_delivered() -> None:
    async with exchange(CHEAP, behaviours={"cheap": Answers(tokens=10)}) as h:
        request = chat(max_tokens=50, stream=True)
        session = await h.open_stream(request)
        pieces = session.chunks()
        received = [await anext(pieces) for _ in range(4)]  # the role chunk and 3 tokens
        await pieces.aclose()

        assert content(received) == ["tok "] * 3
        [call] = h.adapter.calls
        assert call.ended == "closed"  # the upstream was stopped
        # the supplier's usage never came: the delivered text is metered, the prompt at
        # gridgate's text-only charge estimate
        charge = prompt(request).charge
        cost = CHEAP.price.cost(charge, 3)
        record = h.record()
        assert (record.outcome, record.status, record.billed) == ("cancelled", 499, True)
        assert (record.input_tokens, record.output_tokens, record.usage_estimated) == (
            charge,
            3,
            True,
        )
        assert record.cost == cost
        assert record.in_spec is None  # a cancelled delivery is not judged
        assert [hold.charged for hold in h.billing.holds] == [cost]
        await session.close()  # a no-op once settled
        assert len(h.usage.of("req-1")) == 1
        await h.close_leases()
        assert h.ledger.balance() == h.funded - cost


async def test_a_consumer_cancelled_while_the_supplier_is_silent_is_settled_as_cancelled() -> None:
    silent = Stalls(after=2)
    async with exchange(CHEAP, behaviours={"cheap": silent}) as h:
        request = chat(max_tokens=50, stream=True)
        session = await h.open_stream(request)
        received: list[bytes] = []

        async def consume() -> None:
            async for piece in session.chunks():
                received.append(piece)

        consumer = asyncio.create_task(consume())
        await silent.silent.wait()  # the role chunk and 2 tokens were read and relayed
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consumer

        assert content(received) == ["tok "] * 2
        assert h.adapter.calls[0].ended == "cancelled"
        record = h.record()
        cost = CHEAP.price.cost(prompt(request).charge, 2)
        assert (record.outcome, record.status, record.output_tokens, record.cost) == (
            "cancelled",
            499,
            2,
            cost,
        )
        assert [hold.charged for hold in h.billing.holds] == [cost]


async def test_a_session_closed_before_relaying_anything_is_not_charged() -> None:
    async with exchange(CHEAP) as h:
        session = await h.open_stream(chat(stream=True))
        await session.close()

        assert h.adapter.calls[0].ended == "closed"
        record = h.record()
        assert (record.outcome, record.status, record.cost, record.billed) == (
            "cancelled",
            499,
            0,
            False,
        )
        assert [hold.charged for hold in h.billing.holds] == [0]
        await h.close_leases()
        assert h.ledger.balance() == h.funded


async def test_a_stream_failing_mid_way_ends_with_an_error_event_and_charges_what_was_relayed() -> (
    None
):
    async with exchange(CHEAP, DEAR, behaviours={"cheap": FailsMidStream(after=3)}) as h:
        request = chat(max_tokens=50, stream=True)
        session = await h.open_stream(request)
        pieces = await relay(session)

        assert session.ended
        assert content(pieces) == ["tok "] * 3
        last = events(pieces)[-1]
        assert last["error"]["message"] == "the supplier connection failed mid-answer"
        assert "[DONE]" not in events(pieces)
        assert h.adapter.suppliers_called == ["cheap"]  # no failover once the caller has bytes
        cost = CHEAP.price.cost(prompt(request).charge, 3)
        record = h.record()
        assert (record.outcome, record.status, record.billed) == ("stream_error", 502, True)
        assert (record.output_tokens, record.usage_estimated, record.cost) == (3, True, cost)
        assert (record.in_spec, record.spec_note) == (False, "upstream error")
        assert record.error == "the supplier connection failed mid-answer"
        assert [hold.charged for hold in h.billing.holds] == [cost]
        await h.close_leases()
        assert h.ledger.balance() == h.funded - cost


async def test_a_stream_failing_before_any_content_is_not_charged() -> None:
    async with exchange(CHEAP, behaviours={"cheap": FailsMidStream(after=0)}) as h:
        request = chat(max_tokens=50, stream=True)
        pieces = await relay(await h.open_stream(request))

        assert content(pieces) == []
        assert "error" in events(pieces)[-1]
        record = h.record()
        assert (record.outcome, record.cost, record.billed, record.output_tokens) == (
            "stream_error",
            0,
            False,
            0,
        )
        assert record.input_tokens == prompt(request).charge  # counted, but not charged


async def test_a_supplier_going_silent_mid_answer_ends_the_stream_with_a_504_error_event() -> None:
    """The adapter's idle timeout fires (``SupplierTimeout`` mid-stream): the stream ends with
    an error event; what was relayed is charged."""
    silent = Stalls(after=2)
    async with exchange(CHEAP, behaviours={"cheap": silent}) as h:
        request = chat(max_tokens=50, stream=True)
        session = await h.open_stream(request)
        pieces = session.chunks()
        received = [await anext(pieces) for _ in range(3)]
        assert not silent.silent.is_set()
        silent.gate.set()
        received += [piece async for piece in pieces]

        assert content(received) == ["tok "] * 2
        assert events(received)[-1]["error"]["type"] == "timeout_error"
        record = h.record()
        cost = CHEAP.price.cost(prompt(request).charge, 2)
        assert (record.outcome, record.status, record.cost) == ("stream_error", 504, cost)
        assert (record.in_spec, record.spec_note) == (False, "timed out")


async def test_a_long_stream_records_checkpoints_then_its_final_record_and_is_charged_once() -> (
    None
):
    """Every ``checkpoint_seconds`` of the clock after the first token, a stream records what
    it has delivered (``in_progress``, for a crashed process's lease expiry to charge); the
    final record replaces them, and the hold is charged once."""
    slow = Answers(tokens=5, seconds_per_batch=0.6)
    async with exchange(CHEAP, behaviours={"cheap": slow}, checkpoint_seconds=1.0) as h:
        request = chat(max_tokens=50, stream=True)
        await relay(await h.open_stream(request))

        *checkpoints, final = h.usage.of("req-1")
        charge = prompt(request).charge
        assert [(r.outcome, r.output_tokens) for r in checkpoints] == [
            ("in_progress", 2),
            ("in_progress", 4),
            ("in_progress", 5),
        ]
        assert [r.cost for r in checkpoints] == [CHEAP.price.cost(charge, n) for n in (2, 4, 5)]
        assert all(r.hold_id == final.hold_id for r in checkpoints)
        cost = CHEAP.price.cost(11, 5)
        assert (final.outcome, final.output_tokens, final.cost) == ("ok", 5, cost)
        assert [hold.charged for hold in h.billing.holds] == [cost]
