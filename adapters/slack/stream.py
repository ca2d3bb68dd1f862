"""Showing one answer in Slack while the model writes it.

Slack's native chat streaming (chat.startStream/appendStream/stopStream, through slack_sdk's
`chat_stream` helper) is used where it works: it renders Markdown itself. Where it does not
(streaming switched off, a top-level DM message, which has no thread to stream into, Slack
refusing or dropping the stream, or an answer too long for one message) the shared
`StreamedReply` posts and edits instead, with the text converted to mrkdwn.

While a turn runs the thread's assistant status says what the bot is doing ("is thinking…",
"is using lookup_ticket…"). A turn that stops for a tool approval ends in a prompt with buttons
(built by `approvals`), which takes the place of whatever had streamed.

Slack shows a stopped stream as finished at once, so a stream stopped before the answer is
whole ends with a word saying so: " …" when the message goes on by being edited, or the
failure (or notice) that then takes its place.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_chat_stream import AsyncChatStream
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapter import Reply, ReplyKind

from ..streaming import CannotPost, ChannelThrottle, StreamedReply
from ..text import reconcile
from .text import to_mrkdwn

logger = logging.getLogger(__name__)

THINKING = "is thinking…"
"""The assistant status shown under a thread while a turn runs, until the answer shows."""
USING_TOOL = "is using {name}…"
"""The status while the agent runs a tool, until the answer goes on."""
WRITING = " …"
"""Shown after a partial answer when posting and editing, so people see it is not done."""
PROMPT_TRIES = 2
"""Tries at showing an approval prompt before its turn ends unasked (see `show_prompt`)."""
DELIVERY_FAILED = "Sorry, Slack did not accept my answer. Please try again in a moment."
ERROR_PREFIX = ":warning: "
PERMANENT = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "restricted_action",
        "cant_update_message",
        "message_not_found",
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "missing_scope",
    }
)
"""Errors after which posting in that conversation will keep failing."""


@dataclass(frozen=True)
class Destination:
    """Where an answer goes and who it is for."""

    channel: str
    thread_ts: str | None
    """The thread to answer in; None for a top-level answer in a DM."""
    team_id: str
    user_id: str
    """The person being answered (streaming to a channel needs the recipient)."""


class SlackPoster:
    """Posts, edits and deletes messages in one conversation (a `streaming.Poster`)."""

    def __init__(self, client: AsyncWebClient, destination: Destination) -> None:
        self._client = client
        self._dest = destination
        self.first: str | None = None
        """The reply's first message, once posted: where an approval prompt replaces it."""

    async def send(self, text: str, *, first: bool) -> str:
        with _permanent_failures():
            response = await self._client.chat_postMessage(
                channel=self._dest.channel, thread_ts=self._dest.thread_ts, text=text
            )
        ts = str(response["ts"])
        if first:
            self.first = ts
        return ts

    async def edit(self, handle: str, text: str) -> str:
        with _permanent_failures():
            await self._client.chat_update(channel=self._dest.channel, ts=handle, text=text)
        return handle

    async def delete(self, handle: str) -> None:
        with _permanent_failures():
            await self._client.chat_delete(channel=self._dest.channel, ts=handle)


@contextlib.contextmanager
def _permanent_failures() -> Iterator[None]:
    """Raise `CannotPost` for errors that will not go away by trying again."""
    try:
        yield
    except SlackApiError as exc:
        if error_code(exc) in PERMANENT:
            raise CannotPost(error_code(exc)) from exc
        raise


class StatusSink:
    """The core's `ReplySink` for one message: "is thinking…" once a turn starts, "is using
    lookup_ticket…" while a tool runs, and the answer's text as it streams."""

    def __init__(self, writer: AnswerWriter, set_status: Callable[[str], Awaitable[bool]]) -> None:
        self._writer = writer
        self._set_status = set_status
        self.status_set = False
        # Slack clears a thread's status when the app posts a reply, not when it streams into
        # one already posted: a tool's status set after the answer began is cleared by hand.
        self._lingers = False

    @property
    def needs_clearing(self) -> bool:
        """Whether a status this sink set may still show under the thread."""
        return self._lingers or (self.status_set and not self._writer.posted)

    async def started(self) -> None:
        self.status_set = await self._set_status(THINKING)

    async def delta(self, text: str) -> None:
        if self._lingers:
            self._lingers = False
            await self._set_status("")
        await self._writer.add(text)

    async def tool(self, name: str) -> None:
        shown = await self._set_status(USING_TOOL.format(name=name))
        self.status_set = self.status_set or shown
        self._lingers = shown and self._writer.posted


