"""How people's messages are written into memory, and read back out for humans.

The model needs to know who said what in a shared thread, so each user message is stored with
the speaker's display name in front (`[Alice] hello`). The name is also kept in its own column,
which lets `/history` show the message as the person wrote it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC
from typing import TYPE_CHECKING

from ..storage import Author, Item, StoredItem

if TYPE_CHECKING:
    # Only a type: importing openai takes most of a second, and the admin CLI renders
    # transcripts without ever talking to a model.
    from openai.types.responses import EasyInputMessageParam

SPEAKER_NOTE = (
    "Messages from people start with the speaker's display name in square brackets, "
    "like [Alice]. Several people may share one conversation; keep track of who said what. "
    "Do not start your own replies with a name in brackets."
)


def user_item(author: Author, text: str) -> EasyInputMessageParam:
    """The input item for one person's message."""
    return {"role": "user", "content": f"{_prefix(author.name)}{text}"}


def item_text(item: Item) -> str:
    """The readable text of a message item ('' for items without text)."""
    content = item.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        return "".join(p for p in parts if isinstance(p, str))
    return ""


def describe(stored: StoredItem, bot_name: str) -> tuple[str, str] | None:
    """(speaker, text) for one history entry, or None for bookkeeping items nobody reads."""
    item = stored.item
    role = stored.role
    if role == "user":
        text = item_text(item)
        if stored.author is not None:
            return stored.author.name, text.removeprefix(_prefix(stored.author.name))
        return "user", text
    if role == "assistant":
        return bot_name, item_text(item)
    if item.get("type") == "function_call":
        return bot_name, f"(used the tool {item.get('name', '?')})"
    return None


def render_history(
    entries: Sequence[StoredItem],
    *,
    bot_name: str,
    header: str,
    footer: str,
    max_chars: int | None,
    line_chars: int = 300,
) -> str:
    """Lay out history entries oldest to newest within `max_chars` (None: no limit).

    Long messages are clipped to a line each; if the page still does not fit, its oldest lines
    give way, because the newest are what people look for.
    """
    described = [(s, d) for s in entries if (d := describe(s, bot_name)) is not None]
    lines = [_line(stored, speaker, text) for stored, (speaker, text) in described]
    if max_chars is None:
        return "\n".join([header, *lines, footer]).strip()
    budget = max_chars - len(header) - len(footer) - 2
    per_line = max(60, min(line_chars, budget // max(1, len(lines))))
    lines = [_clip(line, per_line) for line in lines]
    dropped = 0

    def note() -> list[str]:
        return [f"(… {dropped} older on this page not shown)"] if dropped else []

    while lines and sum(len(line) + 1 for line in [*note(), *lines]) > budget:
        lines.pop(0)
        dropped += 1
    return _clip("\n".join([header, *note(), *lines, footer]).strip(), max_chars)


def render_markdown(
    title: str,
    entries: Sequence[StoredItem],
    *,
    bot_name: str,
    summary: str | None = None,
) -> str:
    """A whole thread as a readable Markdown transcript, oldest first, nothing clipped.

    `# title`, the summary (if any) as a quote, then each message under its speaker's name
    and time (``**Alice** · 2026-11-26 10:00 UTC``). Tool calls show as "(used the tool X)";
    tool outputs and empty bot steps are left out, as in `/history`. Message text is kept as
    written, since people write Markdown already; only names are escaped, so a name like
    ``*bob*`` cannot break the bold around it.
    """
    parts = [f"# {' '.join(title.split())}"]
    if summary:
        parts.append(quote_block(summary, None))
    for stored in entries:
        described = describe(stored, bot_name)
        if described is None or not described[1].strip():
            continue
        speaker, text = described
        when = stored.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
        parts.append(f"**{_escape_name(speaker)}** · {when} UTC\n\n{text.strip()}")
    # A lone surrogate (kept word for word in memory) cannot be written as UTF-8: the file
    # shows the replacement character in its place.
    return _SURROGATE.sub("\ufffd", "\n\n".join(parts) + "\n")


def quote_block(text: str, limit: int | None) -> str:
    """`text` as a block quote (`> ` lines), clipped to about `limit` characters."""
    if limit is not None:
        text = _clip(text, max(40, limit - text.count("\n") * 2 - 2))
    return "\n".join(f"> {line}" if line else ">" for line in text.splitlines())


def quote(text: str, limit: int = 80) -> str:
    """A short, single-line quotation of `text`."""
    return f"“{_clip(' '.join(text.split()), limit)}”"


def summarize_removed(removed: Iterable[StoredItem], bot_name: str) -> str:
    """'Alice's message “…” and my reply “…”' for `/undo`."""
    parts: list[str] = []
    replies = 0
    for stored in removed:
        described = describe(stored, bot_name)
        if described is None:
            continue
        speaker, text = described
        if stored.role == "user":
            parts.append(f"{speaker}'s message {quote(text)}")
        elif stored.role == "assistant" and text:
            replies += 1
            if replies == 1:
                parts.append(f"my reply {quote(text)}")
    if replies > 1:
        parts.append(f"{replies - 1} more repl{'y' if replies == 2 else 'ies'}")
    return " and ".join(parts) if parts else "the last exchange"


def _prefix(name: str) -> str:
    return f"[{name}] "


def _line(stored: StoredItem, speaker: str, text: str) -> str:
    when = stored.created_at.strftime("%Y-%m-%d %H:%M")
    return f"[{when}] {speaker}: {' '.join(text.split())}"


_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape_name(name: str) -> str:
    return re.sub(r"([\\`*_\[\]])", r"\\\1", name)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def summary_input(
    previous: str | None, items: Iterable[Item], *, bot_name: str, item_chars: int
) -> str:
    """What a summarising call reads: the summary so far, then the conversation to fold in.

    User messages already start with their speaker (`[Alice] ...`); the bot's get its name.
    Tool outputs are left out (their gist is in the answers), each message is clipped to
    `item_chars` so one giant paste cannot crowd out the rest.
    """
    lines: list[str] = []
    for item in items:
        role = item.get("role")
        if role == "user":
            lines.append(_clip(item_text(item), item_chars))
        elif role == "assistant":
            lines.append(f"{_prefix(bot_name)}{_clip(item_text(item), item_chars)}")
        elif item.get("type") == "function_call":
            lines.append(f"{_prefix(bot_name)}(used the tool {item.get('name', '?')})")
    return (
        f"Current summary:\n{previous or '(none yet)'}\n\n"
        "Conversation to fold in:\n" + "\n\n".join(lines)
    )
