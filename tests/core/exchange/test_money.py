"""The money a request may spend: the hold is its worst case, the charge never exceeds it (a
supplier running past its max tokens is cut there), and a balance short of the worst case
lowers the max tokens when what it affords is still a useful answer, else 402."""

from __future__ import annotations

import pytest

from gridgate.errors import InsufficientBalance
from gridgate.money import format_usd_fixed
from tests.core.exchange.harness import (
    Answers,
    Offer,
    Overruns,
    chat,
    content,
    events,
    exchange,
    prompt,
    relay,
    worst_case,
)

CHEAP = Offer("cheap", 100_000_000, 400_000_000, max_output=4_096)


async def test_a_stream_running_past_its_max_tokens_is_cut_at_the_hold() -> None:
    """The supplier ignores max_tokens=20 and streams 200 tokens: the caller gets 20, a clean
    finish for length and [DONE]; the upstream is stopped; the charge is within the hold."""
    async with exchange(CHEAP, behaviours={"cheap": Overruns(tokens=200)}) as h:
        request = chat(max_tokens=20, stream=True)
        session = await h.open_stream(request)
        pieces = await relay(session)

        assert content(pieces) == ["tok "] * 20
        *_, length, done = events(pieces)
        assert [c["finish_reason"] for c in length["choices"]] == ["length"]
        assert (length["id"], length["model"]) == ("chatcmpl-fake", CHEAP.model)
        assert done == "[DONE]"
        [call] = h.adapter.calls
        assert call.call.max_output_tokens == 20  # it was told
        assert call.ended == "closed" and call.batches == 22  # role, 20 tokens, the 21st
        [hold] = h.billing.holds
        assert hold.amount == worst_case(CHEAP, request, 20)
        record = h.record()
        assert (record.outcome, record.status, record.output_tokens) == ("cut_at_hold", 200, 20)
        assert record.cost == CHEAP.price.cost(prompt(request).charge, 20) <= hold.amount
        assert hold.charged == record.cost


async def test_a_cut_answer_tells_a_caller_asking_for_usage_what_it_was_charged_for() -> None:
    async with exchange(CHEAP, behaviours={"cheap": Overruns(tokens=200)}) as h:
        request = chat(max_tokens=20, stream=True, stream_options={"include_usage": True})
        pieces = await relay(await h.open_stream(request))

        *_, length, usage, done = events(pieces)
        assert length["choices"][0]["finish_reason"] == "length"
        assert usage["choices"] == []
        record = h.record()
        assert usage["usage"] == {
            "prompt_tokens": record.input_tokens,
            "completion_tokens": record.output_tokens,
            "total_tokens": record.input_tokens + record.output_tokens,
            "cost": format_usd_fixed(record.cost),  # what it was charged, to the nano-dollar
        }
        assert record.cost > 0
        assert done == "[DONE]"


async def test_an_overrun_charged_past_the_hold_is_charged_the_hold_and_no_balance_goes_negative() -> (
    None
):
    """Each delta carries 40 bytes (10 tokens by gridgate's count): the 20 deltas relayed
    meter to 200 tokens, far past what the hold covers. The account holds exactly the worst
    case: it is charged exactly that, and never goes below zero."""
    request = chat(max_tokens=20, stream=True)
    worst = worst_case(CHEAP, request, 20)
    overrun = Overruns(tokens=200, text="x" * 40)
    async with exchange(CHEAP, behaviours={"cheap": overrun}, balance=worst) as h:
        pieces = await relay(await h.open_stream(request))

        assert len(content(pieces)) == 20
        record = h.record()
        assert record.output_tokens == 200
        assert CHEAP.price.cost(record.input_tokens, record.output_tokens) > worst
        assert record.cost == worst
        assert [hold.charged for hold in h.billing.holds] == [worst]
        await h.close_leases()
        assert h.ledger.balance() == 0
        assert h.ledger.lowest["acct_1"] == 0
        assert not h.ledger.open_holds()


async def test_a_plain_answer_past_its_max_tokens_is_charged_no_more_than_the_hold() -> None:
    """A whole answer cannot be cut, but the charge stops at the hold."""
    request = chat(max_tokens=20)
    worst = worst_case(CHEAP, request, 20)
    async with exchange(CHEAP, behaviours={"cheap": Overruns(tokens=5_000)}, balance=worst) as h:
        answer, _ = await h.complete(request)

        assert answer.usage.completion_tokens == 5_000
        record = h.record()
        assert (record.outcome, record.output_tokens, record.cost) == ("ok", 5_000, worst)
        await h.close_leases()
        assert h.ledger.balance() == 0
        assert h.ledger.lowest["acct_1"] == 0


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_a_balance_short_of_the_worst_case_lowers_the_max_tokens_to_what_it_affords(
    stream: bool,
) -> None:
    """No max_tokens asked: the worst case is the offer's 4,096. The balance affords about
    1,000: the supplier is told that many, and the request is served."""
    request = chat(max_tokens=None, stream=stream)
    bound = prompt(request).upper_bound
    balance = CHEAP.price.cost(bound, 1_000)
    affordable = CHEAP.price.output_tokens_affordable(balance, bound)
    assert 256 <= affordable < 4_096
    async with exchange(CHEAP, behaviours={"cheap": Answers(tokens=5)}, balance=balance) as h:
        await h.serve(request)

        [call] = h.adapter.calls
        assert call.call.max_output_tokens == affordable
        [hold] = h.billing.holds
        assert hold.max_output_tokens == affordable
        assert hold.amount == worst_case(CHEAP, request, affordable) <= balance
        record = h.record()
        assert (record.outcome, record.cost) == ("ok", CHEAP.price.cost(11, 5))
        await h.close_leases()
        assert h.ledger.balance() == balance - record.cost


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_a_balance_that_cannot_afford_a_useful_answer_is_refused_with_402(
    stream: bool,
) -> None:
    """It affords 100 output tokens, under ``billing.min_output_tokens`` (256): 402, nothing
    sent, nothing held, a record of the refusal."""
    request = chat(max_tokens=None, stream=stream)
    balance = CHEAP.price.cost(prompt(request).upper_bound, 100)
    async with exchange(CHEAP, balance=balance) as h:
        with pytest.raises(InsufficientBalance) as raised:
            await h.serve(request)

        assert raised.value.status == 402
        assert "balance too low" in raised.value.message
        assert h.adapter.calls == []
        assert h.billing.holds == []
        record = h.record()
        assert (record.outcome, record.status, record.cost, record.billed) == (
            "rejected",
            402,
            0,
            False,
        )
        await h.close_leases()
        assert h.ledger.balance() == balance


async def test_a_caller_asking_for_fewer_tokens_than_the_floor_needs_only_that_many() -> None:
    """The floor is the caller's own max_tokens when it is smaller: max_tokens=100 and a
    balance for exactly that is served unclamped; one token short of it is 402."""
    request = chat(max_tokens=100)
    worst = worst_case(CHEAP, request, 100)
    async with exchange(CHEAP, balance=worst) as h:
        await h.complete(request)
        assert h.adapter.calls[0].call.max_output_tokens == 100
    short = CHEAP.price.cost(prompt(request).upper_bound, 99)
    async with exchange(CHEAP, balance=short) as h:
        with pytest.raises(InsufficientBalance):
            await h.complete(request)
        assert h.adapter.calls == []
