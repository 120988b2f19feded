"""The web dashboard: server-rendered pages for consumers (overview, API keys, usage,
instruments, webhooks, profile) and operators (accounts, suppliers and offers, offer health, audit log).

Never on the hot path. Every page calls the same services as the management API
(``gridgate/services.py``), acting as the signed-in person, so the rules and the audit log are
the same whichever way a change comes in. Forms work without JavaScript and carry a CSRF token.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from gridgate.dashboard import (
    accounts,
    audit,
    caps,
    health,
    instruments,
    keys,
    offers,
    overview,
    profile,
    signin,
    usage,
    webhooks,
)
from gridgate.dashboard.render import RENDERER, Renderer
from gridgate.dashboard.session import PREFIX

STATIC = Path(__file__).parent / "static"


async def _to_overview(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(PREFIX + "/")


def add_dashboard(app: web.Application) -> None:
    app[RENDERER] = Renderer()
    r = app.router
    r.add_get("/", _to_overview)
    r.add_get(PREFIX, _to_overview)
    r.add_static(f"{PREFIX}/static", STATIC, append_version=False)
    pages = (
        ("GET", "/login", signin.login_page),
        ("POST", "/login", signin.login),
        ("POST", "/logout", signin.logout),
        ("GET", "/", overview.overview),
        ("GET", "/keys", keys.keys_page),
        ("POST", "/keys", keys.create_key),
        ("GET", "/keys/{key_id}/revoke", keys.confirm_revoke),
        ("POST", "/keys/{key_id}/revoke", keys.revoke_key),
        ("GET", "/usage", usage.usage_page),
        ("GET", "/caps", caps.caps_page),
        ("POST", "/caps", caps.set_cap),
        ("POST", "/caps/{cap_id}/remove", caps.remove_cap),
        ("GET", "/instruments", instruments.instruments_page),
        ("GET", "/profile", profile.profile_page),
        ("POST", "/profile/password", profile.change_password),
        ("POST", "/profile/tokens", profile.create_token),
        ("POST", "/profile/tokens/{token_id}/revoke", profile.revoke_token),
        ("GET", "/accounts", accounts.accounts_page),
        ("POST", "/accounts", accounts.create_account),
        ("GET", "/accounts/{account_id}", accounts.account_page),
        ("POST", "/accounts/{account_id}/money", accounts.move_money),
        ("POST", "/accounts/{account_id}/limits", accounts.set_limits),
        ("POST", "/accounts/{account_id}/users", accounts.create_user),
        ("POST", "/accounts/{account_id}/users/active", accounts.set_user_active),
        ("GET", "/offers", offers.offers_page),
        ("GET", "/offers/edit", offers.edit_offer_page),
        ("POST", "/offers/edit", offers.save_offer),
        ("POST", "/offers/toggle", offers.toggle_offer),
        ("POST", "/suppliers/toggle", offers.toggle_supplier),
        ("GET", "/health", health.health_page),
        ("GET", "/audit", audit.audit_page),
        ("GET", "/webhooks", webhooks.webhooks_page),
        ("POST", "/webhooks", webhooks.add_endpoint),
        ("POST", "/webhooks/threshold", webhooks.set_threshold),
        ("POST", "/webhooks/{endpoint_id}/remove", webhooks.remove_endpoint),
        ("POST", "/webhooks/events/{event_id}/replay", webhooks.replay_event),
    )
    for method, path, handler in pages:
        if method == "GET":
            r.add_get(PREFIX + path, handler)  # and HEAD, as every GET gridgate serves
        else:
            r.add_route(method, PREFIX + path, handler)
