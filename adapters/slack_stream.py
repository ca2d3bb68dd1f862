"""Showing one answer in Slack while the model writes it.

Slack's native chat streaming (chat.startStream/appendStream/stopStream, through slack_sdk's
`chat_stream` helper) is used where it works: it renders Markdown itself. Where it does not
(streaming switched off, a top-level DM message, which has no thread to stream into, or Slack
refusing the stream) the answer is posted once and then edited with `chat.update`, converted
to mrkdwn, at most once per `interval`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_chat_stream import AsyncChatStream
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapter import Reply, ReplyKind

from .slack_text import split_message, to_mrkdwn

logger = logging.getLogger(__name__)

WRITING = " …"
"""Shown after a partial answer in the post-and-update mode, so people see it is not done."""
DELIVERY_FAILED = "Sorry, Slack did not accept my answer. Please try again in a moment."
ERROR_PREFIX = ":warning: "


@dataclass(frozen=True)
class Destination:
    """Where an answer goes and who it is for."""

    channel: str
    thread_ts: str | None
    """The thread to answer in; None for a top-level answer in a DM."""
    team_id: str
    user_id: str
    """The person being answered (streaming to a channel needs the recipient)."""


class _Mode(Enum):
    STREAM = "stream"
    UPDATE = "update"
    HELD = "held"
    """Nothing more is shown until the end (too long to stream, or Slack failed mid-way)."""


class AnswerWriter:
    """Streams one answer into Slack; `add` is the core's text sink, `finish` the last step."""

    def __init__(
        self,
        client: AsyncWebClient,
        destination: Destination,
        *,
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
        self._mode = _Mode.STREAM if streaming and destination.thread_ts else _Mode.UPDATE
        self._stream: AsyncChatStream | None = None
        self._ts: str | None = None
        self._text = ""
        self._shown = 0
        self._last_flush: float | None = None
        self.stream_refused: str | None = None
        """Slack's error code when it refused to start a stream, for the adapter to learn from."""

    @property
    def posted(self) -> bool:
        """Whether a visible message exists (which also clears Slack's thinking status)."""
        return self._ts is not None

    @property
    def streamed(self) -> bool:
        """Whether the answer is going out through native streaming."""
        return self._stream is not None and self._mode is _Mode.STREAM

    async def add(self, delta: str) -> None:
        """Take one text delta; show what has gathered when the throttle allows."""
        self._text += delta
        now = self._clock()
        if self._last_flush is None or now - self._last_flush >= self._interval:
            self._last_flush = now
            await self._flush()

    async def finish(self, reply: Reply) -> None:
        """Show the final reply, replacing whatever was streamed if it differs."""
        try:
            if reply.kind is ReplyKind.ANSWER:
                await self._finish_answer(reply.text)
            else:
                text = (ERROR_PREFIX if reply.kind is ReplyKind.ERROR else "") + reply.text
                await self._replace_with([to_mrkdwn(text)])
        except SlackApiError as exc:
            logger.error("Slack refused the answer in %s: %s", self._dest.channel, error_code(exc))
            await self._post_quietly(DELIVERY_FAILED)

    async def _flush(self) -> None:
        if self._mode is _Mode.STREAM:
            await self._flush_stream()
        elif self._mode is _Mode.UPDATE:
            await self._flush_update()

    async def _flush_stream(self) -> None:
        pending = self._text[self._shown :]
        if not pending:
            return
        if len(self._text) > self._max_chars:
            # One streamed message must stay readable; the rest is split up at the end.
            self._mode = _Mode.HELD
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
                "finishing with chat.update" if started else "posting and updating instead",
            )
            if started:
                assert self._stream is not None
                self._ts = self._stream.ts
                self._mode = _Mode.HELD
            else:
                self._stream = None
                self.stream_refused = error_code(exc)
                self._mode = _Mode.UPDATE
                await self._flush_update()
            return
        self._shown = len(self._text)
        self._ts = self._stream.ts

    async def _flush_update(self) -> None:
        preview = to_mrkdwn(self._text[: self._max_chars - len(WRITING) - 16]) + WRITING
        try:
            if self._ts is None:
                response = await self._client.chat_postMessage(
                    channel=self._dest.channel, thread_ts=self._dest.thread_ts, text=preview
                )
                self._ts = str(response["ts"])
            else:
                await self._client.chat_update(
                    channel=self._dest.channel, ts=self._ts, text=preview
                )
        except SlackApiError as exc:
            logger.warning(
                "Showing a partial answer in %s failed (%s); it will be sent whole",
                self._dest.channel,
                error_code(exc),
            )
            self._mode = _Mode.HELD
            return
        self._shown = len(self._text)

    async def _finish_answer(self, text: str) -> None:
        stream = self._stream
        if (
            self._mode is _Mode.STREAM
            and stream is not None
            and len(text) <= self._max_chars
            and text.startswith(self._text[: self._shown])
        ):
            try:
                await stream.stop(markdown_text=text[self._shown :])
                return
            except SlackApiError as exc:
                logger.warning(
                    "Finishing the stream in %s failed (%s); replacing it with chat.update",
                    self._dest.channel,
                    error_code(exc),
                )
                self._ts = self._ts or stream.ts
                self._stream = None
        await self._replace_with(split_message(to_mrkdwn(text), self._max_chars))

    async def _replace_with(self, chunks: list[str]) -> None:
        """Put `chunks` in place of anything shown so far: edit the first, post the rest."""
        if self._stream is not None:
            await self._stop_stream_quietly(self._stream)
        rest = list(chunks)
        if self._ts is not None and rest:
            await self._client.chat_update(
                channel=self._dest.channel, ts=self._ts, text=rest.pop(0)
            )
        for chunk in rest:
            response = await self._client.chat_postMessage(
                channel=self._dest.channel, thread_ts=self._dest.thread_ts, text=chunk
            )
            self._ts = self._ts or str(response["ts"])

    async def _stop_stream_quietly(self, stream: AsyncChatStream) -> None:
        self._ts = self._ts or stream.ts
        self._stream = None
        if stream.ts is None:
            return
        try:
            await stream.stop()
        except SlackApiError as exc:
            # The message stays as streamed so far and is replaced with chat.update next.
            logger.info("Stopping the stream in %s failed: %s", self._dest.channel, error_code(exc))

    async def _post_quietly(self, text: str) -> None:
        try:
            await self._client.chat_postMessage(
                channel=self._dest.channel, thread_ts=self._dest.thread_ts, text=text
            )
        except SlackApiError as exc:
            logger.error(
                "Could not tell %s about it either: %s", self._dest.channel, error_code(exc)
            )


def error_code(exc: SlackApiError) -> str:
    """Slack's short error code (e.g. ``ratelimited``, ``msg_too_long``), never a token."""
    response = exc.response
    data = getattr(response, "data", None)
    if isinstance(data, dict) and data.get("error"):
        return str(data["error"])
    return f"HTTP {getattr(response, 'status_code', '?')}"
