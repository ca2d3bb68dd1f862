"""The Slack adapter: one memory per thread, on slack-bolt's `AsyncApp`.

Which messages the bot answers and which thread each belongs to is decided in `rules`;
answers are shown by `stream`. Commands work in a conversation as ``!forget``, ``!undo``,
``!history [page]`` or ``!help`` (or ``@bot forget`` after a mention), as message shortcuts,
and as slash commands outside threads. A tool that needs approval is shown with Approve /
Reject buttons (`approvals`); shared files reach the core through `files`, and a command's
file (the whole `/history`) goes to the asker's DM through `uploads`. How it connects (Socket
Mode or HTTP) is `connection`'s; the `SLACK_*` settings are read in `settings`.
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
