"""`python -m bot usage`: what model calls cost, grouped by thread, person, day or model."""

from __future__ import annotations

import asyncio
import csv
from datetime import UTC, date, datetime
from typing import TextIO

from ..config import Config
from ..storage import UsageGrouping, UsageLine, UsageTotals
from .threads import open_configured

_HEADERS = ("calls", "input_tokens", "cached_tokens", "output_tokens", "total_tokens")
_TITLES = {"thread": "THREAD", "user": "USER", "day": "DAY (UTC)", "model": "MODEL"}
_EMPTY = {"thread": "", "user": "(summaries)", "day": "", "model": "(default model)"}


def parse_day(raw: str) -> datetime:
    """`YYYY-MM-DD` as midnight UTC that day (for `--since`)."""
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not a date like 2026-11-01") from None
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def print_usage(
    config: Config, by: UsageGrouping, since: datetime | None, fmt: str, out: TextIO
) -> None:
    """Write the usage report as an aligned table or as CSV."""

    async def load() -> list[UsageLine]:
        store = await open_configured(config)
        try:
            return await store.usage_report(by, since=since)
        finally:
            await store.close()

    lines = asyncio.run(load())
    if fmt == "csv":
        write_csv(lines, by, out)
    else:
        write_table(lines, by, since, out)


def write_csv(lines: list[UsageLine], by: UsageGrouping, out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow((by, *_HEADERS))
    for line in lines:
        writer.writerow((line.key, *_numbers(line.totals)))


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
    rows = [(line.key or _EMPTY[by], *_numbers(line.totals)) for line in lines]
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


def _numbers(totals: UsageTotals) -> tuple[int, int, int, int, int]:
    return (
        totals.calls,
        totals.input_tokens,
        totals.cached_tokens,
        totals.output_tokens,
        totals.tokens,
    )
