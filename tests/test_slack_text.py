"""The Slack adapter's pure text helpers."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.slack import SHORTCUTS
from adapters.slack_text import split_message, to_mrkdwn


@pytest.mark.parametrize(
    ("markdown", "mrkdwn"),
    [
        ("**bold** text", "*bold* text"),
        ("__bold__ text", "*bold* text"),
        ("an *italic* word", "an _italic_ word"),
        ("~~gone~~", "~gone~"),
        ("see [the docs](https://example.com/a?b=1)", "see <https://example.com/a?b=1|the docs>"),
        ("# Title", "*Title*"),
        ("### Smaller ###", "*Smaller*"),
        ("- one\n* two", "• one\n• two"),
        ("a < b & c > d", "a &lt; b &amp; c &gt; d"),
        ("keep `**this**` raw", "keep `**this**` raw"),
        ("2 * 3 * 4", "2 * 3 * 4"),
    ],
)
def test_markdown_to_mrkdwn(markdown: str, mrkdwn: str) -> None:
    assert to_mrkdwn(markdown) == mrkdwn


def test_code_blocks_are_left_alone_but_lose_their_language() -> None:
    text = "Look:\n```python\nx = a**2 if a < 3 else [b](c)\n```\n**done**"
    assert to_mrkdwn(text) == "Look:\n```\nx = a**2 if a &lt; 3 else [b](c)\n```\n*done*"


def test_short_text_is_one_message() -> None:
    assert split_message("hello", 100) == ["hello"]
    assert split_message("", 100) == []


def test_split_prefers_paragraphs() -> None:
    text = "a" * 50 + "\n\n" + "b" * 30 + "\n" + "c" * 30
    assert split_message(text, 80) == ["a" * 50, "b" * 30 + "\n" + "c" * 30]


def test_split_reopens_code_blocks() -> None:
    code = "\n".join(f"print({i})" for i in range(30))
    chunks = split_message(f"Intro\n```python\n{code}\n```\nOutro", 120)
    assert len(chunks) > 2
    for chunk in chunks:
        assert len(chunk) <= 120
        assert chunk.count("```") % 2 == 0
    assert chunks[1].startswith("```python\n")
    body = "\n".join(chunks)
    assert all(f"print({i})" in body for i in range(30))


def test_long_lines_are_broken_at_spaces() -> None:
    chunks = split_message("word " * 100, 60)
    assert all(len(c) <= 60 for c in chunks)
    assert " ".join(chunks).split() == ["word"] * 100


@given(st.text(alphabet=st.sampled_from("ab `\n#*"), max_size=600), st.integers(40, 200))
def test_split_never_exceeds_the_limit_or_breaks_fences(text: str, limit: int) -> None:
    for chunk in split_message(text, limit):
        assert len(chunk) <= limit
        assert chunk.count("```") % 2 == 0 or text.count("```") % 2 == 1


def test_the_manifest_declares_what_the_adapter_uses() -> None:
    manifest = (Path(__file__).parent.parent / "slack-manifest.yml").read_text()
    for callback_id in SHORTCUTS:
        assert f"callback_id: {callback_id}" in manifest
    for name in ("forget", "undo", "history", "help"):
        assert f"command: /{name}" in manifest
    for event in ("app_mention", "message.channels", "message.groups", "message.im"):
        assert f"- {event}\n" in manifest
    assert "socket_mode_enabled: true" in manifest