def render(markdown: str, final: bool) -> str:
    """What a posted (not natively streamed) answer shows: mrkdwn, marked while unfinished."""
    return to_mrkdwn(markdown) if final else to_mrkdwn(markdown) + WRITING


class AnswerWriter:
    """Streams one answer into Slack; `add` takes the core's deltas, `finish` the reply."""

    def __init__(
        self,
        client: AsyncWebClient,
        destination: Destination,
        *,
        throttle: ChannelThrottle,
        streaming: bool,
        max_chars: int,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._dest = destination
        self._max_chars = max_chars
        self._interval = interval
        self._clock = clock
        self._poster = SlackPoster(client, destination)
        self._posted: StreamedReply[str] = StreamedReply(
            self._poster,
            throttle,
            destination.channel,
            limit=max_chars,
            render=render,
        )
        self._native = streaming and destination.thread_ts is not None
        self._stream: AsyncChatStream | None = None
        self._text = ""
        self._streamed = 0  # characters of `_text` sent through the native stream
        self._last_flush: float | None = None
        self._prompt: str | None = None
        self.stream_refused: str | None = None
        """Slack's error code when it refused to start a stream, for the adapter to learn from."""

    @property
    def posted(self) -> bool:
        """Whether a visible message exists (which also clears Slack's thinking status)."""
        return (
            (self._stream is not None and self._stream.ts is not None)
            or self._posted.writes > 0
            or self._prompt is not None
        )

    async def show_prompt(self, markdown: str, blocks: list[dict[str, Any]]) -> str | None:
        """Show an approval prompt (`blocks`, with `markdown` as its plain fallback) in place
        of whatever was streamed before the model asked for the tool; returns the prompt
        message's ts, or None when Slack took it on neither of `PROMPT_TRIES` (logged).

        The first try edits what streamed, if anything did, and the next posts the prompt
        anew: slack_sdk retries no `ok:false` (not even `internal_error`, which Slack calls
        transient) and a dropped connection once, and a prompt nobody can click costs the
        turn."""
        text = render(markdown, True)
        handle = await self._stop_native(WRITING)
        if handle is None and self._text:
            # Text went to the post-and-edit reply (maybe not posted yet): let it settle on the
            # prompt's text first, so no write still under way lands after the buttons.
            await self._posted.finish(markdown)
            handle = self._poster.first
        for _ in range(PROMPT_TRIES):
            self._prompt = await self._try_prompt(handle, text, blocks)
            if self._prompt is not None:
                return self._prompt
            handle = None
        return None

    async def _try_prompt(
        self, handle: str | None, text: str, blocks: list[dict[str, Any]]
    ) -> str | None:
        """Turn the message `handle` into the prompt, or post it when None; its ts, or None."""
        try:
            if handle is not None:
                await self._client.chat_update(
                    channel=self._dest.channel, ts=handle, text=text, blocks=blocks
                )
                return handle
            response = await self._client.chat_postMessage(
                channel=self._dest.channel, thread_ts=self._dest.thread_ts, text=text, blocks=blocks
            )
        except Exception as exc:  # no answer at all (a dropped connection) as well as a refusal
            code = error_code(exc) if isinstance(exc, SlackApiError) else type(exc).__name__
            logger.warning(
                "Could not %s an approval prompt in %s: %s",
                "post" if handle is None else "turn the answer into",
                self._dest.channel,
                code,
            )
            return None
        return str(response["ts"])

    async def add(self, delta: str) -> None:
        """Take one text delta; show what has gathered when the throttle allows."""
        self._text += delta
        if not self._native:
            await self._posted.add(delta)
            return
        now = self._clock()
        if self._last_flush is None or now - self._last_flush >= self._interval:
            self._last_flush = now
            await self._flush_stream()

    async def finish(self, reply: Reply) -> None:
        """Show the final reply, replacing whatever was streamed if it differs."""
        if reply.kind is ReplyKind.ANSWER:
            text = reply.text
            if await self._stop_stream_with(text):
                return
            ending = WRITING
        else:
            text = (ERROR_PREFIX if reply.kind is ReplyKind.ERROR else "") + reply.text
            # The failure ends the streamed message before it replaces it, so the unfinished
            # answer never stands alone as if it were all.
            ending = f"\n\n{text}"
        await self._leave_stream(ending)
        if not await self._posted.finish(text):
            await self._post_quietly(DELIVERY_FAILED)

    async def _flush_stream(self) -> None:
        pending = self._text[self._streamed :]
        if not pending:
            return
        if len(self._text) > self._max_chars:
            # One streamed message must stay readable; the rest goes on in split messages.
            await self._leave_stream()
            return
        try:
            if self._stream is None:
                assert self._dest.thread_ts is not None
                self._stream = await self._client.chat_stream(
                    channel=self._dest.channel,
                    thread_ts=self._dest.thread_ts,
                    recipient_team_id=self._dest.team_id,
                    recipient_user_id=self._dest.user_id,
                    buffer_size=1,  # our own throttle decides when to send
                )
            await self._stream.append(markdown_text=pending)
        except SlackApiError as exc:
            started = self._stream is not None and self._stream.ts is not None
            logger.warning(
                "Streaming to %s failed (%s); %s",
                self._dest.channel,
                error_code(exc),
                "going on with chat.update" if started else "posting and updating instead",
            )
            if not started:
                self._stream = None
                self.stream_refused = error_code(exc)
            await self._leave_stream()
            return
        self._streamed = len(self._text)

    async def _stop_stream_with(self, text: str) -> bool:
        """Finish the native stream with the rest of `text`; False if it cannot end that way."""
        stream = self._stream
        if not self._native or stream is None or len(text) > self._max_chars:
            return False
        tail = reconcile(self._text[: self._streamed], text)
        if tail is None:
            return False
        try:
            await stream.stop(markdown_text=tail)
        except SlackApiError as exc:
            logger.warning(
                "Finishing the stream in %s failed (%s); replacing it with chat.update",
                self._dest.channel,
                error_code(exc),
            )
            return False
        return True

    async def _leave_stream(self, ending: str = WRITING) -> None:
        """Go on by posting and editing, in the streamed message if there is one, whose
        stream is stopped with `ending` (see `_stop_native`)."""
        if not self._native:
            return
        ts = await self._stop_native(ending)
        if ts is not None:
            self._posted.adopt(ts)
        await self._posted.add(self._text)

    async def _stop_native(self, ending: str) -> str | None:
        """Stop Slack's native stream, if one was started; returns its message's ts.

        Slack shows a stopped stream as a finished message at once, so `ending` goes last in
        it to say it is not one (" …", or the failure that replaces it next). A failed stop
        leaves the message as streamed so far, to be edited from here on.
        """
        self._native = False
        stream, self._stream = self._stream, None
        if stream is None or stream.ts is None:
            return None
        try:
            await stream.stop(markdown_text=ending)
        except SlackApiError as exc:
            logger.info("Stopping the stream in %s failed: %s", self._dest.channel, error_code(exc))
        return stream.ts

    async def _post_quietly(self, text: str) -> None:
        try:
            await self._poster.send(text, first=False)
        except (SlackApiError, CannotPost) as exc:
            code = error_code(exc) if isinstance(exc, SlackApiError) else str(exc)
            logger.error("Could not tell %s about it either: %s", self._dest.channel, code)


def error_code(exc: SlackApiError) -> str:
    """Slack's short error code (e.g. ``ratelimited``, ``msg_too_long``), never a token."""
    response = exc.response
    data = getattr(response, "data", None)
    if isinstance(data, dict) and data.get("error"):
        return str(data["error"])
    return f"HTTP {getattr(response, 'status_code', '?')}"
