"""Slash commands on Discord: the core's commands registered with Discord, and answered.

A slash command acts on the thread (or channel, or DM) it was used in, and only whoever used it
sees the answer. Typed commands (``@bot /forget``) are messages, and the core tells them apart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

import discord
from discord import app_commands
from discord.utils import MISSING

from bot.adapter import NOT_HERE, Command, Core, IncomingMessage, ReplyFile

from ..text import split_message
from .facts import permits, place_of, profile_place, role_names
from .rules import thread_key
from .settings import DiscordSettings, shard_list
from .stream import discord_file
from .text import MAX_MESSAGE_CHARS, SURFACE

WORD_CHARS = 100
"""The longest word argument a slash command takes (a profile's name is at most 32)."""

logger = logging.getLogger(__name__)

CommandRunner = Callable[["discord.Interaction[Any]", str, str], Awaitable[None]]


class SlashCommands:
    """Registers the core's commands as slash commands, and runs them when used.

    Args:
        core: The core that runs commands.
        settings: Which worker syncs the commands, and where (`DISCORD_DEV_GUILD`); the
            allow-lists, which apply to commands too.
        defer_after: Seconds a command may take before Discord is told to wait
            (interactions must be acknowledged within 3 s).
    """

    def __init__(self, core: Core, settings: DiscordSettings, *, defer_after: float) -> None:
        self._core = core
        self._settings = settings
        self._defer_after = defer_after

    async def register(self, tree: app_commands.CommandTree[Any], run: CommandRunner) -> None:
        """Add the core's commands to `tree`, each calling `run`, and sync them with Discord.

        Every worker adds them, since a command's interaction arrives on the shard of its
        guild; only one syncs them (`DiscordSettings.syncs_commands`), as each sync replaces
        the application's whole command list.
        """
        for command in self._core.commands:
            tree.add_command(slash_command(command, run))
        dev_guild = self._settings.dev_guild
        guild = None if dev_guild is None else discord.Object(id=dev_guild)
        if guild is not None:
            tree.copy_global_to(guild=guild)
        if not self._settings.syncs_commands:
            logger.info("Not registering slash commands: %s", self._why_no_sync())
            return
        try:
            if guild is not None:
                synced = await tree.sync(guild=guild)
                where = f"to guild {dev_guild}"
            else:
                synced = await tree.sync()
                where = "globally (new commands can take up to an hour to appear)"
            logger.info("Registered %d slash commands %s", len(synced), where)
        except discord.HTTPException as exc:
            # Typed commands ("@bot /forget") still work, so this is no reason to stop.
            logger.error(
                "Registering slash commands failed (was the bot invited with the "
                "applications.commands scope?): %s",
                exc,
            )

    def _why_no_sync(self) -> str:
        settings = self._settings
        if settings.register_commands == "off":
            return "DISCORD_REGISTER_COMMANDS is off"
        return (
            f"this worker serves shards {shard_list(settings.shard_ids)} of "
            f"{settings.shard_count}, and the worker serving shard 0 registers them"
        )

    async def run(self, interaction: discord.Interaction[Any], name: str, args: str) -> None:
        """Run a command on the thread/channel it was used in; answer only the invoker."""
        place = place_of(interaction)
        channel_id, parent_id = place.channel_id, place.parent_id
        user = interaction.user
        try:
            if not permits(self._settings.policy, interaction):
                await interaction.response.send_message(NOT_HERE, ephemeral=True)
                return
            used = IncomingMessage(
                platform="discord",
                thread_key=thread_key(interaction.guild_id, channel_id),
                author_id=str(user.id),
                author_name=user.display_name,
                text="",
                channel_key=None
                if parent_id is None
                else thread_key(interaction.guild_id, parent_id),
                place=profile_place(place),
                author_roles=role_names(user),
                # What Discord computed for the member here: no role cache needed.
                author_admin=interaction.guild_id is not None
                and interaction.permissions.manage_guild,
            )
            work = asyncio.create_task(self._core.run_command(used, name, args, SURFACE))
            done, _ = await asyncio.wait({work}, timeout=self._defer_after)
            if not done:
                # A turn still running in this thread holds it; tell Discord we're on it.
                await interaction.response.defer(ephemeral=True, thinking=True)
            reply = await work
            parts = split_message(reply.text, MAX_MESSAGE_CHARS) or ["Done."]
            await _answer_command(interaction, parts[0], reply.file)
            for part in parts[1:]:
                await interaction.followup.send(part, ephemeral=True)
        except discord.HTTPException as exc:
            logger.warning("Answering /%s in channel %s failed: %s", name, channel_id, exc)


def slash_command(command: Command, run: CommandRunner) -> app_commands.Command[Any, ..., None]:
    """A slash command for one of the core's commands, calling `run(interaction, name, args)`.

    Args:
        command: The core command (name, description, optional argument: a number, or a
            word such as a profile's name).
        run: Does the work; receives the argument as text, "" when not given.
    """
    name, description = command.name, command.description[:100]
    argument = command.argument
    if argument is None:

        async def plain(interaction: discord.Interaction[Any]) -> None:
            await run(interaction, name, "")

        return app_commands.Command(name=name, description=description, callback=plain)

    async def with_value(
        interaction: discord.Interaction[Any], value: int | str | None = None
    ) -> None:
        await run(interaction, name, "" if value is None else str(value).strip())

    # The argument's name, bounds and help come from the core at run time, so the callback's
    # one parameter is renamed and annotated here rather than spelled out in code.
    with_value.__annotations__["value"] = (
        cast(Any, app_commands.Range)[str, 1, WORD_CHARS]
        if argument.kind == "word"
        else cast(Any, app_commands.Range)[int, argument.minimum, None]
    )
    app_commands.rename(value=argument.name)(with_value)
    app_commands.describe(value=argument.description[:100])(with_value)
    return app_commands.Command(name=name, description=description, callback=with_value)


async def _answer_command(
    interaction: discord.Interaction[Any], text: str, file: ReplyFile | None
) -> None:
    """Answer a slash command (only its user sees it) with `text`, and `file` attached.

    A file Discord refuses (over the upload limit, say) costs only the file: the answer goes
    out without it, since an interaction that failed is still waiting for its response.
    """
    if file is not None:
        try:
            await _respond(interaction, text, discord_file(file))
            return
        except discord.HTTPException as exc:
            logger.warning(
                "Sending %s in channel %s failed, answering without it: %s",
                file.name,
                interaction.channel_id,
                exc,
            )
    await _respond(interaction, text, None)


async def _respond(
    interaction: discord.Interaction[Any], text: str, file: discord.File | None
) -> None:
    # discord.py tells "not given" from None by its MISSING sentinel.
    if interaction.response.is_done():
        attachments = MISSING if file is None else [file]
        await interaction.edit_original_response(content=text, attachments=attachments)
    else:
        await interaction.response.send_message(
            text, ephemeral=True, file=MISSING if file is None else file
        )
