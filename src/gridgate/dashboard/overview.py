"""The overview: balance, spend today and this month, and 30 days of spend and tokens by
instrument (an operator: every account's together, or one account's with ``?account=``)."""

from __future__ import annotations

from aiohttp import web

from gridgate.dashboard.charts import stacked_bars
from gridgate.dashboard.pages import guarded, render
from gridgate.dashboard.render import tokens, usd
from gridgate.dashboard.session import viewer
from gridgate.state import STATE


@guarded
async def overview(request: web.Request) -> web.StreamResponse:
    who = await viewer(request)
    services = request.app[STATE].services
    account = request.query.get("account") or None
    scope = account if who.is_operator else who.user.account_id
    balance = None if scope is None else await services.accounts.balance(who.actor, scope)
    summary = await services.usage_reports.overview(who.actor, scope)
    days = list(range(summary.first_day, summary.last_day + 1))
    instruments = sorted({d.instrument for d in summary.days})
    spend = {(d.day, d.instrument): d.cost for d in summary.days}
    volume = {(d.day, d.instrument): d.input_tokens + d.output_tokens for d in summary.days}
    accounts = await services.accounts.list(who.actor) if who.is_operator else []
    return render(
        request,
        who,
        "overview.html",
        active="overview",
        balance=balance,
        summary=summary,
        account=scope,
        accounts=accounts,
        spend_chart=stacked_bars(
            "Spend per day by instrument (USD)",
            days,
            instruments,
            spend,
            label=lambda v: usd(round(v), 2),
        ),
        tokens_chart=stacked_bars(
            "Tokens per day by instrument (input + output)",
            days,
            instruments,
            volume,
            label=lambda v: tokens(round(v)),
        ),
    )
