"""The Discord adapter's pure text helpers: mentions, thread titles."""

from __future__ import annotations

import pytest

from adapters.discord.text import strip_mentions, thread_title


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("<@42> hello", "hello"),
        ("<@!42> hello", "hello"),
        ("hello <@42>", "hello"),
        ("hi <@42>, how are you?", "hi , how are you?"),
        ("<@&7> by role", "by role"),
        ("<@43> is someone else", "<@43> is someone else"),
        ("<@42> /forget", "/forget"),
        ("<@42>\n```py\ncode\n```", "```py\ncode\n```"),
    ],
)
def test_strip_mentions(content: str, expected: str) -> None:
    assert strip_mentions(content, 42, [7]) == expected


def test_thread_title() -> None:
    assert thread_title("plan a trip\nto Rome") == "plan a trip"
    assert thread_title("   ") == "Conversation"
    long = thread_title("x" * 200)
    assert len(long) == 80
    assert long.endswith("…")
