"""The exchange: one request from a validated body to a settled, recorded answer.

    plan (instrument, limits, candidates) ─► open a tab ─► admit (rate limits)
      ─► failover: per attempt, quote the worst case ─► HOLD ─► adapter ─► (supplier failed
         before the first byte? release, next offer) ─► meter ─► SETTLE ─► usage record
      ─► end (probe slots, rate-limit pass given back)

Where each step lives: ``plan.py`` (the request against its instrument, ``routing.py`` for the
candidates), ``tab.py`` (what one request holds and owes, and settling it), ``failover.py``
(trying offers in turn, hedging, holds), ``session.py`` (relaying and settling a stream).

Nothing here knows which HTTP surface called: requests arrive as the canonical ``ChatRequest``
and answers leave in the canonical OpenAI form.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from gridgate.core.billing.billing import Billing, Quote
from gridgate.core.billing.usage_writer import UsageWriter
from gridgate.core.catalog.catalog import Catalog
from gridgate.core.clock import Clock
from gridgate.core.exchange.failover import Failover, exhausted
from gridgate.core.exchange.plan import Planner
from gridgate.core.exchange.preferences import DroppedFields, no_figures
from gridgate.core.exchange.session import StreamSession
from gridgate.core.exchange.tab import Desk, Served, Tab
from gridgate.core.health.offer_health import HealthPolicy, OfferHealth
from gridgate.core.limits.guard import RateGuard
from gridgate.errors import GridgateError
from gridgate.money import format_usd_fixed
from gridgate.protocol.openai_chat import ChatRequest
from gridgate.protocol.usage_cost import with_cost
from gridgate.providers.base import Adapter, Completion
from gridgate.settings import HedgingSettings, UpstreamSettings
from gridgate.storage.records import KeyRecord


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
        guard: RateGuard | None = None,
    ) -> None:
        """``health``: measured offer health (None: off); it decides who may serve, supplies
        the figures ``provider.sort`` orders by and judges each delivery against the spec by
        its policy. ``policy`` judges deliveries only while health is off."""
        self._clock = clock
        self._health = health
        figures = health.figures if health is not None else no_figures
        self._planner = Planner(catalog, dropped_fields, figures)
        self._failover = Failover(adapters, upstream.max_attempts, hedging or HedgingSettings())
        self._desk = Desk(
            billing=billing,
            usage=usage,
            clock=clock,
            deadline=upstream.deadline_seconds,
            checkpoint_seconds=checkpoint_seconds,
            guard=guard,
            health=health,
            policy=health.policy if health is not None else policy or HealthPolicy(),
        )

    @property
    def health(self) -> OfferHealth | None:
        return self._health

    def open_tab(self, caller: KeyRecord, request: ChatRequest, request_id: str) -> Tab:
        """Plan ``request`` (raising at once when it cannot be served) and open its tab, which
        holds nothing yet. Serve it with ``complete``, or ``open_stream`` when it asks for a
        stream."""
        return Tab(
            desk=self._desk,
            request_id=request_id,
            caller=caller,
            request=request,
            plan=self._planner.plan(request),
            started=self._clock.monotonic(),
            created_us=self._clock.now_us(),
            stream=request.is_stream,
        )

    async def complete(self, tab: Tab) -> tuple[Completion, Served]:
        """Serve a whole answer, its ``usage.cost`` what it was charged. An error raised after
        the rate-limit pass carries the request's rate-limit headers, as the answer would
        (``tab.limits``)."""
        await tab.admit()
        try:
            completion, served = await self._failover.whole(tab)
        except GridgateError as exc:
            tab.fail(exc)
            raise
        except BaseException:
            tab.fail(None)
            raise
        finally:
            await tab.finish()
        completion.body = with_cost(
            completion.body, format_usd_fixed(tab.charged), completion.usage_at
        )
        return completion, served

    async def open_stream(self, tab: Tab) -> StreamSession:
        """Route, hold and wait for the first chunk, failing over (and hedging) until one
        arrives. The rate-limit headers are ``tab.limits`` from the rate-limit pass on (a
        stream's keep-alives may leave before the session does); an error raised after the
        pass carries them too."""
        await tab.admit()
        try:
            won = await self._failover.race(tab)
            if won is None:
                raise exhausted(tab)
            runner, first = won
            plan = tab.plan
            tab.quote = Quote(
                runner.offer.price, plan.prompt_bound, runner.call.max_output_tokens, plan.n
            )
            return StreamSession(tab, runner.offer, runner.chunks, first, runner.dispatched)
        except GridgateError as exc:
            tab.fail(exc)
            await tab.finish()
            raise
        except BaseException:
            tab.fail(None)
            await tab.finish()
            raise
