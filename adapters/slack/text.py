"""Pure text helpers for the Slack adapter: Markdown to mrkdwn.

Splitting is shared with the other platforms (`adapters.text`).

Nothing here talks to Slack, so all of it is unit-tested without a network.
"""

from __future__ import annotations

import re

from ..text import FENCE

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
        if FENCE.match(line):
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
