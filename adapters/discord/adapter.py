"""The Discord adapter itself: discord.py's events in, the core's replies out.

discord.py owns the connection (gateway, resume, sharding, HTTP rate limits); this module turns
its events into neutral messages for the core and shows the replies.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

import aiohttp
import discord
from cachetools import LRUCache
from discord import app_commands
from discord.gateway import DiscordWebSocket
from discord.utils import MISSING

from bot.adapter import (
    NOT_HERE,
    SHUTTING_DOWN,
    Command,
    Config,
    ConfigError,
    Core,
    Decision,
    IncomingMessage,
    PlatformApi,
    ReplyFile,
    Surface,
)

from ..inflight import InFlight
from ..streaming import ChannelThrottle
from ..text import split_message
from .approvals import ApprovalButton, DiscordApprovals
from .files import DiscordFiles
from .rules import MessageFacts, Place, decide, thread_key
from .settings import DiscordSettings
from .stream import AnswerSink, DiscordPoster, DiscordReply, discord_file
from .text import (
    MAX_MESSAGE_CHARS,
    strip_mentions,
    thread_title,
)

logger = logging.getLogger(__name__)

SURFACE = Surface(max_chars=MAX_MESSAGE_CHARS, command_prefix="/")
INTENT_HELP = (
    "Discord refused the Message Content intent. Open "
    "https://discord.com/developers/applications, pick the bot's application, go to the Bot "
    'page, turn on "Message Content Intent" under Privileged Gateway Intents, save, and start '
    "the bot again."
)
TOKEN_HELP = (
    "Discord rejected DISCORD_TOKEN. Copy a fresh token from the Developer Portal (Bot page, "
    "Reset Token) into .env."
)
NOTICE_SECONDS = 5.0
"""How long a last notice may take to post while shutting down."""
CHAT_TYPES = frozenset({discord.MessageType.default, discord.MessageType.reply})
INVITE_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    create_public_threads=True,
    read_message_history=True,
    # `/history` typed in a channel attaches the whole thread as a file to its answer.
    attach_files=True,
)

RETRIED_STATUSES = frozenset({429, 500, 502, 504, 524})
"""Answers discord.py sends its request again after (its `HTTPClient.request`): rate limits,
and these server errors up to its fifth try."""

CommandRunner = Callable[["discord.Interaction[Any]", str, str], Awaitable[None]]


class _Client(discord.Client):
    """discord.py's client with the adapter's handlers wired in; no logic of its own."""

    def __init__(self, adapter: DiscordAdapter, **options: Any) -> None:
        super().__init__(**options)
        self.adapter = adapter
        self.tree: app_commands.CommandTree[_Client] = app_commands.CommandTree(self)

    async def setup_hook(self) -> None:
        # Approval buttons are matched by their custom ID's template, so prompts posted before
        # a restart keep working without being reloaded (see `approvals`).
        self.add_dynamic_items(ApprovalButton)
        await self.adapter.register_commands()

    async def on_ready(self) -> None:
        self.adapter.announce()

    async def on_message(self, message: discord.Message) -> None:
        await self.adapter.on_message(message)

    async def on_approval_click(
        self, interaction: discord.Interaction[Any], decision: Decision, approval_id: str
    ) -> None:
        """Called by `ApprovalButton` when someone clicks Approve or Reject."""
        await self.adapter.on_approval_click(interaction, decision, approval_id)


class _ShardedClient(_Client, discord.AutoShardedClient):
    """The same client on discord.py's own sharding: one gateway connection per shard."""


def _client(adapter: DiscordAdapter, settings: DiscordSettings, **options: Any) -> _Client:
    """The client for `settings`: unsharded unless `DISCORD_SHARD_COUNT` is set."""
    if not settings.sharded:
        return _Client(adapter, **options)
    shard_ids = None if settings.shard_ids is None else list(settings.shard_ids)
    return _ShardedClient(adapter, shard_count=settings.shard_count, shard_ids=shard_ids, **options)


