"""The Slack adapter on a real core, connected to the fake Slack: harness and fixtures."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from agents import Tool
from slack_sdk.signature import SignatureVerifier

from adapters.slack import SlackAdapter, rules
from adapters.slack.rules import AccessPolicy
from adapters.slack.settings import SlackSettings
from bot.config import Config
from bot.profiles.spec import ProfileBook
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.slack_server import BOT_USER, TEAM, FakeSlack
from tests.support.parts import BotParts, make_config

CHANNEL = "C0GENERAL"
DM = "D0ANN"
ANN = "U0ANN"
BEN = "U0BEN"
SECRET = "test-signing-secret"
FORM = "application/x-www-form-urlencoded"


class Harness:
    """A running adapter (Socket Mode unless `http`) on a real core, against the fake Slack."""

    def __init__(
        self,
        slack: FakeSlack,
        config: Config,
        *,
        tools: Sequence[Tool] = (),
        profiles: ProfileBook | None = None,
        **adapter_options: Any,
    ) -> None:
        self.slack = slack
        self.config = config
        # Settings a person would set in .env, apart from the adapter's tuning knobs.
        names = {*SlackSettings.__dataclass_fields__, "allowed_users", "allowed_channels"}
        self.settings = {k: v for k, v in adapter_options.items() if k in names}
        self.tuning: dict[str, Any] = {
            "base_url": slack.api_url,
            "update_interval": 0.01,
            "ping_interval": 30.0,
            **({"host": "127.0.0.1"} if "signing_secret" in self.settings else {}),
            **{k: v for k, v in adapter_options.items() if k not in names},
        }
        self.parts = BotParts(config, tools, profiles=profiles)
        self.adapter: SlackAdapter
        self._task: asyncio.Task[None] | None = None
        self._events = 0

    @property
    def socket_mode(self) -> bool:
        """Whether the bot takes Slack's traffic over Socket Mode (else HTTP, signed)."""
        return "signing_secret" not in self.settings

    async def start(self) -> Harness:
        await self.parts.start()
        settings = slack_settings(**self.settings)
        self.adapter = SlackAdapter(self.parts.core, settings, **self.tuning)
        self._task = asyncio.create_task(self.adapter.run())
        if self.adapter.socket_mode:
            await self.slack.wait_connections(settings.socket_connections)
        else:
            for _ in range(500):
                if self.adapter.http_port:
                    break
                await asyncio.sleep(0.01)
        return self

    async def close(self) -> None:
        await self.adapter.close(grace=5.0)
        if self._task is not None:
            await asyncio.wait_for(self._task, 10)
        await self.parts.close()

    async def __aenter__(self) -> Harness:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ----- delivering events ---------------------------------------------------------------

    def event_body(self, event: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
        self._events += 1
        return event_envelope(event, event_id or f"Ev{self._events:04d}")

    async def send_event(
        self,
        event: dict[str, Any],
        *,
        event_id: str | None = None,
        retry: int = 0,
        via: int | None = None,
    ) -> str:
        """Deliver an event (on connection `via`, or the next in turn); returns its envelope ID
        once acked. In HTTP mode it is POSTed, signed, and its event ID is returned."""
        body = self.event_body(event, event_id)
        if not self.socket_mode:
            raw = json.dumps(body)
            await self._post(raw, signed_headers(raw, retry=retry or None))
            return str(body["event_id"])
        envelope = await self.slack.deliver("events_api", body, retry_attempt=retry, via=via)
        await self.slack.wait_ack(envelope)
        return envelope

    async def _post(self, body: str, headers: dict[str, str]) -> None:
        """POST a request to the bot's request URL (HTTP mode), as Slack would."""
        url = f"http://127.0.0.1:{self.adapter.http_port}/slack/events"
        async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=headers) as r:
            assert r.status == 200, await r.text()

    async def mention(
        self, text: str, *, channel: str = CHANNEL, user: str = ANN, thread_ts: str | None = None
    ) -> str:
        """A person mentions the bot; returns the message's ts."""
        ts = self.slack.new_ts()
        self.slack.record_user_message(channel, f"<@{BOT_USER}> {text}", user, ts, thread_ts)
        event = {
            "type": "app_mention",
            "user": user,
            "text": f"<@{BOT_USER}> {text}",
            "ts": ts,
            "channel": channel,
            "event_ts": ts,
            "team": TEAM,
            **({"thread_ts": thread_ts} if thread_ts else {}),
        }
        await self.send_event(event)
        return ts

    def message_event(
        self,
        text: str,
        *,
        channel: str = CHANNEL,
        user: str = ANN,
        thread_ts: str | None = None,
        ts: str | None = None,
    ) -> dict[str, Any]:
        ts = ts or self.slack.new_ts()
        self.slack.record_user_message(channel, text, user, ts, thread_ts)
        return {
            "type": "message",
            "channel_type": "im" if channel.startswith("D") else "channel",
            "user": user,
            "text": text,
            "ts": ts,
            "channel": channel,
            "event_ts": ts,
            "team": TEAM,
            **({"thread_ts": thread_ts} if thread_ts else {}),
        }

    async def say(self, text: str, **where: Any) -> str:
        event = self.message_event(text, **where)
        await self.send_event(event)
        return str(event["ts"])

    async def answer(self, channel: str, thread_ts: str | None, count: int = 1) -> str:
        replies = await self.slack.wait_for_replies(channel, thread_ts, count)
        return replies[count - 1].text

    def share(
        self,
        text: str,
        files: list[dict[str, Any]],
        **where: Any,
    ) -> dict[str, Any]:
        """A message event for `text` with `files` attached (each from `FakeSlack.share_file`),
        as Slack sends it: subtype `file_share`, the files' full objects in `files`."""
        event = self.message_event(text, **where)
        event.update(subtype="file_share", files=files, upload=True, display_as_bot=False)
        return event

    async def click(self, channel: str, ts: str, action_id: str, user: str = ANN) -> None:
        """`user` clicks a button on the bot's message `ts`; returns once the bot acked it.

        Over the Socket Mode connection, or (HTTP mode) POSTed to the bot's request URL as
        Slack does: form-encoded `payload=<json>`, signed with the signing secret.
        """
        payload = self.slack.block_action(channel, ts, action_id, user)
        if self.socket_mode:
            envelope = await self.slack.deliver("interactive", payload)
            await self.slack.wait_ack(envelope)
            return
        body = urlencode({"payload": json.dumps(payload)})
        await self._post(body, signed_headers(body, content_type=FORM))

    async def ephemerals(self, count: int) -> list[dict[str, Any]]:
        await self.slack.wait_for(lambda: len(self.slack.called("chat.postEphemeral")) >= count)
        return self.slack.called("chat.postEphemeral")

    def shortcut(self, callback_id: str, message_ts: str, thread_ts: str | None) -> dict[str, Any]:
        message = {"type": "message", "user": BOT_USER, "ts": message_ts, "text": "..."}
        if thread_ts:
            message["thread_ts"] = thread_ts
        return {
            "type": "message_action",
            "callback_id": callback_id,
            "trigger_id": "trigger",
            "action_ts": str(time.time()),
            "team": {"id": TEAM, "domain": "fake"},
            "user": {"id": ANN, "name": "ann", "team_id": TEAM},
            "channel": {"id": CHANNEL, "name": "general"},
            "message": message,
            "response_url": self.slack.response_url,
            "token": "legacy",
            "is_enterprise_install": False,
        }

    def slash(
        self, command: str, text: str = "", channel: str = CHANNEL, user: str = ANN
    ) -> dict[str, Any]:
        return {
            "token": "legacy",
            "team_id": TEAM,
            "team_domain": "fake",
            "channel_id": channel,
            "channel_name": "directmessage" if channel.startswith("D") else "general",
            "user_id": user,
            "user_name": user.removeprefix("U0").lower(),
            "command": command,
            "text": text,
            "api_app_id": "A0APP",
            "response_url": self.slack.response_url,
            "trigger_id": "trigger",
            "is_enterprise_install": "false",
        }


