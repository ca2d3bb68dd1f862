"""`python -m bot usage`: what model calls cost, by thread, person, day, model or profile."""

from __future__ import annotations

import argparse
import asyncio
import csv
from datetime import UTC, date, datetime
from typing import TextIO

from ..storage import UsageGrouping, UsageLine, UsageTotals
from .command import AdminCommand, AdminContext
from .stores import open_configured

_HEADERS = ("calls", "input_tokens", "cached_tokens", "output_tokens", "total_tokens")
_TITLES = {
    "thread": "THREAD",
    "user": "USER",
    "day": "DAY (UTC)",
    "model": "MODEL",
    "profile": "PROFILE",
}
_EMPTY = {"thread": "", "day": "", "model": "(default model)", "profile": "default"}
_NAMELESS = {"summary": "(summaries)", "turn": "(anonymised turns)"}
"""By user, the keys of calls that name no one (see `UsageGrouping`), as the table shows them."""


def parse_day(raw: str) -> datetime:
    """`YYYY-MM-DD` as midnight UTC that day (for `--since`)."""
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not a date like 2026-11-01") from None
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def print_usage(ctx: AdminContext) -> None:
    """Write the usage report as an aligned table or as CSV."""
    by: UsageGrouping = ctx.args.by
    since: datetime | None = ctx.args.since

    async def load() -> list[UsageLine]:
        store = await open_configured(ctx.config)
        try:
            return await store.usage_report(by, since=since)
        finally:
            await store.close()

    lines = asyncio.run(load())
    if ctx.args.format == "csv":
        write_csv(lines, by, ctx.out)
    else:
        write_table(lines, by, since, ctx.out)


def write_csv(lines: list[UsageLine], by: UsageGrouping, out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow((by, *_HEADERS))
    for line in lines:
        key = _NAMELESS.get(line.key, line.key) if by == "user" else line.key
        writer.writerow((key, *_numbers(line.totals)))


def write_table(
    lines: list[UsageLine], by: UsageGrouping, since: datetime | None, out: TextIO
) -> None:
    scope = f"since {since:%Y-%m-%d}" if since else "all time"
    if not lines:
        out.write(f"No model usage recorded ({scope}).\n")
        return
    total = UsageTotals(
        sum(line.totals.calls for line in lines),
        sum(line.totals.input_tokens for line in lines),
        sum(line.totals.cached_tokens for line in lines),
        sum(line.totals.output_tokens for line in lines),
    )
    rows = [(_label(line.key, by), *_numbers(line.totals)) for line in lines]
    rows.append((f"TOTAL ({scope})", *_numbers(total)))
    header = (_TITLES[by], "CALLS", "INPUT", "CACHED", "OUTPUT", "TOTAL")
    cells = [header, *[(key, *(f"{n:,}" for n in numbers)) for key, *numbers in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for index, row in enumerate(cells):
        if index == len(cells) - 1:
            out.write("  ".join("-" * w for w in widths) + "\n")
        out.write(
            "  ".join(
                cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
                for i, cell in enumerate(row)
            ).rstrip()
            + "\n"
        )


def _label(key: str, by: UsageGrouping) -> str:
    if by == "user":
        return _NAMELESS.get(key, key)
    return key or _EMPTY[by]


def _numbers(totals: UsageTotals) -> tuple[int, int, int, int, int]:
    return (
        totals.calls,
        totals.input_tokens,
        totals.cached_tokens,
        totals.output_tokens,
        totals.tokens,
    )


def _day(raw: str) -> datetime:
    try:
        return parse_day(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--by", choices=tuple(_TITLES), default="thread")
    parser.add_argument("--since", type=_day, metavar="YYYY-MM-DD", help="from this UTC day on")
    parser.add_argument("--format", choices=("table", "csv"), default="table")


USAGE = AdminCommand(
    "usage",
    "model tokens used, by thread, person, day, model or profile (read-only)",
    print_usage,
    arguments=_arguments,
    description=(
        "Add up the tokens every model call used (turns, undone ones included, and "
        'summaries), grouped as asked. Days are UTC. By user, "(summaries)" are the '
        'threads\' summaries, which answer no one, and "(anonymised turns)" the turns of '
        "people removed with forget-user (and any from before the bot recorded who asked)."
    ),
)