class DiscordAdapter:
    """Serves Discord: answers mentions, DMs and bot threads, and runs slash commands.

    Args:
        core: The core that answers.
        settings: Token, allow-lists and options.
        edit_interval: Least seconds between writes to one channel while streaming.
        typing_interval: How often the typing indicator is renewed before the first text.
        defer_after: Seconds a slash command may take before Discord is told to wait
            (interactions must be acknowledged within 3 s).
        guild_ready_timeout: How long discord.py waits for guild data before "ready".
    """

    name = "discord"

    def __init__(
        self,
        core: Core,
        settings: DiscordSettings,
        *,
        edit_interval: float = 1.0,
        typing_interval: float = 8.0,
        defer_after: float = 2.0,
        guild_ready_timeout: float = 2.0,
    ) -> None:
        self._core = core
        self._settings = settings
        self._throttle = ChannelThrottle(edit_interval)
        self._typing_interval = typing_interval
        self._defer_after = defer_after
        # Threads the bot follows (True), or looked up after a restart and found empty (False).
        self._threads: LRUCache[int, bool] = LRUCache(maxsize=10_000)
        self._inflight = InFlight("Discord")
        # The bot never joins voice, so the library's start-up warnings about missing voice
        # codecs would only confuse whoever reads the log.
        discord.VoiceClient.warn_nacl = False
        discord.VoiceClient.warn_dave = False
        intents = discord.Intents.default()
        intents.message_content = True
        api = core.platform_api(self.name)
        self.client = _client(
            self,
            settings,
            intents=intents,
            allowed_mentions=discord.AllowedMentions.none(),
            guild_ready_timeout=guild_ready_timeout,
            chunk_guilds_at_startup=False,
            http_trace=None if api is None else api_trace(api),
        )
        self._downloads = DiscordFiles()
        self.approvals = DiscordApprovals(
            core,
            self.client,
            new_stream=self._stream,
            permits=self._permits,
            inflight=self._inflight,
            surface=SURFACE,
        )

    async def run(self) -> None:
        """Connect and serve until `close()`; raises `ConfigError` for fixable set-up problems."""
        self._core.attach_outlet(self.name, self.approvals)
        self._downloads.open()
        try:
            async with self.client:
                await self.client.start(self._settings.token)
        except discord.PrivilegedIntentsRequired:
            raise ConfigError(INTENT_HELP) from None
        except discord.LoginFailure:
            raise ConfigError(TOKEN_HELP) from None
        finally:
            await self._downloads.close()

    async def close(self, grace: float) -> None:
        """Let replies under way finish (up to `grace` seconds), then disconnect."""
        await self._inflight.finish(grace)
        await self.client.close()
        await self._downloads.close()

    async def problem(self) -> str | None:
        """ "not connected" until the gateway is ready, and while a connection is down
        (discord.py reconnecting); None when every shard is connected."""
        client = self.client
        if client.is_closed() or not client.is_ready():
            return "not connected"
        if isinstance(client, discord.AutoShardedClient):
            down = sorted(i for i, shard in client.shards.items() if shard.is_closed())
            return f"shard {_shard_list(tuple(down))} not connected" if down else None
        # discord.py keeps the last websocket here; a new one replaces it once reconnected.
        socket = cast("DiscordWebSocket | None", client.ws)
        return None if socket is not None and socket.open else "not connected"

    # ----- start-up -------------------------------------------------------------------------

    async def register_commands(self) -> None:
        """Add the core's commands as slash commands and sync them with Discord.

        Every worker adds them, since a command's interaction arrives on the shard of its
        guild; only one syncs them (`DiscordSettings.syncs_commands`), as each sync replaces
        the application's whole command list.
        """
        tree = self.client.tree
        for command in self._core.commands:
            tree.add_command(slash_command(command, self.on_command))
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
            f"this worker serves shards {_shard_list(settings.shard_ids)} of "
            f"{settings.shard_count}, and the worker serving shard 0 registers them"
        )

    def announce(self) -> None:
        """Log who the bot is, which shards it serves, and the URL that invites it."""
        user, app_id = self.client.user, self.client.application_id
        if user is None or app_id is None:
            return
        url = discord.utils.oauth_url(
            app_id, permissions=INVITE_PERMISSIONS, scopes=("bot", "applications.commands")
        )
        settings = self._settings
        shards = (
            f", serving shards {_shard_list(settings.shard_ids)} of {settings.shard_count}"
            if settings.sharded
            else ""
        )
        logger.info(
            "Connected to Discord as %s (ID %s)%s. Invite me with: %s", user, user.id, shards, url
        )

    # ----- messages -------------------------------------------------------------------------

    async def on_message(self, message: discord.Message) -> None:
        """Answer a message if the rules say it is for the bot."""
        me = self.client.user
        if me is None:
            return
        bot_roles = [
            role.id
            for role in message.role_mentions
            if role.tags is not None and role.tags.bot_id == me.id
        ]
        facts = self._facts(message, me.id, bool(bot_roles))
        if await self._follows_after_restart(facts):
            facts = dataclasses.replace(facts, thread_active=True)
        settings = self._settings
        route = decide(
            facts,
            settings.policy,
            reply_to_bots=settings.reply_to_bots,
            open_threads=settings.open_threads,
        )
        if not route.answer:
            if route.reason == "outside the allow-lists":
                logger.info(
                    "Ignored a message from user %s in channel %s: outside the allow-lists",
                    facts.author_id,
                    facts.place.channel_id,
                )
            return
        text = strip_mentions(message.content, me.id, bot_roles)
        await self._tracked(self._answer(message, facts, text, route.open_thread))

    async def _follows_after_restart(self, facts: MessageFacts) -> bool:
        """Whether an unmentioned thread message is in a thread the bot has memory of.

        Followed threads are remembered in this process only; after a restart the store
        tells which threads the bot was part of. Threads found empty are remembered too, so
        each is looked up once, and only for messages that could be for the bot.
        """
        place = facts.place
        if (
            not facts.in_thread
            or facts.mentioned
            or facts.thread_owned_by_bot
            or facts.thread_active
            or facts.is_self
            or (facts.author_is_bot and not self._settings.reply_to_bots)
            or self._threads.get(place.channel_id) is False
        ):
            return False
        remembered = await self._core.remembers(thread_key(place.guild_id, place.channel_id))
        self._threads[place.channel_id] = remembered
        return remembered

    def _facts(self, message: discord.Message, my_id: int, role_mentioned: bool) -> MessageFacts:
        channel = message.channel
        thread = channel if isinstance(channel, discord.Thread) else None
        guild_id = message.guild.id if message.guild is not None else None
        if guild_id is None:
            guild_id = getattr(channel, "guild_id", None)
        author = message.author
        return MessageFacts(
            place=Place(guild_id, channel.id, thread.parent_id if thread else None),
            author_id=author.id,
            author_is_bot=author.bot,
            is_self=author.id == my_id,
            mentioned=role_mentioned or any(user.id == my_id for user in message.mentions),
            role_ids=_role_ids(author),
            in_thread=thread is not None,
            thread_owned_by_bot=thread is not None and thread.owner_id == my_id,
            thread_active=self._threads.get(channel.id, False),
            is_chat=message.type in CHAT_TYPES,
        )

    async def _answer(
        self, message: discord.Message, facts: MessageFacts, text: str, open_thread: bool
    ) -> None:
        # A thread started from a message takes the message's ID, so its thread key is known
        # before the thread exists; the thread is only opened once the core starts a turn.
        target_id = message.id if open_thread else facts.place.channel_id
        if facts.in_thread:
            self._threads[target_id] = True
        channel_id = facts.place.channel_id if open_thread else facts.place.parent_id
        incoming = IncomingMessage(
            platform="discord",
            thread_key=thread_key(facts.place.guild_id, target_id),
            author_id=str(facts.author_id),
            author_name=message.author.display_name,
            text=text,
            message_id=str(message.id),
            mentioned=facts.mentioned,
            channel_key=None
            if channel_id is None
            else thread_key(facts.place.guild_id, channel_id),
            attachments=tuple(self._downloads.describe(file) for file in message.attachments),
        )
        poster = DiscordPoster(message.channel, message)
        stream = self._stream(poster, target_id)
        sink = AnswerSink(
            stream,
            functools.partial(self._open_thread, message, text, poster) if open_thread else None,
        )
        try:
            reply = await self._core.handle(incoming, SURFACE, sink=sink)
        except asyncio.CancelledError:
            # Shutting down cut the turn short (nothing of it was stored): replace whatever was
            # streamed so the thread does not show an answer the bot will not remember.
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(stream.finish(SHUTTING_DOWN), NOTICE_SECONDS)
            raise
        await self.approvals.deliver(stream, reply, incoming.thread_key)

    def _stream(self, poster: DiscordPoster, channel_id: int) -> DiscordReply:
        """A reply streamed through `poster`, paced with every other write to `channel_id`."""
        return DiscordReply(
            poster,
            self._throttle,
            channel_id,
            limit=MAX_MESSAGE_CHARS,
            indicator=poster.typing,
            typing_interval=self._typing_interval,
        )

    async def _open_thread(
        self, message: discord.Message, text: str, poster: DiscordPoster
    ) -> None:
        """Move the answer into a new thread on `message`; stay in the channel if that fails."""
        try:
            thread = await message.create_thread(name=thread_title(text))
        except discord.HTTPException as exc:
            logger.warning(
                "Could not open a thread in channel %s, answering in the channel: %s",
                message.channel.id,
                exc,
            )
            return
        poster.move_to(thread)
        self._threads[thread.id] = True

    # ----- approval buttons -----------------------------------------------------------------

    async def on_approval_click(
        self, interaction: discord.Interaction[Any], decision: Decision, approval_id: str
    ) -> None:
        """Someone clicked Approve or Reject on a prompt (see `approvals`)."""
        await self.approvals.on_click(interaction, decision, approval_id)

    # ----- slash commands -------------------------------------------------------------------

    async def on_command(self, interaction: discord.Interaction[Any], name: str, args: str) -> None:
        """Run a slash command on the thread/channel it was used in; answer only the invoker."""
        await self._tracked(self._command(interaction, name, args))

    async def _command(self, interaction: discord.Interaction[Any], name: str, args: str) -> None:
        place = _place(interaction)
        channel_id, parent_id = place.channel_id, place.parent_id
        user = interaction.user
        try:
            if not self._permits(interaction):
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

    def _permits(self, interaction: discord.Interaction[Any]) -> bool:
        """Whether whoever used a command or clicked a button passes the allow-lists there."""
        user = interaction.user
        return self._settings.policy.permits(_place(interaction), user.id, _role_ids(user))

    async def _tracked(self, work: Awaitable[None]) -> None:
        await self._inflight.run(work)


