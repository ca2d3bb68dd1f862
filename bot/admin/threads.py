"""`python -m bot sessions` and `python -m bot history`: the stored threads, read-only."""

from __future__ import annotations

import argparse
import asyncio

from ..memory.transcript import render_history
from .command import AdminCommand, AdminContext, NotFoundError
from .stores import open_configured


def list_sessions(ctx: AdminContext) -> None:
    """Write one line per stored thread, most recently active first."""

    async def load() -> list[tuple[str, int, str]]:
        store = await open_configured(ctx.config)
        try:
            sessions = await store.list_sessions()
        finally:
            await store.close()
        return [
            (s.session_id, s.items, s.updated_at.strftime("%Y-%m-%d %H:%M:%S")) for s in sessions
        ]

    rows = asyncio.run(load())
    out = ctx.out
    if not rows:
        out.write("No conversations stored yet.\n")
        return
    width = max(len(session_id) for session_id, _, _ in rows)
    out.write(f"{'SESSION':<{width}}  {'ITEMS':>6}  LAST ACTIVE (UTC)\n")
    for session_id, items, when in rows:
        out.write(f"{session_id:<{width}}  {items:>6}  {when}\n")


def print_history(ctx: AdminContext) -> None:
    """Write a thread's newest `--limit` items as a readable transcript."""
    session_id, limit = ctx.args.session_id, ctx.args.limit

    async def load() -> str | None:
        store = await open_configured(ctx.config)
        try:
            total = await store.count_items(session_id)
            entries = await store.history(session_id, limit=limit)
        finally:
            await store.close()
        if total == 0:
            return None
        shown = f"the newest {len(entries)} of {total}" if total > len(entries) else f"all {total}"
        return render_history(
            entries,
            bot_name=ctx.config.name,
            header=f"{session_id} ({shown} items, newest last):",
            footer="",
            max_chars=None,
        )

    text = asyncio.run(load())
    if text is None:
        raise NotFoundError(f"No memory stored for {session_id!r}: see `python -m bot sessions`.")
    ctx.out.write(text + "\n")


def _positive(raw: str) -> int:
    """A count of at least 1, or argparse's one line saying what it must be."""
    if not raw.isdigit() or int(raw) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {raw!r}")
    return int(raw)


def _history_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("session_id", help="as listed by `sessions`, e.g. console:default")
    parser.add_argument(
        "--limit", type=_positive, default=100, metavar="N", help="newest items to show (100)"
    )


SESSIONS = AdminCommand("sessions", "list stored conversations (read-only)", list_sessions)
HISTORY = AdminCommand(
    "history",
    "print one conversation's memory (read-only)",
    print_history,
    arguments=_history_arguments,
)
