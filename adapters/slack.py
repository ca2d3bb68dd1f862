"""The Slack adapter: one memory per thread, on slack-bolt's `AsyncApp`.

Where the bot answers and which memory a message belongs to:

* A mention in a channel: the answer goes in a thread under the mention, and that thread is
  the conversation (``slack:<team>:<channel>:<thread_ts>``). Later messages in a thread the bot
  is part of need no mention.
* A DM: top-level messages share one memory (``slack:<team>:<dm>:dm``) and are answered
  top-level; a thread inside the DM is a conversation of its own.
* Commands in a conversation: a message that is exactly ``!forget``, ``!undo``,
  ``!history [page]`` or ``!help`` in a bot thread or DM, or ``@bot forget`` after a mention,
  or the message shortcuts. Slash commands (Slack delivers them only outside threads) act on
  the channel's own memory (``slack:<team>:<channel>:channel``) or the DM's.

Socket Mode is used when an app token is set (no public URL needed); otherwise Bolt's aiohttp
server listens for signed HTTP requests, which Bolt verifies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.app.async_server import AsyncSlackAppServer
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncRateLimitErrorRetryHandler,
    async_default_handlers,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Config, ConfigError
from bot.core import Core, Surface
from bot.guards import RecentIds
from bot.messages import IncomingMessage

from .inflight import InFlight
from .slack_reply import AnswerWriter, Destination, error_code
from .slack_text import (
    CHANNEL_THREAD,
    DM_THREAD,
    PLATFORM,
    as_command,
    is_dm,
    mentions,
    session_key,
    strip_mention,
    to_mrkdwn,
)

logger = logging.getLogger(__name__)

MAX_CHARS = 3_900
"""Longest message we post: well under Slack's limits, and still readable."""
THINKING = "is thinking…"
EVENTS_PATH = "/slack/events"
SHORTCUTS: Mapping[str, str] = {
    "forget_thread": "forget",
    "undo_last": "undo",
    "show_history": "history",
}
"""Message shortcut callback IDs (see slack-manifest.yml) and the command each one runs."""
NOT_HERE = "Sorry, I'm not set up to answer you here."
STREAMING_UNAVAILABLE = frozenset(
    {"unknown_method", "not_allowed_token_type", "missing_scope", "feature_not_enabled"}
)
"""Errors that mean streaming will never work here, so the adapter stops trying."""
ANSWERED_SUBTYPES = frozenset({None, "file_share", "thread_broadcast", "bot_message"})


@dataclass(frozen=True)
class _Routed:
    message: IncomingMessage
    destination: Destination


