"""Honouring a deletion request: `python -m bot forget-user PLATFORM USER_ID [--dry-run]`.

What goes: every message the person wrote in the platform's threads, every row of the turns
they started (the bot's replies, its tool calls and their outputs), the summaries that covered
any of it, pending tool approvals that carry it, and their own memory under
`BOT_MEMORY_SCOPE=user`, whose session ID is made of theirs. What stays: other people's
messages and the turns that answered them, and the token counts of the removed turns, which
name nobody (`Store.forget_user` has the details).
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from ..config import ConfigError
from ..messages import IncomingMessage
from ..platforms import available_adapters
from ..storage import ForgetReport, Store
from .command import AdminCommand, AdminContext
from .stores import open_configured, open_for_writing

logger = logging.getLogger(__name__)


async def forget_user(
    store: Store, platform: str, user_id: str, *, dry_run: bool = False
) -> ForgetReport:
    """Forget one person on one platform (or, with `dry_run`, count what that would remove).

    The log line holds counts only: no message text, and not whom it was about, since the
    log is not the place to keep the name of someone who asked to be forgotten.
    """
    report = await store.forget_user(
        platform, user_id, dry_run=dry_run, own_session=own_session(platform, user_id)
    )
    logger.info(
        "%s a person's data on %s: %d thread(s), %d message(s), %d reply(ies), "
        "%d tool step(s), %d summary(ies), %d approval(s), %d usage record(s) anonymised",
        "Counted (dry run)" if dry_run else "Forgot",
        platform,
        len(report.sessions),
        report.messages,
        report.replies,
        report.tool_steps,
        report.summaries,
        report.approvals,
        report.usage_records,
    )
    return report


def own_session(platform: str, user_id: str) -> str:
    """The session ID of the person's own memory under `BOT_MEMORY_SCOPE=user`, which is
    made of their ID. Asked whatever the scope is now: it may have been `user` once."""
    return IncomingMessage(platform, "", user_id, "", "").session_id("user")


def report_lines(report: ForgetReport, *, dry_run: bool) -> list[str]:
    """The report for the person running the command, one fact a line."""
    if report == ForgetReport():
        return ["Nothing stored for that person: nothing to remove."]
    lines = [
        "Dry run: nothing was changed. This would remove:" if dry_run else "Removed:",
        f"  {report.messages} message(s) they wrote, in {len(report.sessions)} thread(s)",
        f"  {report.replies} bot reply(ies) and {report.tool_steps} tool step(s) answering them",
        f"  {report.summaries} thread summary(ies) that covered them (rebuilt as threads go on)",
        f"  {report.approvals} pending tool approval(s)",
        f"  and {'would anonymise' if dry_run else 'anonymised'} {report.usage_records} usage "
        "record(s) (their token counts stay, naming nobody)",
        "Threads:",
    ]
    lines += [f"  {session_id}" for session_id in report.sessions]
    return lines


def stored_user_id(platform: str, typed: str) -> str:
    """The author ID `platform` stores for the person `typed` names (the console prefixes
    its names: `root` is stored as `console:root`); as typed for a platform not installed."""
    plugin = available_adapters().get(platform)
    return typed if plugin is None else plugin.user_id(typed)


def forget_user_command(ctx: AdminContext) -> None:
    """Delete one person's messages and the turns that answered them, and report the counts."""
    platform, typed, dry_run = ctx.args.platform, ctx.args.user_id, ctx.args.dry_run
    if not platform or ":" in platform:
        raise ConfigError(f"{platform!r} is not a platform name (e.g. discord, slack, console)")
    if not typed.strip():
        raise ConfigError("USER_ID is empty")
    user_id = stored_user_id(platform, typed)

    async def run() -> list[str]:
        opening = open_configured if dry_run else open_for_writing
        store = await opening(ctx.config)
        try:
            report = await forget_user(store, platform, user_id, dry_run=dry_run)
        finally:
            await store.close()
        lines = report_lines(report, dry_run=dry_run)
        if not report.sessions and ctx.platforms and platform not in ctx.platforms:
            lines.append(f"(platforms are named as session IDs begin: {', '.join(ctx.platforms)})")
        return lines

    for line in asyncio.run(run()):
        ctx.out.write(line + "\n")


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("platform", metavar="PLATFORM", help="discord, slack or console")
    parser.add_argument(
        "user_id",
        metavar="USER_ID",
        help=(
            "their ID there: a Discord user ID, a Slack member ID (U012AB3CD), or on the "
            "console the name they chatted under (--name, else the login name)"
        ),
    )
    parser.add_argument("--dry-run", action="store_true", help="count, change nothing")


FORGET_USER = AdminCommand(
    "forget-user",
    "delete everything one person wrote, and the replies to them",
    forget_user_command,
    arguments=_arguments,
    description=(
        "Delete every message USER_ID wrote in PLATFORM's threads, the bot's replies and "
        "tool steps that answered them, the summaries that covered them and their pending "
        "approvals; usage records keep their token counts but no longer name them. For "
        "honouring a deletion request: see the README."
    ),
)
