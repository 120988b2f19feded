"""The one typed object holding a process's shared state (``AppState``), and how it is built
and taken apart (``build_state``).

``build_state`` is an async context manager on an ``AsyncExitStack``: each part registers its
own close where it is built, so the stack unwinds in the reverse order. At shutdown:

1. the background tasks stop (lease upkeep, change feed, limit slots, health sharing,
   webhook delivery), then the offer ejections being written to the webhook outbox; then the
   answers still running under an ``Idempotency-Key`` end and are kept (30 s at most);
2. the usage writer drains what requests submitted (to the store, or the spool);
3. the rate guard releases its slots and closes its limiter, then the login limiter closes;
4. the metrics take in what the last requests observed;
5. the leases close (their rest returns to the ledger);
6. the upstream HTTP session closes, and the store last.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

from gridgate.core.accounts.auth import Authenticator
from gridgate.core.billing.billing import Billing
from gridgate.core.billing.usage_writer import UsageWriter
from gridgate.core.catalog.catalog import Catalog, records_from_settings
from gridgate.core.change_feed import ChangeFeed
from gridgate.core.clock import Clock
from gridgate.core.exchange.exchange import Exchange
from gridgate.core.health.offer_health import HealthPolicy, OfferHealth
from gridgate.core.idempotency.keys import IdempotencyKeys
from gridgate.core.limits.guard import RateGuard
from gridgate.core.limits.login_throttle import LOGIN_WINDOW_MS, LoginThrottle
from gridgate.core.limits.rules import LimitRules
from gridgate.core.outage import Outage
from gridgate.core.people.directory import People
from gridgate.core.people.sign_in import SignIn
from gridgate.core.responses.stored import StoredResponses
from gridgate.core.webhooks.delivery import Deliverer, DeliveryPolicy
from gridgate.core.webhooks.outbox import WebhookOutbox
from gridgate.metrics import Metrics
from gridgate.providers import anthropic, openai, openai_responses
from gridgate.providers.anthropic import AnthropicAdapter
from gridgate.providers.base import Adapter
from gridgate.providers.openai import OpenAIAdapter
from gridgate.providers.openai_responses import OpenAIResponsesAdapter
from gridgate.services import Services, build_services
from gridgate.settings import Settings
from gridgate.storage.limiter.memory import MemoryLimiter
from gridgate.storage.limiter.port import LimiterUnavailable, RateLimiter
from gridgate.storage.limiter.redis import RedisLimiter
from gridgate.storage.ports.store import Store
from gridgate.storage.sql import SqlStore
from gridgate.storage.usage_spool import FileSpool
from gridgate.tasks import BackgroundTasks
from gridgate.upkeep import (
    deliver_webhooks,
    lease_upkeep,
    renew_slots,
    share_health,
    sweep_responses,
)
from gridgate.web.webhook_post import AiohttpWebhookPost

_DRAIN_SECONDS = 30.0  # at shutdown, for keyed answers still running


@dataclass
class CatalogRef:
    """The current catalog snapshot; replaced whole on reload."""

    current: Catalog
    models_body: bytes = b""  # GET /v1/models, rendered once per snapshot

    def get(self) -> Catalog:
        return self.current


@dataclass
class AppState:
    settings: Settings
    store: Store
    clock: Clock
    catalog: CatalogRef
    auth: Authenticator
    billing: Billing
    usage: UsageWriter
    exchange: Exchange
    http: aiohttp.ClientSession
    sign_in: SignIn  # throttled by a login limiter of its own
    services: Services  # what the management API, the dashboard and the CLI call
    openapi: bytes  # GET /api/v1/openapi.json
    outage: Outage  # the database's reachability as this process sees it
    responses: StoredResponses  # the Responses API's stored responses (store: true)
    idempotency: IdempotencyKeys  # Idempotency-Key claims and their kept answers
    metrics: Metrics = field(default_factory=Metrics)
    limiter: RateLimiter | None = None  # None: no rate-limit backend configured
    webhooks: WebhookOutbox | None = None  # events not stored otherwise (offer.ejected)

    def refresh_gauges(self) -> None:
        """The gauges as this process stands now, and what its requests observed since the last
        call (called each upkeep tick and at each scrape)."""
        leases = self.billing.leases
        self.metrics.flush()
        self.metrics.set_gauges(
            holds=leases.inflight,
            queue=self.usage.pending,
            leases=leases.open_count,
            spooled=self.usage.spooled,
            database_down=self.outage.down,
        )


STATE: web.AppKey[AppState] = web.AppKey("gridgate_state", AppState)


def ensure_data_dir(settings: Settings) -> None:
    """The embedded SQLite default lives in the data dir; make it exist."""
    if not settings.database.url:
        Path(settings.data_dir).mkdir(parents=True, exist_ok=True)


async def open_store(settings: Settings, *, seed_catalog: bool = True) -> SqlStore:
    ensure_data_dir(settings)
    store = SqlStore(settings.database_url)
    await store.open()
    if seed_catalog:
        await store.upsert_catalog(*records_from_settings(settings))
    return store


@contextlib.asynccontextmanager
async def build_state(
    settings: Settings, clock: Clock, environ: Mapping[str, str] | None, *, openapi: bytes
) -> AsyncIterator[AppState]:
    """A process's state, its background tasks running, until the block exits; then all of
    it closed in the order the module's docstring gives. ``environ``: where the providers read
    their API keys (None: the process environment); ``openapi``: the management API's
    document, served as it is."""
    async with contextlib.AsyncExitStack() as stack:
        store = await open_store(settings)
        stack.push_async_callback(store.close)
        catalog = CatalogRef(Catalog.build(*await store.load_catalog()))
        http = _http_session(settings)
        stack.push_async_callback(http.close)
        outage = Outage(clock)
        billing = Billing(store, clock, settings.billing, outage)
        stack.push_async_callback(billing.leases.close)
        # several workers: each writes its metrics where a scrape of any one sums them all
        meters = Metrics(multiprocess=settings.server.workers > 1)
        stack.callback(meters.flush)  # what the last requests observed
        limits = await _limits(stack, settings, store, clock, meters)
        usage = _usage_writer(stack, settings, store, outage, meters)
        policy = HealthPolicy.from_settings(settings.health)
        health = OfferHealth(policy, clock) if settings.health.enabled else None
        outbox = _webhook_outbox(stack, settings, store, clock, outage, health)
        billing.on_cap_reached = outbox.cap_reached
        exchange = _exchange(
            settings, clock, environ, http, catalog, billing, usage, health, policy, limits.guard
        )
        auth = Authenticator(store, clock, settings.auth.cache_seconds)
        reload = _Reload(store, catalog, limits.rules)
        people = People(store, clock)
        state = AppState(
            settings=settings,
            store=store,
            clock=clock,
            catalog=catalog,
            auth=auth,
            billing=billing,
            usage=usage,
            exchange=exchange,
            http=http,
            sign_in=SignIn(people, limits.throttle),
            services=_services(settings, store, clock, catalog, people, auth, reload),
            openapi=openapi,
            metrics=meters,
            limiter=limits.limiter,
            outage=outage,
            responses=StoredResponses(
                store, clock, retention_days=settings.responses.retention_days
            ),
            idempotency=IdempotencyKeys(
                store, clock, keep_answers=settings.responses.retention_days > 0
            ),
            webhooks=outbox,
        )
        usage.start()
        # keyed answers still running finish (and are kept) before the usage writer drains
        stack.push_async_callback(state.idempotency.flights.drain, _DRAIN_SECONDS)
        tasks = BackgroundTasks()
        stack.push_async_callback(tasks.drain)  # the first to stop
        feed = _change_feed(settings, store, clock, outage, auth, reload)
        _start_tasks(tasks, state, feed, limits.guard, health)
        yield state


def _webhook_outbox(
    stack: contextlib.AsyncExitStack,
    settings: Settings,
    store: Store,
    clock: Clock,
    outage: Outage,
    health: OfferHealth | None,
) -> WebhookOutbox:
    """The outbox for events not stored otherwise: an offer's ejection, as it happens."""
    window = settings.webhooks.ejection_window_seconds
    outbox = WebhookOutbox(store, clock, outage, ejection_window_s=window)
    stack.push_async_callback(outbox.close)  # the ejections being written
    if health is not None:
        health.on_eject = outbox.offer_ejected
    return outbox


