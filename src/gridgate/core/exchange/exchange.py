"""The exchange: one request from a validated body to a settled, recorded answer.

    resolve instrument ─► check its limits ─► rank qualifying offers (cheapest first)
      ─► per attempt: quote worst case ─► HOLD ─► adapter ─► (supplier failed before the first
         byte? release, next offer) ─► meter ─► SETTLE ─► usage record (queued)

Nothing here knows which HTTP surface called: requests arrive as the canonical ``ChatRequest``
and answers leave in the canonical OpenAI form.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import overload

import msgspec

from gridgate.core.billing.billing import Billing, Quote
from gridgate.core.billing.leases import Reservation
from gridgate.core.billing.usage_writer import UsageWriter
from gridgate.core.catalog.catalog import Catalog, PricedOffer
from gridgate.core.clock import Clock
from gridgate.core.exchange.costly_options import keeping_data, refuse_unpriced
from gridgate.core.exchange.preferences import DroppedFields, Figures, Preferences, no_figures
from gridgate.core.exchange.routing import Needs, rank
from gridgate.core.exchange.usage_error import error_summary, summary
from gridgate.core.health.offer_health import (
    Delivery,
    Eligibility,
    HealthPolicy,
    OfferHealth,
    Outcome,
    Verdict,
    verdict,
)
from gridgate.core.limits.guard import Pass, RateGuard
from gridgate.echo import capped
from gridgate.errors import (
    GridgateError,
    InsufficientBalance,
    SupplierFailed,
    SupplierTimeout,
    UnknownInstrument,
    Untranslatable,
    UpstreamRejected,
    ValidationFailed,
    http_status,
)
from gridgate.protocol.openai_chat import ChatRequest
from gridgate.protocol.openai_stream import DONE_EVENT, error_event, length_cutoff
from gridgate.protocol.tokens import measure_prompt
from gridgate.providers.base import Adapter, Chunk, Completion, UpstreamCall, Usage, counted
from gridgate.settings import HedgingSettings, UpstreamSettings
from gridgate.storage.records import (
    Capability,
    InstrumentRecord,
    KeyRecord,
    UsageRecord,
)

log = logging.getLogger("gridgate.exchange")


@dataclass(frozen=True, slots=True)
class Plan:
    instrument: InstrumentRecord
    candidates: list[PricedOffer]
    prompt_bound: int
    prompt_estimate: int
    prompt_charge: int  # what the prompt is charged when no supplier counted it
    requested_max: int | None
    n: int


@dataclass(slots=True)
class Served:
    """Who served an answer (for response headers)."""

    supplier: str
    offer_id: str
    model: str


@dataclass(slots=True)
class _Attempt:
    """The state of one request across attempts: its hold and what it has cost so far."""

    request_id: str
    caller: KeyRecord
    plan: Plan
    started: float
    created_us: int
    stream: bool
    reservation: Reservation | None = None
    quote: Quote | None = None
    attempts: int = 0
    hold_id: str | None = None  # the lease the last reservation was on, for the usage record
    errors: list[str] = field(default_factory=list)
    untranslatable: Untranslatable | None = None  # the first offer whose wire could not carry it
    deadline_passed: bool = False
    admission: Eligibility | None = None  # the offers health admitted, and any probe slot taken
    admitted: Pass | None = None  # the rate-limit admission, released when the request ends
    used_tokens: int = 0  # input + output of the settled answer (corrects the admission)


@dataclass(slots=True)
class _Runner:
    """One offer's stream in a race for the first batch."""

    offer: PricedOffer
    call: UpstreamCall
    chunks: AsyncIterator[list[Chunk]]
    task: asyncio.Task[list[Chunk]]
    dispatched: float


