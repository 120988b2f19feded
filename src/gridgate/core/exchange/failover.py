"""Failover: trying a request's offers in order until one answers.

A whole answer (``whole``) tries one offer after another. A stream (``race``) waits for a first
batch, failing over until one arrives, and hedges: when the instrument promises a TTFT and no
first batch has come at ``hedging.fraction`` of it, the next offer starts too and the first to
answer serves (the others are cancelled; the caller pays once, at the serving offer's price).

Before each attempt, ``prepare`` holds the worst case of that offer's answer (re-sizing the
request's hold); what an attempt went wrong with is kept on the tab, and ``exhausted`` turns it
into the error for a request no offer served.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import overload

from gridgate.core.billing.billing import Quote
from gridgate.core.catalog.catalog import PricedOffer
from gridgate.core.exchange.routing import eligible
from gridgate.core.exchange.tab import Ending, Served, Tab
from gridgate.core.health.offer_health import Delivery
from gridgate.errors import (
    GridgateError,
    InsufficientBalance,
    SupplierFailed,
    SupplierTimeout,
    Untranslatable,
)
from gridgate.providers.base import Adapter, Chunk, Completion, UpstreamCall
from gridgate.settings import HedgingSettings

log = logging.getLogger("gridgate.exchange")


_ANSWERED = Ending("ok", 200)  # a whole answer: no first token or generation time to state


@dataclass(slots=True)
class Runner:
    """One offer's stream in a race for the first batch."""

    offer: PricedOffer
    call: UpstreamCall
    chunks: AsyncIterator[list[Chunk]]
    task: asyncio.Task[list[Chunk]] | None  # its first batch, awaited in a race (None: in turn)
    dispatched: float


