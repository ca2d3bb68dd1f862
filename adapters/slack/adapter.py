"""The Slack adapter itself: slack-bolt's listeners in, the core's replies out."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Mapping
from typing import Any

import aiohttp
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapter import (
    Config,
    ConfigError,
    Core,
    IncomingMessage,
    Place,
    PlatformUnreachableError,
)

from ..inflight import InFlight
from .api_calls import close_session, open_session, retry_handlers
from .approvals import SlackApprovals
from .commands import SHORTCUTS, SlackCommands
from .connection import SlackConnection
from .delivery import SlackDelivery
from .files import SlackFiles
from .lookups import SlackLookups
from .prompts import APPROVE, REJECT
from .rules import (
    PLATFORM,
    channel_key,
    decide,
    facts_from_event,
    message_id,
    needs_thread_check,
    readable_text,
)
from .settings import SlackSettings
from .stream import Destination, error_code

logger = logging.getLogger(__name__)

MAX_CHARS = 3_900
"""Longest message we post: well under Slack's limits, and still readable."""


class SlackAdapter:
    """Connects one Slack workspace to the core through Socket Mode or HTTP."""

    name = "slack"

    def __init__(
        self,
        core: Core,
        settings: SlackSettings,
        *,
        host: str = "0.0.0.0",
        base_url: str | None = None,
        update_interval: float = 1.0,
        max_chars: int = MAX_CHARS,
        ping_interval: float = 10.0,
    ) -> None:
        """Build the adapter; nothing connects until `run()`.

        Args:
            core: The bot's core.
            settings: Tokens, mode, allow-lists and options.
            host: Interface the HTTP mode server listens on.
            base_url: Slack Web API base URL (tests point it at a fake Slack).
            update_interval: Least time between two edits of a streaming answer.
            max_chars: Longest message posted; longer answers are split.
            ping_interval: Socket Mode keep-alive interval.
        """
        self._core = core
        self._settings = settings
        self.client = AsyncWebClient(
            token=settings.bot_token,
            base_url=base_url or AsyncWebClient.BASE_URL,
            retry_handlers=retry_handlers(core.platform_api(PLATFORM)),
        )
        self.app = AsyncApp(
            client=self.client,
            name="memorybot",
            signing_secret=settings.signing_secret or "",
            # Socket Mode traffic is authenticated by the app token, not signed.
            request_verification_enabled=not settings.socket_mode,
        )
        self._lookups = SlackLookups(self.client)
        self._inflight = InFlight("Slack")
        self._delivery = SlackDelivery(
            core,
            self.client,
            streaming=settings.streaming,
            max_chars=max_chars,
            update_interval=update_interval,
        )
        self._approvals = SlackApprovals(
            core, self._delivery, self._lookups, policy=settings.policy, inflight=self._inflight
        )
        self._commands = SlackCommands(core, self._delivery, settings.policy, self._lookups)
        self._stopped = asyncio.Event()
        self._connection = SlackConnection(
            self.app,
            app_token=settings.app_token,
            host=host,
            port=settings.port,
            ping_interval=ping_interval,
            socket_connections=settings.socket_connections,
        )
        self._files = SlackFiles(settings.bot_token, api_url=self.client.base_url)
        self._register()
        core.attach_outlet(PLATFORM, self._approvals)

    @property
    def http_port(self) -> int | None:
        """The port the HTTP mode server listens on, once it does."""
        return self._connection.http_port

    @property
    def socket_mode(self) -> bool:
        """Whether the adapter connects through Socket Mode (else it serves HTTP)."""
        return self._settings.socket_mode

    # ----- lifecycle -----------------------------------------------------------------------

    async def run(self) -> None:
        """Connect (Socket Mode) or listen (HTTP mode) until `close()`."""
        open_session(self.client)
        try:
            await self._check_token()
            self._files.open()
            await self._connection.open()
            await self._stopped.wait()
        finally:
            await self._connection.close()
            await self._files.close()
            await close_session(self.client)

    async def close(self, grace: float) -> None:
        """Let answers under way finish (up to `grace` seconds), then disconnect."""
        await self._inflight.finish(grace)
        self._stopped.set()
        await self._connection.close()
        await self._files.close()
        await close_session(self.client)

    async def problem(self) -> str | None:
        """ "not connected" while no Socket Mode connection is up (or, in HTTP mode, before
        the server listens); None when events can arrive."""
        return await self._connection.problem()

    async def _check_token(self) -> None:
        """Fail at start-up with one clear line when Slack rejects the bot token."""
        try:
            identity = await self.client.auth_test()
        except (aiohttp.ClientConnectionError, OSError, TimeoutError) as exc:
            # The first call to Slack: not reaching it at all is said so, where it was asked.
            raise PlatformUnreachableError("Slack", self.client.base_url, exc) from exc
        except SlackApiError as exc:
            code = error_code(exc)
            if code in {"invalid_auth", "not_authed", "account_inactive", "token_revoked"}:
                raise ConfigError(
                    f"Slack rejected SLACK_BOT_TOKEN ({code}): copy the Bot User OAuth Token "
                    "(xoxb-...) from your app's OAuth & Permissions page into .env."
                ) from None
            raise
        logger.info("Signed in to Slack as %s in %s", identity.get("user"), identity.get("team"))

    # ----- listeners -----------------------------------------------------------------------

    def _register(self) -> None:
        self.app.event("app_mention")(self._on_mention)
        self.app.event("message")(self._on_message)
        for command in self._core.commands:
            self.app.command(f"/{command.name}")(self._on_slash_command)
        for callback_id in SHORTCUTS:
            self.app.message_shortcut(callback_id)(self._on_shortcut)
        for action_id in (APPROVE, REJECT):
            self.app.action(action_id)(self._on_approval)
        self.app.error(self._on_error)

    async def _on_mention(
        self, event: dict[str, Any], context: AsyncBoltContext, request: AsyncBoltRequest
    ) -> None:
        _note_redelivery(request)
        await self._tracked(self._handle_event(event, context, via_mention=True))

    async def _on_message(
        self, event: dict[str, Any], context: AsyncBoltContext, request: AsyncBoltRequest
    ) -> None:
        _note_redelivery(request)
        await self._tracked(self._handle_event(event, context, via_mention=False))

    async def _on_slash_command(
        self, ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond
    ) -> None:
        # Ack first: the command may wait for a turn running in the same memory.
        await ack()
        await self._tracked(self._commands.slash_command(command, respond))

    async def _on_shortcut(
        self, ack: AsyncAck, shortcut: dict[str, Any], respond: AsyncRespond
    ) -> None:
        await ack()
        await self._tracked(self._commands.shortcut(shortcut, respond))

    async def _on_approval(
        self, ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        # Ack first: Slack wants it within 3 seconds, and the resumed turn may take minutes.
        await ack()
        await self._tracked(self._approvals.on_click(body, action, respond))

    async def _on_error(self, error: Exception, body: dict[str, Any]) -> None:
        """The one place a listener's failure is logged: bolt hands over whatever a listener
        or middleware raised (registered with `app.error`)."""
        what = body.get("type") or body.get("command") or "Slack"
        if isinstance(error, SlackApiError):
            # Slack's short code says it all, and never carries a token.
            logger.error("A Slack API call failed on a request (%s): %s", what, error_code(error))
            return
        logger.error(
            "A Slack listener failed on a request (%s): %s: %s",
            what,
            type(error).__name__,
            error,
            exc_info=error,
        )

    async def _tracked(self, work: Awaitable[None]) -> None:
        """Run listener work so `close()` can wait for it; a failure goes on to bolt, which
        reports it through `_on_error`."""
        await self._inflight.run(work)

    # ----- messages ------------------------------------------------------------------------

    async def _handle_event(
        self, event: dict[str, Any], context: AsyncBoltContext, *, via_mention: bool
    ) -> None:
        facts = facts_from_event(
            event,
            bot_user=context.bot_user_id or "",
            team=context.team_id or "",
            via_mention=via_mention,
        )
        # A repeat costs no look-up below; the core still makes the binding check.
        if self._core.already_handled(PLATFORM, message_id(facts.channel, facts.ts)):
            return
        if needs_thread_check(facts):
            thread_ts = facts.thread_ts or ""
            in_thread = await self._lookups.bot_in_thread(
                facts.channel,
                thread_ts,
                bot_user=context.bot_user_id or "",
                bot_id=context.bot_id or "",
            )
            facts = dataclasses.replace(facts, bot_in_thread=in_thread)
        route = decide(facts, self._settings.policy, reply_to_bots=self._settings.reply_to_bots)
        if route is None:
            return
        dest = Destination(facts.channel, route.reply_thread, facts.team, facts.author)
        message = IncomingMessage(
            platform=PLATFORM,
            thread_key=route.thread_key,
            author_id=facts.author,
            author_name=await self._lookups.author_name(event, facts.author),
            text=readable_text(str(event.get("text") or ""), context.bot_user_id or ""),
            message_id=route.message_id,
            mentioned=facts.mentioned,
            channel_key=channel_key(facts.team, facts.channel, dm=facts.dm),
            attachments=self._files.attachments(event),
            place=Place(facts.team or None, facts.channel, facts.dm),
            author_admin=await self._lookups.administers(facts.author),
        )
        async with self._delivery.turn(dest) as (writer, sink):
            try:
                reply = await self._core.handle(message, self._delivery.surface, sink)
            except asyncio.CancelledError:
                await self._delivery.cut_short(writer)
                raise
            if dest.thread_ts is not None:
                self._lookups.joined(dest.channel, dest.thread_ts)
            if reply.ephemeral:
                text = await self._delivery.command_text(reply, dest.channel, dest.user_id)
                await self._delivery.ephemeral(dest, text)
            else:
                await self._delivery.show(reply, writer, dest)


def _note_redelivery(request: AsyncBoltRequest) -> None:
    """Log Slack's own retries of an event: they mean an earlier delivery was not acked in
    time. The second event of every mention (`app_mention` and `message`) is not one."""
    attempt = request.headers.get("x-slack-retry-num") or ["0"]  # Socket Mode says 0 first
    if attempt[0] != "0":
        reason = request.headers.get("x-slack-retry-reason") or ["unknown"]
        logger.warning("Slack delivered an event again (retry %s, %s)", attempt[0], reason[0])


def create(core: Core, config: Config, options: Mapping[str, str]) -> SlackAdapter:
    """Build the Slack adapter for ``python -m bot slack``.

    Raises:
        ConfigError: A token is missing or is of the wrong kind.
    """
    return SlackAdapter(core, SlackSettings.from_config(config))
