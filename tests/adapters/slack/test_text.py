"""The Slack adapter's pure text helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.slack.commands import SHORTCUTS
from adapters.slack.text import to_mrkdwn
from bot.app import build_planner
from bot.commands import default_commands
from bot.config import Config
from bot.storage import SQLiteStore
from tests.fakes.slack_server import BOT_SCOPES

ROOT = Path(__file__).resolve().parents[3]


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


async def test_the_manifest_declares_what_the_adapter_uses() -> None:
    manifest = (ROOT / "slack-manifest.yml").read_text()
    for callback_id in SHORTCUTS:
        assert f"callback_id: {callback_id}" in manifest
    async with await SQLiteStore.open() as store:
        registry = default_commands(store, build_planner(Config(), store), "bot")
    for command in registry:  # every command the adapter registers as a slash command
        assert f"command: /{command.name}" in manifest
    for event in ("app_mention", "message.channels", "message.groups", "message.im"):
        assert f"- {event}\n" in manifest
    assert "socket_mode_enabled: true" in manifest
    # Approval buttons are interactions; shared files need files:read. The fake Slack grants
    # the bot token exactly what the manifest asks for.
    assert "interactivity:\n    is_enabled: true" in manifest
    scopes = manifest.split("    bot:\n", 1)[1].split("settings:", 1)[0]
    asked = {line.strip().removeprefix("- ") for line in scopes.splitlines() if "- " in line}
    assert asked == BOT_SCOPES
    assert "files:read" in asked
