"""What every view of the operator page works with: the store, the settings, sign-in, the
templates, the clock and the audit log; and the helpers they share for answering."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import jinja2
from aiohttp import web

from ..config import Config
from ..storage import Store
from .access import Access, Operator, SignInThrottle

OPERATOR = web.RequestKey("operator", Operator)
"""The signed-in session of a request (every route but sign-in has one)."""
FORM = web.RequestKey("form", dict[str, str])
"""A posted form's text fields, read and its CSRF token checked before its view runs."""

logger = logging.getLogger(__name__)
audit_log = logging.getLogger("bot.web.audit")
"""Every destructive action an operator takes: who (their session), what, when (the line's
time)."""

FOLD_SECONDS = 3600.0

NOTES = {
    "forgot": "The thread was forgotten.",
    "undone": "The last exchange was undone.",
    "nothing": "There was nothing to undo.",
    "rejected": "The tool call was rejected; its turn will not be stored.",
    "gone": "That approval was no longer waiting.",
    "busy": "The thread was busy with a turn; try again in a moment.",
}
"""What a redirect after an action may say (`?note=KEY`): fixed texts, so no query string
ever puts words of its own on the page."""


@dataclass
class Page:
    """The operator page's parts, built once and handed to every view."""

    store: Store
    config: Config
    access: Access
    throttle: SignInThrottle = field(default_factory=SignInThrottle)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    templates: jinja2.Environment = field(default_factory=lambda: templates())
    folded_at: float | None = None
    """When (monotonic) this process last folded the store's day counters."""

    async def fold_usage(self) -> None:
        """Fold the past days' usage counters, at most once an hour per process: each turn
        adds a row, and reading a month should cost its days, not its turns."""
        now = time.monotonic()
        if self.folded_at is not None and now - self.folded_at < FOLD_SECONDS:
            return
        self.folded_at = now
        folded = await self.store.fold_usage_days(self.today())
        logger.debug("Folded %d rows of usage counters", folded)

    def today(self) -> datetime:
        """The start of the current UTC day (budgets count per UTC day)."""
        return self.clock().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)

    def month(self) -> datetime:
        return self.today().replace(day=1)

    def days(self, count: int) -> list[str]:
        """The last `count` UTC days, oldest first, as `YYYY-MM-DD`."""
        today = self.today()
        return [(today - timedelta(days=n)).strftime("%Y-%m-%d") for n in range(count - 1, -1, -1)]

    def render(
        self, request: web.Request, name: str, *, status: int = 200, **values: Any
    ) -> web.Response:
        operator = request.get(OPERATOR)
        note = NOTES.get(request.query.get("note", ""))
        html = self.templates.get_template(name).render(
            bot_name=self.config.name,
            operator=operator,
            csrf=self.access.csrf(operator) if operator else "",
            path=request.path,
            note=note,
            **values,
        )
        return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")

    def problem(self, request: web.Request, status: int, title: str, text: str) -> web.Response:
        return self.render(request, "problem.html", status=status, title=title, text=text)

    def audit(self, request: web.Request, action: str) -> None:
        operator = request[OPERATOR]
        audit_log.info(
            "Operator session %s from %s: %s", operator.label, request.remote or "?", action
        )


def go(path: str, **query: str) -> web.HTTPSeeOther:
    """A redirect after a form, so reloading the page never posts it again."""
    return web.HTTPSeeOther(f"{path}?{urlencode(query)}" if query else path)


def link(path: str, query: Mapping[str, str | int | None]) -> str:
    """`path` with the query's given values."""
    kept = {key: str(value) for key, value in query.items() if value not in (None, "")}
    return f"{path}?{urlencode(kept)}" if kept else path


def templates() -> jinja2.Environment:
    """The page's templates; every value is escaped unless a template says otherwise (none
    does), so what people wrote is always shown as text."""
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("bot.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["number"] = lambda value: f"{int(value):,}"
    environment.filters["when"] = lambda value: value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    environment.globals["link"] = link
    return environment
