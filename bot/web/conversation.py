"""A thread's stored rows as the people in it saw them: who wrote what and when, the bot's
tool calls folded with their arguments and results, and what each turn cost.

Only plain values leave here; the templates escape every one of them (nothing people wrote
is ever markup).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..memory.transcript import item_text
from ..storage import DumpedMessage, Usage

MAX_SHOWN_CHARS = 4_000
"""Of a tool's arguments or result, what the page shows (the export has all of it)."""


@dataclass(frozen=True)
class Entry:
    """One row of the conversation as shown."""

    id: int
    kind: str
    """`user`, `assistant`, `tool` (a call with its result when found) or `other`."""
    speaker: str
    text: str
    created_at: datetime
    usage: Usage | None
    tool: str = ""
    arguments: str = ""
    result: str | None = None


def entries(rows: list[DumpedMessage], *, bot_name: str) -> list[Entry]:
    """The rows worth showing, oldest first; a tool's output joins its call."""
    shown: list[Entry] = []
    calls: dict[str, int] = {}
    for row in rows:
        item = _item(row.data)
        kind = item.get("type")
        role = item.get("role")
        if role == "user":
            name = row.author.name if row.author else "user"
            text = _text(item).removeprefix(f"[{name}] ")
            shown.append(Entry(row.id, "user", name, text, row.created_at, row.usage))
        elif role == "assistant":
            shown.append(
                Entry(row.id, "assistant", bot_name, _text(item), row.created_at, row.usage)
            )
        elif kind == "function_call":
            calls[str(item.get("call_id"))] = len(shown)
            shown.append(
                Entry(
                    row.id,
                    "tool",
                    bot_name,
                    "",
                    row.created_at,
                    row.usage,
                    tool=str(item.get("name", "?")),
                    arguments=_clip(_pretty(item.get("arguments"))),
                )
            )
        elif kind == "function_call_output":
            result = _clip(_pretty(item.get("output")))
            at = calls.get(str(item.get("call_id")))
            if at is not None:
                call = shown[at]
                shown[at] = Entry(**{**call.__dict__, "result": result})
            else:  # its call is on the page before this one
                shown.append(
                    Entry(row.id, "tool", bot_name, "", row.created_at, row.usage, result=result)
                )
        elif row.usage is not None:
            # A reasoning step or the like that carries the turn's cost: its tokens still show.
            shown.append(Entry(row.id, "other", bot_name, "", row.created_at, row.usage))
    return shown


def _item(data: str) -> dict[str, Any]:
    try:
        item = json.loads(data)
    except json.JSONDecodeError:
        return {}
    return item if isinstance(item, dict) else {}


def _text(item: dict[str, Any]) -> str:
    """The item's words, an image part (memory keeps placeholders, but older rows may hold
    one) shown as `[image]`."""
    content = item.get("content")
    if isinstance(content, list) and any(
        isinstance(part, dict) and part.get("type") == "input_image" for part in content
    ):
        item = {
            **item,
            "content": [
                {"type": "input_text", "text": "[image]"}
                if isinstance(part, dict) and part.get("type") == "input_image"
                else part
                for part in content
            ],
        }
    return item_text(item)


def _pretty(value: Any) -> str:
    """JSON text (a call's arguments, often a tool's result) laid out for reading."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return str(value)
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False)


def _clip(text: str) -> str:
    if len(text) <= MAX_SHOWN_CHARS:
        return text
    return f"{text[:MAX_SHOWN_CHARS]}… ({len(text) - MAX_SHOWN_CHARS:,} more characters)"