class SlackAdapter:
    """Connects one Slack workspace to the core through Socket Mode or HTTP."""

    name = "slack"

    def __init__(
        self,
        core: Core,
        *,
        bot_token: str,
        app_token: str | None = None,
        signing_secret: str | None = None,
        host: str = "0.0.0.0",
        port: int = 3000,
        streaming: bool = True,
        allowed_channels: frozenset[str] = frozenset(),
        allowed_users: frozenset[str] = frozenset(),
        reply_to_bots: bool = False,
        base_url: str | None = None,
        update_interval: float = 1.0,
        max_chars: int = MAX_CHARS,
        ping_interval: float = 10.0,
        drain_seconds: float = 30.0,
    ) -> None:
        """Build the adapter; nothing connects until `run()`.

        Args:
            core: The bot's core.
            bot_token: The ``xoxb-`` bot token.
            app_token: The ``xapp-`` app-level token; when set, Socket Mode is used.
            signing_secret: Verifies HTTP requests (HTTP mode only).
            host: Interface the HTTP mode server listens on.
            port: HTTP mode port (0 picks a free one, see `http_port`).
            streaming: Use Slack's native chat streaming; False posts and edits instead.
            allowed_channels: Channel IDs the bot works in; empty for all.
            allowed_users: User IDs the bot answers; empty for all.
            reply_to_bots: Whether messages from other bots are answered.
            base_url: Slack Web API base URL (tests point it at a fake Slack).
            update_interval: Least time between two edits of a streaming answer.
            max_chars: Longest message posted; longer answers are split.
            ping_interval: Socket Mode keep-alive interval.
            drain_seconds: How long `close()` waits for answers under way.
        """
        self._core = core
        self._app_token = app_token
        self._host = host
        self._port = port
        self._streaming = streaming
        self._allowed_channels = allowed_channels
        self._allowed_users = allowed_users
        self._reply_to_bots = reply_to_bots
        self._update_interval = update_interval
        self._max_chars = max_chars
        self._ping_interval = ping_interval
        self._drain_seconds = drain_seconds
        self._surface = Surface(max_chars=max_chars, command_prefix="!")
        self._slash_surface = Surface(max_chars=max_chars, command_prefix="/")
        self.client = AsyncWebClient(
            token=bot_token,
            base_url=base_url or AsyncWebClient.BASE_URL,
            # Honour Retry-After on HTTP 429 on top of the default connection-error retries.
            retry_handlers=[
                *async_default_handlers(),
                AsyncRateLimitErrorRetryHandler(max_retry_count=3),
            ],
        )
        socket_mode = app_token is not None
        self.app = AsyncApp(
            client=self.client,
            name="memorybot",
            signing_secret=signing_secret or "",
            # Socket Mode traffic is authenticated by the app token, not signed.
            request_verification_enabled=not socket_mode,
        )
        self._recent = RecentIds()
        self._threads: OrderedDict[tuple[str, str], bool] = OrderedDict()
        self._names: OrderedDict[str, str] = OrderedDict()
        self._inflight = InFlight("Slack")
        self._stopped = asyncio.Event()
        self._closing = False
        self._socket: AsyncSocketModeHandler | None = None
        self._runner: web.AppRunner | None = None
        self.http_port: int | None = None
        """The port the HTTP mode server listens on, once it does."""
        self._register()

    @property
    def socket_mode(self) -> bool:
        """Whether the adapter connects through Socket Mode (else it serves HTTP)."""
        return self._app_token is not None

    # ----- lifecycle -----------------------------------------------------------------------

    async def run(self) -> None:
        """Connect (Socket Mode) or listen (HTTP mode) until `close()`."""
        await self._check_token()
        try:
            if self._app_token is not None:
                self._socket = AsyncSocketModeHandler(
                    self.app, self._app_token, ping_interval=self._ping_interval
                )
                await self._socket.connect_async()  # type: ignore[no-untyped-call]
                logger.info("Connected to Slack through Socket Mode")
            else:
                await self._serve_http()
            await self._stopped.wait()
        finally:
            await self._disconnect()

    async def close(self) -> None:
        """Stop taking events, let answers under way finish, then disconnect."""
        self._closing = True
        await self._inflight.finish(self._drain_seconds)
        self._stopped.set()
        await self._disconnect()

    async def _check_token(self) -> None:
        """Fail at start-up with one clear line when Slack rejects the bot token."""
        try:
            identity = await self.client.auth_test()
        except SlackApiError as exc:
            code = error_code(exc)
            if code in {"invalid_auth", "not_authed", "account_inactive", "token_revoked"}:
                raise ConfigError(
                    f"Slack rejected SLACK_BOT_TOKEN ({code}): copy the Bot User OAuth Token "
                    "(xoxb-...) from your app's OAuth & Permissions page into .env."
                ) from None
            raise
        logger.info("Signed in to Slack as %s in %s", identity.get("user"), identity.get("team"))

    async def _serve_http(self) -> None:
        server = AsyncSlackAppServer(port=self._port, path=EVENTS_PATH, app=self.app)
        self._runner = web.AppRunner(server.web_app, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        self.http_port = sockets[0].getsockname()[1] if sockets else self._port
        logger.info(
            "Listening for Slack on http://%s:%s%s", self._host, self.http_port, EVENTS_PATH
        )

    async def _disconnect(self) -> None:
        socket, self._socket = self._socket, None
        if socket is not None:
            client = socket.client
            await socket.close_async()  # type: ignore[no-untyped-call]
            # close_async cancels its background tasks without waiting; wait so none leaks.
            tasks = [
                t
                for t in (
                    client.message_processor,
                    client.message_receiver,
                    client.current_session_monitor,
                )
                if isinstance(t, asyncio.Future)
            ]
            await asyncio.gather(*tasks, return_exceptions=True)
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # ----- listeners -----------------------------------------------------------------------

    def _register(self) -> None:
        self.app.event("app_mention")(self._on_mention)
        self.app.event("message")(self._on_message)
        for command in self._core.commands:
            self.app.command(f"/{command.name}")(self._on_slash_command)
        for callback_id in SHORTCUTS:
            self.app.message_shortcut(callback_id)(self._on_shortcut)
        self.app.error(self._on_error)

    async def _on_mention(self, event: dict[str, Any], context: AsyncBoltContext) -> None:
        await self._tracked(self._handle_event(event, context, via_mention=True))

    async def _on_message(self, event: dict[str, Any], context: AsyncBoltContext) -> None:
        await self._tracked(self._handle_event(event, context, via_mention=False))

    async def _on_slash_command(
        self, ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond
    ) -> None:
        # Ack first: the command may wait for a turn running in the same memory.
        await ack()
        await self._tracked(self._slash_command(command, respond))

    async def _on_shortcut(
        self, ack: AsyncAck, shortcut: dict[str, Any], respond: AsyncRespond
    ) -> None:
        await ack()
        await self._tracked(self._shortcut(shortcut, respond))

    async def _on_error(self, error: Exception, body: dict[str, Any]) -> None:
        logger.error(
            "A Slack listener failed on a %s request: %s: %s",
            body.get("type") or body.get("command") or "Slack",
            type(error).__name__,
            error,
            exc_info=error,
        )

    async def _tracked(self, work: Awaitable[None]) -> None:
        """Run listener work so `close()` can wait for it; a failure is logged, never raised."""
        try:
            await self._inflight.run(work)
        except SlackApiError as exc:
            logger.error("A Slack API call failed: %s", error_code(exc))
        except Exception:
            logger.exception("Handling a Slack request failed")

    # ----- messages ------------------------------------------------------------------------

    async def _handle_event(
        self, event: dict[str, Any], context: AsyncBoltContext, *, via_mention: bool
    ) -> None:
        if self._closing:
            return
        routed = await self._route(event, context, via_mention=via_mention)
        if routed is None:
            return
        message, dest = routed.message, routed.destination
        is_command = self._core.commands.parse(message.text) is not None
        writer = AnswerWriter(
            self.client,
            dest,
            streaming=self._streaming,
            max_chars=self._max_chars,
            interval=self._update_interval,
        )
        status_set = not is_command and await self._set_status(dest, THINKING)
        reply = await self._core.handle(message, self._surface, writer.add)
        if dest.thread_ts is not None:
            self._remember_thread(dest.channel, dest.thread_ts, True)
        if reply is not None and reply.ephemeral:
            await self._ephemeral(dest, to_mrkdwn(reply.text))
        elif reply is not None:
            await writer.finish(reply)
        if self._streaming and writer.stream_refused in STREAMING_UNAVAILABLE:
            self._streaming = False
            logger.warning(
                "Slack refused chat streaming (%s); posting and editing answers from now on",
                writer.stream_refused,
            )
        if status_set and not writer.posted:
            await self._set_status(dest, "")

    async def _route(
        self, event: dict[str, Any], context: AsyncBoltContext, *, via_mention: bool
    ) -> _Routed | None:
        """The message for the core and where to answer, or None when it is not for the bot."""
        channel, ts = event.get("channel"), event.get("ts")
        if not channel or not ts or event.get("subtype") not in ANSWERED_SUBTYPES:
            return None
        bot_user, bot_id = context.bot_user_id or "", context.bot_id or ""
        author = event.get("user") or event.get("bot_id") or ""
        from_bot = bool(event.get("bot_id")) or event.get("subtype") == "bot_message"
        if not author or author in {bot_user, bot_id} or event.get("bot_id") == bot_id:
            return None
        if from_bot and not self._reply_to_bots:
            return None
        if not self._allowed(channel, author):
            return None
        team = context.team_id or event.get("team") or ""
        text = str(event.get("text") or "")
        thread_ts = event.get("thread_ts")
        dm = is_dm(channel, event.get("channel_type"))
        mentioned = via_mention or mentions(text, bot_user)
        if dm:
            session = session_key(team, channel, thread_ts or DM_THREAD)
            reply_thread = thread_ts
        elif mentioned:
            reply_thread = thread_ts or ts
            session = session_key(team, channel, reply_thread)
        elif thread_ts and await self._bot_in_thread(channel, thread_ts, bot_user, bot_id):
            reply_thread = thread_ts
            session = session_key(team, channel, thread_ts)
        else:
            return None
        # app_mention and message events both arrive for one mention, and Slack redelivers
        # events it thinks were lost: the message's own ID makes them all one.
        message_id = f"{channel}:{ts}"
        if not self._recent.first_time(message_id):
            logger.debug("Ignored a second delivery of %s", message_id)
            return None
        text = strip_mention(text, bot_user)
        if mentioned:
            text = as_command(text, self._core.commands)
        message = IncomingMessage(
            platform=PLATFORM,
            session_id=session,
            author_id=author,
            author_name=await self._author_name(event, author),
            text=text,
            message_id=message_id,
        )
        return _Routed(message, Destination(channel, reply_thread, team, author))

    def _allowed(self, channel: str, user: str) -> bool:
        if self._allowed_users and user not in self._allowed_users:
            return False
        return not self._allowed_channels or channel in self._allowed_channels

    async def _bot_in_thread(
        self, channel: str, thread_ts: str, bot_user: str, bot_id: str
    ) -> bool:
        """Whether the bot takes part in a thread: it posted there, or the root mentions it."""
        known = self._threads.get((channel, thread_ts))
        if known is not None:
            return known
        try:
            response = await self.client.conversations_replies(
                channel=channel, ts=thread_ts, limit=200
            )
        except SlackApiError as exc:
            logger.warning(
                "Could not read thread %s in %s: %s", thread_ts, channel, error_code(exc)
            )
            return False
        messages: list[dict[str, Any]] = list(response.get("messages") or [])
        found = any(
            m.get("user") == bot_user
            or (bot_id and m.get("bot_id") == bot_id)
            or (m.get("ts") == thread_ts and mentions(str(m.get("text") or ""), bot_user))
            for m in messages
        )
        self._remember_thread(channel, thread_ts, found)
        return found

    def _remember_thread(self, channel: str, thread_ts: str, member: bool) -> None:
        # A miss stays true until the bot answers there, and that goes through here too.
        self._threads[(channel, thread_ts)] = member
        self._threads.move_to_end((channel, thread_ts))
        if len(self._threads) > 10_000:
            self._threads.popitem(last=False)

    async def _author_name(self, event: dict[str, Any], author: str) -> str:
        if event.get("username"):
            return str(event["username"])
        if author in self._names:
            return self._names[author]
        name = author
        try:
            response = await self.client.users_info(user=author)
            user: dict[str, Any] = response.get("user") or {}
            profile: dict[str, Any] = user.get("profile") or {}
            name = str(
                profile.get("display_name")
                or profile.get("real_name")
                or user.get("real_name")
                or user.get("name")
                or author
            )
        except SlackApiError as exc:
            logger.info("Could not look up user %s: %s", author, error_code(exc))
            return name  # not cached: the next message may well succeed
        self._names[author] = name
        if len(self._names) > 10_000:
            self._names.popitem(last=False)
        return name

    async def _set_status(self, dest: Destination, status: str) -> bool:
        """Show (or clear) 'is thinking…' under the thread; a failure only costs the hint."""
        if dest.thread_ts is None:
            return False
        try:
            await self.client.assistant_threads_setStatus(
                channel_id=dest.channel, thread_ts=dest.thread_ts, status=status
            )
        except SlackApiError as exc:
            logger.debug("Could not set the thread status: %s", error_code(exc))
            return False
        return True

    async def _ephemeral(self, dest: Destination, text: str) -> bool:
        try:
            await self.client.chat_postEphemeral(
                channel=dest.channel, user=dest.user_id, thread_ts=dest.thread_ts, text=text
            )
        except SlackApiError as exc:
            logger.error(
                "Could not show a command's answer in %s: %s", dest.channel, error_code(exc)
            )
            return False
        return True

    # ----- commands ------------------------------------------------------------------------

    async def _slash_command(self, command: dict[str, Any], respond: AsyncRespond) -> None:
        channel, user = str(command.get("channel_id") or ""), str(command.get("user_id") or "")
        if not self._allowed(channel, user):
            await respond(text=NOT_HERE, response_type="ephemeral")
            return
        dm = command.get("channel_name") == "directmessage" or is_dm(channel)
        session = session_key(
            str(command.get("team_id") or ""), channel, DM_THREAD if dm else CHANNEL_THREAD
        )
        name = str(command.get("command") or "").lstrip("/")
        args = str(command.get("text") or "").strip()
        reply = await self._core.run_command(session, name, args, self._slash_surface)
        await respond(text=to_mrkdwn(reply.text), response_type="ephemeral")

    async def _shortcut(self, shortcut: dict[str, Any], respond: AsyncRespond) -> None:
        channel = str((shortcut.get("channel") or {}).get("id") or "")
        user = str((shortcut.get("user") or {}).get("id") or "")
        team = str((shortcut.get("team") or {}).get("id") or shortcut.get("team_id") or "")
        if not self._allowed(channel, user):
            await respond(text=NOT_HERE, response_type="ephemeral")
            return
        target: dict[str, Any] = shortcut.get("message") or {}
        thread_ts = target.get("thread_ts")
        if thread_ts is None and is_dm(channel):
            session, reply_thread = session_key(team, channel, DM_THREAD), None
        else:
            reply_thread = str(thread_ts or target.get("ts") or "")
            session = session_key(team, channel, reply_thread)
        name = SHORTCUTS[str(shortcut.get("callback_id"))]
        reply = await self._core.run_command(session, name, "", self._surface)
        text = to_mrkdwn(reply.text)
        if not await self._ephemeral(Destination(channel, reply_thread, team, user), text):
            with contextlib.suppress(Exception):
                await respond(text=text, response_type="ephemeral")


def create(core: Core, config: Config, options: Mapping[str, str]) -> SlackAdapter:
    """Entry point for ``python -m bot slack``.

    Raises:
        ConfigError: A token is missing or is of the wrong kind.
    """
    if not config.slack_bot_token:
        raise ConfigError(
            "SLACK_BOT_TOKEN is not set: put your app's Bot User OAuth Token (xoxb-...) in .env, "
            "plus SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (HTTP mode)."
        )
    if not config.slack_bot_token.startswith("xoxb-"):
        raise ConfigError(
            "SLACK_BOT_TOKEN must be the Bot User OAuth Token starting with xoxb- "
            "(OAuth & Permissions page of your Slack app)."
        )
    mode = (options.get("mode") or "").lower()
    app_token = config.slack_app_token if mode != "http" else None
    if app_token is not None and not app_token.startswith("xapp-"):
        raise ConfigError(
            "SLACK_APP_TOKEN must be an app-level token starting with xapp- "
            "(Basic Information > App-Level Tokens, scope connections:write)."
        )
    if app_token is None and not config.slack_signing_secret:
        raise ConfigError(
            "Set SLACK_APP_TOKEN (Socket Mode, no public URL needed) or SLACK_SIGNING_SECRET "
            "(HTTP mode) in .env: see the Slack section of the README."
        )
    return SlackAdapter(
        core,
        bot_token=config.slack_bot_token,
        app_token=app_token,
        signing_secret=config.slack_signing_secret,
        port=int(options.get("port") or config.slack_port),
        streaming=config.slack_streaming,
        allowed_channels=config.slack_allowed_channels,
        allowed_users=config.slack_allowed_users,
        reply_to_bots=config.reply_to_bots,
    )