def slash_command(command: Command, run: CommandRunner) -> app_commands.Command[Any, ..., None]:
    """A slash command for one of the core's commands, calling `run(interaction, name, args)`.

    Args:
        command: The core command (name, description, optional numeric argument).
        run: Does the work; receives the argument as text, "" when not given.
    """
    name, description = command.name, command.description[:100]
    argument = command.argument
    if argument is None:

        async def plain(interaction: discord.Interaction[Any]) -> None:
            await run(interaction, name, "")

        return app_commands.Command(name=name, description=description, callback=plain)

    async def with_value(interaction: discord.Interaction[Any], value: int | None = None) -> None:
        await run(interaction, name, "" if value is None else str(value))

    # The argument's name, bounds and help come from the core at run time, so the callback's
    # one parameter is renamed and annotated here rather than spelled out in code.
    with_value.__annotations__["value"] = cast(Any, app_commands.Range)[int, argument.minimum, None]
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


def api_trace(api: PlatformApi) -> aiohttp.TraceConfig:
    """An aiohttp trace (discord.py's `http_trace`) counting its failed and retried calls."""

    async def ended(
        session: aiohttp.ClientSession, context: Any, params: aiohttp.TraceRequestEndParams
    ) -> None:
        status = params.response.status
        if status >= 400:
            api.error(str(status))
        if status in RETRIED_STATUSES:
            api.retry()

    async def failed(
        session: aiohttp.ClientSession, context: Any, params: aiohttp.TraceRequestExceptionParams
    ) -> None:
        api.error("connection")

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(ended)
    trace.on_request_exception.append(failed)
    return trace


def _shard_list(shard_ids: tuple[int, ...] | None) -> str:
    return "all" if shard_ids is None else ", ".join(map(str, shard_ids))


def _place(interaction: discord.Interaction[Any]) -> Place:
    channel = interaction.channel
    parent_id = channel.parent_id if isinstance(channel, discord.Thread) else None
    return Place(interaction.guild_id, interaction.channel_id or 0, parent_id)


def _role_ids(user: discord.User | discord.Member) -> tuple[int, ...]:
    return tuple(role.id for role in user.roles) if isinstance(user, discord.Member) else ()


def create(core: Core, config: Config, options: Mapping[str, str]) -> DiscordAdapter:
    """Build the Discord adapter for `python -m bot discord`."""
    return DiscordAdapter(core, DiscordSettings.from_config(config))
