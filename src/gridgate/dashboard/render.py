"""Rendering the dashboard's pages: one Jinja environment (everything escaped unless marked
safe), the filters the templates format with, and the headers every page carries.

Pages are HTML that works without JavaScript; ``static/app.js`` only adds conveniences (a copy
button). Nothing is fetched from another origin, and the Content-Security-Policy says so to the
browser: scripts, styles and forms from this origin only, no framing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from gridgate.money import format_usd

if TYPE_CHECKING:
    from jinja2 import Environment

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def usd(nanos: int | None, places: int = 2) -> str:
    """Dollars for people: thousands separated, at least ``places`` decimals, and exact to the
    nano-dollar (``$0.000012345``)."""
    if nanos is None:
        return "–"
    sign = "−" if nanos < 0 else ""
    whole, _, frac = format_usd(abs(nanos)).partition(".")
    return f"{sign}${int(whole):,}.{frac.ljust(places, '0')}"


def when(us: int | None) -> str:
    """A unix-µs time as ``2026-12-02 14:03 UTC``."""
    if us is None:
        return "–"
    return datetime.fromtimestamp(us / 1_000_000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def tokens(count: int | None) -> str:
    """A token count for people: ``950``, ``12,800``, ``196.6k``, ``1M``."""
    if count is None:
        return "–"
    for size, unit in ((1_000_000_000, "B"), (1_000_000, "M"), (100_000, "k")):
        if count >= size:
            scaled = f"{count / (size if unit != 'k' else 1_000):.1f}".removesuffix(".0")
            return scaled + unit
    return f"{count:,}"


def milliseconds(us: int | None) -> str:
    return "–" if us is None else f"{us / 1000:,.0f} ms"


class Renderer:
    """The Jinja environment is made at the first page, not at start: a worker that serves only
    the API never imports Jinja (about 2 MB of each process's memory)."""

    def __init__(self) -> None:
        self._env: Environment | None = None

    def _environment(self) -> Environment:
        if self._env is None:
            from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

            env = Environment(
                loader=PackageLoader("gridgate.dashboard", "templates"),
                autoescape=select_autoescape(["html"]),
                undefined=StrictUndefined,
                trim_blocks=True,
                lstrip_blocks=True,
            )
            env.filters.update(usd=usd, when=when, tokens=tokens, ms=milliseconds)
            self._env = env
        return self._env

    def page(self, template: str, *, status: int = 200, **context: Any) -> web.Response:
        html = self._environment().get_template(template).render(**context)
        return web.Response(
            text=html, status=status, content_type="text/html", headers=SECURITY_HEADERS
        )


RENDERER: web.AppKey[Renderer] = web.AppKey("gridgate_dashboard_renderer", Renderer)
