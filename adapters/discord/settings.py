"""The Discord adapter's own settings (`DISCORD_*`), read from the environment it is given."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from bot.adapter import (
    Config,
    ConfigError,
    boolean,
    id_set,
    read_setting,
    setting_origin,
    snowflake,
)

from .rules import AccessPolicy

TOKEN = "DISCORD_TOKEN"
SECRET_KEYS = (TOKEN,)

Registration = Literal["auto", "on", "off"]


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
    memory_scope: str = "thread"
    """`BOT_MEMORY_SCOPE`, the core's: under `channel` or `user` a thread's messages join a
    memory other threads join too."""
    shard_count: int | None = None
    """`DISCORD_SHARD_COUNT`: shards across all workers; None connects once, unsharded."""
    shard_ids: tuple[int, ...] | None = None
    """`DISCORD_SHARD_IDS`: the shards this worker serves; None serves all `shard_count`."""
    register_commands: Registration = "auto"
    """`DISCORD_REGISTER_COMMANDS`: sync slash commands; `auto` syncs from shard 0's worker."""

    @property
    def sharded(self) -> bool:
        """Whether to connect through discord.py's sharding (`AutoShardedClient`)."""
        return self.shard_count is not None

    @property
    def syncs_commands(self) -> bool:
        """Whether this worker syncs the slash commands with Discord.

        Every worker knows the commands (interactions arrive on the shard of their guild), but
        a sync replaces the whole set, so one worker is enough: the one serving shard 0.
        """
        if self.register_commands != "auto":
            return self.register_commands == "on"
        return self.shard_ids is None or 0 in self.shard_ids

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
        shard_count = read_setting(env, "DISCORD_SHARD_COUNT", _shard_count, cls.shard_count)
        shard_ids = read_setting(env, "DISCORD_SHARD_IDS", _shard_ids, cls.shard_ids)
        _check_shards(shard_count, shard_ids, setting_origin(env, "DISCORD_SHARD_IDS"))
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
            memory_scope=config.memory_scope,
            shard_count=shard_count,
            shard_ids=shard_ids,
            register_commands=read_setting(
                env, "DISCORD_REGISTER_COMMANDS", _registration, cls.register_commands
            ),
        )


def _shard_count(raw: str) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError("must be a whole number of at least 1 (the shards of all workers)")
    return int(raw)


def _shard_ids(raw: str) -> tuple[int, ...]:
    parts = raw.replace(",", " ").split()
    if not parts or not all(part.isdigit() for part in parts):
        raise ValueError("must be shard numbers from 0, separated by commas, like 0,1")
    ids = [int(part) for part in parts]
    if len(set(ids)) != len(ids):
        raise ValueError("names a shard twice")
    return tuple(sorted(ids))


def _check_shards(count: int | None, ids: tuple[int, ...] | None, origin: str) -> None:
    """Shard IDs within the count; `origin` is where the IDs were set, to fix them there."""
    if ids is None:
        return
    if count is None:
        raise ConfigError(
            "DISCORD_SHARD_IDS needs DISCORD_SHARD_COUNT, the number of shards across all "
            f"workers: set it beside DISCORD_SHARD_IDS, in {origin} (see .env.example)."
        )
    if ids[-1] >= count:
        raise ConfigError(
            f"DISCORD_SHARD_IDS has shard {ids[-1]}, but with DISCORD_SHARD_COUNT={count} "
            f"shards are numbered 0 to {count - 1}: fix it in {origin} (see .env.example)."
        )


def _registration(raw: str) -> Registration:
    lowered = raw.lower()
    if lowered == "auto":
        return "auto"
    try:
        return "on" if boolean(lowered) else "off"
    except ValueError:
        raise ValueError("must be auto, on or off") from None


def configured(environment: Mapping[str, str]) -> bool:
    """Whether Discord's credentials are set."""
    return bool(environment.get(TOKEN))


def shard_list(shard_ids: tuple[int, ...] | None) -> str:
    """Shard numbers as a log line names them: ``0, 2``, or ``all``."""
    return "all" if shard_ids is None else ", ".join(map(str, shard_ids))
