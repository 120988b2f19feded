"""The headers of an answer, on either surface: the request's rate-limit standing, its ids and,
when the operator exposes it, the supplier that served it."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from gridgate.api.errors import request_id_headers
from gridgate.core.exchange.tab import Served
from gridgate.state import AppState


def answer_headers(
    state: AppState,
    request: web.Request,
    served: Served | None,
    limits: Mapping[str, str],
    *,
    anthropic: bool = False,
) -> dict[str, str]:
    """``served`` is None for headers that leave before a supplier has answered (a stream's
    keep-alives); ``limits`` are the rate-limit headers (empty when no limit applies)."""
    headers = {**limits, **request_id_headers(request, anthropic=anthropic)}
    if served is not None and state.settings.server.expose_supplier:
        headers["x-gridgate-supplier"] = served.supplier
    return headers
