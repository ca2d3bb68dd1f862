"""Pure text helpers for the Slack adapter: mrkdwn and splitting.

Nothing here talks to Slack, so all of it is unit-tested without a network.
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"^\s*(```|~~~)")
_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^\s)]+|mailto:[^\s)]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
_BULLET = re.compile(r"^(\s*)[-*+]\s+", re.MULTILINE)
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_ITALIC = re.compile(r"(?<![\w*])\*(?=[^\s*])([^*\n]+?)(?<=\S)\*(?![\w*])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_INLINE_CODE = re.compile(r"(`+)(.+?)\1", re.DOTALL)
_BOLD_MARK = "\x00"


def escape(text: str) -> str:
    """Escape the three characters Slack treats as markup in message text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_mrkdwn(markdown: str) -> str:
    """Convert the Markdown models write into Slack's mrkdwn.

    Bold, italics, strike-through, links, headings and bullets are rewritten; code blocks and
    inline code are left as they are (apart from escaping and the fence's language tag, which
    Slack would show as code).
    """
    out: list[str] = []
    prose: list[str] = []
    in_fence = False
    for line in markdown.split("\n"):
        if _FENCE.match(line):
            if not in_fence and prose:
                out.append(_prose_to_mrkdwn("\n".join(prose)))
                prose = []
            out.append("```")
            in_fence = not in_fence
        elif in_fence:
            out.append(escape(line))
        else:
            prose.append(line)
    if prose:
        out.append(_prose_to_mrkdwn("\n".join(prose)))
    return "\n".join(out)


def _prose_to_mrkdwn(text: str) -> str:
    parts: list[str] = []
    last = 0
    for match in _INLINE_CODE.finditer(text):
        parts.append(_inline_to_mrkdwn(text[last : match.start()]))
        parts.append("`" + escape(match.group(2)) + "`")
        last = match.end()
    parts.append(_inline_to_mrkdwn(text[last:]))
    return "".join(parts)


def _inline_to_mrkdwn(text: str) -> str:
    text = escape(text)
    text = _BULLET.sub(r"\1• ", text)
    text = _HEADING.sub(lambda m: f"{_BOLD_MARK}{m.group(1)}{_BOLD_MARK}", text)
    text = _LINK.sub(lambda m: f"<{m.group(2)}|{m.group(1)}>", text)
    # Bold first, parked on a marker, so its asterisks are not mistaken for italics.
    text = _BOLD.sub(lambda m: f"{_BOLD_MARK}{m.group(2)}{_BOLD_MARK}", text)
    text = _ITALIC.sub(r"_\1_", text)
    text = _STRIKE.sub(r"~\1~", text)
    return text.replace(_BOLD_MARK, "*")


def split_message(text: str, limit: int) -> list[str]:
    """Split `text` into messages of at most `limit` characters.

    Splits fall on blank lines where one is near, else on line breaks, else on spaces. A split
    inside a code block closes the block at the end of one message and reopens it at the start
    of the next, so every message renders its code as code.
    """
    if limit < 20:
        raise ValueError("limit must be at least 20 characters")
    if len(text) <= limit:
        return [text] if text else []
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    fence: str | None = None  # the opening line of the code block we are in, if any

    def emit() -> None:
        nonlocal current, size
        body = "\n".join(current).rstrip("\n")
        if fence is not None:
            body += "\n```"
        if body.strip() and body.strip() != "```":
            chunks.append(body)
        current = [fence] if fence is not None else []
        size = len(fence) + 1 if fence is not None else 0

    for line in _lines_within(text, limit - 8):
        opens_or_inside = (fence is None) == bool(_FENCE.match(line))
        reserve = 4 if opens_or_inside else 0  # room to close a code block left open
        if current and size + len(line) + reserve > limit:
            carry = _paragraph_tail(current) if fence is None else []
            if sum(len(c) + 1 for c in carry) + len(line) + reserve > limit:
                carry = []
            if carry:
                del current[len(current) - len(carry) :]
                size -= sum(len(c) + 1 for c in carry)
            emit()
            for kept in carry:
                current.append(kept)
                size += len(kept) + 1
        current.append(line)
        size += len(line) + 1
        if _FENCE.match(line):
            fence = None if fence is not None else line.strip()
    fence = None
    emit()
    return chunks


def _paragraph_tail(lines: list[str]) -> list[str]:
    """The lines after the last blank line in the second half of `lines`, if no code is there."""
    for index in range(len(lines) - 1, len(lines) // 2, -1):
        if not lines[index].strip():
            tail = lines[index + 1 :]
            return [] if any(_FENCE.match(line) for line in tail) else tail
    return []


def _lines_within(text: str, width: int) -> list[str]:
    """The lines of `text`, long ones broken at spaces (or hard) to at most `width`."""
    lines: list[str] = []
    for line in text.split("\n"):
        while len(line) > width:
            cut = line.rfind(" ", 0, width)
            cut = cut if cut > width // 2 else width
            lines.append(line[:cut].rstrip())
            line = line[cut:].lstrip(" ")
        lines.append(line)
    return lines