class Failover:
    def __init__(
        self, adapters: Mapping[str, Adapter], max_attempts: int, hedging: HedgingSettings
    ) -> None:
        self._adapters = adapters
        self._max_attempts = max_attempts
        self._hedging = hedging

    def attempts(self, tab: Tab) -> list[PricedOffer]:
        """The offers to try, in order: the planned candidates offer health allows (routing's
        step 5; its probe slots are the tab's until the request ends)."""
        offers, tab.eligibility = eligible(tab.plan.candidates, tab.desk.health, self._max_attempts)
        return offers

    async def whole(self, tab: Tab) -> tuple[Completion, Served]:
        """A whole answer from the first offer that gives one, settled; raises when none does."""
        for offer in self.attempts(tab):
            remaining = tab.remaining()
            if remaining <= 0:
                break
            call = await prepare(tab, offer)
            try:
                async with asyncio.timeout(remaining):
                    completion = await self._adapters[offer.supplier.wire].complete(call)
            except SupplierFailed as exc:
                tab.observe(offer, _failure(exc))
                tab.errors.append(f"{offer.offer.id}: {exc.message}")
                continue
            except Untranslatable as exc:
                tab.untranslatable = tab.untranslatable or exc
                continue
            except TimeoutError:
                _out_of_time(tab, offer)
                break
            # a whole answer has no first token to time: it is judged on success alone
            tab.observe(offer, Delivery("ok", output_tokens=completion.usage.completion_tokens))
            tab.settle(offer, completion.usage, _ANSWERED, delivered=True)
            return completion, Served(offer.supplier.name, offer.offer.id, completion.model)
        raise exhausted(tab)

    async def race(self, tab: Tab) -> tuple[Runner, list[Chunk]] | None:
        """The first offer to send a first batch, and that batch; None when every attempt
        failed (``tab.errors`` says why)."""
        offers = iter(self.attempts(tab))
        hedge_delay = self._hedge_delay(tab)
        if hedge_delay is None:
            return await self._in_turn(tab, offers)
        clock = tab.desk.clock
        racing: dict[asyncio.Task[list[Chunk]], Runner] = {}
        hedges = 0
        try:
            while True:
                if not racing:
                    runner = await self._launch(tab, offers, hedge=False)
                    if runner is None:
                        return None
                    assert runner.task is not None
                    racing[runner.task] = runner
                wait = tab.remaining()
                hedge_at: float | None = None
                if hedge_delay is not None and hedges < self._hedging.max_extra:
                    hedge_at = min(r.dispatched for r in racing.values()) + hedge_delay
                    wait = min(wait, max(0.0, hedge_at - clock.monotonic()))
                done, _ = await asyncio.wait(
                    racing, timeout=max(wait, 0.0), return_when=asyncio.FIRST_COMPLETED
                )
                if not done:
                    if tab.remaining() <= 0:
                        for runner in racing.values():
                            _out_of_time(tab, runner.offer)
                        return None
                    if hedge_at is not None and clock.monotonic() >= hedge_at:
                        hedges += 1  # one hedge per due time, launched or not
                        runner = await self._launch(tab, offers, hedge=True)
                        if runner is not None:
                            assert runner.task is not None
                            racing[runner.task] = runner
                    continue
                for task in done:
                    runner = racing.pop(task)
                    first = await _first_batch(tab, runner)
                    if first is not None:
                        return runner, first
        finally:
            for task, runner in racing.items():  # the losers: stop them, their upstreams see it
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
                await aclose(runner.chunks)

    async def _in_turn(
        self, tab: Tab, offers: Iterator[PricedOffer]
    ) -> tuple[Runner, list[Chunk]] | None:
        """No hedge can start: each offer's first batch is awaited in turn, in this task (no
        task and no wait set per attempt, as a race needs)."""
        for offer in offers:
            remaining = tab.remaining()
            if remaining <= 0:
                tab.deadline_passed = True
                return None
            call = await prepare(tab, offer)
            chunks = self._adapters[offer.supplier.wire].stream(call)
            dispatched = tab.desk.clock.monotonic()
            deadline = asyncio.timeout(remaining)
            try:
                async with deadline:
                    first = await anext(aiter(chunks))
            except TimeoutError:
                if not deadline.expired():
                    raise
                _out_of_time(tab, offer)
                return None
            except BaseException as exc:
                if not await _failed_first(tab, offer, chunks, exc):
                    raise
                continue
            return Runner(offer, call, chunks, None, dispatched), first
        return None

    async def _launch(
        self, tab: Tab, offers: Iterator[PricedOffer], *, hedge: bool
    ) -> Runner | None:
        """Start the next offer's stream (its first batch awaited in a task); None when no
        offer is left, the deadline has passed, or (for a hedge) the hold does not cover it."""
        for offer in offers:
            if tab.remaining() <= 0:
                tab.deadline_passed = True
                return None
            call = await prepare(tab, offer, hedge=hedge)
            if call is None:
                return None  # the balance cannot hold the hedge's worst case too
            chunks = self._adapters[offer.supplier.wire].stream(call)
            task = asyncio.ensure_future(anext(aiter(chunks)))
            return Runner(offer, call, chunks, task, tab.desk.clock.monotonic())
        return None

    def _hedge_delay(self, tab: Tab) -> float | None:
        """Seconds without a first chunk after which the next offer starts too (None: never)."""
        ceiling = tab.plan.instrument.ttft_ceiling_ms
        if not self._hedging.enabled or ceiling is None or self._hedging.max_extra < 1:
            return None
        return ceiling / 1000 * self._hedging.fraction


async def _first_batch(tab: Tab, runner: Runner) -> list[Chunk] | None:
    """The first batch of a runner whose task is done; None when it failed (noted on the tab)."""
    assert runner.task is not None
    try:
        return runner.task.result()
    except BaseException as exc:
        if not await _failed_first(tab, runner.offer, runner.chunks, exc):
            raise
    return None


def _out_of_time(tab: Tab, offer: PricedOffer) -> None:
    """The request's deadline passed while ``offer`` was still on its first byte."""
    tab.observe(offer, Delivery("timeout"))
    tab.errors.append(f"{offer.offer.id}: the request's deadline passed")
    tab.deadline_passed = True


