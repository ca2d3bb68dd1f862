"""Text rules every platform shares: fence-aware splitting, and reconciling a streamed answer.

Nothing here knows a platform: each passes its own message limit (and renders its own markup
before splitting), so Discord and Slack split the same way.
"""

from __future__ import annotations

import re

FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})")
"""A line opening or closing a code block (``` or ~~~, three or more)."""


def split_message(text: str, limit: int) -> list[str]:
    """Split text into messages of at most `limit` characters.

    Cuts fall at a paragraph break in the second half of a message where there is one, else
    between lines, else between words, else anywhere. A cut inside a code fence closes the
    fence at the end of one part and reopens it (same language) at the start of the next, so
    every part renders as code. Blank parts are dropped, because platforms reject empty
    messages. Apart from the fence lines added at cuts, the parts join up to the text.

    Args:
        text: The full text.
        limit: The longest part.

    Returns:
        The parts in order; ``[]`` for blank text.
    """
    if not text.strip():
        return []
    if len(text) <= limit:
        return [text]
    parts: list[str] = []
    current = ""
    opener: str | None = None  # the fence line open at the end of `current`
    for piece in _pieces(text, max(1, limit // 2)):
        after = _fence_after(opener, piece, max(3, limit // 4))
        reserve = len(_closer(after)) + 1 if after else 0
        if current.strip() and len(current) + len(piece) + reserve > limit:
            carry = _paragraph_tail(current) if opener is None else ""
            if len(carry) + len(piece) + reserve > limit:
                carry = ""
            parts.append(_close(current[: len(current) - len(carry)], opener))
            current = (f"{opener}\n" if opener else "") + carry
        current += piece
        opener = after
    if current.strip():
        parts.append(current)
    return [p for p in parts if p.strip()]


def reconcile(shown: str, final: str) -> str | None:
    """What to append to `shown` to make it `final`, or None when it must be replaced.

    A streamed answer usually grows into the final one; when it does not (the model's output
    was cleaned up, the turn failed, the stream broke off), whatever was shown is replaced.
    """
    return final[len(shown) :] if final.startswith(shown) else None


def _paragraph_tail(chunk: str) -> str:
    """The text after the last blank line in the second half of `chunk`, if it has no fence."""
    cut = chunk.rfind("\n\n", len(chunk) // 2)
    if cut < 0:
        return ""
    head, tail = chunk[: cut + 2], chunk[cut + 2 :]
    if not head.strip() or any(FENCE.match(line) for line in tail.splitlines()):
        return ""
    return tail


def _pieces(text: str, size: int) -> list[str]:
    """Lines (with their endings), long lines broken after whitespace into <= size pieces."""
    pieces: list[str] = []
    for line in text.splitlines(keepends=True):
        while len(line) > size:
            cut = max(line.rfind(" ", 0, size), line.rfind("\t", 0, size)) + 1
            if cut <= 0:
                cut = size
            pieces.append(line[:cut])
            line = line[cut:]
        if line:
            pieces.append(line)
    return pieces


def _fence_after(opener: str | None, piece: str, longest: int) -> str | None:
    """The open fence line after `piece`, given the one open before it."""
    match = FENCE.match(piece)
    if match is None:
        return opener
    line = piece.strip()
    if opener is None:
        # A very long fence line is cut short when reopened, so the reopened part still fits.
        return line[: min(100, longest)]
    marker = _closer(opener)
    if line.startswith(marker) and not line.lstrip(marker[0]):
        return None
    return opener


def _closer(opener: str) -> str:
    match = FENCE.match(opener)
    return match.group(1) if match else "```"


def _close(part: str, opener: str | None) -> str:
    if opener is None:
        return part
    return f"{part if part.endswith(chr(10)) else part + chr(10)}{_closer(opener)}"
