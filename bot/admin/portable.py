"""Threads as files: `python -m bot export` and `python -m bot import`.

JSON Lines, one object per line, each with a `"type"`:

- `thread`: `version` (of this format), `session_id`, `created_at`, `updated_at`, and
  `forgotten: true` for a thread forgotten but for its usage records; then, for that thread,
- `message`: one stored row, in order: `created_at`, `author` (`{"id", "name"}` or null),
  `asked_by`, `usage` (or null), and the item itself: `item`, the JSON object, when
  re-encoding it gives back the stored text exactly, else `data`, the stored text as a string;
- `summary`: `covers` (the position, from 0, of the last message line it covers), `text`,
  `created_at`;
- `usage`: a ledger row (a summary's cost, or a deleted turn's): `kind`, `author_id`,
  `created_at`, `usage`.

`usage` objects hold `model`, `input_tokens`, `cached_tokens`, `output_tokens`, `input_chars`,
and `profile` (the `BOT_PROFILES` profile the call ran under; absent or null for `default`,
as in exports from before profiles).
Times are ISO 8601 in UTC (`2026-11-26T10:00:00Z`, with microseconds when the database kept
them). Reading one back gives the `ThreadDump` it was written from, so an import stores every
row exactly as it was, byte for byte, and can tell a thread already there from one that differs.
"""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..memory.transcript import render_markdown
from ..storage import (
    Author,
    DumpedMessage,
    DumpedSummary,
    LedgerEntry,
    Store,
    StoredItem,
    ThreadDump,
    Usage,
)

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
"""The JSON Lines format's version, written on every thread line."""

_USAGE_FIELDS = ("input_tokens", "cached_tokens", "output_tokens", "input_chars")


class FormatError(ValueError):
    """A line of an import file that is not what `export` writes."""

    def __init__(self, line: int, problem: str) -> None:
        super().__init__(f"line {line}: {problem}")
        self.line = line


# ----- writing -------------------------------------------------------------------------------


def jsonl(dump: ThreadDump) -> bytes:
    """A thread as JSON Lines: its thread line, messages, summaries and ledger rows."""
    positions = {message.id: index for index, message in enumerate(dump.messages)}
    objects: list[dict[str, Any]] = [
        {
            "type": "thread",
            "version": FORMAT_VERSION,
            "session_id": dump.session_id,
            "created_at": _iso(dump.created_at),
            "updated_at": _iso(dump.updated_at),
            **({"forgotten": True} if dump.forgotten else {}),
        }
    ]
    objects += [_message_object(message) for message in dump.messages]
    objects += [
        {
            "type": "summary",
            "covers": positions[summary.covers_id],
            "created_at": _iso(summary.created_at),
            "text": summary.text,
        }
        for summary in dump.summaries
        if summary.covers_id in positions
    ]
    objects += [
        {
            "type": "usage",
            "kind": entry.kind,
            "author_id": entry.author_id,
            "created_at": _iso(entry.created_at),
            "usage": _usage_object(entry.usage),
        }
        for entry in dump.ledger
    ]
    return b"".join(_line(obj) for obj in objects)


def markdown(dump: ThreadDump, *, bot_name: str) -> bytes:
    """A thread as a readable Markdown transcript (what `/history` sends as a file)."""
    entries = []
    for message in dump.messages:
        item = _loads(message.data)
        if isinstance(item, dict):
            entries.append(StoredItem(message.id, item, message.author, message.created_at))
    summary = dump.summaries[-1].text if dump.summaries else None
    text = render_markdown(dump.session_id, entries, bot_name=bot_name, summary=summary)
    return text.encode("utf-8")


def _message_object(message: DumpedMessage) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "type": "message",
        "created_at": _iso(message.created_at),
        "author": (
            None
            if message.author is None
            else {"id": message.author.id, "name": message.author.name}
        ),
        "asked_by": message.asked_by,
        "usage": None if message.usage is None else _usage_object(message.usage),
    }
    item = _exact_item(message.data)
    if item is _NOT_EXACT:
        obj["data"] = message.data
    else:
        obj["item"] = item
    return obj


_NOT_EXACT = object()


def _exact_item(data: str) -> Any:
    """The stored text as JSON, when encoding that JSON as the store does gives the same text
    back (so the file stays readable and the import still exact); else `_NOT_EXACT`."""
    parsed = _loads(data)
    if parsed is _NOT_EXACT:
        return _NOT_EXACT
    try:
        again = json.dumps(parsed, allow_nan=False)
    except (ValueError, RecursionError):
        return _NOT_EXACT
    return parsed if again == data else _NOT_EXACT


