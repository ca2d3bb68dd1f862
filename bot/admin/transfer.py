"""Moving memory between databases: `python -m bot migrate --from URL --to URL`.

Thread by thread, each copied in one transaction on the target, so an interrupted run leaves
whole threads only and running it again carries on: threads already there are left alone.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from ..config import ConfigError
from ..storage import IN_MEMORY, Store, is_postgres_url, open_store, redact, sqlite_path
from .command import AdminCommand, AdminContext
from .stores import open_for_reading

logger = logging.getLogger(__name__)


@dataclass
class TransferReport:
    """What a copy did, for the person running it."""

    copied: int = 0
    """Threads written to the target."""
    forgotten: int = 0
    """Forgotten threads whose usage records (all that is left of them) were written."""
    present: int = 0
    """Threads the target already held exactly (a repeated run)."""
    differing: list[str] | None = None
    """Threads the target holds differently (it has moved on, or another source wrote them):
    left as they are."""
    messages: int = 0
    summaries: int = 0
    usage_rows: int = 0

    def lines(self) -> list[str]:
        differing = self.differing or []
        ledgers = f" and the usage records of {self.forgotten} forgotten one(s)"
        out = [
            f"Copied {self.copied} thread(s){ledgers if self.forgotten else ''}: "
            f"{self.messages} message(s), "
            f"{self.summaries} summary(ies), {self.usage_rows} usage record(s).",
            f"Already there, identical: {self.present} thread(s).",
        ]
        if differing:
            shown = ", ".join(differing[:10]) + (" ..." if len(differing) > 10 else "")
            out.append(f"Left alone, different in the target: {len(differing)} thread(s): {shown}")
        return out


async def copy_memory(source: Store, target: Store) -> TransferReport:
    """Copy every thread of `source` that `target` does not hold yet, and the usage records
    of forgotten ones, so usage adds up the same in both."""
    report = TransferReport(differing=[])
    for session_id in await source.all_session_ids():
        dump = await source.dump_thread(session_id)
        if await target.load_thread(dump):
            if dump.forgotten:
                report.forgotten += 1
            else:
                report.copied += 1
            report.messages += len(dump.messages)
            report.summaries += len(dump.summaries)
            report.usage_rows += len(dump.ledger)
            continue
        if (await target.dump_thread(session_id)).same_memory(dump):
            report.present += 1
        else:
            assert report.differing is not None
            report.differing.append(session_id)
            logger.warning("Not copying %s: the target holds it differently", session_id)
    return report


def resolved(url: str) -> str:
    """`url` with a SQLite file made absolute against the current folder (`sqlite:///a.db`
    and `a.db` are relative, `sqlite:////srv/a.db` is not), so the report says which file."""
    if is_postgres_url(url):
        return url
    path = sqlite_path(url)
    return path if path == IN_MEMORY else str(Path(path).absolute())


def migrate(ctx: AdminContext) -> None:
    """Copy every thread from `--from` to `--to`, and say what moved."""
    source, target = resolved(ctx.args.source), resolved(ctx.args.target)
    if not is_postgres_url(source) and (source == IN_MEMORY or not Path(source).is_file()):
        raise ConfigError(f"No memory file at {source}: check --from.")

    async def run() -> list[str]:
        origin = await open_for_reading(source)
        try:
            destination = await open_store(target)
            try:
                report = await copy_memory(origin, destination)
            finally:
                await destination.close()
        finally:
            await origin.close()
        return report.lines()

    ctx.out.write(f"Copying memory from {redact(source)} to {redact(target)} ...\n")
    for line in asyncio.run(run()):
        ctx.out.write(line + "\n")


def _arguments(parser: argparse.ArgumentParser) -> None:
    where = (
        "a postgresql:// URL, a SQLite file path, or sqlite:///relative/path (to the current "
        "folder) or sqlite:////absolute/path"
    )
    parser.add_argument("--from", dest="source", required=True, metavar="URL", help=where)
    parser.add_argument("--to", dest="target", required=True, metavar="URL", help="the same")


MIGRATE = AdminCommand(
    "migrate",
    "copy every thread from one memory database to another (safe to repeat)",
    migrate,
    arguments=_arguments,
    description=(
        "Copy every thread (items, authors, times, summaries, usage) from one database to "
        "another, e.g. --from sqlite:///memory.sqlite3 --to postgresql://bot@db/memorybot. "
        "Threads the target already has are left alone, so running it twice copies nothing "
        "twice."
    ),
)
