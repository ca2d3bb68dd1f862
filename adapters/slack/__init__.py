"""The Slack adapter: one memory per thread, on slack-bolt's `AsyncApp`.

`adapter` registers the listeners and turns events into the core's messages. Which messages
the bot answers and which thread each belongs to is decided in `rules`; `lookups` asks Slack
what the rules need (is the bot in this thread?) and people's names. Replies go out through
`delivery`, streamed by `stream`. Commands work in a conversation as ``!forget``, ``!undo``,
``!history [page]`` or ``!help`` (or ``@bot forget`` after a mention), and as message shortcuts
and slash commands outside threads (`commands`). A tool that needs approval is shown with
Approve / Reject buttons (`prompts`), and clicks and expiries are handled in `approvals`.
Shared files reach the core through `files`, and a command's file (the whole `/history`) goes
to the asker's DM through `uploads`. How it connects (Socket Mode or HTTP) is `connection`'s,
the client's retries and their counting `api_calls`', and the `SLACK_*` settings `settings`'.

This module itself stays light: `PLUGIN` is loaded for every `python -m bot` command, even
`--help` and the admin commands, so slack-bolt and the adapter are imported only by `create`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from bot.adapter import AdapterPlugin, Config

from .settings import NEEDS, SECRET_KEYS, SlackSettings, configured

if TYPE_CHECKING:
    from bot.adapter import Core

    from .adapter import SlackAdapter

__all__ = ["PLUGIN", "SlackAdapter", "create"]


def create(core: Core, config: Config, options: Mapping[str, str]) -> SlackAdapter:
    """The adapter (see `adapter.create`), importing slack-bolt only now."""
    from .adapter import create as create_adapter

    return create_adapter(core, config, options)


def check_settings(config: Config) -> None:
    """Parse the `SLACK_*` settings as `create` does (`python -m bot check`)."""
    SlackSettings.from_config(config)


def __getattr__(name: str) -> Any:
    if name == "SlackAdapter":
        from .adapter import SlackAdapter

        return SlackAdapter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


PLUGIN = AdapterPlugin(
    summary="serve Slack (needs SLACK_BOT_TOKEN and an app token or signing secret)",
    create=create,
    configured=configured,
    secret_keys=SECRET_KEYS,
    needs=NEEDS,
    check_settings=check_settings,
)
