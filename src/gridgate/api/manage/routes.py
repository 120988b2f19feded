"""The management API (``/api/v1``) as one table: each operation's method, path, handler, and
what its OpenAPI document says of it. ``app.py`` serves the table; ``openapi.py`` builds the
document from it, so the two cannot name different routes.

To add an endpoint: write the handler (request body as a msgspec struct beside it, answer as a
``<Name>View`` struct in ``gridgate/shapes.py``), then add its ``Op`` here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from aiohttp import web

from gridgate.api.manage import (
    accounts,
    api_keys,
    audit,
    balance,
    catalog,
    instruments,
    limits,
    sessions,
    spend_caps,
    tokens,
    usage,
    users,
    webhooks,
)
from gridgate.api.manage.document import openapi_document
from gridgate.core.accounts.usage_pages import MAX_PAGE as USAGE_PAGE
from gridgate.core.audit_log import MAX_PAGE as AUDIT_PAGE
from gridgate.core.health.report import OfferStatusView
from gridgate.shapes import (
    AccountView,
    ApiKeyView,
    AuditEntryView,
    BalanceView,
    DailyUsageView,
    InstrumentView,
    LimitsView,
    MoneyMovedView,
    OfferView,
    SpendCapView,
    SupplierView,
    TokenView,
    UsageRecordView,
    UserView,
)
from gridgate.storage.limiter.port import LimitScope
from gridgate.webhook_shapes import BalanceThresholdView, WebhookEndpointView, WebhookEventView

V1 = "/api/v1"
# Who may call an operation, for its security and its error answers (the handlers enforce it).
ANYONE = "anyone"  # no credentials
PERSON = "person"  # a signed-in person or a token
OPERATOR = "operator"  # an operator's session or token

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Parameter = dict[str, Any]


@dataclass(frozen=True)
class Op:
    """One operation. ``path`` is as routed: a parameter may carry a pattern
    (``{offer_id:.+}``), which the document leaves out. ``answer`` is the type of the success
    answer's ``data`` (``{"data": …}``, with ``next_cursor`` beside it when ``paged``), or of the
    whole answer when ``raw``; None: no body."""

    method: str
    path: str
    operation_id: str
    summary: str
    handler: Handler
    _: KW_ONLY
    who: str = PERSON
    body: type | None = None
    status: int = 200
    answer: Any = None
    params: list[Parameter] = field(default_factory=list)
    errors: tuple[str, ...] = ()
    media: str = "application/json"
    paged: bool = False
    raw: bool = False


def query(name: str, description: str, schema: dict[str, Any] | None = None) -> Parameter:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string", "maxLength": 256},
    }


def limit_q(maximum: int) -> Parameter:
    return query(
        "limit", f"Records per page (default {maximum})", {"type": "integer", "minimum": 1}
    )


IDEMPOTENCY_KEY: Parameter = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "The idempotency key, if the body does not carry one",
    "schema": {"type": "string", "maxLength": 256},
}


def operations() -> list[Op]:
    """Every route of the management API, in the document's order."""
    account_q = query("account_id", "An operator's choice of account (others: only their own)")
    since = query("since", "From this time on (ISO 8601, or Unix seconds)")
    until = query("until", "Before this time (ISO 8601, or Unix seconds)")
    cursor = query("cursor", "The next_cursor of the previous page")
    usage_filters = [
        account_q,
        since,
        until,
        query("key_id", "Only this API key's requests"),
        query("instrument", "Only this instrument's requests"),
    ]
    keys = f"{V1}/api-keys/{{key_id}}"
    account = f"{V1}/accounts/{{account_id}}"
    instrument = f"{V1}/instruments/{{instrument_id}}"
    supplier = f"{V1}/suppliers/{{name}}"
    offer = f"{V1}/offers/{{offer_id:.+}}"  # offer ids have slashes
    ops = [
        Op(
            "get",
            f"{V1}/openapi.json",
            "getOpenApi",
            "This document",
            openapi_document,
            who=ANYONE,
            answer=dict[str, Any],
            raw=True,
        ),
        Op(
            "post",
            f"{V1}/session",
            "login",
            "Sign in: sets the session cookie (HttpOnly, SameSite=Strict, Secure, Path=/) and "
            "returns the CSRF token that unsafe cookie calls send as X-CSRF-Token",
            sessions.login,
            who=ANYONE,
            body=sessions.Credentials,
            answer=sessions.SessionView,
            errors=("401", "429", "503"),
        ),
        Op("delete", f"{V1}/session", "logout", "Sign out", sessions.logout, status=204),
        Op("get", f"{V1}/me", "getMe", "The calling person", sessions.me, answer=sessions.MeView),
        Op(
            "put",
            f"{V1}/me/password",
            "changePassword",
            "Change the calling person's password",
            sessions.change_password,
            body=sessions.PasswordChange,
            status=204,
        ),
        Op(
            "get",
            f"{V1}/tokens",
            "listTokens",
            "The calling person's management tokens",
            tokens.list_tokens,
            answer=list[TokenView],
        ),
        Op(
            "post",
            f"{V1}/tokens",
            "createToken",
            "Create a management token; its secret is in `token`, this once (a token cannot "
            "create another)",
            tokens.create_token,
            body=tokens.CreateToken,
            status=201,
            answer=TokenView,
        ),
        Op(
            "delete",
            f"{V1}/tokens/{{token_id}}",
            "revokeToken",
            "Revoke a management token",
            tokens.revoke_token,
            status=204,
        ),
        Op(
            "get",
            f"{V1}/api-keys",
            "listApiKeys",
            "An account's API keys, oldest first",
            api_keys.list_api_keys,
            params=[account_q],
            answer=list[ApiKeyView],
        ),
        Op(
            "post",
            f"{V1}/api-keys",
            "createApiKey",
            "Create an API key; its secret is in `key`, this once",
            api_keys.create_api_key,
            body=api_keys.CreateApiKey,
            status=201,
            answer=ApiKeyView,
        ),
        Op("get", keys, "getApiKey", "An API key", api_keys.get_api_key, answer=ApiKeyView),
        Op(
            "put",
            keys,
            "updateApiKey",
            "Rename an API key; `is_active: false` revokes it",
            api_keys.update_api_key,
            body=api_keys.UpdateApiKey,
            status=204,
        ),
        Op(
            "delete",
            keys,
            "revokeApiKey",
            "Revoke an API key (at once, in every process)",
            api_keys.revoke_api_key,
            status=204,
        ),
        Op(
            "get",
            f"{V1}/balance",
            "getBalance",
            "What the account has left",
            balance.balance,
            params=[account_q],
            answer=BalanceView,
        ),
        Op(
            "get",
            f"{V1}/usage",
            "listUsage",
            "Usage records, newest first, a page at a time",
            usage.usage,
            params=[*usage_filters, limit_q(USAGE_PAGE), cursor],
            answer=list[UsageRecordView],
            paged=True,
        ),
        Op(
            "get",
            f"{V1}/usage/daily",
            "dailyUsage",
            "Usage summed per UTC day and instrument",
            usage.usage_daily,
            params=usage_filters,
            answer=list[DailyUsageView],
        ),
        Op(
            "get",
            f"{V1}/usage.csv",
            "exportUsage",
            "Every matching usage record as CSV (a download; one column per UsageRecord field)",
            usage.usage_csv,
            params=usage_filters,
            answer=str,
            media="text/csv",
            raw=True,
        ),
        Op(
            "get",
            f"{V1}/accounts",
            "listAccounts",
            "Accounts with their balances (an account's people: their own)",
            accounts.list_accounts,
            answer=list[AccountView],
        ),
        Op(
            "post",
            f"{V1}/accounts",
            "createAccount",
            "Create an account",
            accounts.create_account,
            who=OPERATOR,
            body=accounts.CreateAccount,
            status=201,
            answer=AccountView,
        ),
        Op(
            "get",
            account,
            "getAccount",
            "An account with its balance",
            accounts.get_account,
            answer=AccountView,
        ),
        Op(
            "post",
            f"{account}/credits",
            "creditAccount",
            "Add prepaid funds; applied once per idempotency key (the body's or the "
            "Idempotency-Key header)",
            accounts.credit,
            who=OPERATOR,
            body=accounts.Money,
            status=201,
            answer=MoneyMovedView,
            params=[IDEMPOTENCY_KEY],
        ),
        Op(
            "post",
            f"{account}/adjustments",
            "adjustAccount",
            "Correct a balance up or down (never below zero); applied once per idempotency key",
            accounts.adjust,
            who=OPERATOR,
            body=accounts.Money,
            status=201,
            answer=MoneyMovedView,
            params=[IDEMPOTENCY_KEY],
            errors=("402",),
        ),
    ]
    subjects: list[tuple[LimitScope, str, str, str, str]] = [
        ("account", "account_id", account, "an account", "Account"),
        ("key", "key_id", keys, "an API key", "ApiKey"),
        ("instrument", "instrument_id", instrument, "an instrument", "Instrument"),
    ]
    for scope, param, subject, described, noun in subjects:
        show, put = limits.limits_handlers(scope, param)
        ops += [
            Op(
                "get",
                f"{subject}/limits",
                f"get{noun}Limits",
                f"The rate limits of {described}: overrides and what is in effect",
                show,
                answer=LimitsView,
            ),
            Op(
                "put",
                f"{subject}/limits",
                f"set{noun}Limits",
                f'Set the rate limits of {described} (a number, "unlimited" or "default")',
                put,
                who=OPERATOR,
                body=limits.SetLimits,
                answer=LimitsView,
            ),
        ]
    period_p = "{period}"
    ops += [
        Op(
            "get",
            f"{account}/spend-caps",
            "listSpendCaps",
            "An account's spend caps and its keys', each with what its window has spent",
            spend_caps.list_caps,
            answer=list[SpendCapView],
        ),
        Op(
            "put",
            f"{account}/spend-caps/{period_p}",
            "setAccountSpendCap",
            "Cap what an account may spend per UTC day, week, month or in all (its owner or an"
            " operator)",
            spend_caps.put_account_cap,
            body=spend_caps.SetCap,
            answer=SpendCapView,
        ),
        Op(
            "put",
            f"{keys}/spend-caps/{period_p}",
            "setApiKeySpendCap",
            "Cap what an API key may spend per UTC day, week, month or in all (its account's"
            " owner or an operator)",
            spend_caps.put_key_cap,
            body=spend_caps.SetCap,
            answer=SpendCapView,
        ),
        Op(
            "delete",
            f"{V1}/spend-caps/{{cap_id}}",
            "removeSpendCap",
            "Remove a spend cap",
            spend_caps.remove_cap,
            status=204,
        ),
    ]
    ops += [
        Op(
            "get",
            f"{V1}/users",
            "listUsers",
            "People (an account's people: their account's)",
            users.list_users,
            params=[account_q],
            answer=list[UserView],
        ),
        Op(
            "post",
            f"{V1}/users",
            "createUser",
            "Add a person (an owner: to their own account)",
            users.create_user,
            body=users.CreateUser,
            status=201,
            answer=UserView,
        ),
        Op(
            "patch",
            f"{V1}/users/{{user_id}}",
            "updateUser",
            "Enable or disable a person",
            users.update_user,
            body=users.UpdateUser,
            answer=UserView,
        ),
        Op(
            "get",
            f"{V1}/instruments",
            "listInstruments",
            "Instruments: spec, limits, best price now, 30 days of prices",
            instruments.list_instruments,
            answer=list[InstrumentView],
        ),
        Op(
            "post",
            f"{V1}/instruments",
            "createInstrument",
            "Create an instrument",
            catalog.create_instrument,
            who=OPERATOR,
            body=catalog.InstrumentBody,
            status=201,
            answer=InstrumentView,
        ),
        Op(
            "get",
            instrument,
            "getInstrument",
            "An instrument",
            instruments.get_instrument,
            answer=InstrumentView,
        ),
        Op(
            "patch",
            instrument,
            "updateInstrument",
            "Edit an instrument",
            catalog.update_instrument,
            who=OPERATOR,
            body=catalog.InstrumentBody,
            answer=InstrumentView,
        ),
        Op(
            "get",
            f"{V1}/suppliers",
            "listSuppliers",
            "Suppliers",
            catalog.list_suppliers,
            who=OPERATOR,
            answer=list[SupplierView],
        ),
        Op(
            "post",
            f"{V1}/suppliers",
            "createSupplier",
            "Add a supplier",
            catalog.create_supplier,
            who=OPERATOR,
            body=catalog.SupplierBody,
            status=201,
            answer=SupplierView,
        ),
        Op(
            "get",
            supplier,
            "getSupplier",
            "A supplier",
            catalog.get_supplier,
            who=OPERATOR,
            answer=SupplierView,
        ),
        Op(
            "patch",
            supplier,
            "updateSupplier",
            "Edit a supplier (`enabled: false` takes it out of routing)",
            catalog.update_supplier,
            who=OPERATOR,
            body=catalog.SupplierBody,
            answer=SupplierView,
        ),
        Op(
            "get",
            f"{V1}/offers",
            "listOffers",
            "Offers",
            catalog.list_offers,
            who=OPERATOR,
            params=[
                query("instrument", "Only this instrument's"),
                query("supplier", "Only this supplier's"),
            ],
            answer=list[OfferView],
        ),
        Op(
            "post",
            f"{V1}/offers",
            "createOffer",
            "Add an offer",
            catalog.create_offer,
            who=OPERATOR,
            body=catalog.OfferBody,
            status=201,
            answer=OfferView,
        ),
        Op("get", offer, "getOffer", "An offer", catalog.get_offer, who=OPERATOR, answer=OfferView),
        Op(
            "patch",
            offer,
            "updateOffer",
            "Edit an offer's prices and declarations (`enabled: false` disables it); routing "
            "follows at once in every process",
            catalog.update_offer,
            who=OPERATOR,
            body=catalog.OfferBody,
            answer=OfferView,
        ),
        Op(
            "get",
            f"{V1}/offer-health",
            "offerHealth",
            "Every offer's measured figures against its instrument's spec",
            catalog.offer_health,
            who=OPERATOR,
            params=[
                query(
                    "window_seconds",
                    "The window, 1 to 86400 seconds",
                    {"type": "integer", "minimum": 1, "maximum": 86400},
                )
            ],
            answer=list[OfferStatusView],
        ),
        Op(
            "get",
            f"{V1}/audit-log",
            "auditLog",
            "Who changed what, when: newest first",
            audit.audit_log,
            who=OPERATOR,
            params=[
                limit_q(AUDIT_PAGE),
                cursor,
                since,
                until,
                query("actor", "Only this actor's"),
                query("action", "Only this action, e.g. api_key.create"),
                query("subject", "Only changes of this object"),
            ],
            answer=list[AuditEntryView],
            paged=True,
        ),
        *_webhook_ops(account_q),
    ]
    return ops


