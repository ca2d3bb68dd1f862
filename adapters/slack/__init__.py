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
"""

from __future__ import annotations

from bot.adapter import AdapterPlugin

from .adapter import SlackAdapter, create
from .settings import SECRET_KEYS, configured

__all__ = ["PLUGIN", "SlackAdapter", "create"]

PLUGIN = AdapterPlugin(
    summary="serve Slack (needs SLACK_BOT_TOKEN and an app token or signing secret)",
    create=create,
    configured=configured,
    secret_keys=SECRET_KEYS,
)
