"""build_app(settings): the routes, the error middleware, and a lifespan that builds one AppState."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path

import aiohttp
from aiohttp import web

from gridgate.api.chat import chat_completions
from gridgate.api.errors import REQUEST_IDS, RequestIds, error_middleware
from gridgate.api.messages import count_tokens, messages
from gridgate.api.models import get_model, list_models
from gridgate.api.offers import offers_status
from gridgate.api.state import STATE, AppState, CatalogRef
from gridgate.core.billing import Billing
from gridgate.core.catalog import Catalog, records_from_settings
from gridgate.core.clock import Clock, SystemClock
from gridgate.core.exchange import Exchange
from gridgate.core.health_sharing import share_round
from gridgate.core.keys import Authenticator
from gridgate.core.offer_health import HealthPolicy, OfferHealth
from gridgate.core.preferences import no_figures
from gridgate.core.usage_writer import UsageWriter
from gridgate.providers import anthropic, openai
from gridgate.providers.anthropic import AnthropicAdapter
from gridgate.providers.base import Adapter
from gridgate.providers.openai import OpenAIAdapter
from gridgate.settings import Settings
from gridgate.storage.ports import Store
from gridgate.storage.sql import SqlStore

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


async def _health(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def build_app(
    settings: Settings, *, clock: Clock | None = None, environ: Mapping[str, str] | None = None
) -> web.Application:
    app = web.Application(
        client_max_size=settings.server.max_body_bytes, middlewares=[error_middleware]
    )
    app[REQUEST_IDS] = RequestIds()
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
    app.router.add_get("/v1/offers/status", offers_status)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model}", get_model)
    app.router.add_get("/healthz", _health)
    app.cleanup_ctx.append(_lifespan(settings, clock or SystemClock(), environ))
    return app


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
        try:
            catalog = CatalogRef(Catalog.build(*await store.load_catalog()))
            connector = aiohttp.TCPConnector(
                limit=settings.upstream.pool_size, limit_per_host=0, ttl_dns_cache=300
            )
            http = aiohttp.ClientSession(connector=connector)
            billing = Billing(store, clock, settings.billing)
            usage = UsageWriter(store)
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
            )
            app[STATE] = AppState(
                settings=settings,
                store=store,
                clock=clock,
                catalog=catalog,
                auth=Authenticator(store, clock, settings.auth.cache_seconds),
                billing=billing,
                usage=usage,
                exchange=exchange,
                http=http,
            )
            usage.start()
            sweeper = asyncio.create_task(
                _upkeep(billing, store, clock, settings), name="gridgate-upkeep"
            )
            if health is not None and settings.health.share_seconds > 0:
                sharer = asyncio.create_task(
                    _share(store, health, catalog, clock, settings.health.share_seconds),
                    name="gridgate-health-sharing",
                )
            yield
        finally:
            for task in (sweeper, sharer):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if usage is not None:
                await usage.close()
            if billing is not None:
                await billing.leases.close()
            if http is not None:
                await http.close()
            await store.close()

    return lifespan


async def _share(
    store: Store, health: OfferHealth, catalog: CatalogRef, clock: Clock, seconds: float
) -> None:
    """Offer health across processes (``core/health_sharing.py``), every ``seconds``."""
    while True:
        await asyncio.sleep(seconds)
        try:
            ejected = await share_round(store, health, catalog.get(), clock)
            if ejected:
                log.info("ejected %d offers on what every process measured", ejected)
        except Exception:
            log.exception("offer health sharing failed")


async def _upkeep(billing: Billing, store: Store, clock: Clock, settings: Settings) -> None:
    """Keep leases fresh (renew, close idle ones) and release the holds of crashed processes."""
    tick = settings.billing.lease_tick_seconds
    sweep_every = max(1, round(settings.billing.sweep_interval_seconds / tick))
    rounds = 0
    while True:
        try:
            await billing.leases.tick()
            if rounds % sweep_every == 0:
                expired = await store.expire_holds(clock.now_us())
                if expired:
                    log.info("closed %d expired holds", len(expired))
        except Exception:
            log.exception("lease upkeep failed")
        rounds += 1
        await asyncio.sleep(tick)
