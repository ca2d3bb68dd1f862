"""Every thread, most recently active first, with filters; and a search over every thread's
words with the matches marked."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiohttp import web

from ..memory.transcript import item_text
from ..platforms import available_adapters
from ..storage import FoundMessage, ThreadCursor, ThreadFilter
from .page import Page, link
from .snippets import Piece, snippet

PAGE = 50
FOUND = 20
MAX_QUERY = 200


@dataclass(frozen=True)
class Hit:
    """A message search found, as shown."""

    session_id: str
    message_id: int
    speaker: str
    when: datetime
    pieces: list[Piece]


def routes(page: Page) -> list[web.RouteDef]:
    async def listing(request: web.Request) -> web.Response:
        query = request.query
        platform = query.get("platform", "").strip()
        person = query.get("person", "").strip()
        start, end = _day(query.get("from", "")), _day(query.get("to", ""))
        problems = [
            f"“{query[key]}” is not a date (YYYY-MM-DD)."
            for key, day in (("from", start), ("to", end))
            if query.get(key) and day is None
        ]
        where = ThreadFilter(
            platform=platform or None,
            person=person or None,
            active_from=start,
            active_before=None if end is None else end + timedelta(days=1),
        )
        listed = await page.store.thread_page(
            where, after=_cursor(query.get("after", "")), limit=PAGE
        )
        shown = {
            "platform": platform,
            "person": person,
            "from": query.get("from", ""),
            "to": query.get("to", ""),
        }
        more = listed.more
        return page.render(
            request,
            "threads.html",
            rows=listed.rows,
            platforms=sorted(available_adapters()),
            filters=shown,
            problems=problems,
            first_page=not query.get("after"),
            next_link=None
            if more is None
            else link(
                "/threads", {**shown, "after": f"{more.updated_at.isoformat()}|{more.session_id}"}
            ),
            first_link=link("/threads", shown),
        )

    async def search(request: web.Request) -> web.Response:
        words = request.query.get("q", "").strip()[:MAX_QUERY]
        before = request.query.get("before", "")
        found = (
            await page.store.search_threads(
                words, before_id=int(before) if before.isdigit() else None, limit=FOUND
            )
            if words
            else []
        )
        return page.render(
            request,
            "search.html",
            words=words,
            hits=[_hit(item, words, page.config.name) for item in found],
            more=None
            if len(found) < FOUND
            else link("/search", {"q": words, "before": found[-1].stored.id}),
        )

    return [web.get("/threads", listing), web.get("/search", search)]


def _hit(found: FoundMessage, words: str, bot_name: str) -> Hit:
    stored = found.stored
    if stored.role == "user":
        speaker = stored.author.name if stored.author else "user"
        text = item_text(stored.item).removeprefix(f"[{speaker}] ")
    else:
        speaker, text = bot_name, item_text(stored.item)
    return Hit(found.session_id, stored.id, speaker, stored.created_at, snippet(text, words))


def _day(raw: str) -> datetime | None:
    try:
        return datetime.strptime(raw.strip(), "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None


def _cursor(raw: str) -> ThreadCursor | None:
    """Where the previous page ended (`after=TIME|SESSION`); None (the first page) for
    anything else."""
    when, bar, session_id = raw.partition("|")
    if not bar:
        return None
    try:
        return ThreadCursor(datetime.fromisoformat(when), session_id)
    except ValueError:
        return None