class Exchange:
    def __init__(
        self,
        *,
        catalog: Callable[[], Catalog],
        billing: Billing,
        adapters: Mapping[str, Adapter],
        usage: UsageWriter,
        clock: Clock,
        upstream: UpstreamSettings,
        checkpoint_seconds: float = 1.0,
        health: OfferHealth | None = None,
        policy: HealthPolicy | None = None,
        hedging: HedgingSettings | None = None,
        dropped_fields: Mapping[str, DroppedFields] | None = None,
        figures: Figures = no_figures,
        guard: RateGuard | None = None,
    ) -> None:
        self._catalog = catalog
        self._guard = guard  # rate limits (None: no limits configured)
        self._billing = billing
        self._adapters = adapters
        # per wire format, what of a request it would drop (``provider.require_parameters``)
        self._dropped_fields: Mapping[str, DroppedFields] = dropped_fields or {}
        self._figures = figures  # measured offer figures (``provider.sort``)
        self._usage = usage
        self._clock = clock
        self.clock = clock
        self._max_attempts = upstream.max_attempts
        self._hedging = hedging or HedgingSettings()
        # measured offer health: who may serve, and each delivery's verdict against the spec
        self._health = health
        self._policy = policy or (health.policy if health is not None else HealthPolicy())
        self._deadline = upstream.deadline_seconds
        self.checkpoint_seconds = checkpoint_seconds

    # -- planning ------------------------------------------------------------------------
    def plan(self, request: ChatRequest) -> Plan:
        """Resolve the instrument, check its limits and rank the offers. Pure, no I/O."""
        catalog = self._catalog()
        instrument = catalog.instrument(request.model)
        if instrument is None:
            raise UnknownInstrument(
                f"model {capped(request.model)!r} is not an instrument of this exchange; "
                "GET /v1/models lists them",
                param="model",
            )
        refuse_unpriced(request)
        requested = request.effective_max_tokens
        if requested is not None and requested > instrument.max_completion_tokens:
            field_name = (
                "max_completion_tokens"
                if request.max_completion_tokens not in (None, msgspec.UNSET)
                else "max_tokens"
            )
            raise ValidationFailed(
                f"{field_name}: at most {instrument.max_completion_tokens} for instrument "
                f"{instrument.id!r} (got {requested})",
                param=field_name,
            )
        size = measure_prompt(request)
        estimate = size.estimate
        if estimate > instrument.max_input_tokens:
            raise ValidationFailed(
                f"messages: the prompt is about {estimate} tokens; instrument {instrument.id!r} "
                f"accepts at most {instrument.max_input_tokens} input tokens",
                param="messages",
                code="context_length_exceeded",
            )
        if request.has_image_input and not instrument.image_input:
            raise ValidationFailed(
                f"messages: instrument {instrument.id!r} does not accept image input",
                param="messages",
            )
        effort = request.reasoning_effort
        if (
            isinstance(effort, str)
            and instrument.reasoning_efforts
            and effort not in instrument.reasoning_efforts
        ):
            raise ValidationFailed(
                f"reasoning_effort: instrument {instrument.id!r} supports "
                f"{', '.join(instrument.reasoning_efforts)} (got {effort!r})",
                param="reasoning_effort",
            )
        caps: set[Capability] = set()
        if request.wants_tools:
            caps.add("tools")
        if request.wants_json_schema:
            caps.add("json_schema")
        if request.has_image_input:
            caps.add("vision")
        if request.logprobs is True:
            caps.add("logprobs")
        needs = Needs(
            capabilities=frozenset(caps),
            prompt_tokens=estimate,
            max_output_tokens=requested,
            n=request.n_choices,
        )
        preferences = Preferences.of(request, self._dropped_fields)  # None: no ``provider``
        offers = keeping_data(request, instrument, catalog.offers_for(instrument.id))
        candidates = rank(instrument, offers, needs, preferences, self._figures)
        return Plan(
            instrument=instrument,
            candidates=candidates,
            prompt_bound=size.upper_bound,
            prompt_estimate=estimate,
            prompt_charge=size.charge,
            requested_max=requested,
            n=request.n_choices,
        )

    # -- non-streamed ----------------------------------------------------------------------
    async def complete(
        self,
        caller: KeyRecord,
        request: ChatRequest,
        request_id: str,
        headers: dict[str, str] | None = None,
    ) -> tuple[Completion, Served]:
        """Serve a whole answer. ``headers`` receives the rate-limit headers of the answer."""
        state = self._start(caller, request, request_id, stream=False)
        await self._admit(state, headers)
        try:
            for offer in self._attempts(state):
                remaining = self._remaining(state)
                if remaining <= 0:
                    break
                call = await self._prepare(state, offer, request)
                try:
                    async with asyncio.timeout(remaining):
                        completion = await self._adapters[offer.supplier.wire].complete(call)
                except SupplierFailed as exc:
                    self.observe(state, offer, _failure(exc))
                    state.errors.append(f"{offer.offer.id}: {exc.message}")
                    continue
                except Untranslatable as exc:
                    state.untranslatable = state.untranslatable or exc
                    continue
                except TimeoutError:
                    self.observe(state, offer, Delivery("timeout"))
                    state.errors.append(f"{offer.offer.id}: the request's deadline passed")
                    state.deadline_passed = True
                    break
                # a whole answer has no first token to time: it is judged on success alone
                delivered = Delivery("ok", output_tokens=completion.usage.completion_tokens)
                self.observe(state, offer, delivered)
                self.settle(state, offer, completion.usage, outcome="ok", status=200)
                return completion, Served(offer.supplier.name, offer.offer.id, completion.model)
            raise self._exhausted(state)
        except GridgateError as exc:
            self._fail(state, exc)
            raise
        except BaseException:
            self._fail(state, None)
            raise
        finally:
            self._end(state)

    # -- streamed -----------------------------------------------------------------------------
    async def open_stream(
        self,
        caller: KeyRecord,
        request: ChatRequest,
        request_id: str,
        headers: dict[str, str] | None = None,
    ) -> StreamSession:
        """Route, hold and wait for the first chunk, failing over until one arrives, and
        hedging: when the instrument promises a TTFT and no first chunk has come at
        ``hedging.fraction`` of it, the next offer starts too and the first to answer serves
        (the other is cancelled; the caller pays once, at the serving offer's price).
        ``headers`` receives the rate-limit headers of the answer."""
        state = self._start(caller, request, request_id, stream=True)
        await self._admit(state, headers)
        try:
            won = await self._race(state, request)
            if won is None:
                raise self._exhausted(state)
            offer, call, chunks, first, dispatched = won
            state.quote = Quote(
                offer.price, state.plan.prompt_bound, call.max_output_tokens, state.plan.n
            )
            return StreamSession(
                self, state, offer, chunks, first, request.include_usage, dispatched
            )
        except GridgateError as exc:
            self._fail(state, exc)
            self._end(state)
            raise
        except BaseException:
            self._fail(state, None)
            self._end(state)
            raise

    def _hedge_delay(self, state: _Attempt) -> float | None:
        """Seconds without a first chunk after which the next offer starts too (None: never)."""
        ceiling = state.plan.instrument.ttft_ceiling_ms
        if not self._hedging.enabled or ceiling is None or self._hedging.max_extra < 1:
            return None
        return ceiling / 1000 * self._hedging.fraction

    async def _race(
        self, state: _Attempt, request: ChatRequest
    ) -> tuple[PricedOffer, UpstreamCall, AsyncIterator[list[Chunk]], list[Chunk], float] | None:
        """The first offer to send a first batch, with its call, stream, batch and dispatch
        time; None when every attempt failed (``state.errors`` says why)."""
        offers = iter(self._attempts(state))
        hedge_delay = self._hedge_delay(state)
        racing: dict[asyncio.Task[list[Chunk]], _Runner] = {}
        hedges = 0
        try:
            while True:
                if not racing:
                    runner = await self._launch(state, offers, request, hedge=False)
                    if runner is None:
                        return None
                    racing[runner.task] = runner
                remaining = self._remaining(state)
                wait = remaining
                hedge_at: float | None = None
                if hedge_delay is not None and hedges < self._hedging.max_extra:
                    hedge_at = min(r.dispatched for r in racing.values()) + hedge_delay
                    wait = min(wait, max(0.0, hedge_at - self._clock.monotonic()))
                done, _ = await asyncio.wait(
                    racing, timeout=max(wait, 0.0), return_when=asyncio.FIRST_COMPLETED
                )
                if not done:
                    if self._remaining(state) <= 0:
                        for runner in racing.values():
                            self.observe(state, runner.offer, Delivery("timeout"))
                            state.errors.append(
                                f"{runner.offer.offer.id}: the request's deadline passed"
                            )
                        state.deadline_passed = True
                        return None
                    if hedge_at is not None and self._clock.monotonic() >= hedge_at:
                        hedges += 1  # one hedge per due time, launched or not
                        runner = await self._launch(state, offers, request, hedge=True)
                        if runner is not None:
                            racing[runner.task] = runner
                    continue
                for task in done:
                    runner = racing.pop(task)
                    try:
                        first = task.result()
                    except SupplierFailed as exc:
                        await _aclose(runner.chunks)
                        self.observe(state, runner.offer, _failure(exc))
                        state.errors.append(f"{runner.offer.offer.id}: {exc.message}")
                        continue
                    except Untranslatable as exc:
                        await _aclose(runner.chunks)
                        state.untranslatable = state.untranslatable or exc
                        continue
                    except StopAsyncIteration:
                        state.errors.append(f"{runner.offer.offer.id}: empty stream")
                        continue
                    return runner.offer, runner.call, runner.chunks, first, runner.dispatched
        finally:
            for task, runner in racing.items():  # the losers: stop them, their upstreams see it
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
                await _aclose(runner.chunks)

    async def _launch(
        self,
        state: _Attempt,
        offers: Iterator[PricedOffer],
        request: ChatRequest,
        *,
        hedge: bool,
    ) -> _Runner | None:
        """Start the next offer's stream (its first batch awaited in a task); None when no
        offer is left, the deadline has passed, or (for a hedge) the hold does not cover it."""
        for offer in offers:
            if self._remaining(state) <= 0:
                state.deadline_passed = True
                return None
            call = await self._prepare(state, offer, request, hedge=hedge)
            if call is None:
                return None  # the balance cannot hold the hedge's worst case too
            chunks = self._adapters[offer.supplier.wire].stream(call)
            task = asyncio.ensure_future(anext(aiter(chunks)))
            return _Runner(offer, call, chunks, task, self._clock.monotonic())
        return None

    # -- shared steps ---------------------------------------------------------------------------
    def _start(
        self, caller: KeyRecord, request: ChatRequest, request_id: str, *, stream: bool
    ) -> _Attempt:
        plan = self.plan(request)
        return _Attempt(
            request_id=request_id,
            caller=caller,
            plan=plan,
            started=self._clock.monotonic(),
            created_us=self._clock.now_us(),
            stream=stream,
        )

    async def _admit(self, state: _Attempt, headers: dict[str, str] | None) -> None:
        """Admit the request against its rate limits, its tokens at the worst case (the
        prompt's upper bound and the most output any candidate may give), or raise
        ``RateLimited``: then nothing is held and no usage is recorded."""
        if self._guard is None:
            return
        plan = state.plan
        limits = self._guard.limits(state.caller, plan.instrument.id)
        if not limits:
            return  # none applies: nothing to count
        cap = max(
            (
                min(o.offer.max_output, plan.instrument.max_completion_tokens)
                for o in plan.candidates
            ),
            default=plan.instrument.max_completion_tokens,
        )
        per_choice = min(plan.requested_max, cap) if plan.requested_max is not None else cap
        tokens = plan.prompt_bound + plan.n * per_choice
        admitted = await self._guard.admit(
            state.request_id, state.caller, plan.instrument.id, tokens, limits
        )
        state.admitted = admitted
        if admitted is not None and headers is not None:
            headers.update(admitted.headers)

    @property
    def health(self) -> OfferHealth | None:
        return self._health

    def _attempts(self, state: _Attempt) -> list[PricedOffer]:
        """The offers to try, in order: the ranked candidates health admits (an ejected offer
        sits out; one on probation takes a probe slot, given back when the request ends)."""
        if self._health is None:
            return state.plan.candidates[: self._max_attempts]
        state.admission = self._health.eligible(state.plan.candidates, limit=self._max_attempts)
        return list(state.admission.offers[: self._max_attempts])

    def observe(self, state: _Attempt, offer: PricedOffer, delivery: Delivery) -> None:
        """Tell offer health what one attempt delivered (a caller's cancellation is ignored)."""
        if self._health is not None:
            self._health.record(offer.offer.id, state.plan.instrument, delivery)

    def billing_verdict(self, state: _Attempt, delivery: Delivery) -> Verdict:
        """The delivery judged against the instrument's spec as the caller saw it (its TTFT
        counts from the request, failovers included)."""
        return verdict(state.plan.instrument, delivery, self._policy)

    def end(self, state: _Attempt) -> None:
        """The request is over: give back any probe slot it held."""
        self._end(state)

    def _end(self, state: _Attempt) -> None:
        if state.admission is not None:
            state.admission.close()
            state.admission = None
        if state.admitted is not None and self._guard is not None:
            admitted, state.admitted = state.admitted, None
            self._guard.release(admitted, state.used_tokens)

    @overload
    async def _prepare(
        self, state: _Attempt, offer: PricedOffer, request: ChatRequest
    ) -> UpstreamCall: ...

    @overload
    async def _prepare(
        self, state: _Attempt, offer: PricedOffer, request: ChatRequest, *, hedge: bool
    ) -> UpstreamCall | None: ...

    async def _prepare(
        self,
        state: _Attempt,
        offer: PricedOffer,
        request: ChatRequest,
        *,
        hedge: bool = False,
    ) -> UpstreamCall | None:
        """The upstream call for ``offer``, its worst case held. A hedge runs beside an attempt
        in flight, so its larger hold is taken before the standing one is let go, and a hedge
        the balance cannot cover is not started (None)."""
        plan = state.plan
        cap = min(offer.offer.max_output, plan.instrument.max_completion_tokens)
        per_choice = min(plan.requested_max, cap) if plan.requested_max is not None else cap
        quote = Quote(offer.price, plan.prompt_bound, per_choice, plan.n)
        held = state.reservation
        if held is None or state.quote is None or quote.amount > held.amount:
            if held is not None and not hedge:
                self._billing.release(held)
                state.reservation = None
            try:
                reservation, granted = await self._billing.reserve(
                    account_id=state.caller.account_id,
                    key_id=state.caller.id,
                    quote=quote,
                    requested=plan.requested_max,
                )
            except InsufficientBalance:
                if hedge:
                    return None
                raise
            if held is not None and hedge:
                self._billing.release(held)
            state.attempts += 1
            state.reservation, state.quote = reservation, granted
            state.hold_id = reservation.hold_id
        else:
            # the standing reservation covers this offer's worst case at the same or a lower cap
            state.attempts += 1
            assert state.quote is not None
            held_cap = state.quote.max_output_tokens
            state.quote = Quote(offer.price, plan.prompt_bound, min(per_choice, held_cap), plan.n)
        return UpstreamCall(
            supplier=offer.supplier,
            offer=offer.offer,
            request=request,
            max_output_tokens=state.quote.max_output_tokens,
            stream=state.stream,
            prompt_estimate=plan.prompt_charge,
        )

    def _remaining(self, state: _Attempt) -> float:
        """Seconds left before the request's deadline (for its first byte, over all attempts)."""
        return state.started + self._deadline - self._clock.monotonic()

    def _exhausted(self, state: _Attempt) -> GridgateError:
        """The error for a request no attempt served: the caller's, naming the part, when no
        tried offer's wire format could carry the request; else the suppliers'."""
        if state.untranslatable is not None and not state.errors:
            return state.untranslatable
        if state.errors:
            log.warning(
                "all suppliers failed",
                extra={"request_id": state.request_id, "errors": state.errors},
            )
        if state.deadline_passed or (state.attempts == 0 and self._remaining(state) <= 0):
            return SupplierTimeout(
                f"no supplier of instrument {state.plan.instrument.id!r} answered within the "
                f"request's deadline of {self._deadline:g} s ({state.attempts} tried); "
                "the request was not charged"
            )
        return SupplierFailed(
            f"no supplier could serve instrument {state.plan.instrument.id!r} "
            f"({state.attempts} tried); the request was not charged"
        )

    def settle(
        self,
        state: _Attempt,
        offer: PricedOffer,
        usage: Usage,
        *,
        outcome: str,
        status: int,
        error: str | None = None,
        ttft_us: int | None = None,
        generation_us: int | None = None,
        judged: Verdict | None = None,
        delivered: bool = True,
    ) -> None:
        """Charge what ``usage`` costs at ``offer``'s price (never more than the hold), release
        the rest, and queue the usage record. A delivery that gave the caller nothing (not
        ``delivered``) is not charged; nor is one ``judged`` out of spec, unless its instrument
        bills out-of-spec deliveries."""
        assert state.reservation is not None
        reservation, state.reservation = state.reservation, None
        cost = offer.price.cost(usage.prompt_tokens, usage.completion_tokens)
        if not delivered:
            cost = 0
        if (
            judged is not None
            and not judged.billable
            and not state.plan.instrument.bill_out_of_spec
        ):
            cost = 0
        charged = self._billing.settle(reservation, cost)
        state.used_tokens = usage.prompt_tokens + usage.completion_tokens
        self._record(
            state,
            offer,
            usage,
            charged,
            outcome=outcome,
            status=status,
            error=error,
            ttft_us=ttft_us,
            generation_us=generation_us,
            judged=judged,
        )

    def checkpoint(
        self,
        state: _Attempt,
        offer: PricedOffer,
        usage: Usage,
        *,
        ttft_us: int | None,
        delivered: bool = True,
    ) -> None:
        """Record what a stream has delivered so far (outcome ``in_progress``, cost capped at its
        reservation; nothing while no content has reached the caller). The final record
        replaces it; if the process dies first, the expiry of the lease charges this and marks
        the record ``interrupted``."""
        assert state.reservation is not None
        cost = offer.price.cost(usage.prompt_tokens, usage.completion_tokens) if delivered else 0
        self._record(
            state,
            offer,
            usage,
            min(cost, state.reservation.amount),
            outcome="in_progress",
            status=200,
            ttft_us=ttft_us,
        )

    def elapsed_us(self, state: _Attempt) -> int:
        return int((self._clock.monotonic() - state.started) * 1_000_000)

    def _fail(self, state: _Attempt, error: GridgateError | None) -> None:
        """Release the hold (charging nothing) and record the failure."""
        if state.reservation is not None:
            reservation, state.reservation = state.reservation, None
            self._billing.release(reservation)
        if error is None:
            outcome, status = "cancelled", 499
        elif isinstance(error, UpstreamRejected):
            outcome, status = "upstream_rejected", http_status(error)
        elif isinstance(error, SupplierFailed):
            outcome, status = "upstream_error", http_status(error)
        else:
            outcome, status = "rejected", http_status(error)
        self._record(
            state,
            None,
            Usage(),
            0,
            outcome=outcome,
            status=status,
            error=error_summary(error) if error else None,
        )

    def _record(
        self,
        state: _Attempt,
        offer: PricedOffer | None,
        usage: Usage,
        charged: int,
        *,
        outcome: str,
        status: int,
        error: str | None = None,
        ttft_us: int | None = None,
        generation_us: int | None = None,
        judged: Verdict | None = None,
    ) -> None:
        duration = self.elapsed_us(state)
        self._usage.submit(
            UsageRecord(
                request_id=state.request_id,
                created_us=state.created_us,
                account_id=state.caller.account_id,
                key_id=state.caller.id,
                instrument=state.plan.instrument.id,
                supplier=offer.supplier.name if offer else None,
                offer_id=offer.offer.id if offer else None,
                upstream_model=offer.offer.model if offer else None,
                stream=state.stream,
                input_tokens=usage.prompt_tokens,
                output_tokens=usage.completion_tokens,
                reasoning_tokens=usage.reasoning_tokens,
                cached_tokens=usage.cached_tokens,
                usage_estimated=usage.estimated,
                price_input_per_m=offer.price.input_per_m if offer else 0,
                price_output_per_m=offer.price.output_per_m if offer else 0,
                cost=charged,
                hold_id=state.hold_id,
                ttft_us=ttft_us,
                generation_us=generation_us,
                duration_us=duration,
                outcome=outcome,
                status=status,
                billed=charged > 0,
                in_spec=None if judged is None else judged.in_spec,
                spec_note=None if judged is None else (judged.breach or judged.failure),
                error=summary(error),  # bounded and redacted, whatever the caller passed
            )
        )