def _http_session(settings: Settings) -> aiohttp.ClientSession:
    """The one pool of upstream connections the providers share."""
    connector = aiohttp.TCPConnector(
        limit=settings.upstream.pool_size, limit_per_host=0, ttl_dns_cache=300
    )
    return aiohttp.ClientSession(connector=connector)


@dataclass(frozen=True, slots=True)
class _Limits:
    rules: LimitRules  # the configured defaults and the store's overrides
    limiter: RateLimiter  # the requests' limiter, which the guard owns (and closes)
    guard: RateGuard
    throttle: LoginThrottle  # failed logins, on a limiter of their own


async def _limits(
    stack: contextlib.AsyncExitStack,
    settings: Settings,
    store: Store,
    clock: Clock,
    meters: Metrics,
) -> _Limits:
    rules = LimitRules(settings.limits)
    rules.replace(await store.list_limits())
    fail_open = settings.limits.on_backend_failure == "open"
    limiter = _limiter(settings)
    # failed logins, counted by a limiter of their own (Redis when configured)
    login_limiter = _limiter(settings, window_ms=LOGIN_WINDOW_MS, purpose="login")
    stack.push_async_callback(_close_quietly, login_limiter)
    guard = RateGuard(
        limiter,
        rules,
        clock,
        fail_open=fail_open,
        on_refused=lambda limit: meters.rate_limited(limit.scope, limit.kind),
        on_backend_error=meters.limiter_error,
    )
    stack.push_async_callback(guard.close)  # releases its slots, then closes the limiter
    return _Limits(rules, limiter, guard, LoginThrottle(login_limiter, fail_open=fail_open))


