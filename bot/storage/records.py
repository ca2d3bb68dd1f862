"""Plain records the store returns; no database types leak past the storage package."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

Item = dict[str, Any]
"""One SDK input item (`TResponseInputItem`), as stored: a JSON object."""


@dataclass(frozen=True)
class Author:
    """Who wrote a user message, recorded beside it for `/history`."""

    id: str
    name: str


@dataclass(frozen=True)
class StoredItem:
    """An item as it sits in a thread's history, with the bot's bookkeeping."""

    id: int
    item: Item
    author: Author | None
    created_at: datetime

    @property
    def role(self) -> str | None:
        role = self.item.get("role")
        return role if isinstance(role, str) else None


class WindowItem(NamedTuple):
    """A stored item read for a history window, with its size as stored (JSON characters).

    A named tuple rather than a dataclass: a turn builds one per item of its window, and a
    tuple is built several times faster (measured in bench.store_bench's profile).
    """

    id: int
    item: Item
    chars: int


@dataclass(frozen=True)
class Summary:
    """A thread's rolling summary: what every message up to `covers_id` said, in brief."""

    text: str
    covers_id: int
    created_at: datetime


@dataclass(frozen=True)
class MemoryRead:
    """What planning a turn reads in one go: the summary, the density, the newest items."""

    summary: Summary | None
    tokens_per_char: float | None
    newest: list[WindowItem]
    """The newest readable items after the summary, oldest first (one page of them)."""
    continue_below: int | None
    """When the page was full: the item ID below which older items after the summary may be
    (`read_window(before_id=...)`); None when `newest` is all of them."""


@dataclass(frozen=True)
class Usage:
    """What model calls cost, as the provider reported it, and how much text they carried."""

    model: str | None = None
    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    input_chars: int = 0
    """Characters of instructions and items sent, measured the way windows are estimated."""


@dataclass(frozen=True)
class SessionInfo:
    """One row of the session list."""

    session_id: str
    items: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class ClearResult:
    """What `/forget` removed."""

    items: int
    messages: int


def parse_timestamp(value: str | None) -> datetime:
    """Read SQLite's `CURRENT_TIMESTAMP` text (UTC, no zone) as an aware datetime."""
    if not value:
        return datetime.fromtimestamp(0, UTC)
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def format_timestamp(value: datetime) -> str:
    """The inverse of `parse_timestamp`, for comparisons inside SQL."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
