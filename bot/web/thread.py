"""One thread: the conversation as its people saw it, its summary and what each turn cost;
and forgetting it, undoing its last exchange, or downloading it (the CLI's export formats)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiohttp import web

from ..admin import portable
from ..storage import ThreadBusyError
from .conversation import entries
from .page import FORM, Page, go

T = TypeVar("T")

ROWS = 100
"""Rows per page of a thread (its newest first; older ones a link away)."""
HOLD_SECONDS = 10.0
"""How long an action waits for a turn running in the thread to finish."""


def routes(page: Page) -> list[web.RouteDef]:
    store = page.store

    async def show(request: web.Request) -> web.Response:
        session_id = _session(request)
        before = request.query.get("before", "")
        # Asked at once: on PostgreSQL each goes on a pooled connection of its own. Each
        # costs what the page shows (the thread's totals are kept on its row).
        rows, thread, memory, approval = await asyncio.gather(
            store.thread_rows(
                session_id, before_id=int(before) if before.isdigit() else None, limit=ROWS + 1
            ),
            store.thread_row(session_id),
            store.read_memory(session_id, density=False),
            store.approval_in(session_id),
        )
        if thread is None:
            return page.problem(
                request, 404, "No such thread", "No memory is stored for that thread."
            )
        older = len(rows) > ROWS
        rows = rows[-ROWS:]
        summary = memory.summary
        covered = await store.count_messages(session_id, up_to=summary.covers_id) if summary else 0
        return page.render(
            request,
            "thread.html",
            session_id=session_id,
            entries=entries(rows, bot_name=page.config.name),
            thread=thread,
            summary=summary,
            covered=covered,
            approval=approval,
            older=rows[0].id if older else None,
            paged=bool(before),
        )

    async def confirm(request: web.Request) -> web.Response:
        session_id = _session(request)
        action = request.match_info["action"]
        thread = await store.thread_row(session_id)
        items = thread.items if thread else 0
        return page.render(
            request,
            "confirm.html",
            title="Forget this thread?" if action == "forget" else "Undo the last exchange?",
            text=(
                f"All {items:,} stored items of {session_id} go, with its summary and any "
                "tool call waiting in it; the bot starts it afresh. Its usage records stay."
                if action == "forget"
                else f"The last person's message in {session_id} and everything after it go."
            ),
            action=f"/thread/{action}",
            fields={"id": session_id},
            button="Forget the thread" if action == "forget" else "Undo the last exchange",
            back=f"/thread?id={session_id}",
        )

    async def held(session_id: str, work: Callable[[], Awaitable[T]]) -> T:
        """`work` done holding the thread, as a chat command would: never beside a turn."""
        try:
            async with store.hold_thread(session_id, wait=HOLD_SECONDS):
                return await work()
        except ThreadBusyError:
            raise go("/thread", id=session_id, note="busy") from None

    async def forget(request: web.Request) -> web.Response:
        session_id = _posted(request)
        cleared = await held(session_id, lambda: store.clear(session_id))
        page.audit(request, f"forgot thread {session_id} ({cleared.items} items)")
        raise go("/threads", note="forgot")

    async def undo(request: web.Request) -> web.Response:
        session_id = _posted(request)
        removed = await held(session_id, lambda: store.undo_last_exchange(session_id))
        if removed:
            page.audit(request, f"undid the last exchange of {session_id} ({len(removed)} items)")
        raise go("/thread", id=session_id, note="undone" if removed else "nothing")

    async def export(request: web.Request) -> web.Response:
        session_id = _session(request)
        markdown = request.query.get("format") == "md"
        dump = await store.dump_thread(session_id)
        if not dump.messages and not dump.ledger:
            return page.problem(
                request, 404, "No such thread", "No memory is stored for that thread."
            )
        body = (
            portable.markdown(dump, bot_name=page.config.name) if markdown else portable.jsonl(dump)
        )
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", session_id) + (".md" if markdown else ".jsonl")
        page.audit(request, f"exported {session_id} as {'Markdown' if markdown else 'JSON Lines'}")
        return web.Response(
            body=body,
            content_type="text/markdown" if markdown else "application/x-ndjson",
            charset="utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    return [
        web.get("/thread", show),
        web.get(r"/thread/{action:forget|undo}", confirm),
        web.post("/thread/forget", forget),
        web.post("/thread/undo", undo),
        web.get("/thread/export", export),
    ]


def _session(request: web.Request) -> str:
    session_id = request.query.get("id", "")
    if not session_id:
        raise web.HTTPSeeOther("/threads")
    return session_id


def _posted(request: web.Request) -> str:
    """The thread a confirmed form names (the guard has read and checked the form)."""
    session_id = request[FORM].get("id")
    if not isinstance(session_id, str) or not session_id:
        raise web.HTTPSeeOther("/threads")
    return session_id
