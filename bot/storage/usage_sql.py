"""Usage queries, written once for both back ends: turns' usage rows plus the ledger.

A turn's usage sits on its last row, with whom it answered (`asked_by`); the ledger keeps what
summaries cost and what deleted turns had cost. Every figure is the two added together, so
`/undo` and `/forget` never make spending disappear.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .layout import MESSAGES, USAGE
from .records import UsageGrouping, UsageLine, UsageTotals


@dataclass(frozen=True)
class Dialect:
    """What differs between SQLite and PostgreSQL in these queries."""

    param: Callable[[int], str]
    """The n-th (1-based) query parameter."""
    starts_with: Callable[[str, str], str]
    """SQL testing that column starts with the text parameter."""
    platform_of: Callable[[str], str]
    """SQL for a session ID's platform prefix, the ':' included."""
    day_of: Callable[[str], str]
    """SQL for a timestamp column's UTC day as `YYYY-MM-DD`."""


SQLITE = Dialect(
    param=lambda n: f"?{n}",
    starts_with=lambda column, param: f"substr({column}, 1, length({param})) = {param}",
    platform_of=lambda column: f"substr({column}, 1, instr({column}, ':'))",
    day_of=lambda column: f"substr({column}, 1, 10)",
)
POSTGRES = Dialect(
    param=lambda n: f"${n}",
    starts_with=lambda column, param: f"starts_with({column}, {param})",
    platform_of=lambda column: f"split_part({column}, ':', 1) || ':'",
    day_of=lambda column: f"to_char({column}, 'YYYY-MM-DD')",
)

_TOTALS = "count(*), coalesce(sum(i), 0), coalesce(sum(c), 0), coalesce(sum(o), 0)"


def _spending(rows_where: str, ledger_where: str) -> str:
    return f"""
    SELECT session_id, asked_by AS who, model, created_at, input_tokens AS i,
        coalesce(cached_tokens, 0) AS c, coalesce(output_tokens, 0) AS o
    FROM {MESSAGES} WHERE input_tokens IS NOT NULL{rows_where}
    UNION ALL
    SELECT session_id, author_id, model, created_at, input_tokens, cached_tokens, output_tokens
    FROM {USAGE} WHERE 1 = 1{ledger_where}"""


def thread_totals(d: Dialect) -> str:
    """Parameters: the session ID."""
    where = f" AND session_id = {d.param(1)}"
    return f"SELECT {_TOTALS} FROM ({_spending(where, where)}) AS spent"


def person_totals(d: Dialect) -> str:
    """Parameters: the user ID, the earliest time, the platform prefix (`discord:`)."""
    user, since, prefix = d.param(1), d.param(2), d.param(3)
    rows = (
        f" AND asked_by = {user} AND created_at >= {since} "
        f"AND {d.starts_with('session_id', prefix)}"
    )
    ledger = (
        f" AND author_id = {user} AND created_at >= {since} "
        f"AND {d.starts_with('session_id', prefix)}"
    )
    return f"SELECT {_TOTALS} FROM ({_spending(rows, ledger)}) AS spent"


def report(d: Dialect, by: UsageGrouping, *, since: bool) -> str:
    """Parameters: the earliest time, when `since`."""
    keys = {
        "thread": "session_id",
        "user": f"CASE WHEN who IS NULL THEN '' ELSE {d.platform_of('session_id')} || who END",
        "day": d.day_of("created_at"),
        "model": "coalesce(model, '')",
    }
    where = f" AND created_at >= {d.param(1)}" if since else ""
    order = "key" if by == "day" else "coalesce(sum(i), 0) + coalesce(sum(o), 0) DESC, key"
    return (
        f"SELECT {keys[by]} AS key, {_TOTALS} FROM ({_spending(where, where)}) AS spent "
        f"GROUP BY 1 ORDER BY {order}"
    )


def totals_of(row: Any) -> UsageTotals:
    """(calls, input, cached, output) as totals."""
    if row is None:
        return UsageTotals()
    calls, input_tokens, cached, output = row
    return UsageTotals(int(calls), int(input_tokens), int(cached), int(output))


def lines_of(rows: Iterable[Any]) -> list[UsageLine]:
    """(key, calls, input, cached, output) rows as report lines."""
    return [UsageLine(str(row[0] or ""), totals_of(row[1:])) for row in rows]
