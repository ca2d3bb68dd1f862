"""A fake Discord on loopback, for driving the real discord.py client end to end.

REST: the calls the bot makes (login, application, command sync, messages, edits, deletes,
typing, threads, interaction callbacks and follow-ups), each recorded; any of them can be
made to answer 429 (with the `Retry-After` header, `Via` header and JSON body discord.py
expects), 403 or 5xx a number of times. Gateway: HELLO, IDENTIFY -> READY (with a
`resume_gateway_url` back to the fake), heartbeat ACKs, RESUME -> RESUMED, dispatching events,
dropping the connection, and refusing the Message Content intent with close code 4014.

Sharding as Discord documents it (developer docs, "Gateway: Sharding"): any number of
connections at once; one that IDENTIFYs with `shard: [shard_id, num_shards]` gets that array
back in READY, only the guilds where `(guild_id >> 22) % num_shards == shard_id` (in READY and
as GUILD_CREATE), and only those guilds' events; events without a guild (DMs) go to shard 0
only. An invalid `shard` array is closed with 4010 (Invalid shard). `GET /gateway/bot` answers
`url`, the recommended `shards` and `session_start_limit`.

Point discord.py at it by setting `discord.http.Route.BASE = fake.api_base` and
`discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.loopback import serve_on_loopback

Json = dict[str, Any]

BOT_ID = 900_000_000_000_000_001
APP_ID = 900_000_000_000_000_002
BOT_NAME = "memorybot"
MESSAGE_CONTENT_INTENT = 1 << 15
_HEARTBEAT_MS = 45_000


def _json(data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response with the exact content type discord.py checks for (no charset)."""
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def user(user_id: int, name: str, *, bot: bool = False) -> Json:
    return {
        "id": str(user_id),
        "username": name,
        "global_name": name,
        "discriminator": "0",
        "avatar": None,
        "bot": bot,
    }


BOT_USER = user(BOT_ID, BOT_NAME, bot=True)


@dataclass
class Recorded:
    """One REST request the bot made."""

    method: str
    path: str
    body: Any
    at: float
    status: int = 200


@dataclass
class Failure:
    """Answer matching requests with `status`, `times` times."""

    method: str
    pattern: re.Pattern[str]
    status: int
    times: int = 1
    retry_after: float = 0.05


@dataclass
class GatewayLog:
    identifies: list[Json] = field(default_factory=list)
    resumes: list[Json] = field(default_factory=list)
    connect_paths: list[str] = field(default_factory=list)
    heartbeats: int = 0


Shard = tuple[int, int]
"""`(shard_id, num_shards)`, as sent in IDENTIFY's `shard` array."""


def shard_of(guild_id: int, num_shards: int) -> int:
    """The shard that receives a guild's events: Discord's documented formula."""
    return (guild_id >> 22) % num_shards


@dataclass
class _Session:
    """What one IDENTIFY started; a RESUME on a new socket carries it on."""

    session_id: str
    shard: Shard | None
    seq: int = 0

    def receives(self, guild_id: int | None) -> bool:
        if self.shard is None:
            return True
        shard_id, num_shards = self.shard
        if guild_id is None:
            return shard_id == 0  # DMs and other events without a guild go to shard 0 only
        return shard_of(guild_id, num_shards) == shard_id


@dataclass
class _Connection:
    ws: web.WebSocketResponse
    session: _Session | None = None

    @property
    def live(self) -> bool:
        return self.session is not None and not self.ws.closed


