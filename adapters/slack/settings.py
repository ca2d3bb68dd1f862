"""The Slack adapter's own settings (`SLACK_*`), read from the environment it is given."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bot.adapter import Config, ConfigError, boolean, name_set, read_setting
from bot.adapter import port as port_number

from .rules import AccessPolicy

SECRET_KEYS = ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET")
NEEDS = "SLACK_BOT_TOKEN with SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (HTTP mode)"
"""What `configured` asks for, as the line for "no platform configured" names it."""
MAX_SOCKET_CONNECTIONS = 10
"""Slack lets one app keep at most this many Socket Mode connections open at once."""


def connection_count(raw: str) -> int:
    """`SLACK_SOCKET_CONNECTIONS`: a whole number from 1 to Slack's limit of 10."""
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_SOCKET_CONNECTIONS:
        raise ValueError(
            f"must be a whole number from 1 to {MAX_SOCKET_CONNECTIONS} "
            "(Slack's limit of Socket Mode connections per app)"
        )
    return int(raw)


@dataclass(frozen=True)
class SlackSettings:
    """Everything the Slack adapter reads from settings.

    With an app token the adapter connects through Socket Mode (no public URL needed);
    without one it serves Slack's signed HTTP requests on `port`.
    """

    bot_token: str = field(repr=False)
    app_token: str | None = field(default=None, repr=False)
    signing_secret: str | None = field(default=None, repr=False)
    port: int = 3000
    streaming: bool = True
    """`SLACK_STREAMING`: Slack's native chat streaming; false posts and edits instead."""
    socket_connections: int = 1
    """`SLACK_SOCKET_CONNECTIONS`: Socket Mode connections kept open at once (HTTP mode: unused)."""
    policy: AccessPolicy = field(default_factory=AccessPolicy)
    """`SLACK_ALLOWED_CHANNELS` and `SLACK_ALLOWED_USERS`."""
    reply_to_bots: bool = False
    """`BOT_REPLY_TO_BOTS`, shared with the other platforms."""

    @property
    def socket_mode(self) -> bool:
        return self.app_token is not None

    @classmethod
    def from_config(cls, config: Config) -> SlackSettings:
        """Parse and validate the settings; raises `ConfigError` with one clear line."""
        env = config.environment
        bot_token = env.get("SLACK_BOT_TOKEN") or None
        app_token = env.get("SLACK_APP_TOKEN") or None
        signing_secret = env.get("SLACK_SIGNING_SECRET") or None
        if not bot_token:
            raise ConfigError(
                "SLACK_BOT_TOKEN is not set: put your app's Bot User OAuth Token (xoxb-...) in "
                ".env, plus SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (HTTP mode)."
            )
        if not bot_token.startswith("xoxb-"):
            raise ConfigError(
                "SLACK_BOT_TOKEN must be the Bot User OAuth Token starting with xoxb- "
                "(OAuth & Permissions page of your Slack app)."
            )
        if app_token is not None and not app_token.startswith("xapp-"):
            raise ConfigError(
                "SLACK_APP_TOKEN must be an app-level token starting with xapp- "
                "(Basic Information > App-Level Tokens, scope connections:write)."
            )
        if app_token is None and not signing_secret:
            raise ConfigError(
                "Set SLACK_APP_TOKEN (Socket Mode, no public URL needed) or SLACK_SIGNING_SECRET "
                "(HTTP mode) in .env: see the Slack section of the README."
            )
        return cls(
            bot_token=bot_token,
            app_token=app_token,
            signing_secret=signing_secret,
            port=read_setting(env, "SLACK_PORT", port_number, cls.port),
            streaming=read_setting(env, "SLACK_STREAMING", boolean, cls.streaming),
            socket_connections=read_setting(
                env, "SLACK_SOCKET_CONNECTIONS", connection_count, cls.socket_connections
            ),
            policy=AccessPolicy(
                channels=read_setting(env, "SLACK_ALLOWED_CHANNELS", name_set, frozenset()),
                users=read_setting(env, "SLACK_ALLOWED_USERS", name_set, frozenset()),
            ),
            reply_to_bots=config.reply_to_bots,
        )


def configured(environment: Mapping[str, str]) -> bool:
    """Whether Slack's credentials are set: a bot token, and an app token or signing secret."""
    return bool(environment.get("SLACK_BOT_TOKEN")) and bool(
        environment.get("SLACK_APP_TOKEN") or environment.get("SLACK_SIGNING_SECRET")
    )
