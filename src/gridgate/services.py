"""The management services, built once: what the management API, the dashboard and the CLI
call. Each authorises its caller (``core/access.py``) and writes the audit log with the change
(``core/audit_log.py``), so every way in follows the same rules."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gridgate.core.accounts.accounts import Accounts
from gridgate.core.accounts.api_keys import ApiKeys
from gridgate.core.accounts.usage_report import UsageReports
from gridgate.core.audit_log import AuditLog
from gridgate.core.billing.spend_caps import SpendCaps
from gridgate.core.catalog.catalog import Catalog
from gridgate.core.catalog.edits import CatalogEditor
from gridgate.core.clock import Clock
from gridgate.core.exchange.market import Market
from gridgate.core.health.offer_health import HealthPolicy
from gridgate.core.health.report import OfferBoard
from gridgate.core.limits.overrides import LimitOverrides
from gridgate.core.people.directory import People
from gridgate.core.people.tokens import ManagementTokens
from gridgate.core.people.users import Users
from gridgate.core.webhooks.endpoints import Webhooks
from gridgate.settings import Settings
from gridgate.storage.ports.store import Store


@dataclass(frozen=True)
class Services:
    people: People
    accounts: Accounts
    api_keys: ApiKeys
    users: Users
    tokens: ManagementTokens
    limits: LimitOverrides
    spend_caps: SpendCaps
    catalog_editor: CatalogEditor
    usage_reports: UsageReports
    market: Market
    offer_board: OfferBoard
    audit_log: AuditLog
    webhooks: Webhooks


def build_services(
    store: Store,
    clock: Clock,
    settings: Settings,
    *,
    catalog: Callable[[], Catalog],
    people: People | None = None,
    on_revoke: Callable[[list[str]], None] | None = None,
    on_catalog_change: Callable[[], Awaitable[None]] | None = None,
    on_limits_change: Callable[[], Awaitable[None]] | None = None,
) -> Services:
    """``catalog``: the current snapshot (the market's prices); ``on_revoke`` and
    ``on_catalog_change`` and ``on_limits_change`` make a change effective in this process at once (other processes
    follow the change feed)."""
    people = people or People(store, clock)
    return Services(
        people=people,
        accounts=Accounts(store, clock),
        api_keys=ApiKeys(store, clock, on_revoke=on_revoke),
        users=Users(people),
        tokens=ManagementTokens(people, clock),
        limits=LimitOverrides(store, settings.limits, on_change=on_limits_change),
        spend_caps=SpendCaps(store, clock, on_change=on_revoke),
        catalog_editor=CatalogEditor(store, on_change=on_catalog_change),
        usage_reports=UsageReports(store, clock),
        market=Market(store, catalog, clock),
        offer_board=OfferBoard(
            store,
            clock,
            HealthPolicy.from_settings(settings.health),
            window_seconds=settings.health.max_age_seconds,
            window_size=settings.health.window_size,
        ),
        audit_log=AuditLog(store),
        webhooks=Webhooks(store, clock),
    )
