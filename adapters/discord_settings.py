"""The Discord adapter's own settings (`DISCORD_*`), read from the environment it is given."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bot.adapter import Config, ConfigError, boolean, id_set, read_setting, snowflake

from .discord_rules import AccessPolicy

TOKEN = "DISCORD_TOKEN"
SECRET_KEYS = (TOKEN,)


@dataclass(frozen=True)
class DiscordSettings:
    """Everything the Discord adapter reads from settings."""

    token: str = field(repr=False)
    policy: AccessPolicy = field(default_factory=AccessPolicy)
    """Allow-lists: `DISCORD_ALLOWED_GUILDS`, `_CHANNELS`, `_USERS`, `_ROLES`."""
    dev_guild: int | None = None
    """`DISCORD_DEV_GUILD`: register slash commands there only, where they appear at once."""
    open_threads: bool = False
    """`DISCORD_OPEN_THREADS`: answer a mention in a channel in a new thread."""
    reply_to_bots: bool = False
    """`BOT_REPLY_TO_BOTS`, shared with the other platforms."""

    @classmethod
    def from_config(cls, config: Config) -> DiscordSettings:
        """Parse and validate the settings; raises `ConfigError` with one clear line."""
        env = config.environment
        token = env.get(TOKEN)
        if not token:
            raise ConfigError(
                "DISCORD_TOKEN is not set: create a bot in the Discord Developer Portal and "
                "put its token in .env (see .env.example)."
            )
        return cls(
            token=token,
            policy=AccessPolicy(
                guilds=read_setting(env, "DISCORD_ALLOWED_GUILDS", id_set, frozenset()),
                channels=read_setting(env, "DISCORD_ALLOWED_CHANNELS", id_set, frozenset()),
                users=read_setting(env, "DISCORD_ALLOWED_USERS", id_set, frozenset()),
                roles=read_setting(env, "DISCORD_ALLOWED_ROLES", id_set, frozenset()),
            ),
            dev_guild=read_setting(env, "DISCORD_DEV_GUILD", snowflake, cls.dev_guild),
            open_threads=read_setting(env, "DISCORD_OPEN_THREADS", boolean, cls.open_threads),
            reply_to_bots=config.reply_to_bots,
        )


def configured(environment: Mapping[str, str]) -> bool:
    """Whether Discord's credentials are set."""
    return bool(environment.get(TOKEN))
