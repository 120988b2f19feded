"""What every dashboard page shares: the viewer, the navigation, notices after a change, and
errors shown as pages (a refusal or a missing thing is a page with its status, never a stack).

A change is a form post that answers with a redirect to a page (post, redirect, get), which
shows a notice named by ``?done=`` — a fixed message chosen by its code, never text from the
URL.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from gridgate.dashboard.render import RENDERER
from gridgate.dashboard.session import PREFIX, Viewer
from gridgate.errors import GridgateError, http_status

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CONSUMER_NAV = (
    ("overview", "Overview", "/"),
    ("keys", "API keys", "/keys"),
    ("usage", "Usage", "/usage"),
    ("caps", "Spend caps", "/caps"),
    ("instruments", "Instruments", "/instruments"),
    ("webhooks", "Webhooks", "/webhooks"),
)
OPERATOR_NAV = (
    ("accounts", "Accounts", "/accounts"),
    ("offers", "Suppliers & offers", "/offers"),
    ("health", "Offer health", "/health"),
    ("audit", "Audit log", "/audit"),
)
NOTICES = {
    "key-revoked": "The key is revoked: it is refused from now on, in every gateway process.",
    "account-created": "The account is created.",
    "credited": "The credit is applied.",
    "adjusted": "The adjustment is applied.",
    "limits-saved": "The limits are saved; every gateway process applies them within a second.",
    "user-created": "The user is created and can sign in.",
    "user-updated": "The user is updated.",
    "offer-saved": "The offer is saved; every gateway process routes by it within a second.",
    "offer-enabled": "The offer serves again.",
    "offer-disabled": "The offer is out of routing in every gateway process.",
    "supplier-saved": "The supplier is saved.",
    "password-changed": "Your password is changed.",
    "token-revoked": "The token is revoked.",
    "cap-saved": "The spend cap is saved: every gateway process holds requests against it.",
    "cap-removed": "The spend cap is removed.",
    "webhook-removed": "The webhook endpoint is removed.",
    "webhook-replayed": "The event is queued again, with the same id.",
    "threshold-saved": "The low-balance threshold is saved.",
}


def url(path: str) -> str:
    return PREFIX + path


def render(
    request: web.Request,
    who: Viewer | None,
    template: str,
    *,
    active: str = "",
    status: int = 200,
    **context: Any,
) -> web.Response:
    notice = NOTICES.get(request.query.get("done", ""))
    return request.app[RENDERER].page(
        template,
        status=status,
        who=who,
        csrf_token=None if who is None else who.csrf_token,
        nav=CONSUMER_NAV,
        operator_nav=OPERATOR_NAV if who is not None and who.is_operator else (),
        active=active,
        prefix=PREFIX,
        notice=notice,
        **context,
    )


def done(path: str, notice: str) -> web.HTTPSeeOther:
    """The redirect after a change (raise it)."""
    separator = "&" if "?" in path else "?"
    return web.HTTPSeeOther(f"{url(path)}{separator}done={notice}")


def guarded(handler: Handler) -> Handler:
    """Errors of ``handler`` become an error page with their status (redirects pass)."""

    async def page(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except GridgateError as exc:
            return request.app[RENDERER].page(
                "error.html",
                status=http_status(exc),
                who=None,
                csrf_token=None,
                nav=(),
                operator_nav=(),
                active="",
                prefix=PREFIX,
                notice=None,
                status_code=http_status(exc),
                message=exc.message,
            )

    page.__name__ = handler.__name__
    page.__doc__ = handler.__doc__
    return page