def _limiter(settings: Settings, *, window_ms: int = 60_000, purpose: str = "rl") -> RateLimiter:
    """Redis when configured (exact across every process and host), else this process's memory.
    ``purpose`` keeps each limiter's keys apart (``<namespace>:v1:<purpose>:``)."""
    if settings.redis.url:
        return RedisLimiter(
            settings.redis.url,
            window_ms=window_ms,
            prefix=f"{settings.redis.namespace}:v1:{purpose}:",
            client=settings.redis.client,
        )
    return MemoryLimiter(window_ms=window_ms)


async def _close_quietly(limiter: RateLimiter) -> None:
    with contextlib.suppress(LimiterUnavailable):
        await limiter.close()


def _usage_writer(
    stack: contextlib.AsyncExitStack,
    settings: Settings,
    store: Store,
    outage: Outage,
    meters: Metrics,
) -> UsageWriter:
    usage = UsageWriter(
        store,
        spool=FileSpool(settings.usage_spool_dir),
        outage=outage,
        memory_records=settings.billing.usage_memory_records,
        shutdown_seconds=settings.billing.usage_shutdown_seconds,
        observe=meters.observe_usage,
    )
    stack.push_async_callback(usage.close)  # drains what was submitted (nothing unless started)
    return usage


def _exchange(
    settings: Settings,
    clock: Clock,
    environ: Mapping[str, str] | None,
    http: aiohttp.ClientSession,
    catalog: CatalogRef,
    billing: Billing,
    usage: UsageWriter,
    health: OfferHealth | None,
    policy: HealthPolicy,
    guard: RateGuard,
) -> Exchange:
    adapters: dict[str, Adapter] = {
        "openai": OpenAIAdapter(http, settings.upstream, environ),
        "anthropic": AnthropicAdapter(http, settings.upstream, environ),
        "openai-responses": OpenAIResponsesAdapter(http, settings.upstream, environ),
    }
    return Exchange(
        catalog=catalog.get,
        billing=billing,
        adapters=adapters,
        usage=usage,
        clock=clock,
        upstream=settings.upstream,
        checkpoint_seconds=settings.billing.checkpoint_seconds,
        dropped_fields={
            "openai": openai.dropped_fields,
            "anthropic": anthropic.dropped_fields,
            "openai-responses": openai_responses.dropped_fields,
        },
        health=health,
        policy=policy,
        hedging=settings.hedging,
        guard=guard,
    )


@dataclass(frozen=True, slots=True)
class _Reload:
    """What a change (made here, or read from the change feed) makes this process re-read."""

    store: Store
    ref: CatalogRef
    rules: LimitRules

    async def limits(self) -> None:
        self.rules.replace(await self.store.list_limits())

    async def catalog(self) -> None:
        self.ref.current = Catalog.build(*await self.store.load_catalog())
        self.ref.models_body = b""


def _services(
    settings: Settings,
    store: Store,
    clock: Clock,
    catalog: CatalogRef,
    people: People,
    auth: Authenticator,
    reload: _Reload,
) -> Services:
    return build_services(
        store,
        clock,
        settings,
        catalog=catalog.get,
        people=people,
        on_revoke=auth.forget,
        on_catalog_change=reload.catalog,
        on_limits_change=reload.limits,
    )


def _change_feed(
    settings: Settings,
    store: Store,
    clock: Clock,
    outage: Outage,
    auth: Authenticator,
    reload: _Reload,
) -> ChangeFeed:
    """Another process's change (a revoked key, a changed limit or catalog), made effective
    here: read from the store's change feed."""
    return ChangeFeed(
        store,
        clock,
        poll_seconds=settings.changes.poll_seconds,
        refresh_seconds=settings.changes.refresh_seconds,
        forget_keys=auth.forget,
        reload_limits=reload.limits,
        reload_catalog=reload.catalog,
        outage=outage,
    )


def _start_tasks(
    tasks: BackgroundTasks,
    state: AppState,
    feed: ChangeFeed,
    guard: RateGuard,
    health: OfferHealth | None,
) -> None:
    settings, store, clock, outage = state.settings, state.store, state.clock, state.outage
    tasks.start(
        "gridgate-upkeep",
        lease_upkeep(state.billing, store, clock, settings, outage, gauges=state.refresh_gauges),
    )
    tasks.start("gridgate-change-feed", feed.run())
    tasks.start("gridgate-limit-slots", renew_slots(guard))
    tasks.start(
        "gridgate-responses-sweep",
        sweep_responses(
            state.responses, settings.responses.sweep_seconds, outage, state.idempotency
        ),
    )
    if settings.webhooks.enabled:
        hooks = settings.webhooks
        deliverer = Deliverer(
            store, AiohttpWebhookPost(state.http), clock, DeliveryPolicy.from_settings(hooks)
        )
        tasks.start("gridgate-webhooks", deliver_webhooks(deliverer, hooks.poll_seconds, outage))
    if health is not None and settings.health.share_seconds > 0:
        seconds = settings.health.share_seconds
        tasks.start(
            "gridgate-health-sharing",
            share_health(store, health, state.catalog.get, clock, seconds, outage),
        )
