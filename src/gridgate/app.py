"""build_app(settings): the routes, the error middleware, and a lifespan holding the one
AppState that ``state.py:build_state`` builds."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping

from aiohttp import web

from gridgate.api.consumption.anthropic_messages import count_tokens, messages
from gridgate.api.consumption.models import get_model, list_models
from gridgate.api.consumption.offers import offers_status
from gridgate.api.consumption.openai_chat import chat_completions
from gridgate.api.consumption.openai_responses import responses
from gridgate.api.consumption.responses_store import (
    delete_response,
    get_response,
    list_input_items,
)
from gridgate.api.consumption.usage import (
    get_receipt,
    list_receipts,
    receipt_keys,
    receipts_context,
    usage_summary,
)
from gridgate.api.errors import REQUEST_IDS, RequestIds, error_middleware
from gridgate.api.manage.openapi import load_document
from gridgate.api.manage.routes import operations
from gridgate.api.ops import healthz, metrics, readyz
from gridgate.core.clock import Clock, SystemClock
from gridgate.dashboard import add_dashboard
from gridgate.settings import Settings
from gridgate.state import STATE, build_state


def build_app(
    settings: Settings, *, clock: Clock | None = None, environ: Mapping[str, str] | None = None
) -> web.Application:
    """Every GET route is added with ``add_get``, which answers HEAD too (the same status and
    headers, no body): clients probe with HEAD, and ``tests/api/test_head.py`` holds it."""
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
    app.router.add_post("/v1/responses", responses)
    app.router.add_get("/v1/responses/{response_id}", get_response)
    app.router.add_delete("/v1/responses/{response_id}", delete_response)
    app.router.add_get("/v1/responses/{response_id}/input_items", list_input_items)
    app.router.add_get("/v1/usage", list_receipts)
    app.router.add_get("/v1/usage/summary", usage_summary)  # before /v1/usage/{request_id}
    app.router.add_get("/v1/usage/{request_id}", get_receipt)
    app.router.add_get("/.well-known/gridgate-receipt-keys", receipt_keys)
    app.router.add_get("/v1/offers/status", offers_status)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model}", get_model)
    app.router.add_get("/healthz", healthz)
    # Claude Code probes its base URL's /api/hello (HEAD, to warm the connection) every session
    app.router.add_get("/api/hello", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    _management_routes(app.router)
    add_dashboard(app)
    app.cleanup_ctx.append(_lifespan(settings, clock or SystemClock(), environ))
    app.cleanup_ctx.append(receipts_context)  # over the state the lifespan built
    return app


def _management_routes(router: web.UrlDispatcher) -> None:
    """The management API (``/api/v1``): ``api/manage/routes.py``'s table, which its OpenAPI
    document describes."""
    for op in operations():
        if op.method == "get":
            router.add_get(op.path, op.handler)  # and HEAD, as every GET here
        else:
            router.add_route(op.method.upper(), op.path, op.handler)


def _lifespan(
    settings: Settings, clock: Clock, environ: Mapping[str, str] | None
) -> Callable[[web.Application], AsyncIterator[None]]:
    """The app's state (``state.py:build_state``) for as long as it serves."""

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        async with build_state(settings, clock, environ, openapi=load_document()) as state:
            app[STATE] = state
            yield

    return lifespan