async def _failed_first(
    tab: Tab, offer: PricedOffer, chunks: AsyncIterator[list[Chunk]], exc: BaseException
) -> bool:
    """Note on the tab why ``offer`` gave no first batch; False when ``exc`` is not such a
    failure (the caller re-raises it)."""
    if isinstance(exc, SupplierFailed):
        await aclose(chunks)
        tab.observe(offer, _failure(exc))
        tab.errors.append(f"{offer.offer.id}: {exc.message}")
    elif isinstance(exc, Untranslatable):
        await aclose(chunks)
        tab.untranslatable = tab.untranslatable or exc
    elif isinstance(exc, StopAsyncIteration):
        tab.errors.append(f"{offer.offer.id}: empty stream")
    else:
        return False
    return True


@overload
async def prepare(tab: Tab, offer: PricedOffer) -> UpstreamCall: ...


@overload
async def prepare(tab: Tab, offer: PricedOffer, *, hedge: bool) -> UpstreamCall | None: ...


async def prepare(tab: Tab, offer: PricedOffer, *, hedge: bool = False) -> UpstreamCall | None:
    """The upstream call for ``offer``, its worst case held. A hedge runs beside an attempt
    in flight, so its larger hold is taken before the standing one is let go, and a hedge
    the balance cannot cover is not started (None)."""
    plan = tab.plan
    billing = tab.desk.billing
    cap = min(offer.offer.max_output, plan.instrument.max_completion_tokens)
    per_choice = min(plan.requested_max, cap) if plan.requested_max is not None else cap
    quote = Quote(offer.price, plan.prompt_bound, per_choice, plan.n)
    held = tab.reservation
    if held is None or tab.quote is None or quote.amount > held.amount:
        if held is not None and not hedge:
            billing.release(held)
            tab.reservation = None
        try:
            reservation, granted = await billing.reserve(
                account_id=tab.caller.account_id,
                key_id=tab.caller.id,
                quote=quote,
                requested=plan.requested_max,
                capped=tab.caller.capped,
            )
        except InsufficientBalance:
            if hedge:
                return None
            raise
        if held is not None and hedge:
            billing.release(held)
        tab.attempts += 1
        tab.reservation, tab.quote = reservation, granted
        tab.hold_id = reservation.hold_id
        if reservation.caps:
            tab.note_caps(reservation)
    else:
        # the standing reservation covers this offer's worst case at the same or a lower cap
        tab.attempts += 1
        held_cap = tab.quote.max_output_tokens
        tab.quote = Quote(offer.price, plan.prompt_bound, min(per_choice, held_cap), plan.n)
    return UpstreamCall(
        supplier=offer.supplier,
        offer=offer.offer,
        request=tab.request,
        max_output_tokens=tab.quote.max_output_tokens,
        stream=tab.stream,
        prompt_estimate=plan.prompt_charge,
    )


def exhausted(tab: Tab) -> GridgateError:
    """The error for a request no attempt served: the caller's, naming the part, when no
    tried offer's wire format could carry the request; else the suppliers'."""
    if tab.untranslatable is not None and not tab.errors:
        return tab.untranslatable
    if tab.errors:
        log.warning(
            "all suppliers failed",
            extra={"request_id": tab.request_id, "errors": tab.errors},
        )
    instrument = tab.plan.instrument.id
    if tab.deadline_passed or (tab.attempts == 0 and tab.remaining() <= 0):
        return SupplierTimeout(
            f"no supplier of instrument {instrument!r} answered within the "
            f"request's deadline of {tab.desk.deadline:g} s ({tab.attempts} tried); "
            "the request was not charged"
        )
    return SupplierFailed(
        f"no supplier could serve instrument {instrument!r} "
        f"({tab.attempts} tried); the request was not charged"
    )


def _failure(exc: SupplierFailed) -> Delivery:
    return Delivery("timeout" if isinstance(exc, SupplierTimeout) else "error")


async def aclose(iterator: AsyncIterator[list[Chunk]]) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()