def event_envelope(event: dict[str, Any], event_id: str) -> dict[str, Any]:
    """An Events API request body carrying `event`, as Slack sends one to the fake workspace."""
    return {
        "token": "legacy",
        "team_id": TEAM,
        "api_app_id": "A0APP",
        "event": event,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": int(time.time()),
        "authorizations": [{"team_id": TEAM, "user_id": BOT_USER, "is_bot": True}],
    }


def signed_headers(
    body: str,
    *,
    retry: int | None = None,
    reason: str = "http_timeout",
    secret: str = SECRET,
    timestamp: int | None = None,
    content_type: str = "application/json",
) -> dict[str, str]:
    """The headers of an HTTP request Slack signs with `secret` (at `timestamp`, or now).

    Slack's `retry`-th retry of a delivery (1, 2, 3) also says which, and why (`reason`).
    Events come as JSON; interactions (clicks, shortcuts) form-encoded.
    """
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
    headers = {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": signature or "",
    }
    if retry is not None:
        headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": reason}
    return headers


@contextlib.asynccontextmanager
async def running(
    slack: FakeSlack,
    fake_openai: FakeOpenAI,
    db: Path | str = ":memory:",
    *,
    settings: dict[str, Any] | None = None,
    tools: Sequence[Tool] = (),
    profiles: ProfileBook | None = None,
    **options: Any,
) -> AsyncIterator[Harness]:
    """The Slack adapter on a real core; `settings` override core settings (`Config` fields),
    `tools` are given to the agent besides its own, `profiles` its profiles."""
    config = make_config(fake_openai, db, **(settings or {}))
    async with Harness(slack, config, tools=tools, profiles=profiles, **options) as harness:
        yield harness


def thread_key(channel: str, thread: str) -> str:
    """The thread key of `thread` (a root's ts, ``dm`` or ``channel``) in the fake workspace;
    under the default memory scope, also the session ID its memory is stored under."""
    return rules.thread_key(TEAM, channel, thread)


def slack_settings(**overrides: Any) -> SlackSettings:
    """Settings for the fake workspace: Socket Mode, unless a signing secret means HTTP mode."""
    settings: dict[str, Any] = {"bot_token": "xoxb-test", "app_token": "xapp-test"}
    if "signing_secret" in overrides:
        settings.update(app_token=None, port=0)
    users = overrides.pop("allowed_users", frozenset())
    channels = overrides.pop("allowed_channels", frozenset())
    settings.update(overrides, policy=AccessPolicy(channels=channels, users=users))
    return SlackSettings(**settings)


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake
