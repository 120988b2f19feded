"""build_app(settings): the routes, the error middleware, and a lifespan that builds one AppState."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from functools import partial
from pathlib import Path

import aiohttp
from aiohttp import web

from gridgate.api.consumption.anthropic_messages import count_tokens, messages
from gridgate.api.consumption.models import get_model, list_models
from gridgate.api.consumption.offers import offers_status
from gridgate.api.consumption.openai_chat import chat_completions
from gridgate.api.errors import REQUEST_IDS, RequestIds, error_middleware
from gridgate.api.manage import accounts as accounts_api
from gridgate.api.manage import api_keys, catalog, instruments, sessions, tokens, usage, users
from gridgate.api.manage.audit import audit_log
from gridgate.api.manage.balance import balance
from gridgate.api.manage.limits import limits_handlers
from gridgate.api.manage.openapi import load_document, openapi_document
from gridgate.api.ops import healthz, metrics, readyz, refresh_gauges
from gridgate.core.accounts.auth import Authenticator
from gridgate.core.billing.billing import Billing
from gridgate.core.billing.usage_writer import UsageWriter
from gridgate.core.catalog.catalog import Catalog, records_from_settings
from gridgate.core.change_feed import ChangeFeed
from gridgate.core.clock import Clock, SystemClock
from gridgate.core.exchange.exchange import Exchange
from gridgate.core.exchange.preferences import no_figures
from gridgate.core.health.offer_health import HealthPolicy, OfferHealth
from gridgate.core.health.sharing import share_round
from gridgate.core.limits.guard import RateGuard
from gridgate.core.limits.login_throttle import LOGIN_WINDOW_MS, LoginThrottle
from gridgate.core.limits.rules import LimitRules
from gridgate.core.outage import Outage
from gridgate.core.people.directory import People
from gridgate.core.people.sign_in import SignIn
from gridgate.dashboard import add_dashboard
from gridgate.metrics import Metrics
from gridgate.providers import anthropic, openai
from gridgate.providers.anthropic import AnthropicAdapter
from gridgate.providers.base import Adapter
from gridgate.providers.openai import OpenAIAdapter
from gridgate.services import build_services
from gridgate.settings import Settings
from gridgate.state import STATE, AppState, CatalogRef
from gridgate.storage.limiter.memory import MemoryLimiter
from gridgate.storage.limiter.port import LimiterUnavailable, RateLimiter
from gridgate.storage.limiter.redis import RedisLimiter
from gridgate.storage.ports import Store
from gridgate.storage.sql import SqlStore
from gridgate.storage.usage_spool import FileSpool

log = logging.getLogger("gridgate")


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


def build_app(
    settings: Settings, *, clock: Clock | None = None, environ: Mapping[str, str] | None = None
) -> web.Application:
    app = web.Application(
        client_max_size=settings.server.max_body_bytes,
        middlewares=[error_middleware],
        # bodies are decompressed by web/request_body.py, bounded, or refused in the envelope
        handler_args={"auto_decompress": False},
    )
    app[REQUEST_IDS] = RequestIds()
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
    app.router.add_get("/v1/offers/status", offers_status)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model}", get_model)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    _management_routes(app.router)
    add_dashboard(app)
    app.cleanup_ctx.append(_lifespan(settings, clock or SystemClock(), environ))
    return app


def _management_routes(router: web.UrlDispatcher) -> None:
    """The management API (``/api/v1``), as ``api/manage/openapi.py``'s document describes it."""
    v1 = "/api/v1"
    router.add_get(f"{v1}/openapi.json", openapi_document)
    router.add_post(f"{v1}/session", sessions.login)
    router.add_delete(f"{v1}/session", sessions.logout)
    router.add_get(f"{v1}/me", sessions.me)
    router.add_put(f"{v1}/me/password", sessions.change_password)
    router.add_get(f"{v1}/tokens", tokens.list_tokens)
    router.add_post(f"{v1}/tokens", tokens.create_token)
    router.add_delete(f"{v1}/tokens/{{token_id}}", tokens.revoke_token)
    router.add_get(f"{v1}/api-keys", api_keys.list_api_keys)
    router.add_post(f"{v1}/api-keys", api_keys.create_api_key)
    router.add_get(f"{v1}/api-keys/{{key_id}}", api_keys.get_api_key)
    router.add_put(f"{v1}/api-keys/{{key_id}}", api_keys.update_api_key)
    router.add_delete(f"{v1}/api-keys/{{key_id}}", api_keys.revoke_api_key)
    router.add_get(f"{v1}/balance", balance)
    router.add_get(f"{v1}/usage", usage.usage)
    router.add_get(f"{v1}/usage/daily", usage.usage_daily)
    router.add_get(f"{v1}/usage.csv", usage.usage_csv)
    router.add_get(f"{v1}/accounts", accounts_api.list_accounts)
    router.add_post(f"{v1}/accounts", accounts_api.create_account)
    router.add_get(f"{v1}/accounts/{{account_id}}", accounts_api.get_account)
    router.add_post(f"{v1}/accounts/{{account_id}}/credits", accounts_api.credit)
    router.add_post(f"{v1}/accounts/{{account_id}}/adjustments", accounts_api.adjust)
    for scope, path, param in (
        ("account", "accounts", "account_id"),
        ("key", "api-keys", "key_id"),
        ("instrument", "instruments", "instrument_id"),
    ):
        show, put = limits_handlers(scope, param)  # type: ignore[arg-type]
        router.add_get(f"{v1}/{path}/{{{param}}}/limits", show)
        router.add_put(f"{v1}/{path}/{{{param}}}/limits", put)
    router.add_get(f"{v1}/users", users.list_users)
    router.add_post(f"{v1}/users", users.create_user)
    router.add_patch(f"{v1}/users/{{user_id}}", users.update_user)
    router.add_get(f"{v1}/instruments", instruments.list_instruments)
    router.add_post(f"{v1}/instruments", catalog.create_instrument)
    router.add_get(f"{v1}/instruments/{{instrument_id}}", instruments.get_instrument)
    router.add_patch(f"{v1}/instruments/{{instrument_id}}", catalog.update_instrument)
    router.add_get(f"{v1}/suppliers", catalog.list_suppliers)
    router.add_post(f"{v1}/suppliers", catalog.create_supplier)
    router.add_get(f"{v1}/suppliers/{{name}}", catalog.get_supplier)
    router.add_patch(f"{v1}/suppliers/{{name}}", catalog.update_supplier)
    router.add_get(f"{v1}/offers", catalog.list_offers)
    router.add_post(f"{v1}/offers", catalog.create_offer)
    router.add_get(f"{v1}/offers/{{offer_id:.+}}", catalog.get_offer)  # offer ids have slashes
    router.add_patch(f"{v1}/offers/{{offer_id:.+}}", catalog.update_offer)
    router.add_get(f"{v1}/offer-health", catalog.offer_health)
    router.add_get(f"{v1}/audit-log", audit_log)


