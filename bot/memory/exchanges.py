"""Where a window may start: at a person's message, so the model never sees an answer without
its question or a tool's output without its call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..storage import WindowItem


def fit_exchanges(items: Sequence[WindowItem], max_chars: int) -> list[WindowItem]:
    """The newest whole exchanges of `items` whose sizes add up to at most `max_chars`."""
    total = 0
    start = len(items)
    for index in range(len(items) - 1, -1, -1):
        total += items[index].chars
        if total > max_chars:
            break
        start = index
    return align_to_exchange(list(items[start:]))


def align_to_exchange(items: list[Any]) -> list[Any]:
    """Drop a cut-off window's leading items up to its first user message.

    A window that starts mid-exchange would show the model answers without their question or
    tool outputs without their call. If the window has no user message at all (one very long
    exchange), it is returned whole and the SDK drops any orphaned tool output.
    """
    for index, entry in enumerate(items):
        if is_user_message(entry.item if isinstance(entry, WindowItem) else entry):
            return items[index:]
    return items


def is_user_message(item: Any) -> bool:
    return isinstance(item, dict) and item.get("role") == "user"
