"""What differs between SQLite and PostgreSQL in the statements written once for both.

Statements are written with PostgreSQL's numbered parameters (`$1`, `$2`) and a few fragments
from here; `Dialect.adapt` turns the numbers into SQLite's `?1`, `?2` when `statements` builds
each back end's set at import. Values differ too, and are converted here: SQLite keeps times as
`CURRENT_TIMESTAMP` text, PostgreSQL as zone-less UTC timestamps (the SDK's column types).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .records import format_timestamp, parse_timestamp

_PARAMETER = re.compile(r"\$(\d+)")


@dataclass(frozen=True)
class Dialect:
    """One back end's SQL fragments, and how values cross into and out of its columns."""

    param: Callable[[int], str]
    """The n-th (1-based) query parameter."""
    role: str
    """SQL for a message row's role (NULL for a row that is not a JSON object)."""
    cast: Callable[[str, str], str]
    """SQL giving a parameter a type where the server cannot infer it (`$3`, `bigint`)."""
    starts_with: Callable[[str, str], str]
    """SQL testing that column starts with the text parameter."""
    platform_of: Callable[[str], str]
    """SQL for a session ID's platform prefix, the ':' included."""
    day_of: Callable[[str], str]
    """SQL for a timestamp column's UTC day as `YYYY-MM-DD`."""
    one_of_ids: Callable[[str], str]
    """SQL testing that `id` is one of the IDs a parameter holds (given by `ids`)."""
    row_locks: bool
    """Whether a transaction must lock rows itself (PostgreSQL's concurrent writers); SQLite's
    single writer already runs one transaction at a time."""
    ids: Callable[[Sequence[int]], Any]
    """Row IDs as the one parameter `one_of_ids` reads."""
    stamp: Callable[[datetime], Any]
    """An aware time as a zone-less timestamp column holds it."""
    zoned: Callable[[datetime], Any]
    """An aware time as a zoned column (an approval's deadline) holds it."""
    time_of: Callable[[Any], datetime]
    """A timestamp column's value as an aware UTC time."""

    def adapt(self, statement: str) -> str:
        """`statement`, written with `$n` parameters, in this dialect."""
        return _PARAMETER.sub(lambda found: self.param(int(found.group(1))), statement)


def utc(value: datetime | None) -> datetime:
    """A stored zone-less timestamp (UTC by convention) as an aware one."""
    if value is None:
        return datetime.fromtimestamp(0, UTC)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def naive(value: datetime) -> datetime:
    """An aware time as the zone-less UTC value the SDK's columns hold."""
    return value.astimezone(UTC).replace(tzinfo=None)


SQLITE = Dialect(
    param=lambda n: f"?{n}",
    # json_extract raises on malformed JSON, and SQLite does not promise to short-circuit AND,
    # so a CASE guards it: a corrupt row never breaks a query, it just has no role.
    role="CASE WHEN json_valid(message_data) THEN json_extract(message_data, '$.role') END",
    cast=lambda param, kind: param,
    starts_with=lambda column, param: f"substr({column}, 1, length({param})) = {param}",
    platform_of=lambda column: f"substr({column}, 1, instr({column}, ':'))",
    day_of=lambda column: f"substr({column}, 1, 10)",
    one_of_ids=lambda param: f"id IN (SELECT value FROM json_each({param}))",
    row_locks=False,
    ids=lambda ids: json.dumps(list(ids)),
    stamp=format_timestamp,
    zoned=format_timestamp,
    time_of=parse_timestamp,
)
POSTGRES = Dialect(
    param=lambda n: f"${n}",
    # bot_role() is the schema's function: NULL for text that is not a JSON object.
    role="bot_role(message_data)",
    cast=lambda param, kind: f"{param}::{kind}",
    starts_with=lambda column, param: f"starts_with({column}, {param})",
    platform_of=lambda column: f"split_part({column}, ':', 1) || ':'",
    day_of=lambda column: f"to_char({column}, 'YYYY-MM-DD')",
    one_of_ids=lambda param: f"id = ANY({param}::int[])",
    row_locks=True,
    ids=list,
    stamp=naive,
    zoned=lambda value: value,
    time_of=utc,
)
