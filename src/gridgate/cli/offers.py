"""``offers``: each offer's measured status against its instrument's spec, and editing offers
at run time (list, update, disable, enable)."""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
from typing import Any

import msgspec

from gridgate.cli.common import Actions, Commands, Result, print_result, with_services
from gridgate.core.access import CLI
from gridgate.core.catalog.edits import OfferFields
from gridgate.core.health.report import offer_status_json
from gridgate.services import Services
from gridgate.settings import Settings
from gridgate.shapes import iso as _iso
from gridgate.shapes import offer_json

OFFERS_STATUS_HELP = (
    "each offer's measured figures against its instrument's spec (TTFT ceiling, throughput "
    "floor): deliveries, error rate, p50/p90 TTFT of streamed answers, p50 throughput of answers "
    "of at least health.min_throughput_tokens tokens, the in-spec fraction, and a verdict. "
    "Read from the usage records, which every gateway process writes to the one database: the "
    "figures are those of all processes together (each process's own health book, which "
    "decides its routing, sees only its own deliveries)"
)


def cmd_offers(args: argparse.Namespace, settings: Settings) -> int:
    if args.action in ("disable", "enable", "update", "list"):
        return _edit_offers(args, settings)
    window_s: float = (
        settings.health.max_age_seconds if args.window_seconds is None else args.window_seconds
    )
    if not (window_s > 0 and math.isfinite(window_s)):
        print("gridgate: --window-seconds must be a positive, finite number", file=sys.stderr)
        return 2

    async def action(services: Services) -> Result:
        report = await services.offer_board.status(CLI, window_seconds=window_s)
        return [offer_status_json(status) for status in report]

    result = asyncio.run(with_services(settings, action))
    assert isinstance(result, list)
    print_result(result, args.json, lambda: offers_status_table(result, window_s))
    return 0


_OFFER_OPTIONS = ("input_usd_per_m", "output_usd_per_m", "quality", "context", "max_output")


def _edit_offers(args: argparse.Namespace, settings: Settings) -> int:
    """``offers list``, ``offers update ID [--input-usd-per-m …]``, ``offers disable|enable``:
    effective in every gateway process within a second, kept across restarts."""

    async def action(services: Services) -> Result:
        editor = services.catalog_editor
        if args.action == "list":
            return [offer_json(o) for o in await editor.offers(CLI)]
        if args.action == "update":
            given = {k: getattr(args, k) for k in _OFFER_OPTIONS if getattr(args, k) is not None}
            fields = msgspec.convert(given, OfferFields)
            return offer_json(await editor.save_offer(CLI, fields, offer_id=args.offer_id))
        offer = await editor.set_offer_enabled(CLI, args.offer_id, args.action == "enable")
        return {"offer_id": offer.id, "disabled_at": _iso(offer.disabled_us)}

    result = asyncio.run(with_services(settings, action))

    def human() -> str:
        if isinstance(result, list):
            return "\n".join(
                f"{o['id']}  in {o['input_usd_per_m']} out {o['output_usd_per_m']} USD/1M"
                f"  {'enabled' if o['enabled'] else 'disabled'}"
                for o in result
            )
        if "disabled_at" in result:
            when = result["disabled_at"]
            return f"{result['offer_id']}: " + (f"disabled since {when}" if when else "enabled")
        return (
            f"{result['id']}: in {result['input_usd_per_m']} out {result['output_usd_per_m']} "
            f"USD/1M, quality {result['quality']:g}, context {result['context']}, "
            f"max output {result['max_output']}"
        )

    print_result(result, args.json, human)
    return 0


def offers_status_table(statuses: list[dict[str, Any]], window_s: float) -> str:
    """``offers status`` for people: one row per offer, the spec in brackets beside each
    figure it limits."""

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f}"

    def share(value: float | None) -> str:
        return "-" if value is None else f"{value:.0%}"

    header = ("offer", "deliveries", "errors", "ttft p50/p90 ms", "tok/s p50", "in spec", "verdict")
    rows: list[tuple[str, ...]] = []
    for s in statuses:
        spec = s["spec"] or {}
        ceiling, floor = spec.get("ttft_ceiling_ms"), spec.get("throughput_floor_tps")
        ttft = f"{ms(s['ttft_p50_ms'])}/{ms(s['ttft_p90_ms'])}"
        if ceiling is not None:
            ttft += f" (≤{ceiling})"
        tps = "-" if s["throughput_p50_tps"] is None else f"{s['throughput_p50_tps']:.1f}"
        if floor is not None:
            tps += f" (≥{floor:g})"
        offer = s["offer_id"] + ("" if s["enabled"] else " (disabled)")
        errors = share(s["error_rate"]) if s["deliveries"] else "-"
        rows.append(
            (
                offer,
                str(s["deliveries"]),
                errors,
                ttft,
                tps,
                share(s["in_spec_fraction"]),
                s["verdict"],
            )
        )
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header) - 1)]
    lines = [
        f"offer status over the last {window_s:g} s, from the usage records of every gateway "
        "process"
    ]
    for r in (header, *rows):
        cells = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r[:-1], widths, strict=True))
        ]
        lines.append("  ".join([*cells, r[-1]]))
    if not rows:
        lines.append("(no offers in the catalog)")
    return "\n".join(lines)


def add_parser(commands: Commands) -> None:
    offers = commands.add("offers", "supplier offers", cmd_offers)
    offer_actions = Actions(offers)
    p = offer_actions.add_parser(
        "status", help="each offer's measured figures against its instrument's spec"
    )
    p.description = OFFERS_STATUS_HELP
    p.add_argument(
        "--window-seconds",
        type=float,
        default=None,
        metavar="S",
        help="the usage records of the last S seconds, at most health.window_size per offer "
        "(default: health.max_age_seconds, 300)",
    )
    for action, effect in (
        ("disable", "stops serving at once in every gateway process; config seeding keeps it"),
        ("enable", "serves again (if its config entry is enabled)"),
    ):
        p = offer_actions.add_parser(action, help=f"{action} an offer: it {effect}")
        p.add_argument("offer_id")
    offer_actions.add_parser("list", help="every offer with its prices and state")
    p = offer_actions.add_parser(
        "update",
        help="edit an offer's prices and declarations: effective in every gateway process "
        "within a second, and kept over the config's on restart",
    )
    p.add_argument("offer_id")
    p.add_argument("--input-usd-per-m", default=None, metavar="USD", help="e.g. 0.15")
    p.add_argument("--output-usd-per-m", default=None, metavar="USD", help="e.g. 0.60")
    p.add_argument("--quality", type=float, default=None, help="declared quality score, 0-100")
    p.add_argument("--context", type=int, default=None, help="context window, tokens")
    p.add_argument("--max-output", type=int, default=None, help="max output tokens")
