"""Plain records the store returns; no database types leak past the storage package."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

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
    profile: str | None = None
    """The profile (`BOT_PROFILES`) the call ran under; None for `default` and older rows."""


@dataclass(frozen=True)
class UsageTotals:
    """Model usage added up over turns and summaries (deleted turns included: the ledger)."""

    calls: int = 0
    """Recorded model runs: one per turn, one per summary."""
    input_tokens: int = 0
    """Tokens sent, cached ones included (as providers report them)."""
    cached_tokens: int = 0
    output_tokens: int = 0

    @property
    def tokens(self) -> int:
        """What budgets count: every token sent and received."""
        return self.input_tokens + self.output_tokens


UsageGrouping = Literal["thread", "user", "day", "model", "profile"]
"""How `Store.usage_report` groups: by session ID, by `platform:user_id` (calls naming no one
by their kind instead: `summary`, or `turn` for turns whose asker is not recorded), by UTC day
(`YYYY-MM-DD`), by model name ("" when none was recorded) or by profile name ("" for
`default`, and for calls from before profiles)."""


@dataclass(frozen=True)
class UsageLine:
    """One group of a usage report."""

    key: str
    totals: UsageTotals


@dataclass(frozen=True)
class SessionInfo:
    """One row of the session list."""

    session_id: str
    items: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class ThreadFilter:
    """Which threads an operator's list shows (every condition given must hold)."""

    platform: str | None = None
    """Threads of this platform only (`discord`, `slack`, `console`)."""
    person: str | None = None
    """Threads where the bot answered this user ID (as the platform stores it)."""
    active_from: datetime | None = None
    """Last active at or after this time."""
    active_before: datetime | None = None
    """Last active before this time."""


@dataclass(frozen=True)
class ThreadCursor:
    """Where a page of the thread list ends: the next page starts after this thread."""

    updated_at: datetime
    session_id: str


@dataclass(frozen=True)
class ThreadRow:
    """One thread of an operator's list."""

    session_id: str
    created_at: datetime
    updated_at: datetime
    items: int
    tokens: int
    """Every token its model calls sent and received (as `thread_usage` counts them)."""
    people: tuple[Author, ...]
    """Who wrote among its newest 200 items, in order of their IDs."""


@dataclass(frozen=True)
class ThreadPage:
    """A page of the thread list, most recently active first."""

    rows: tuple[ThreadRow, ...]
    more: ThreadCursor | None
    """Where the next page starts; None when this page is the last."""


@dataclass(frozen=True)
class FoundMessage:
    """A message a search across every thread found, with the thread it is in."""

    session_id: str
    stored: StoredItem


@dataclass(frozen=True)
class DailyUsage:
    """Model calls of one UTC day, one platform and one model."""

    day: str
    """`YYYY-MM-DD`."""
    platform: str
    model: str
    """"" when none was recorded."""
    turns: int
    """Turns answered (summaries are calls too, but not turns)."""
    tokens: int
    """Every token sent and received, summaries included."""


@dataclass(frozen=True)
class ClearResult:
    """What `/forget` removed."""

    items: int
    messages: int


@dataclass(frozen=True)
class PendingApproval:
    """A turn paused until someone approves or rejects its tool calls (none of it is stored
    in the thread yet). What to resume it with travels here, as JSON the store never reads."""

    approval_id: str
    session_id: str
    platform: str
    requester: Author
    calls: str
    """The calls waiting, as JSON (name and shortened arguments each), for showing."""
    state: str
    """The SDK's serialised `RunState`."""
    items: str
    """The turn's items written so far (the message, the calls), as a JSON list."""
    instructions: str
    """The instructions the run started with (they carry the thread's summary)."""
    expires_at: datetime
    address: str | None = None
    """Where the adapter showed the prompt, in its own words."""
    running_since: datetime | None = None
    """When an approved call started running; set until the turn is stored, so a process
    that died meanwhile leaves it set (the call may or may not have completed)."""
    profile: str | None = None
    """The profile the run started under (its tools and model resume it); None: `default`."""