def _lifespan(
    settings: Settings, clock: Clock, environ: Mapping[str, str] | None
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        store = await open_store(settings)
        http: aiohttp.ClientSession | None = None
        usage: UsageWriter | None = None
        billing: Billing | None = None
        sweeper: asyncio.Task[None] | None = None
        sharer: asyncio.Task[None] | None = None
        guard: RateGuard | None = None
        login_limiter: RateLimiter | None = None
        followers: list[asyncio.Task[None]] = []
        try:
            catalog = CatalogRef(Catalog.build(*await store.load_catalog()))
            connector = aiohttp.TCPConnector(
                limit=settings.upstream.pool_size, limit_per_host=0, ttl_dns_cache=300
            )
            http = aiohttp.ClientSession(connector=connector)
            outage = Outage(clock)
            billing = Billing(store, clock, settings.billing, outage)
            # several workers: each writes its metrics where a scrape of any one sums them all
            meters = Metrics(multiprocess=settings.server.workers > 1)
            usage = UsageWriter(
                store,
                spool=FileSpool(settings.usage_spool_dir),
                outage=outage,
                memory_records=settings.billing.usage_memory_records,
                shutdown_seconds=settings.billing.usage_shutdown_seconds,
                observe=meters.observe_usage,
            )
            rules = LimitRules(settings.limits)
            rules.replace(await store.list_limits())
            limiter = _limiter(settings)
            guard = RateGuard(
                limiter,
                rules,
                clock,
                fail_open=settings.limits.on_backend_failure == "open",
                on_refused=lambda limit: meters.rate_limited(limit.scope, limit.kind),
                on_backend_error=meters.limiter_error,
            )
            policy = HealthPolicy.from_settings(settings.health)
            health = OfferHealth(policy, clock) if settings.health.enabled else None
            adapters: dict[str, Adapter] = {
                "openai": OpenAIAdapter(http, settings.upstream, environ),
                "anthropic": AnthropicAdapter(http, settings.upstream, environ),
            }
            exchange = Exchange(
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
                },
                health=health,
                policy=policy,
                hedging=settings.hedging,
                figures=health.figures if health is not None else no_figures,
                guard=guard,
            )
            auth = Authenticator(store, clock, settings.auth.cache_seconds)

            async def reload_limits() -> None:
                rules.replace(await store.list_limits())

            async def reload_catalog() -> None:
                catalog.current = Catalog.build(*await store.load_catalog())
                catalog.models_body = b""

            feed = ChangeFeed(
                store,
                clock,
                poll_seconds=settings.changes.poll_seconds,
                refresh_seconds=settings.changes.refresh_seconds,
                forget_keys=auth.forget,
                reload_limits=reload_limits,
                reload_catalog=reload_catalog,
                outage=outage,
            )
            people = People(store, clock)
            services = build_services(
                store,
                clock,
                settings,
                catalog=catalog.get,
                people=people,
                on_revoke=auth.forget,
                on_catalog_change=reload_catalog,
                on_limits_change=reload_limits,
            )
            # failed logins, counted by a limiter of their own (Redis when configured)
            login_limiter = _limiter(settings, window_ms=LOGIN_WINDOW_MS, purpose="login")
            throttle = LoginThrottle(
                login_limiter, fail_open=settings.limits.on_backend_failure == "open"
            )
            app[STATE] = AppState(
                settings=settings,
                store=store,
                clock=clock,
                catalog=catalog,
                auth=auth,
                billing=billing,
                usage=usage,
                exchange=exchange,
                http=http,
                sign_in=SignIn(people, throttle),
                services=services,
                openapi=load_document(),
                metrics=meters,
                limiter=limiter,
                outage=outage,
            )
            usage.start()
            sweeper = asyncio.create_task(
                _upkeep(
                    billing,
                    store,
                    clock,
                    settings,
                    outage,
                    gauges=partial(refresh_gauges, app[STATE]),
                ),
                name="gridgate-upkeep",
            )
            followers.append(asyncio.create_task(feed.run(), name="gridgate-change-feed"))
            followers.append(asyncio.create_task(_renew_slots(guard), name="gridgate-limit-slots"))
            if health is not None and settings.health.share_seconds > 0:
                sharer = asyncio.create_task(
                    _share(store, health, catalog, clock, settings.health.share_seconds, outage),
                    name="gridgate-health-sharing",
                )
            yield
        finally:
            for task in (sweeper, sharer, *followers):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if usage is not None:
                await usage.close()
            if guard is not None:
                await guard.close()
            if login_limiter is not None:
                with contextlib.suppress(LimiterUnavailable):
                    await login_limiter.close()
            if STATE in app:
                app[STATE].metrics.flush()  # what the last requests observed
            if billing is not None:
                await billing.leases.close()
            if http is not None:
                await http.close()
            await store.close()

    return lifespan


def _limiter(settings: Settings, *, window_ms: int = 60_000, purpose: str = "rl") -> RateLimiter:
    """Redis when configured (exact across every process and host), else this process's memory.
    ``purpose`` keeps each limiter's keys apart (``<namespace>:v1:<purpose>:``)."""
    if settings.redis.url:
        return RedisLimiter(
            settings.redis.url,
            window_ms=window_ms,
            prefix=f"{settings.redis.namespace}:v1:{purpose}:",
        )
    return MemoryLimiter(window_ms=window_ms)


async def _renew_slots(guard: RateGuard) -> None:
    """Keep the rate-limit concurrency slots of requests in flight from expiring."""
    while True:
        await asyncio.sleep(1.0)
        await guard.tick()


async def _share(
    store: Store,
    health: OfferHealth,
    catalog: CatalogRef,
    clock: Clock,
    seconds: float,
    outage: Outage,
) -> None:
    """Offer health across processes (``core/health/sharing.py``), every ``seconds``."""
    while True:
        await asyncio.sleep(seconds)
        try:
            ejected = await share_round(store, health, catalog.get(), clock)
            if ejected:
                log.info("ejected %d offers on what every process measured", ejected)
        except Exception as exc:
            if not outage.noted(exc, "offer health sharing"):
                log.exception("offer health sharing failed")


async def _upkeep(
    billing: Billing,
    store: Store,
    clock: Clock,
    settings: Settings,
    outage: Outage,
    *,
    gauges: Callable[[], None] | None = None,
) -> None:
    """Keep leases fresh (renew, close idle ones) and release the holds of crashed processes;
    refresh the metrics ``gauges`` every tick. While the database is down, see each tick
    whether it is back (requests refused meanwhile would not tell)."""
    tick = settings.billing.lease_tick_seconds
    sweep_every = max(1, round(settings.billing.sweep_interval_seconds / tick))
    rounds = 0
    while True:
        try:
            if outage.down:
                await store.ping()
                outage.recovered()
            await billing.leases.tick()
            if rounds % sweep_every == 0:
                expired = await store.expire_holds(clock.now_us())
                if expired:
                    log.info("closed %d expired holds", len(expired))
        except Exception as exc:
            if not outage.noted(exc, "lease upkeep"):
                log.exception("lease upkeep failed")
        if gauges is not None:
            gauges()
        rounds += 1
        await asyncio.sleep(tick)
