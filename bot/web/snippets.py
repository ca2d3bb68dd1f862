"""Search results' snippets: the part of a message around the words searched for, with those
words marked. Made here rather than by the database (FTS5's `snippet()` needs the text in the
index, which the bot keeps contentless; `ts_headline` returns markup), so it is the same on
both back ends and every piece stays plain text for the template to escape."""

from __future__ import annotations

import re
from dataclasses import dataclass

_WORD = re.compile(r"\w+")
AROUND = 80
"""Characters kept on each side of the first match."""


@dataclass(frozen=True)
class Piece:
    text: str
    marked: bool


def snippet(text: str, query: str) -> list[Piece]:
    """`text` cut to the first match of the query's words (as prefixes, ignoring case, as the
    search matches them), with every match in it marked."""
    words = [re.escape(word) for word in _WORD.findall(query)]
    flat = " ".join(text.split())
    if not words:
        return [Piece(flat[: 2 * AROUND], False)]
    pattern = re.compile(r"\b(?:" + "|".join(words) + r")\w*", re.IGNORECASE)
    first = pattern.search(flat)
    start = 0 if first is None else max(0, first.start() - AROUND)
    end = min(len(flat), (first.end() if first else 0) + AROUND)
    window = flat[start:end]
    pieces = [Piece("…", False)] if start > 0 else []
    at = 0
    for found in pattern.finditer(window):
        if found.start() > at:
            pieces.append(Piece(window[at : found.start()], False))
        pieces.append(Piece(found.group(), True))
        at = found.end()
    if at < len(window):
        pieces.append(Piece(window[at:], False))
    if end < len(flat):
        pieces.append(Piece("…", False))
    return pieces
