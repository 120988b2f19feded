"""The one typed object holding a process's shared state, built once in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from gridgate.core.accounts.auth import Authenticator
from gridgate.core.billing.billing import Billing
from gridgate.core.billing.usage_writer import UsageWriter
from gridgate.core.catalog.catalog import Catalog
from gridgate.core.clock import Clock
from gridgate.core.exchange.exchange import Exchange
from gridgate.core.outage import Outage
from gridgate.core.people.sign_in import SignIn
from gridgate.metrics import Metrics
from gridgate.services import Services
from gridgate.settings import Settings
from gridgate.storage.limiter.port import RateLimiter
from gridgate.storage.ports.store import Store


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
    background: list[object] = field(default_factory=list)
    metrics: Metrics = field(default_factory=Metrics)
    limiter: RateLimiter | None = None  # None: no rate-limit backend configured


STATE: web.AppKey[AppState] = web.AppKey("gridgate_state", AppState)
