"""People: what each spent today and this month against the daily budget; and forgetting a
person, the `forget-user --dry-run` plan shown first, done only once confirmed."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from ..admin.erase import forget_user, report_lines, stored_user_id
from ..platforms import available_adapters
from .page import FORM, Page

SHOWN = 200
"""People listed: those who spent the most this month."""


@dataclass(frozen=True)
class Person:
    platform: str
    user_id: str
    today: int
    month: int
    share: float | None
    """Of the daily budget spent today; None without a budget."""


def routes(page: Page) -> list[web.RouteDef]:
    store = page.store

    async def listing(request: web.Request) -> web.Response:
        budget = page.config.daily_tokens_per_user
        today = {
            line.key: line.totals.tokens
            for line in await store.usage_report("user", since=page.today())
        }
        month = [
            line for line in await store.usage_report("user", since=page.month()) if ":" in line.key
        ]
        people = [
            Person(
                platform=line.key.split(":", 1)[0],
                user_id=line.key.split(":", 1)[1],
                today=today.get(line.key, 0),
                month=line.totals.tokens,
                share=None if budget is None else today.get(line.key, 0) / budget,
            )
            for line in month[:SHOWN]
        ]
        people.sort(key=lambda p: (-p.today, -p.month, p.platform, p.user_id))
        return page.render(
            request,
            "people.html",
            people=people,
            more=max(0, len(month) - SHOWN),
            budget=budget,
            platforms=sorted(available_adapters()),
        )

    async def plan(request: web.Request) -> web.Response:
        platform, user_id = _person(request.query.get("platform"), request.query.get("user"))
        report = await forget_user(store, platform, user_id, dry_run=True)
        empty = not report.sessions
        return page.render(
            request,
            "confirm.html",
            title=f"Forget {user_id} on {platform}?",
            lines=report_lines(report, dry_run=True),
            text="" if empty else "Nothing is removed until you confirm.",
            action=None if empty else "/people/forget",
            fields={"platform": platform, "user": user_id},
            button="Forget this person",
            back="/people",
        )

    async def forget(request: web.Request) -> web.Response:
        form = request[FORM]
        platform, user_id = _person(form.get("platform"), form.get("user"))
        report = await forget_user(store, platform, user_id)
        # Who it was stays out of the log, as with the CLI: only that it was done, and how much.
        page.audit(
            request,
            f"forgot a person on {platform} ({report.messages} messages in "
            f"{len(report.sessions)} threads)",
        )
        return page.render(
            request,
            "confirm.html",
            title=f"Forgot {user_id} on {platform}",
            lines=report_lines(report, dry_run=False),
            text="",
            action=None,
            fields={},
            button="",
            back="/people",
        )

    return [
        web.get("/people", listing),
        web.get("/people/forget", plan),
        web.post("/people/forget", forget),
    ]


def _person(platform: object, typed: object) -> tuple[str, str]:
    """The platform and stored user ID a form names (as `forget-user` reads them)."""
    if not isinstance(platform, str) or not isinstance(typed, str):
        raise web.HTTPSeeOther("/people")
    platform, typed = platform.strip(), typed.strip()
    if not platform or ":" in platform or not typed:
        raise web.HTTPSeeOther("/people")
    return platform, stored_user_id(platform, typed)
