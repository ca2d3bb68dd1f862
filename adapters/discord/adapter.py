"""The Discord adapter itself: discord.py's events in, the core's replies out.

discord.py owns the connection (gateway, resume, sharding, HTTP rate limits); this module turns
its events into neutral messages for the core and hands the replies to `delivery`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Mapping
from typing import Any, cast

import aiohttp
import discord
from cachetools import LRUCache
from discord.gateway import DiscordWebSocket

from bot.adapter import (
    SHUTTING_DOWN,
    Config,
    ConfigError,
    Core,
    Decision,
    IncomingMessage,
    PlatformUnreachableError,
)

from ..inflight import InFlight
from .api_calls import api_trace
from .approvals import DiscordApprovals
from .client import client_for
from .commands import SlashCommands
from .delivery import DiscordDelivery
from .facts import (
    bot_role_mentions,
    manages_server,
    message_facts,
    profile_place,
    role_names,
)
from .files import DiscordFiles
from .rules import MessageFacts, decide, thread_key
from .settings import DiscordSettings, shard_list
from .stream import NOTICE_SECONDS, AnswerSink, DiscordPoster
from .text import SURFACE, strip_mentions, thread_title

logger = logging.getLogger(__name__)

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
LOOKBACK = 50
"""How many of a thread's latest messages are looked through for one of the bot's own after a
restart, under a wider memory scope: one page of Discord's history."""
INVITE_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    create_public_threads=True,
    read_message_history=True,
    # `/history` typed in a channel attaches the whole thread as a file to its answer.
    attach_files=True,
)


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
        self.client = client_for(
            self,
            settings,
            intents=intents,
            allowed_mentions=discord.AllowedMentions.none(),
            guild_ready_timeout=guild_ready_timeout,
            chunk_guilds_at_startup=False,
            http_trace=None if api is None else api_trace(api),
        )
        self._downloads = DiscordFiles()
        self._delivery = DiscordDelivery(
            core, edit_interval=edit_interval, typing_interval=typing_interval
        )
        self.approvals = DiscordApprovals(
            core,
            self.client,
            delivery=self._delivery,
            policy=settings.policy,
            inflight=self._inflight,
        )
        self._commands = SlashCommands(core, settings, defer_after=defer_after)

    async def run(self) -> None:
        """Connect and serve until `close()`; raises `ConfigError` for fixable set-up problems."""
        self._core.attach_outlet(self.name, self.approvals)
        self._downloads.open()
        try:
            async with self.client:
                await self.client.start(self._settings.token)
        except (aiohttp.ClientConnectionError, OSError, TimeoutError) as exc:
            # Once connected, discord.py reconnects by itself; what reaches here is the login
            # (or, sharded, the gateway lookup) failing to reach Discord at all.
            raise PlatformUnreachableError("Discord", discord.http.Route.BASE, exc) from exc
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
            return f"shard {shard_list(tuple(down))} not connected" if down else None
        # discord.py keeps the last websocket here; a new one replaces it once reconnected.
        socket = cast("DiscordWebSocket | None", client.ws)
        return None if socket is not None and socket.open else "not connected"

    # ----- start-up -------------------------------------------------------------------------

    async def register_commands(self) -> None:
        """Add the core's commands as slash commands (see `commands`), each calling
        `on_command`."""
        await self._commands.register(self.client.tree, self.on_command)

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
            f", serving shards {shard_list(settings.shard_ids)} of {settings.shard_count}"
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
        bot_roles = bot_role_mentions(message, me.id)
        facts = message_facts(
            message,
            me.id,
            role_mentioned=bool(bot_roles),
            thread_active=self._threads.get(message.channel.id, False),
        )
        if await self._follows_after_restart(message, facts):
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

    async def _follows_after_restart(self, message: discord.Message, facts: MessageFacts) -> bool:
        """Whether an unmentioned thread message is in a thread the bot took part in.

        Followed threads are remembered in this process only; after a restart the store
        tells which threads the bot was part of: those whose memory holds something. Under a
        wider `BOT_MEMORY_SCOPE` that memory is the channel's or the person's, which threads
        the bot never took part in join too, so there the bot must also have answered in the
        thread (one of its own messages is among the thread's latest). The answer is
        remembered (each thread is looked up once), and only messages that could be for the
        bot ask.
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
        remembered = await self._core.remembers(
            self._incoming(message, facts, "", place.channel_id)
        )
        if remembered and self._settings.memory_scope != "thread":
            answered = await self._answered_in(message.channel, place.channel_id)
            if answered is None:
                return False  # asked again with the thread's next message
            remembered = answered
        self._threads[place.channel_id] = remembered
        return remembered

    async def _answered_in(self, channel: discord.abc.Messageable, channel_id: int) -> bool | None:
        """Whether one of the bot's own messages is among the latest in `channel`; None when
        Discord could not say this time."""
        me = self.client.user
        try:
            async for earlier in channel.history(limit=LOOKBACK):
                if me is not None and earlier.author.id == me.id:
                    return True
        except discord.Forbidden as exc:
            # Not allowed to read it (no Read Message History): it stays unfollowed until a
            # mention, rather than asked again with every message.
            logger.warning("Could not read the latest messages of thread %s: %s", channel_id, exc)
            return False
        except (discord.HTTPException, aiohttp.ClientError, OSError) as exc:
            logger.warning("Could not read the latest messages of thread %s: %s", channel_id, exc)
            return None
        return False

    async def _answer(
        self, message: discord.Message, facts: MessageFacts, text: str, open_thread: bool
    ) -> None:
        where = facts.place.channel_id
        if facts.in_thread:
            self._threads[where] = True
        poster = DiscordPoster(message.channel, message)
        # The thread is opened before the core has the message, since its memory goes where
        # the answer goes: a thread that cannot be opened leaves both in the channel.
        if open_thread and self._may_start_turn(message, facts, text):
            thread = await self._open_thread(message, text)
            if thread is not None:
                poster.move_to(thread)
                where = thread.id
        incoming = self._incoming(message, facts, text, where)
        stream = self._delivery.stream(poster, where)
        sink = AnswerSink(stream)
        try:
            reply = await self._core.handle(incoming, SURFACE, sink=sink)
        except asyncio.CancelledError:
            # Shutting down cut the turn short (nothing of it was stored): replace whatever was
            # streamed so the thread does not show an answer the bot will not remember.
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(stream.finish(SHUTTING_DOWN), NOTICE_SECONDS)
            raise
        await self._delivery.deliver(stream, reply, incoming.thread_key)

    def _incoming(
        self, message: discord.Message, facts: MessageFacts, text: str, where: int
    ) -> IncomingMessage:
        """`message` for the core, said in `where`: the channel, thread or DM it was sent in,
        or the thread opened on it."""
        place = facts.place
        # The channel whose memory it joins under BOT_MEMORY_SCOPE=channel: a thread's parent,
        # which for a thread opened on the message is where the message was sent.
        channel_id = place.parent_id if where == place.channel_id else place.channel_id
        return IncomingMessage(
            platform="discord",
            thread_key=thread_key(place.guild_id, where),
            author_id=str(facts.author_id),
            author_name=message.author.display_name,
            text=text,
            message_id=str(message.id),
            mentioned=facts.mentioned,
            channel_key=None if channel_id is None else thread_key(place.guild_id, channel_id),
            attachments=tuple(self._downloads.describe(file) for file in message.attachments),
            place=profile_place(place, channel_id),
            author_roles=role_names(message.author),
            author_admin=manages_server(message.author),
        )

    def _may_start_turn(self, message: discord.Message, facts: MessageFacts, text: str) -> bool:
        """Whether the core may take `message` as a turn, worth a thread of its own.

        The core decides, but only once it has the message, by which time the thread must be
        open; so what the core can tell from the message alone is asked here first. A typed
        command, an empty mention or a message taken already opens no thread (a command acts
        on the channel it is typed in). "Too fast" and "over budget", decided at the turn, are
        said in the new thread.
        """
        core = self._core
        return (
            core.accepting
            and bool(text.strip() or message.attachments)
            and core.commands.parse(text, bare=facts.mentioned) is None
            and not core.already_handled(self.name, str(message.id))
        )

    async def _open_thread(self, message: discord.Message, text: str) -> discord.Thread | None:
        """A new thread on `message`; None when Discord refuses (the answer stays in the
        channel)."""
        try:
            thread = await message.create_thread(name=thread_title(text))
        except (discord.HTTPException, aiohttp.ClientError, OSError) as exc:
            logger.warning(
                "Could not open a thread in channel %s, answering in the channel: %s",
                message.channel.id,
                exc,
            )
            return None
        self._threads[thread.id] = True
        return thread

    # ----- approval buttons and slash commands ----------------------------------------------

    async def on_approval_click(
        self, interaction: discord.Interaction[Any], decision: Decision, approval_id: str
    ) -> None:
        """Someone clicked Approve or Reject on a prompt (see `approvals`)."""
        await self._tracked(self.approvals.on_click(interaction, decision, approval_id))

    async def on_command(self, interaction: discord.Interaction[Any], name: str, args: str) -> None:
        """Run a slash command on the thread/channel it was used in; answer only the invoker."""
        await self._tracked(self._commands.run(interaction, name, args))

    async def _tracked(self, work: Awaitable[None]) -> None:
        await self._inflight.run(work)


def create(core: Core, config: Config, options: Mapping[str, str]) -> DiscordAdapter:
    """Build the Discord adapter for `python -m bot discord`."""
    return DiscordAdapter(core, DiscordSettings.from_config(config))
