"""build_app(settings): the routes, the error middleware, and a lifespan holding the one
AppState that ``state.py:build_state`` builds."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping

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
from gridgate.api.ops import healthz, metrics, readyz
from gridgate.core.clock import Clock, SystemClock
from gridgate.dashboard import add_dashboard
from gridgate.settings import Settings
from gridgate.state import STATE, build_state


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
    """The app's state (``state.py:build_state``) for as long as it serves."""

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        async with build_state(settings, clock, environ, openapi=load_document()) as state:
            app[STATE] = state
            yield

    return lifespan