@dataclass(frozen=True)
class DumpedMessage:
    """One stored row exactly as kept: its JSON text (not re-encoded), author, time, usage."""

    id: int
    data: str
    author: Author | None
    created_at: datetime
    usage: Usage | None
    asked_by: str | None = None
    """On the row carrying a turn's usage: the ID of the person the turn answered."""


@dataclass(frozen=True)
class LedgerEntry:
    """One row of the usage ledger (a summary's cost, or a deleted turn's)."""

    kind: str
    author_id: str | None
    usage: Usage
    created_at: datetime


@dataclass(frozen=True)
class DumpedSummary:
    covers_id: int
    """The ID, in the dump's own numbering, of the last message the summary covers."""
    text: str
    created_at: datetime


@dataclass(frozen=True)
class ThreadDump:
    """A thread's whole memory, independent of the database it came from."""

    session_id: str
    created_at: datetime
    updated_at: datetime
    messages: tuple[DumpedMessage, ...]
    summaries: tuple[DumpedSummary, ...]
    ledger: tuple[LedgerEntry, ...]
    forgotten: bool = False
    """All a forgotten thread left: usage records, and no thread (a thread whose messages
    were all undone is still a thread, only an empty one)."""

    def same_memory(self, other: ThreadDump) -> bool:
        """Whether two dumps hold the same conversation, whatever IDs each database gave it.

        Times compare to the second, the finest SQLite's `CURRENT_TIMESTAMP` keeps.
        """
        mine = [
            (m.data, m.author, _second(m.created_at), m.usage, m.asked_by) for m in self.messages
        ]
        theirs = [
            (m.data, m.author, _second(m.created_at), m.usage, m.asked_by) for m in other.messages
        ]
        return (
            mine == theirs
            and [(s.text, self._position(s)) for s in self.summaries]
            == [(s.text, other._position(s)) for s in other.summaries]
            and [(e.kind, e.author_id, e.usage, _second(e.created_at)) for e in self.ledger]
            == [(e.kind, e.author_id, e.usage, _second(e.created_at)) for e in other.ledger]
        )

    def _position(self, summary: DumpedSummary) -> int:
        return next((i for i, m in enumerate(self.messages) if m.id == summary.covers_id), -1)


@dataclass(frozen=True)
class ForgetReport:
    """What forgetting one person removed (or, in a dry run, would remove)."""

    sessions: tuple[str, ...] = ()
    """The threads that held anything of theirs, in order."""
    messages: int = 0
    """Their own messages."""
    replies: int = 0
    """The bot's replies in the turns they started."""
    tool_steps: int = 0
    """Every other row of those turns: tool calls, tool outputs, reasoning."""
    summaries: int = 0
    """Thread summaries dropped because they covered a removed row."""
    approvals: int = 0
    """Pending tool approvals dropped: theirs, and any in a thread that lost rows (a paused
    run carries the thread's history)."""
    usage_records: int = 0
    """Usage records that named them and now name nobody (the token counts stay)."""

    def __add__(self, other: ForgetReport) -> ForgetReport:
        return ForgetReport(
            sessions=self.sessions + other.sessions,
            messages=self.messages + other.messages,
            replies=self.replies + other.replies,
            tool_steps=self.tool_steps + other.tool_steps,
            summaries=self.summaries + other.summaries,
            approvals=self.approvals + other.approvals,
            usage_records=self.usage_records + other.usage_records,
        )


def _second(value: datetime) -> datetime:
    return value.replace(microsecond=0)


def parse_timestamp(value: str | None) -> datetime:
    """Read SQLite's `CURRENT_TIMESTAMP` text (UTC, no zone) as an aware datetime."""
    if not value:
        return datetime.fromtimestamp(0, UTC)
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def format_timestamp(value: datetime) -> str:
    """The inverse of `parse_timestamp`, for comparisons inside SQL."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
