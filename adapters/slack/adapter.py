"""The Slack adapter itself: slack-bolt's listeners in, the core's replies out."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
from collections.abc import Awaitable, Mapping
from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapter import (
    NOT_HERE,
    Config,
    ConfigError,
    Core,
    IncomingMessage,
    Reply,
    ReplyKind,
    Surface,
)

from ..inflight import InFlight
from ..streaming import ChannelThrottle
from .api_calls import retry_handlers
from .approvals import (
    APPROVE,
    REJECT,
    Click,
    PromptAddress,
    SlackOutlet,
    decided_line,
    end_prompt,
    prompt_blocks,
    prompt_markdown,
    read_click,
)
from .connection import SlackConnection
from .files import SlackFiles
from .lookups import SlackLookups
from .rules import (
    PLATFORM,
    channel_key,
    decide,
    facts_from_event,
    is_dm,
    message_id,
    needs_thread_check,
    readable_text,
    shortcut_route,
    slash_command_thread_key,
)
from .settings import SlackSettings
from .stream import AnswerWriter, Destination, StatusSink, error_code
from .text import to_mrkdwn
from .uploads import SENT_IN_DM, send_in_dm

logger = logging.getLogger(__name__)

MAX_CHARS = 3_900
"""Longest message we post: well under Slack's limits, and still readable."""
SHORTCUTS: Mapping[str, str] = {
    "forget_thread": "forget",
    "undo_last": "undo",
    "show_history": "history",
}
"""Message shortcut callback IDs (see slack-manifest.yml) and the command each one runs."""
STREAMING_UNAVAILABLE = frozenset(
    {"unknown_method", "not_allowed_token_type", "missing_scope", "feature_not_enabled"}
)
"""Errors that mean streaming will never work here, so the adapter stops trying."""


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
        self._streaming = settings.streaming
        self._update_interval = update_interval
        self._max_chars = max_chars
        self._surface = Surface(max_chars=max_chars, command_prefix="!")
        self._slash_surface = Surface(max_chars=max_chars, command_prefix="/")
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
        self._throttle = ChannelThrottle(update_interval)
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
        core.attach_outlet(PLATFORM, SlackOutlet(self.client, self._show_settled))

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
        await self._check_token()
        try:
            self._files.open()
            await self._connection.open()
            await self._stopped.wait()
        finally:
            await self._connection.close()
            await self._files.close()

    async def close(self, grace: float) -> None:
        """Let answers under way finish (up to `grace` seconds), then disconnect."""
        await self._inflight.finish(grace)
        self._stopped.set()
        await self._connection.close()
        await self._files.close()

    async def problem(self) -> str | None:
        """ "not connected" while no Socket Mode connection is up (or, in HTTP mode, before
        the server listens); None when events can arrive."""
        return await self._connection.problem()

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

    async def _on_approval(
        self, ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        # Ack first: Slack wants it within 3 seconds, and the resumed turn may take minutes.
        await ack()
        await self._tracked(self._approval_click(body, action, respond))

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
        )
        writer = self._writer(dest)
        sink = StatusSink(writer, functools.partial(self.set_status, dest))
        try:
            reply = await self._core.handle(message, self._surface, sink)
            if dest.thread_ts is not None:
                self._lookups.joined(dest.channel, dest.thread_ts)
            if reply.ephemeral:
                await self._ephemeral(
                    dest, await self._command_text(reply, dest.channel, dest.user_id)
                )
            else:
                await self._show(reply, writer, dest)
        finally:
            if sink.needs_clearing:
                await self.set_status(dest, "")
        self._learn_streaming(writer)

    def _writer(self, dest: Destination, *, streaming: bool | None = None) -> AnswerWriter:
        return AnswerWriter(
            self.client,
            dest,
            throttle=self._throttle,
            streaming=self._streaming if streaming is None else streaming,
            max_chars=self._max_chars,
            interval=self._update_interval,
        )

    def _learn_streaming(self, writer: AnswerWriter) -> None:
        if self._streaming and writer.stream_refused in STREAMING_UNAVAILABLE:
            self._streaming = False
            logger.warning(
                "Slack refused chat streaming (%s); posting and editing answers from now on",
                writer.stream_refused,
            )

    async def _show(self, reply: Reply, writer: AnswerWriter, dest: Destination) -> None:
        """Show a turn's reply in its thread: the answer, or a prompt with buttons."""
        if reply.kind is ReplyKind.APPROVAL:
            await self._post_prompt(reply, writer, dest)
        elif reply.shown:
            await writer.finish(reply)

    async def _show_settled(self, dest: Destination, reply: Reply) -> None:
        """Post what followed a prompt nobody clicked (the answer after it expired)."""
        # The answer is complete already: one post, nothing to stream.
        await self._tracked(self._show(reply, self._writer(dest, streaming=False), dest))

    async def _post_prompt(self, reply: Reply, writer: AnswerWriter, dest: Destination) -> None:
        approval = reply.approval
        if approval is None:
            logger.error("An approval reply came without its request; showing its text")
            await writer.finish(Reply(reply.text, ReplyKind.NOTICE))
            return
        markdown = prompt_markdown(reply.text)
        text = to_mrkdwn(markdown)
        ts = await writer.show_prompt(markdown, prompt_blocks(text, approval.approval_id))
        if ts is not None:
            address = PromptAddress(dest.channel, dest.thread_ts, ts, text)
            await self._core.approval_posted(approval.approval_id, address.encode())

    async def _approval_click(
        self, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        click = read_click(body, action)
        if click is None:
            logger.warning("Ignored a click on an approval button without its details")
            return
        name = await self._lookups.author_name({}, click.user)
        dest = Destination(click.channel, click.thread_ts, click.team, click.user)
        writer = self._writer(dest)
        sink = StatusSink(writer, functools.partial(self.set_status, dest))
        try:
            reply = await self._core.decide(
                click.approval_id,
                click.decision,
                user_id=click.user,
                user_name=name,
                allowed=self._settings.policy.permits(click.channel, click.user),
                surface=self._surface,
                sink=sink,
            )
            if reply.kind in {ReplyKind.ANSWER, ReplyKind.APPROVAL}:
                line = decided_line(click.decision, name)
                await end_prompt(self.client, click.channel, click.ts, click.text, line)
                await self._show(reply, writer, dest)
            elif reply.kind is ReplyKind.ERROR and writer.posted:
                # The resumed turn failed partway: the failure replaces what had streamed,
                # and the buttons stay, as the request is still pending.
                await writer.finish(reply)
            elif reply.shown:
                # "Only Ann can approve this", "already answered", a failure before anything
                # showed: for the clicker's eyes only; the prompt stays as it was.
                await self._tell_clicker(click, to_mrkdwn(reply.text), respond)
        finally:
            if sink.needs_clearing:
                await self.set_status(dest, "")
        self._learn_streaming(writer)

    async def _tell_clicker(self, click: Click, text: str, respond: AsyncRespond) -> None:
        dest = Destination(click.channel, click.thread_ts, click.team, click.user)
        if not await self._ephemeral(dest, text):
            with contextlib.suppress(Exception):
                await respond(text=text, response_type="ephemeral", replace_original=False)

    async def set_status(self, dest: Destination, status: str) -> bool:
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
                "Could not post a reply only %s sees in %s: %s",
                dest.user_id,
                dest.channel,
                error_code(exc),
            )
            return False
        return True

    # ----- commands ------------------------------------------------------------------------

    async def _command_text(self, reply: Reply, channel: str, user: str) -> str:
        """A command's answer as mrkdwn, for the person who asked only.

        A file with it (the whole `/history`) goes to their direct messages first, since an
        ephemeral message carries none; the answer says so once it is there.
        """
        text = reply.text
        if reply.file is not None:
            where = "" if is_dm(channel) else f" in <#{channel}>"
            comment = f"The full history you asked for{where}."
            if await send_in_dm(self.client, user, reply.file, comment=comment):
                text = f"{text}\n\n{SENT_IN_DM.format(name=reply.file.name)}"
        return to_mrkdwn(text)

    async def _slash_command(self, command: dict[str, Any], respond: AsyncRespond) -> None:
        channel, user = str(command.get("channel_id") or ""), str(command.get("user_id") or "")
        if not self._settings.policy.permits(channel, user):
            await respond(text=NOT_HERE, response_type="ephemeral")
            return
        thread_key = slash_command_thread_key(
            str(command.get("team_id") or ""), channel, command.get("channel_name")
        )
        name = str(command.get("command") or "").lstrip("/")
        args = str(command.get("text") or "").strip()
        used = IncomingMessage(
            PLATFORM, thread_key, user, str(command.get("user_name") or user), text=""
        )
        reply = await self._core.run_command(used, name, args, self._slash_surface)
        text = await self._command_text(reply, channel, user)
        await respond(text=text, response_type="ephemeral")

    async def _shortcut(self, shortcut: dict[str, Any], respond: AsyncRespond) -> None:
        channel = str((shortcut.get("channel") or {}).get("id") or "")
        user = str((shortcut.get("user") or {}).get("id") or "")
        team = str((shortcut.get("team") or {}).get("id") or shortcut.get("team_id") or "")
        if not self._settings.policy.permits(channel, user):
            await respond(text=NOT_HERE, response_type="ephemeral")
            return
        target: dict[str, Any] = shortcut.get("message") or {}
        thread_key, reply_thread = shortcut_route(
            team, channel, target.get("ts"), target.get("thread_ts")
        )
        name = SHORTCUTS[str(shortcut.get("callback_id"))]
        used = IncomingMessage(
            PLATFORM,
            thread_key,
            user,
            str((shortcut.get("user") or {}).get("name") or user),
            text="",
            channel_key=channel_key(team, channel, dm=is_dm(channel)),
        )
        reply = await self._core.run_command(used, name, "", self._surface)
        text = await self._command_text(reply, channel, user)
        if not await self._ephemeral(Destination(channel, reply_thread, team, user), text):
            with contextlib.suppress(Exception):
                await respond(text=text, response_type="ephemeral")


def create(core: Core, config: Config, options: Mapping[str, str]) -> SlackAdapter:
    """Build the Slack adapter for ``python -m bot slack``.

    Raises:
        ConfigError: A token is missing or is of the wrong kind.
    """
    return SlackAdapter(core, SlackSettings.from_config(config))