def _loads(data: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return _NOT_EXACT


def _usage_object(usage: Usage) -> dict[str, Any]:
    return {
        "model": usage.model,
        "input_tokens": usage.input_tokens,
        "cached_tokens": usage.cached_tokens,
        "output_tokens": usage.output_tokens,
        "input_chars": usage.input_chars,
        **({"profile": usage.profile} if usage.profile is not None else {}),
    }


def _line(obj: dict[str, Any]) -> bytes:
    text = json.dumps(obj, ensure_ascii=False, allow_nan=False)
    try:
        return text.encode("utf-8") + b"\n"
    except UnicodeEncodeError:
        # A lone surrogate (the store keeps one as an escape) has no UTF-8 form: this line
        # spells every non-ASCII character as an escape instead, which reads back the same.
        return json.dumps(obj, allow_nan=False).encode("ascii") + b"\n"


def _iso(value: datetime) -> str:
    value = value.astimezone(UTC)
    spec = "microseconds" if value.microsecond else "seconds"
    return value.isoformat(timespec=spec).replace("+00:00", "Z")


# ----- reading -------------------------------------------------------------------------------


class _Bad(ValueError):
    """A field's problem, before its line number is known."""


@dataclass
class _Thread:
    """A thread being read, line by line."""

    header: dict[str, Any]
    line: int
    messages: list[DumpedMessage] = field(default_factory=list)
    summaries: list[tuple[int, DumpedSummary]] = field(default_factory=list)
    """With each summary, the line it was on (its position is checked at the thread's end)."""
    ledger: list[LedgerEntry] = field(default_factory=list)

    def finish(self) -> ThreadDump:
        for line, summary in self.summaries:
            if not 0 < summary.covers_id <= len(self.messages):
                raise FormatError(
                    line,
                    f"the summary covers message {summary.covers_id - 1}, but the thread has "
                    f"{len(self.messages)} message line(s)",
                )
        return ThreadDump(
            session_id=self.header["session_id"],
            created_at=self.header["created_at"],
            updated_at=self.header["updated_at"],
            messages=tuple(self.messages),
            summaries=tuple(summary for _, summary in self.summaries),
            ledger=tuple(self.ledger),
            forgotten=self.header["forgotten"],
        )


def read_threads(lines: Iterable[bytes]) -> Iterator[ThreadDump]:
    """The threads of a JSON Lines export, each as soon as its last line is read.

    Message IDs in the dumps are positions from 1, which is all `Store.load_thread` needs.

    Raises:
        FormatError: At the first line that is not what `export` writes; the threads yielded
            before it were whole.
    """
    thread: _Thread | None = None
    for number, raw in enumerate(lines, start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError(number, "is not UTF-8 text") from None
        if not text.strip():
            continue
        obj = _loads(text)
        if not isinstance(obj, dict):
            raise FormatError(number, "is not a JSON object")
        kind = obj.get("type")
        try:
            if kind == "thread":
                if thread is not None:
                    yield thread.finish()
                thread = _Thread(_thread_header(obj), number)
            elif kind not in ("message", "summary", "usage"):
                raise _Bad(
                    f"has an unknown type {kind!r} (expected thread, message, summary or usage)"
                )
            elif thread is None:
                raise _Bad(f"a {kind} line must come after its thread line")
            elif kind == "message":
                thread.messages.append(_message(obj, len(thread.messages) + 1))
            elif kind == "summary":
                thread.summaries.append((number, _summary(obj)))
            else:
                thread.ledger.append(_ledger_entry(obj))
        except _Bad as exc:
            raise FormatError(number, str(exc)) from None
    if thread is not None:
        yield thread.finish()


def _thread_header(obj: dict[str, Any]) -> dict[str, Any]:
    version = _integer(obj, "version")
    if version > FORMAT_VERSION:
        raise _Bad(
            f"was written in format version {version}; this bot reads up to {FORMAT_VERSION}"
        )
    session_id = _text(obj, "session_id")
    if not session_id:
        raise _Bad("session_id is empty")
    return {
        "session_id": session_id,
        "created_at": _time(obj, "created_at"),
        "updated_at": _time(obj, "updated_at"),
        "forgotten": obj.get("forgotten") is True,
    }


def _message(obj: dict[str, Any], position: int) -> DumpedMessage:
    if ("item" in obj) == ("data" in obj):
        raise _Bad("a message needs exactly one of item and data")
    if "item" in obj:
        try:
            data = json.dumps(obj["item"], allow_nan=False)
        except ValueError as exc:
            raise _Bad(f"item cannot be stored: {exc}") from None
    else:
        data = _text(obj, "data")
    author = obj.get("author")
    if author is not None:
        if not isinstance(author, dict):
            raise _Bad('author must be {"id": ..., "name": ...} or null')
        author = Author(_text(author, "id", "author.id"), _text(author, "name", "author.name"))
    return DumpedMessage(
        id=position,
        data=data,
        author=author,
        created_at=_time(obj, "created_at"),
        usage=None if obj.get("usage") is None else _usage(obj["usage"]),
        asked_by=_optional_text(obj, "asked_by"),
    )


def _summary(obj: dict[str, Any]) -> DumpedSummary:
    # Message IDs are positions from 1 in a read dump (see `_message`).
    return DumpedSummary(
        covers_id=_integer(obj, "covers") + 1,
        text=_text(obj, "text"),
        created_at=_time(obj, "created_at"),
    )


def _ledger_entry(obj: dict[str, Any]) -> LedgerEntry:
    if obj.get("usage") is None:
        raise _Bad("a usage line needs its usage")
    return LedgerEntry(
        kind=_text(obj, "kind"),
        author_id=_optional_text(obj, "author_id"),
        usage=_usage(obj["usage"]),
        created_at=_time(obj, "created_at"),
    )


def _usage(value: Any) -> Usage:
    if not isinstance(value, dict):
        raise _Bad("usage must be an object or null")
    inputs, cached, output, chars = (
        _integer(value, name, f"usage.{name}") for name in _USAGE_FIELDS
    )
    return Usage(
        _optional_text(value, "model", "usage.model"),
        inputs,
        cached,
        output,
        chars,
        _optional_text(value, "profile", "usage.profile"),
    )


def _text(obj: dict[str, Any], key: str, name: str | None = None) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise _Bad(f"{name or key} must be a string")
    return value


def _optional_text(obj: dict[str, Any], key: str, name: str | None = None) -> str | None:
    return None if obj.get(key) is None else _text(obj, key, name)


def _integer(obj: dict[str, Any], key: str, name: str | None = None) -> int:
    value = obj.get(key)
    # The database columns are 32-bit on PostgreSQL: refuse what could not be stored there.
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
        raise _Bad(f"{name or key} must be a whole number from 0 to 2147483647")
    return value


def _time(obj: dict[str, Any], key: str) -> datetime:
    value = _text(obj, key)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _Bad(f"{key} is not an ISO 8601 time: {value!r}") from None
    # A time without an offset is taken as UTC, the only zone exports are written in.
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


# ----- importing -----------------------------------------------------------------------------


class Placed(enum.Enum):
    """What importing one thread did."""

    IMPORTED = "imported"
    IDENTICAL = "already there, identical"
    DIFFERENT = "left alone, different"


async def place(store: Store, dump: ThreadDump) -> Placed:
    """Store a read thread unless the store has it; say which way it went.

    `Store.load_thread` writes the whole thread in one transaction or nothing, so a repeated
    import is a no-op and a thread the store holds differently (it moved on) is never touched.
    """
    if await store.load_thread(dump):
        return Placed.IMPORTED
    if (await store.dump_thread(dump.session_id)).same_memory(dump):
        return Placed.IDENTICAL
    logger.warning("Not importing %s: the database holds it differently", dump.session_id)
    return Placed.DIFFERENT


@dataclass
class ImportReport:
    """What an import did, for the person running it."""

    placed: dict[Placed, int] = field(default_factory=lambda: dict.fromkeys(Placed, 0))
    messages: int = 0
    summaries: int = 0
    usage_rows: int = 0

    def add(self, dump: ThreadDump, placed: Placed) -> str:
        """Count one thread; returns its line for the report."""
        self.placed[placed] += 1
        if placed is not Placed.IMPORTED:
            return f"{placed.value}: {dump.session_id}"
        self.messages += len(dump.messages)
        self.summaries += len(dump.summaries)
        self.usage_rows += len(dump.ledger)
        return (
            f"imported: {dump.session_id} ({len(dump.messages)} message(s), "
            f"{len(dump.summaries)} summary(ies), {len(dump.ledger)} usage record(s))"
        )

    def total(self) -> str:
        return (
            f"Imported {self.placed[Placed.IMPORTED]} thread(s): {self.messages} message(s), "
            f"{self.summaries} summary(ies), {self.usage_rows} usage record(s). "
            f"Already there, identical: {self.placed[Placed.IDENTICAL]}. "
            f"Left alone, different: {self.placed[Placed.DIFFERENT]}."
        )
