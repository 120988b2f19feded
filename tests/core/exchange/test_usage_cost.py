"""``usage.cost``: every answer says what it was charged — a decimal string of USD with 9
places, equal to its usage record's ``cost`` — a whole answer in its body, a stream in its last
usage chunk, sent only once the charge is settled."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from gridgate.errors import SupplierFailed
from gridgate.money import format_usd_fixed
from gridgate.providers.base import Chunk, Usage
from tests.core.exchange.harness import (
    Answers,
    Behaviour,
    CallLog,
    ManualClock,
    Offer,
    SlowFirstToken,
    chat,
    events,
    exchange,
    finish_chunk,
    instrument,
    relay,
    role_chunk,
    text_chunk,
    usage_chunk,
)

CHEAP = Offer("cheap", 100_000_000, 400_000_000)
USAGE = {"stream_options": {"include_usage": True}}


async def test_a_whole_answer_says_in_its_usage_what_it_was_charged() -> None:
    async with exchange(CHEAP, behaviours={"cheap": Answers(tokens=7)}) as h:
        answer, _ = await h.complete(chat(max_tokens=50))

        record = h.record()
        assert record.cost == CHEAP.price.cost(11, 7) > 0
        body = json.loads(answer.body)
        assert body["usage"] == {
            "prompt_tokens": 11,
            "completion_tokens": 7,
            "total_tokens": 18,
            "cost": format_usd_fixed(record.cost),
        }
        assert body["choices"][0]["message"]["content"] == "tok " * 7


async def test_a_streams_usage_chunk_is_held_until_the_charge_is_settled_and_carries_it() -> None:
    async with exchange(CHEAP, behaviours={"cheap": Answers(tokens=7)}) as h:
        session = await h.open_stream(chat(max_tokens=50, stream=True, **USAGE))
        pieces: list[bytes] = []
        async for piece in session.chunks():
            if b'"usage":{' in piece:
                # the supplier sent its usage before [DONE]: it leaves only with the settle
                assert h.usage.of("req-1"), "the usage chunk left before the charge was settled"
            pieces.append(piece)

        record = h.record()
        *_, finish, usage, done = events(pieces)
        assert finish["choices"][0]["finish_reason"] == "stop"
        assert (usage["choices"], done) == ([], "[DONE]")
        assert usage["usage"]["cost"] == format_usd_fixed(record.cost)
        assert record.cost == CHEAP.price.cost(11, 7)
        assert (usage["id"], usage["model"]) == ("chatcmpl-fake", CHEAP.model)
        assert [e for e in events(pieces) if isinstance(e, dict) and e.get("usage")] == [usage]


async def test_a_stream_whose_supplier_sent_no_usage_gets_one_with_what_was_metered() -> None:
    async with exchange(CHEAP, behaviours={"cheap": Answers(tokens=7, report_usage=False)}) as h:
        pieces = await relay(await h.open_stream(chat(max_tokens=50, stream=True, **USAGE)))

        record = h.record()
        *_, usage, done = events(pieces)
        assert done == "[DONE]"
        assert usage["choices"] == []
        assert usage["usage"] == {
            "prompt_tokens": record.input_tokens,
            "completion_tokens": record.output_tokens,
            "total_tokens": record.input_tokens + record.output_tokens,
            "cost": format_usd_fixed(record.cost),
        }
        assert record.usage_estimated and record.cost > 0


async def test_a_stream_without_include_usage_carries_no_usage_and_no_cost() -> None:
    async with exchange(CHEAP, behaviours={"cheap": Answers(tokens=7)}) as h:
        pieces = await relay(await h.open_stream(chat(max_tokens=50, stream=True)))

        assert b"usage" not in b"".join(pieces) and b"cost" not in b"".join(pieces)
        assert h.record().cost > 0


async def test_an_out_of_spec_stream_not_billed_says_its_cost_is_zero() -> None:
    slow = SlowFirstToken()
    spec = instrument(ttft_ceiling_ms=1_000)
    async with exchange(CHEAP, behaviours={"cheap": slow}, instrument_record=spec) as h:
        opening = asyncio.create_task(h.open_stream(chat(max_tokens=5, stream=True, **USAGE)))
        await h.adapter.reached("cheap")
        h.clock.advance(1.5)
        slow.gate.set()
        pieces = await relay(await opening)

        record = h.record()
        assert (record.in_spec, record.cost, record.billed) == (False, 0, False)
        *_, usage, _done = events(pieces)
        assert usage["usage"]["cost"] == "0.000000000"
        assert usage["usage"]["completion_tokens"] == record.output_tokens == 5


class UsageThenFails(Behaviour):
    """A whole answer and its usage, then the connection drops before ``[DONE]``."""

    async def batches(self, log: CallLog, clock: ManualClock) -> AsyncIterator[list[Chunk]]:
        model = log.call.offer.model
        yield [role_chunk(model), text_chunk(model, "tok "), finish_chunk(model, "stop")]
        yield [usage_chunk(model, Usage(11, 1))]
        raise SupplierFailed("the supplier connection failed after its usage")


async def test_a_usage_chunk_held_when_the_supplier_fails_goes_out_with_its_cost_first() -> None:
    async with exchange(CHEAP, behaviours={"cheap": UsageThenFails()}) as h:
        pieces = await relay(await h.open_stream(chat(max_tokens=50, stream=True, **USAGE)))

        record = h.record()
        assert (record.outcome, record.cost) == ("stream_error", CHEAP.price.cost(11, 1))
        *_, usage, error = events(pieces)
        assert usage["usage"]["cost"] == format_usd_fixed(record.cost)
        assert error["error"]["message"] == "the supplier connection failed after its usage"