def _webhook_ops(account_q: Parameter) -> list[Op]:
    """Webhook endpoints, their events and deliveries, and the ``balance.low`` threshold."""
    hook, threshold = f"{V1}/webhooks", f"{V1}/accounts/{{account_id}}/balance-threshold"
    h = webhooks
    replay = f"{V1}/webhook-events/{{event_id}}/replay"
    return [
        Op("get", hook, "listWebhooks", "Webhook endpoints (global ones: operators)",
           h.list_webhooks, params=[account_q], answer=list[WebhookEndpointView]),
        Op("post", hook, "createWebhook",
           "Add a webhook endpoint; its signing secret is in `secret`, this once",
           h.create_webhook, body=h.CreateWebhook, status=201, answer=WebhookEndpointView),
        Op("delete", f"{hook}/{{endpoint_id}}", "deleteWebhook",
           "Remove a webhook endpoint and its deliveries", h.delete_webhook, status=204),
        Op("get", f"{V1}/webhook-events", "listWebhookEvents",
           "Webhook events, newest first, with each delivery's status", h.list_events,
           params=[account_q, limit_q(200), query("type", "Only events of this type")],
           answer=list[WebhookEventView]),
        Op("post", replay, "replayWebhookEvent",
           "Send an event again (same id) to its endpoints", h.replay_event,
           answer=dict[str, Any]),
        Op("get", threshold, "getBalanceThreshold", "The balance below which balance.low fires",
           h.get_threshold, answer=BalanceThresholdView),
        Op("put", threshold, "setBalanceThreshold",
           "Set (or with null clear) the balance below which balance.low fires",
           h.set_threshold, body=h.SetThreshold, answer=BalanceThresholdView),
    ]  # fmt: skip
