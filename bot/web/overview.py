"""The overview: the last 30 days' turns and tokens, threads active today, tool calls
waiting, and the people at or near their daily budget."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from aiohttp import web

from ..storage import Store, UsageLine
from .charts import stacked
from .page import Page

DAYS = 30
NEAR = 0.8
"""Of the daily budget, what counts as near it."""


@dataclass(frozen=True)
class Spender:
    """A person's spending today, against the daily budget."""

    platform: str
    user_id: str
    tokens: int
    share: float | None
    """Of the budget (1.0: all of it); None without a budget."""


def routes(page: Page) -> list[web.RouteDef]:
    async def show(request: web.Request) -> web.Response:
        store = page.store
        days = page.days(DAYS)
        await page.fold_usage()
        usage = await store.daily_usage(page.today() - timedelta(days=DAYS - 1))
        waiting = await store.waiting_approvals()
        spenders = await spending_today(store, page)
        budget = page.config.daily_tokens_per_user
        return page.render(
            request,
            "overview.html",
            turns_chart=stacked(
                "Turns per day, by platform", days, ((u.day, u.platform, u.turns) for u in usage)
            ),
            tokens_chart=stacked(
                "Tokens per day, by model", days, ((u.day, u.model, u.tokens) for u in usage)
            ),
            turns=sum(u.turns for u in usage),
            tokens=sum(u.tokens for u in usage),
            active=await store.active_threads(page.today()),
            waiting=len(waiting),
            budget=budget,
            near=[s for s in spenders if s.share is not None and s.share >= NEAR],
            top=spenders[:5],
            days=DAYS,
        )

    return [web.get("/", show)]


async def spending_today(store: Store, page: Page) -> list[Spender]:
    """Everyone who spent tokens today, most first."""
    budget = page.config.daily_tokens_per_user
    lines = await store.usage_report("user", since=page.today())
    return [spender(line, budget) for line in lines if ":" in line.key]


def spender(line: UsageLine, budget: int | None) -> Spender:
    platform, _, user_id = line.key.partition(":")
    tokens = line.totals.tokens
    return Spender(platform, user_id, tokens, None if budget is None else tokens / budget)