class StreamSession:
    """An open stream whose first chunk has arrived. Iterate ``chunks()`` to relay it; the
    iterator settles in its ``finally`` whatever happens (completion, upstream failure, the
    client going away, cancellation)."""

    def __init__(
        self,
        exchange: Exchange,
        state: _Attempt,
        offer: PricedOffer,
        upstream: AsyncIterator[list[Chunk]],
        first: list[Chunk],
        include_usage: bool,
        dispatched: float,
    ) -> None:
        self._exchange = exchange
        self._state = state
        self._offer = offer
        self._upstream = upstream
        self._first = first
        self._include_usage = include_usage
        self._ttft_us = exchange.elapsed_us(state)
        self._first_at = exchange.clock.monotonic()
        self._supplier_ttft_s = self._first_at - dispatched  # this offer's own, for its health
        self._usage: Usage | None = None
        self._prompt_reported: int | None = None  # the supplier's prompt count, told early
        self._output_bytes = 0
        self._deltas = 0  # chunks of generated text relayed: a lower bound on tokens; 0: the
        # caller has had no content (text, reasoning, tool calls) yet
        assert state.quote is not None
        self._token_cap = state.quote.max_output_tokens * state.plan.n
        self._last_raw = b""
        self._next_checkpoint = exchange.clock.monotonic() + exchange.checkpoint_seconds
        self.served = Served(offer.supplier.name, offer.offer.id, offer.offer.model)
        self.prompt_estimate = state.plan.prompt_charge  # what a prompt nobody counted costs
        self.ended = False  # set just before the last piece is yielded
        self._finished = False  # settled (by the relay's end, a failure, or close())

    async def close(self) -> None:
        """Settle a session that will not be relayed (or not to its end) as cancelled: what
        it delivered is charged, its hold and rate-limit admission are given back. A no-op
        once it has settled."""
        if not self._finished:
            await self._finish("cancelled", 499, None)

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        """The bytes to relay, one piece per upstream read. The charge is settled before the
        terminating event is sent, so a caller that has seen the end of the stream is done."""
        settled = False
        try:
            batch = self._first
            while True:
                out: list[bytes] = []
                for chunk in batch:
                    if chunk.usage is not None:
                        self._usage = chunk.usage
                    if chunk.prompt_tokens is not None:
                        self._prompt_reported = chunk.prompt_tokens
                    if chunk.deltas:
                        self._deltas += chunk.deltas
                        if self._deltas > self._token_cap:
                            # the supplier is running past the max tokens it was told (what
                            # the money covers): end the answer here, cleanly, for length
                            settled = await self._finish("cut_at_hold", 200, None)
                            out.append(self._cutoff())
                            self.ended = True
                            yield b"".join(out)
                            return
                        self._last_raw = chunk.raw
                    self._output_bytes += chunk.output_bytes
                    if chunk.done:
                        settled = await self._finish("ok", 200, None)
                        out.append(chunk.raw)
                        self.ended = True
                        yield b"".join(out)
                        return
                    if chunk.raw and (self._include_usage or not chunk.usage_only):
                        out.append(chunk.raw)
                if out:
                    yield out[0] if len(out) == 1 else b"".join(out)
                now = self._exchange.clock.monotonic()
                if now >= self._next_checkpoint:
                    self._next_checkpoint = now + self._exchange.checkpoint_seconds
                    self._exchange.checkpoint(
                        self._state,
                        self._offer,
                        self._metered(),
                        ttft_us=self._ttft_us,
                        delivered=self._deltas > 0,
                    )
                try:
                    batch = await anext(self._upstream)
                except StopAsyncIteration:
                    settled = await self._finish("ok", 200, None)
                    self.ended = True
                    yield DONE_EVENT
                    return
                except SupplierFailed as exc:
                    settled = await self._finish("stream_error", http_status(exc), exc.message)
                    self.ended = True
                    yield error_event(exc)
                    return
        finally:
            if not settled:
                await self._finish("cancelled", 499, None)

    def _cutoff(self) -> bytes:
        """The closing events of an answer cut at its hold (with the usage charged, when the
        caller asked for usage)."""
        n = self._state.plan.n
        if not self._include_usage:
            return length_cutoff(self._last_raw, n)
        usage = self._metered()
        return length_cutoff(self._last_raw, n, usage.prompt_tokens, usage.completion_tokens)

    def _metered(self) -> Usage:
        """The upstream's usage when it counted the answer, else gridgate's own count of what
        was relayed (``counted``): the prompt at the supplier's count when it told one early
        (Anthropic's ``message_start``), else at its text alone (never more than was sent)."""
        prompt = self._prompt_reported
        return counted(
            self._usage,
            prompt_estimate=prompt if prompt is not None else self._state.plan.prompt_charge,
            out_bytes=self._output_bytes,
        )

    async def _finish(self, outcome: str, status: int, error: str | None) -> bool:
        if self._finished:
            return True
        self._finished = True
        await _aclose(self._upstream)
        usage = self._metered()
        exchange, state = self._exchange, self._state
        generation_s = exchange.clock.monotonic() - self._first_at
        kind: Outcome = (
            "cancelled"
            if outcome == "cancelled"
            else (
                "ok"
                if outcome in ("ok", "cut_at_hold")
                else ("timeout" if status == 504 else "error")
            )
        )
        tokens = usage.completion_tokens
        exchange.observe(
            state, self._offer, Delivery(kind, self._supplier_ttft_s, tokens, generation_s)
        )
        judged = (
            exchange.billing_verdict(
                state, Delivery(kind, self._ttft_us / 1_000_000, tokens, generation_s)
            )
            if kind != "cancelled"
            else None
        )
        try:
            exchange.settle(
                state,
                self._offer,
                usage,
                outcome=outcome,
                status=status,
                error=error,
                ttft_us=self._ttft_us,
                generation_us=int(generation_s * 1_000_000),
                judged=judged,
                # a whole answer is billed as metered; one cut short only for content relayed
                delivered=outcome in ("ok", "cut_at_hold") or self._deltas > 0,
            )
        finally:
            exchange.end(state)
        return True


def _failure(exc: SupplierFailed) -> Delivery:
    return Delivery("timeout" if isinstance(exc, SupplierTimeout) else "error")


async def _aclose(iterator: AsyncIterator[list[Chunk]]) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()