class FakeDiscord:
    """`async with FakeDiscord() as fake:`; then start the bot and `await fake.ready()`."""

    def __init__(self, *, deny_message_content: bool = False, recommended_shards: int = 1) -> None:
        self.deny_message_content = deny_message_content
        self.recommended_shards = recommended_shards
        self.requests: list[Recorded] = []
        self.failures: list[Failure] = []
        self.gateway = GatewayLog()
        self.guilds: dict[int, Json] = {}
        self.messages: dict[int, Json] = {}
        self.closed_sockets = 0
        self.posted: set[int] = set()
        """IDs of the messages the bot created through REST."""
        self.commands: dict[str, list[Json]] = {}
        self.port = 0
        self._ids = itertools.count(1_100_000_000_000_000_000)
        self._runner: web.AppRunner | None = None
        self._connections: list[_Connection] = []
        self._sessions: dict[str, _Session] = {}
        self._ready = asyncio.Event()

    # ----- lifecycle ------------------------------------------------------------------------

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    async def start(self) -> FakeDiscord:
        app = web.Application(middlewares=[self._record_and_fail])
        api = "/api/v10"
        routes = [
            ("GET", "/users/@me", self._me),
            ("GET", "/oauth2/applications/@me", self._application),
            ("GET", "/gateway/bot", self._gateway_bot),
            ("GET", "/gateway", self._gateway_bot),
            ("PUT", "/applications/{app}/commands", self._sync_commands),
            ("PUT", "/applications/{app}/guilds/{guild}/commands", self._sync_commands),
            ("POST", "/channels/{channel}/messages", self._create_message),
            ("PATCH", "/channels/{channel}/messages/{message}", self._edit_message),
            ("DELETE", "/channels/{channel}/messages/{message}", self._no_content),
            ("POST", "/channels/{channel}/typing", self._no_content),
            ("POST", "/channels/{channel}/messages/{message}/threads", self._create_thread),
            ("POST", "/interactions/{interaction}/{token}/callback", self._interaction_callback),
            ("PATCH", "/webhooks/{app}/{token}/messages/@original", self._webhook_message),
            ("POST", "/webhooks/{app}/{token}", self._webhook_message),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, api + path, handler)
        app.router.add_get("/gateway", self._websocket)
        app.router.add_get("/resume", self._websocket)
        self._runner, self.port = await serve_on_loopback(app)
        return self

    async def close(self) -> None:
        for connection in self._connections:
            if not connection.ws.closed:
                await connection.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeDiscord:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ----- test controls --------------------------------------------------------------------

    def fail(
        self, method: str, path: str, status: int, *, times: int = 1, retry_after: float = 0.05
    ) -> None:
        """Make the next `times` requests matching `method` and regex `path` fail."""
        self.failures.append(Failure(method, re.compile(path), status, times, retry_after))

    async def ready(self) -> None:
        """Wait until the bot has identified or resumed."""
        await self._ready.wait()

    def add_guild(self, guild_id: int, *, channels: list[Json], roles: list[Json] = ()) -> Json:  # type: ignore[assignment]
        guild = {
            "id": str(guild_id),
            "name": f"guild {guild_id}",
            "owner_id": "1",
            "member_count": 2,
            "channels": channels,
            "threads": [],
            "roles": [
                {"id": str(guild_id), "name": "@everyone", "permissions": "0", "position": 0},
                *roles,
            ],
            "members": [
                {
                    "user": BOT_USER,
                    "roles": [],
                    "joined_at": now_iso(),
                    "deaf": False,
                    "mute": False,
                    "flags": 0,
                }
            ],
            "emojis": [],
            "stickers": [],
            "features": [],
            "unavailable": False,
        }
        self.guilds[guild_id] = guild
        return guild

    async def dispatch(self, event: str, data: Json) -> list[Shard | None]:
        """Send a gateway event to the connections that receive it, as Discord routes it.

        Returns:
            The shard of each connection it was sent to (None for an unsharded one).
        """
        assert self._connections, "the bot never connected"
        receivers = self._receivers(event, data)
        guild = _event_guild(event, data)
        assert receivers, f"no connected shard receives {event} (guild {guild})"
        for connection in receivers:
            await self._send(connection, event, data)
        return [c.session.shard for c in receivers if c.session is not None]

    async def drop_connection(self, code: int = 4000, *, shard_id: int | None = None) -> None:
        """Close gateway sockets as Discord does on a hiccup (all, or the one serving
        `shard_id`); the bot should RESUME."""
        dropping = [
            c
            for c in self._connections
            if c.live
            and c.session is not None
            and (shard_id is None or (c.session.shard or (0, 1))[0] == shard_id)
        ]
        assert dropping, "no connection to drop"
        self._ready.clear()
        for connection in dropping:
            await connection.ws.close(code=code)

    def shards_connected(self) -> list[Shard | None]:
        """The shard of each live, identified connection, in the order they connected."""
        return [c.session.shard for c in self._connections if c.live and c.session is not None]

    def calls(self, method: str, pattern: str = "") -> list[Recorded]:
        """Successful requests matching `method` and regex `pattern`."""
        regex = re.compile(pattern)
        return [
            r
            for r in self.requests
            if r.method == method and regex.search(r.path) and r.status < 300
        ]

    def channel_messages(self, channel_id: int) -> list[Json]:
        """Current state of the messages the bot posted in a channel, oldest first."""
        return [
            m
            for m in self.messages.values()
            if m["channel_id"] == str(channel_id) and int(m["id"]) in self.posted
        ]

    def next_id(self) -> int:
        return next(self._ids)

    # ----- REST -----------------------------------------------------------------------------

    @web.middleware
    async def _record_and_fail(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        if request.path in ("/gateway", "/resume"):
            result: web.StreamResponse = await handler(request)
            return result
        body: Any = None
        if request.can_read_body and request.content_type == "application/json":
            body = await request.json()
        path = request.path.removeprefix("/api/v10")
        record = Recorded(request.method, path, body, time.monotonic())
        self.requests.append(record)
        failure = self._take_failure(request.method, path)
        if failure is not None:
            record.status = failure.status
            return self._failure_response(failure)
        response: web.StreamResponse = await handler(request)
        record.status = response.status
        return response

    def _take_failure(self, method: str, path: str) -> Failure | None:
        for failure in self.failures:
            if failure.method == method and failure.times > 0 and failure.pattern.search(path):
                failure.times -= 1
                return failure
        return None

    @staticmethod
    def _failure_response(failure: Failure) -> web.Response:
        if failure.status == 429:
            return _json(
                {
                    "message": "You are being rate limited.",
                    "retry_after": failure.retry_after,
                    "global": False,
                },
                status=429,
                headers={
                    "Retry-After": str(failure.retry_after),
                    "Via": "1.1 google",
                    "X-RateLimit-Scope": "user",
                },
            )
        if failure.status == 403:
            body = {"message": "Missing Permissions", "code": 50013}
        else:
            body = {"message": "Internal Server Error", "code": 0}
        return _json(body, status=failure.status)

    async def _me(self, request: web.Request) -> web.Response:
        return _json({**BOT_USER, "verified": True, "mfa_enabled": False})

    async def _application(self, request: web.Request) -> web.Response:
        return _json(
            {
                "id": str(APP_ID),
                "name": BOT_NAME,
                "description": "",
                "icon": None,
                "bot_public": True,
                "bot_require_code_grant": False,
                "owner": user(1, "owner"),
                "verify_key": "0" * 64,
                "flags": MESSAGE_CONTENT_INTENT,
            }
        )

    async def _gateway_bot(self, request: web.Request) -> web.Response:
        return _json(
            {
                "url": self.gateway_url,
                "shards": self.recommended_shards,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 999,
                    "reset_after": 0,
                    "max_concurrency": 1,
                },
            }
        )

    async def _sync_commands(self, request: web.Request) -> web.Response:
        payload = await request.json()
        guild = request.match_info.get("guild")
        synced = [
            {
                **command,
                "id": str(self.next_id()),
                "application_id": str(APP_ID),
                "version": "1",
                "type": command.get("type", 1),
                "description": command.get("description", ""),
                **({"guild_id": guild} if guild else {}),
            }
            for command in payload
        ]
        self.commands[guild or "global"] = synced
        return _json(synced)

    def _message(self, channel_id: str, content: str, *, author: Json = BOT_USER) -> Json:
        message: Json = {
            "id": str(self.next_id()),
            "channel_id": channel_id,
            "author": author,
            "content": content,
            "timestamp": now_iso(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": [],
            "pinned": False,
            "type": 0,
            "flags": 0,
        }
        return message

    async def _create_message(self, request: web.Request) -> web.Response:
        payload = await request.json()
        message = self._message(request.match_info["channel"], payload.get("content") or "")
        if payload.get("message_reference"):
            message["message_reference"] = payload["message_reference"]
        self.messages[int(message["id"])] = message
        self.posted.add(int(message["id"]))
        return _json(message)

    async def _edit_message(self, request: web.Request) -> web.Response:
        payload = await request.json()
        message_id = int(request.match_info["message"])
        message = self.messages.get(message_id)
        if message is None:
            return _json({"message": "Unknown Message", "code": 10008}, status=404)
        message.update(content=payload.get("content", message["content"]))
        message["edited_timestamp"] = now_iso()
        return _json(message)

    async def _no_content(self, request: web.Request) -> web.Response:
        if request.method == "DELETE":
            self.messages.pop(int(request.match_info["message"]), None)
        return web.Response(status=204)

    async def _create_thread(self, request: web.Request) -> web.Response:
        payload = await request.json()
        parent = request.match_info["channel"]
        guild_id = next(
            (
                gid
                for gid, guild in self.guilds.items()
                if any(c["id"] == parent for c in guild["channels"])
            ),
            None,
        )
        thread = self.thread_payload(
            int(request.match_info["message"]),
            parent_id=int(parent),
            guild_id=guild_id or 0,
            owner_id=BOT_ID,
            name=payload.get("name", "thread"),
        )
        created = {**thread, "newly_created": True}
        if self._receivers("THREAD_CREATE", created):
            await self.dispatch("THREAD_CREATE", created)
        return _json(thread)

    async def _interaction_callback(self, request: web.Request) -> web.Response:
        payload = await request.json()
        kind = payload["type"]
        data = payload.get("data") or {}
        message = self._message("0", data.get("content") or "")
        message["flags"] = data.get("flags", 0)
        return _json(
            {
                "interaction": {
                    "id": request.match_info["interaction"],
                    "type": 2,
                    "response_message_id": message["id"],
                    "response_message_loading": kind == 5,
                    "response_message_ephemeral": bool(message["flags"] & 64),
                },
                "resource": {"type": kind, **({"message": message} if kind == 4 else {})},
            }
        )

    async def _webhook_message(self, request: web.Request) -> web.Response:
        payload = await request.json() if request.can_read_body else {}
        message = self._message("0", payload.get("content") or "")
        message["flags"] = payload.get("flags", 0)
        message["webhook_id"] = str(APP_ID)
        return _json(message)

    # ----- payload builders -----------------------------------------------------------------

    @staticmethod
    def text_channel(channel_id: int, guild_id: int, name: str = "general") -> Json:
        return {
            "id": str(channel_id),
            "guild_id": str(guild_id),
            "name": name,
            "type": 0,
            "position": 0,
            "permission_overwrites": [],
            "nsfw": False,
            "parent_id": None,
        }

    @staticmethod
    def thread_payload(
        thread_id: int, *, parent_id: int, guild_id: int, owner_id: int, name: str = "thread"
    ) -> Json:
        return {
            "id": str(thread_id),
            "guild_id": str(guild_id),
            "parent_id": str(parent_id),
            "owner_id": str(owner_id),
            "name": name,
            "type": 11,
            "message_count": 0,
            "member_count": 1,
            "rate_limit_per_user": 0,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": 1440,
                "archive_timestamp": now_iso(),
                "locked": False,
            },
        }

    def user_message(
        self,
        channel_id: int,
        content: str,
        *,
        author: Json,
        guild_id: int | None = None,
        mentions: list[Json] = (),  # type: ignore[assignment]
        roles: list[int] = (),  # type: ignore[assignment]
        message_type: int = 0,
    ) -> Json:
        """A MESSAGE_CREATE payload from a person (or another bot)."""
        message = self._message(str(channel_id), content, author=author)
        message["mentions"] = list(mentions)
        message["type"] = message_type
        if guild_id is not None:
            message["guild_id"] = str(guild_id)
            message["member"] = {
                "roles": [str(r) for r in roles],
                "joined_at": now_iso(),
                "deaf": False,
                "mute": False,
                "flags": 0,
            }
        self.messages[int(message["id"])] = message
        return message

    def command_interaction(
        self,
        name: str,
        *,
        channel: Json,
        author: Json,
        guild_id: int | None = None,
        options: list[Json] = (),  # type: ignore[assignment]
    ) -> Json:
        """An INTERACTION_CREATE payload for a slash command."""
        scope = str(guild_id) if guild_id is not None else "global"
        known = {c["name"]: c for c in self.commands.get(scope, self.commands.get("global", []))}
        interaction: Json = {
            "id": str(self.next_id()),
            "application_id": str(APP_ID),
            "type": 2,
            "token": f"token-{self.next_id()}",
            "version": 1,
            "channel_id": channel["id"],
            "channel": channel,
            "data": {
                "id": known.get(name, {}).get("id", "0"),
                "name": name,
                "type": 1,
                "options": list(options),
            },
            "locale": "en-US",
            "app_permissions": "0",
            "attachment_size_limit": 8_000_000,
            "entitlements": [],
            "authorizing_integration_owners": {},
            "context": 0 if guild_id is not None else 1,
        }
        if guild_id is not None:
            interaction["guild_id"] = str(guild_id)
            interaction["guild_locale"] = "en-US"
            interaction["member"] = {
                "user": author,
                "roles": [],
                "joined_at": now_iso(),
                "deaf": False,
                "mute": False,
                "flags": 0,
                "permissions": "0",
            }
        else:
            interaction["user"] = author
        return interaction

    # ----- gateway --------------------------------------------------------------------------

    def _receivers(self, event: str, data: Json) -> list[_Connection]:
        guild = _event_guild(event, data)
        return [
            c
            for c in self._connections
            if c.live and c.session is not None and c.session.receives(guild)
        ]

    async def _send(self, connection: _Connection, event: str, data: Json) -> None:
        session = connection.session
        assert session is not None
        session.seq += 1
        frame = {"op": 0, "t": event, "s": session.seq, "d": data}
        await connection.ws.send_str(json.dumps(frame))

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        connection = _Connection(ws)
        self._connections.append(connection)
        self.gateway.connect_paths.append(request.path)
        await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": _HEARTBEAT_MS}}))
        async for frame in ws:
            if frame.type is not WSMsgType.TEXT:
                continue
            message = json.loads(frame.data)
            await self._on_gateway(connection, message)
        self.closed_sockets += 1
        return ws

    async def _on_gateway(self, connection: _Connection, message: Json) -> None:
        ws = connection.ws
        op, data = message.get("op"), message.get("d") or {}
        if op == 1:
            self.gateway.heartbeats += 1
            await ws.send_str(json.dumps({"op": 11}))
        elif op == 2:
            await self._identify(connection, data)
        elif op == 6:
            self.gateway.resumes.append(data)
            session = self._sessions.get(data.get("session_id", ""))
            if session is None:
                await ws.send_str(json.dumps({"op": 9, "d": False}))  # Invalid Session
                return
            connection.session = session
            await self._send(connection, "RESUMED", {})
            self._ready.set()

    async def _identify(self, connection: _Connection, data: Json) -> None:
        ws = connection.ws
        self.gateway.identifies.append(data)
        if self.deny_message_content and int(data.get("intents", 0)) & MESSAGE_CONTENT_INTENT:
            await ws.close(code=4014, message=b"Disallowed intent(s).")
            return
        try:
            shard = _shard(data.get("shard"))
        except ValueError:
            await ws.close(code=4010, message=b"Invalid shard.")
            return
        session_id = "fake-session" + ("" if shard is None else f"-{shard[0]}-of-{shard[1]}")
        session = _Session(session_id, shard)
        self._sessions[session_id] = session
        connection.session = session
        guilds = [g for gid, g in self.guilds.items() if session.receives(gid)]
        ready: Json = {
            "v": 10,
            "user": BOT_USER,
            "guilds": [{"id": g["id"], "unavailable": True} for g in guilds],
            "session_id": session_id,
            "resume_gateway_url": f"ws://127.0.0.1:{self.port}/resume",
            "application": {"id": str(APP_ID), "flags": MESSAGE_CONTENT_INTENT},
            "private_channels": [],
            "relationships": [],
        }
        if shard is not None:
            ready["shard"] = list(shard)
        await self._send(connection, "READY", ready)
        for guild in guilds:
            await self._send(connection, "GUILD_CREATE", guild)
        self._ready.set()


_GUILD_EVENTS = frozenset({"GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE"})


def _event_guild(event: str, data: Json) -> int | None:
    """The guild an event belongs to, which decides its shard; None for DMs and the like."""
    raw = data.get("id") if event in _GUILD_EVENTS else data.get("guild_id")
    return None if raw is None else int(raw)


def _shard(raw: Any) -> Shard | None:
    """IDENTIFY's `shard` array, None when absent; ValueError unless `0 <= id < num_shards`."""
    if raw is None:
        return None
    if not (
        isinstance(raw, list)
        and len(raw) == 2
        and all(isinstance(n, int) for n in raw)
        and 0 <= raw[0] < raw[1]
    ):
        raise ValueError(f"invalid shard {raw!r}")
    return raw[0], raw[1]
