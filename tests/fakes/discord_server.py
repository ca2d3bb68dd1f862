"""A fake Discord on loopback, for driving the real discord.py client end to end.

REST: the calls the bot makes (login, application, command sync, messages, a channel's
history, edits, deletes, typing, threads, interaction callbacks and follow-ups), each recorded;
any of them can be made to answer 429 (with the `Retry-After` header, `Via` header and JSON
body discord.py expects, or as Cloudflare's ban page), 403 or 5xx a number of times, or held
unanswered until released (`hold`). Gateway: HELLO, IDENTIFY -> READY (with a
`resume_gateway_url` back to the fake), heartbeat ACKs, RESUME -> RESUMED, dispatching events,
dropping the connection, refusing new connections (`gateway_down`, an outage), and refusing the
Message Content intent with close code 4014.

Sharding as Discord documents it (developer docs, "Gateway: Sharding"): any number of
connections at once; one that IDENTIFYs with `shard: [shard_id, num_shards]` gets that array
back in READY, only the guilds where `(guild_id >> 22) % num_shards == shard_id` (in READY and
as GUILD_CREATE), and only those guilds' events; events without a guild (DMs) go to shard 0
only. An invalid `shard` array is closed with 4010 (Invalid shard). `GET /gateway/bot` answers
`url`, the recommended `shards` and `session_start_limit`.

Message components and interactions as the developer docs describe them ("Message Components",
"Receiving and Responding"): messages posted or edited through REST keep their `components`
(validated: at most 5 action rows of at most 5 buttons, a `custom_id` of at most 100 characters,
unique in the message; otherwise 400 with code 50035, Invalid Form Body, as for content over 2000
characters); `component_interaction()` builds an INTERACTION_CREATE of type 3 (MESSAGE_COMPONENT)
for a button on such a message. An interaction gets one initial response (types 4, 5, 6, 7;
flags 64 for ephemeral) within 3 seconds of being sent: a second one is 400 with code 40060
(already acknowledged), a late one 404 with code 10062 (Unknown interaction). Follow-ups
(`POST /webhooks/{app}/{token}`, always `wait=true`) and edits of the original
(`PATCH /webhooks/{app}/{token}/messages/@original`, for a component the message it is on) need
that response first (404, 10015 Unknown Webhook, before). Ephemeral messages are kept apart,
visible only to the interaction's user.

Attachments: `attachment()` stores bytes and returns an attachment object (id, filename, size,
url, proxy_url, content_type, and width/height for images) whose `url` is a signed CDN URL
(`/attachments/{channel}/{attachment}/{filename}?ex=&is=&hm=`, as cdn.discordapp.com issues)
served here on loopback, with no token. A URL past its `ex` time, or with a wrong signature,
is 404 "This content is no longer available.", as Discord's CDN answers.

Uploading files as the developer docs describe it (Reference, "Uploading Files"): a message
create or edit, an interaction response, a follow-up or an edit of "@original" may come as
`multipart/form-data` with the JSON body in a `payload_json` part and each file in a
`files[n]` part. The payload's `attachments` list names each new file by the placeholder ID
`n` (with its `filename` and optional `description`); on an edit it must also list, by ID, the
attachments to keep, since any not listed are removed (without an `attachments` list an edit
keeps them all and adds the new files). A placeholder no `files[n]` part matches is 400 (50035,
Invalid Form Body); files over `upload_limit` bytes in all are 413 (40005, Request entity too
large). Uploaded files are stored on the fake CDN like any attachment and echoed in the message
object's `attachments` (id, filename, size, url, proxy_url, content_type, description, and
`ephemeral` on an ephemeral message); `Recorded.uploads` keeps the parts as they arrived.

Point discord.py at it by setting `discord.http.Route.BASE = fake.api_base` and
`discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import mimetypes
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import BodyPartReader, WSMsgType, web

from tests.fakes.loopback import serve_on_loopback

Json = dict[str, Any]

BOT_ID = 900_000_000_000_000_001
APP_ID = 900_000_000_000_000_002
BOT_NAME = "memorybot"
MESSAGE_CONTENT_INTENT = 1 << 15
EPHEMERAL = 1 << 6
"""Message flag 64: only the interaction's user sees the message."""
LOADING = 1 << 7
"""Message flag 128: a deferred response still "thinking"."""
ACK_SECONDS = 3.0
"""How long Discord waits for an interaction's initial response."""
CDN_LIFETIME = 24 * 3600
UPLOAD_LIMIT = 10 * 1024 * 1024
"""Bytes of files one request may upload: a bot's limit in a guild without boosts (10 MiB)."""
"""Seconds a signed attachment URL stays valid (Discord's are about a day)."""
MAX_CONTENT = 2000
MAX_ROWS = 5
MAX_ROW_ITEMS = 5
MAX_CUSTOM_ID = 100
MAX_LABEL = 80
_HEARTBEAT_MS = 45_000
_CDN_SECRET = b"fake-cdn-signing-key"


def _json(data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response with the exact content type discord.py checks for (no charset)."""
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


ADMINISTRATOR = 1 << 3
MANAGE_GUILD = 1 << 5
"""Discord's Manage Server permission bit."""
ALL_PERMISSIONS = (1 << 53) - 1


def role(role_id: int, name: str, permissions: int = 0, position: int = 1) -> Json:
    """A Role object as Discord sends it in a guild's `roles`."""
    return {
        "id": str(role_id),
        "name": name,
        "color": 0,
        "hoist": False,
        "position": position,
        "permissions": str(permissions),
        "managed": False,
        "mentionable": False,
        "flags": 0,
    }


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


@dataclass(frozen=True)
class Upload:
    """One file part of a multipart request, as it arrived."""

    field: str
    """The part's name, `files[n]`."""
    filename: str
    data: bytes


# Typed keys (aiohttp warns on string keys): handlers read the body from here, because a
# multipart body can be read only once.
_PAYLOAD = web.RequestKey("payload", object)
_UPLOADS = web.RequestKey("uploads", list)


@dataclass
class Recorded:
    """One REST request the bot made."""

    method: str
    path: str
    body: Any
    """The JSON body; for a multipart request, its `payload_json`."""
    at: float
    status: int = 200
    uploads: list[Upload] = field(default_factory=list)
    """The files of a multipart request."""


DROPPED = 0
"""A `Failure` status: no answer at all, the connection is dropped (as a proxy or a network
failure does), so discord.py sees aiohttp's error rather than an HTTP one."""


@dataclass
class Failure:
    """Answer matching requests with `status`, `times` times."""

    method: str
    pattern: re.Pattern[str]
    status: int
    times: int = 1
    retry_after: float = 0.05
    code: int | None = None
    """Discord's JSON error code; by default 50013 for a 403, else 0."""
    message: str = ""
    cloudflare: bool = False
    """A 429 from Cloudflare in front of Discord (a ban): a page of its own, without the JSON
    body and `Via` header of Discord's own rate limits, which discord.py does not retry."""


@dataclass
class Hold:
    """Keeps the next request matching `method` and `pattern` unanswered until `release()`."""

    method: str
    pattern: re.Pattern[str]
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the request has come in (it is recorded, and waits)."""
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def release(self) -> None:
        """Let the request go on to its answer."""
        self.released.set()


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


@dataclass
class Interaction:
    """One interaction sent to the bot, and how the bot has answered it so far."""

    payload: Json
    sent_at: float
    response_type: int | None = None
    """The initial response's type; None until the bot acknowledged it."""
    original_id: int | None = None
    """The message "@original" means: for a component, the message it is on."""

    @property
    def user(self) -> Json:
        member = self.payload.get("member")
        author: Json = member["user"] if member else self.payload["user"]
        return author


@dataclass
class StoredFile:
    """An attachment's bytes on the fake CDN."""

    data: bytes
    content_type: str | None
    expires: int
    """Unix time after which its signed URL stops working."""


class FakeDiscord:
    """`async with FakeDiscord() as fake:`; then start the bot and `await fake.ready()`."""

    def __init__(self, *, deny_message_content: bool = False, recommended_shards: int = 1) -> None:
        self.deny_message_content = deny_message_content
        self.recommended_shards = recommended_shards
        self.requests: list[Recorded] = []
        self.failures: list[Failure] = []
        self.holds: list[Hold] = []
        self.gateway = GatewayLog()
        self.guilds: dict[int, Json] = {}
        self.messages: dict[int, Json] = {}
        self.closed_sockets = 0
        self.gateway_down = False
        """While True, new gateway connections are refused with 503, as in an outage (the
        bot keeps trying to reconnect); `refused_connections` counts them."""
        self.refused_connections = 0
        self.posted: set[int] = set()
        """IDs of the messages the bot created through REST."""
        self.commands: dict[str, list[Json]] = {}
        self.interactions: dict[int, Interaction] = {}
        self.files: dict[int, StoredFile] = {}
        self.ack_seconds = ACK_SECONDS
        self.upload_limit = UPLOAD_LIMIT
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
            ("GET", "/channels/{channel}/messages", self._history),
            ("GET", "/channels/{channel}/messages/{message}", self._get_message),
            ("PATCH", "/channels/{channel}/messages/{message}", self._edit_message),
            ("DELETE", "/channels/{channel}/messages/{message}", self._no_content),
            ("POST", "/channels/{channel}/typing", self._no_content),
            ("POST", "/channels/{channel}/messages/{message}/threads", self._create_thread),
            ("POST", "/interactions/{interaction}/{token}/callback", self._interaction_callback),
            ("PATCH", "/webhooks/{app}/{token}/messages/@original", self._edit_original),
            ("POST", "/webhooks/{app}/{token}", self._followup),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, api + path, handler)
        # The CDN and its media proxy (cdn.discordapp.com, media.discordapp.net), unversioned.
        app.router.add_get("/attachments/{channel}/{attachment}/{filename}", self._cdn)
        app.router.add_get("/media/attachments/{channel}/{attachment}/{filename}", self._cdn)
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
        self,
        method: str,
        path: str,
        status: int,
        *,
        times: int = 1,
        retry_after: float = 0.05,
        code: int | None = None,
        message: str = "",
        cloudflare: bool = False,
    ) -> None:
        """Make the next `times` requests matching `method` and regex `path` fail (with
        Discord's error `code` and `message`, if given; a 429 as Cloudflare's if `cloudflare`);
        a `status` of `DROPPED` drops the connection instead."""
        self.failures.append(
            Failure(method, re.compile(path), status, times, retry_after, code, message, cloudflare)
        )

    def hold(self, method: str, path: str) -> Hold:
        """Keep the next request matching `method` and regex `path` waiting for an answer
        until the returned hold is released: a call caught while under way."""
        hold = Hold(method, re.compile(path))
        self.holds.append(hold)
        return hold

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
        """Current state of the messages the bot posted in a channel for everyone, oldest
        first (ephemeral ones are left out: see `ephemeral_messages()`)."""
        return [
            m
            for m in self.messages.values()
            if m["channel_id"] == str(channel_id)
            and int(m["id"]) in self.posted
            and not m["flags"] & EPHEMERAL
        ]

    def ephemeral_messages(self, user_id: int) -> list[Json]:
        """The ephemeral messages only `user_id` sees, oldest first."""
        return [
            m
            for m in self.messages.values()
            if m["flags"] & EPHEMERAL
            and (m.get("interaction_metadata") or {}).get("user", {}).get("id") == str(user_id)
        ]

    def cdn_url(self, channel_id: int, attachment_id: int, filename: str, *, proxy: bool) -> str:
        """A signed URL for a stored file, as the CDN (or its media proxy) hands them out."""
        stored = self.files[attachment_id]
        path = f"/attachments/{channel_id}/{attachment_id}/{filename}"
        issued = stored.expires - CDN_LIFETIME
        ex, issued_hex = f"{stored.expires:x}", f"{issued:x}"
        signature = _sign(path, ex, issued_hex)
        prefix = "/media" if proxy else ""
        return f"http://127.0.0.1:{self.port}{prefix}{path}?ex={ex}&is={issued_hex}&hm={signature}&"

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
        uploads: list[Upload] = []
        if request.can_read_body and request.content_type == "application/json":
            body = await request.json()
        elif request.can_read_body and request.content_type == "multipart/form-data":
            body, uploads = await _read_multipart(request)
        # Handlers read the body from here: a multipart body can be read only once.
        request[_PAYLOAD], request[_UPLOADS] = body, uploads
        path = request.path.removeprefix("/api/v10")
        record = Recorded(request.method, path, body, time.monotonic(), uploads=uploads)
        self.requests.append(record)
        hold = self._take_hold(request.method, path)
        if hold is not None:
            hold.arrived.set()
            await hold.released.wait()
        failure = self._take_failure(request.method, path)
        if failure is not None:
            record.status = failure.status
            if failure.status == DROPPED and request.transport is not None:
                request.transport.abort()
            return self._failure_response(failure)
        if sum(len(upload.data) for upload in uploads) > self.upload_limit:
            record.status = 413
            return _error(413, 40005, "Request entity too large")
        response: web.StreamResponse = await handler(request)
        record.status = response.status
        return response

    def _take_hold(self, method: str, path: str) -> Hold | None:
        for hold in self.holds:
            if hold.method == method and hold.pattern.search(path):
                self.holds.remove(hold)
                return hold
        return None

    def _take_failure(self, method: str, path: str) -> Failure | None:
        for failure in self.failures:
            if failure.method == method and failure.times > 0 and failure.pattern.search(path):
                failure.times -= 1
                return failure
        return None

    @staticmethod
    def _failure_response(failure: Failure) -> web.Response:
        if failure.status == 429 and failure.cloudflare:
            return web.Response(
                status=429,
                text="<!DOCTYPE html><title>Access denied | error code: 1015</title>",
                content_type="text/html",
                headers={"Retry-After": str(failure.retry_after)},
            )
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
        if failure.code is not None:
            return _error(failure.status, failure.code, failure.message)
        if failure.status == 403:
            return _error(403, 50013, "Missing Permissions")
        return _error(failure.status, 0, "Internal Server Error")

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
            "components": [],
            "pinned": False,
            "type": 0,
            "flags": 0,
        }
        return message

    def _bot_message(self, channel_id: str, payload: Json, files: Sequence[Json] = ()) -> Json:
        """A message the bot created (through REST or an interaction), stored as posted."""
        message = self._message(channel_id, payload.get("content") or "")
        message["components"] = list(payload.get("components") or [])
        message["flags"] = int(payload.get("flags") or 0)
        message["attachments"] = _marked(files, message["flags"])
        self.messages[int(message["id"])] = message
        self.posted.add(int(message["id"]))
        return message

    @staticmethod
    def _apply_edit(message: Json, payload: Json, files: list[Json] | None = None) -> None:
        """An edit changes only the fields it sends, as Discord's PATCH does; `files` is the
        message's attachments after it, when it names any (see `_attachments`)."""
        for key in ("content", "components"):
            if key in payload and payload[key] is not None:
                message[key] = payload[key]
        if files is not None:
            message["attachments"] = _marked(files, message["flags"])
        message["edited_timestamp"] = now_iso()

    def _attachments(
        self, request: web.Request, channel_id: str, payload: Json, kept: list[Json]
    ) -> list[Json] | web.Response | None:
        """A message's attachments after a request: None when it leaves them alone, or a 400
        when its `attachments` list names a file it did not send (see the module docstring)."""
        uploads: list[Upload] = request.get(_UPLOADS) or []
        listed = payload.get("attachments")
        if listed is None and not uploads:
            return None
        parts = {upload.field: upload for upload in uploads}
        if listed is None:
            return [*kept, *(self._store_upload(channel_id, u, {}) for u in uploads)]
        known = {str(a["id"]): a for a in kept}
        result: list[Json] = []
        for index, entry in enumerate(listed):
            entry_id = str(entry.get("id"))
            if entry_id in known:
                result.append(known[entry_id])
            elif (upload := parts.get(f"files[{entry_id}]")) is not None:
                result.append(self._store_upload(channel_id, upload, entry))
            else:
                problem = {"code": "ATTACHMENT_NOT_FOUND", "message": "Unknown attachment."}
                errors = {"attachments": {str(index): {"id": {"_errors": [problem]}}}}
                return _error(400, 50035, "Invalid Form Body", errors)
        return result

    def _store_upload(self, channel_id: str, upload: Upload, entry: Json) -> Json:
        """Put an uploaded file on the CDN; its attachment object, as Discord echoes it."""
        filename = str(entry.get("filename") or upload.filename)
        content_type, _ = mimetypes.guess_type(filename)
        if content_type is not None and content_type.startswith("text/"):
            content_type += "; charset=utf-8"
        attachment = self.attachment(
            int(channel_id), filename, upload.data, content_type or "application/octet-stream"
        )
        if entry.get("description"):
            attachment["description"] = entry["description"]
        return attachment

    async def _create_message(self, request: web.Request) -> web.Response:
        payload = _payload(request)
        if (invalid := _invalid_form(payload)) is not None:
            return invalid
        channel = request.match_info["channel"]
        files = self._attachments(request, channel, payload, [])
        if isinstance(files, web.Response):
            return files
        message = self._bot_message(channel, payload, files or [])
        if payload.get("message_reference"):
            message["message_reference"] = payload["message_reference"]
        return _json(message)

    async def _history(self, request: web.Request) -> web.Response:
        """Get Channel Messages: the newest `limit` (1 to 100, by default 50), newest first."""
        limit = int(request.query.get("limit", "50"))
        if not 1 <= limit <= 100:
            return _error(400, 50035, "Invalid Form Body")
        channel = request.match_info["channel"]
        found = [
            m
            for m in self.messages.values()
            if m["channel_id"] == channel and not m["flags"] & EPHEMERAL
        ]
        found.sort(key=lambda m: int(m["id"]), reverse=True)
        return _json(found[:limit])

    def _channel_message(self, request: web.Request) -> Json | None:
        message = self.messages.get(int(request.match_info["message"]))
        if message is None or message["channel_id"] != request.match_info["channel"]:
            return None
        return message

    async def _get_message(self, request: web.Request) -> web.Response:
        message = self._channel_message(request)
        if message is None or message["flags"] & EPHEMERAL:
            return _unknown_message()
        return _json(message)

    async def _edit_message(self, request: web.Request) -> web.Response:
        payload = _payload(request)
        message = self._channel_message(request)
        if message is None:
            return _unknown_message()
        if message["author"]["id"] != str(BOT_ID):
            return _error(403, 50005, "Cannot edit a message authored by another user")
        if (invalid := _invalid_form(payload)) is not None:
            return invalid
        files = self._attachments(request, message["channel_id"], payload, message["attachments"])
        if isinstance(files, web.Response):
            return files
        self._apply_edit(message, payload, files)
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

    # ----- interactions ----------------------------------------------------------------------

    def _interaction_message(
        self,
        interaction: Interaction,
        payload: Json,
        files: Sequence[Json] = (),
    ) -> Json:
        """A message answering an interaction, in its channel, naming its user."""
        message = self._bot_message(interaction.payload["channel_id"], payload, files)
        message["interaction_metadata"] = {
            "id": interaction.payload["id"],
            "type": interaction.payload["type"],
            "user": interaction.user,
        }
        return message

    async def _interaction_callback(self, request: web.Request) -> web.Response:
        interaction = self.interactions.get(int(request.match_info["interaction"]))
        if interaction is None or interaction.payload["token"] != request.match_info["token"]:
            return _error(404, 10062, "Unknown interaction")
        if interaction.response_type is not None:
            return _error(400, 40060, "Interaction has already been acknowledged.")
        if time.monotonic() - interaction.sent_at > self.ack_seconds:
            return _error(404, 10062, "Unknown interaction")
        payload = _payload(request)
        kind = payload.get("type")
        data = payload.get("data") or {}
        is_component = interaction.payload["type"] == 3
        if kind not in (4, 5) and not (is_component and kind in (6, 7)):
            # DEFERRED_UPDATE_MESSAGE and UPDATE_MESSAGE exist for component interactions only.
            return _error(400, 50035, "Invalid Form Body")
        if (invalid := _invalid_form(data)) is not None:
            return invalid
        channel = interaction.payload["channel_id"]
        updated = self.messages.get(interaction.original_id or 0) if kind == 7 else None
        files = self._attachments(
            request, channel, data, [] if updated is None else updated["attachments"]
        )
        if isinstance(files, web.Response):
            return files
        interaction.response_type = kind
        message: Json | None = None
        if kind == 4:
            message = self._interaction_message(interaction, data, files or [])
            interaction.original_id = int(message["id"])
        elif kind == 5:
            flags = int(data.get("flags") or 0) | LOADING
            message = self._interaction_message(interaction, {"content": "", "flags": flags})
            interaction.original_id = int(message["id"])
        elif kind == 7:
            message = self.messages[interaction.original_id or 0]
            self._apply_edit(message, data, files)
        return _json(
            {
                "interaction": {
                    "id": interaction.payload["id"],
                    "type": interaction.payload["type"],
                    "response_message_id": None if message is None else message["id"],
                    "response_message_loading": kind == 5,
                    "response_message_ephemeral": bool(
                        message is not None and message["flags"] & EPHEMERAL
                    ),
                },
                "resource": {"type": kind, **({"message": message} if kind in (4, 7) else {})},
            }
        )

    def _webhook_interaction(self, request: web.Request) -> Interaction | None:
        """The acknowledged interaction a webhook token belongs to."""
        if request.match_info["app"] != str(APP_ID):
            return None
        token = request.match_info["token"]
        return next(
            (
                i
                for i in self.interactions.values()
                if i.payload["token"] == token and i.response_type is not None
            ),
            None,
        )

    async def _followup(self, request: web.Request) -> web.Response:
        interaction = self._webhook_interaction(request)
        if interaction is None:
            return _error(404, 10015, "Unknown Webhook")
        payload = _payload(request)
        if (invalid := _invalid_form(payload)) is not None:
            return invalid
        files = self._attachments(request, interaction.payload["channel_id"], payload, [])
        if isinstance(files, web.Response):
            return files
        message = self._interaction_message(interaction, payload, files or [])
        message["webhook_id"] = str(APP_ID)
        return _json(message)

    async def _edit_original(self, request: web.Request) -> web.Response:
        interaction = self._webhook_interaction(request)
        if interaction is None:
            return _error(404, 10015, "Unknown Webhook")
        message = self.messages.get(interaction.original_id or 0)
        if message is None:
            return _unknown_message()
        payload = _payload(request)
        if (invalid := _invalid_form(payload)) is not None:
            return invalid
        files = self._attachments(request, message["channel_id"], payload, message["attachments"])
        if isinstance(files, web.Response):
            return files
        message["flags"] &= ~LOADING
        self._apply_edit(message, payload, files)
        return _json(message)

    # ----- CDN -------------------------------------------------------------------------------

    async def _cdn(self, request: web.Request) -> web.Response:
        gone = web.Response(status=404, text="This content is no longer available.")
        stored = self.files.get(int(request.match_info["attachment"]))
        path = request.path.removeprefix("/media")
        query = request.query
        ex, issued = query.get("ex", ""), query.get("is", "")
        if (
            stored is None
            or not hmac.compare_digest(query.get("hm", ""), _sign(path, ex, issued))
            or int(ex or "0", 16) < time.time()
        ):
            return gone
        headers = {"Content-Type": stored.content_type or "application/octet-stream"}
        return web.Response(body=stored.data, headers=headers)

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
        attachments: list[Json] = (),  # type: ignore[assignment]
    ) -> Json:
        """A MESSAGE_CREATE payload from a person (or another bot)."""
        message = self._message(str(channel_id), content, author=author)
        message["mentions"] = list(mentions)
        message["type"] = message_type
        message["attachments"] = list(attachments)
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

    def attachment(
        self,
        channel_id: int,
        filename: str,
        data: bytes,
        content_type: str | None = None,
        *,
        expired: bool = False,
        size: int | None = None,
    ) -> Json:
        """An attachment object for a file uploaded to `channel_id`, served by the fake CDN.

        Args:
            channel_id: Where it was posted (CDN paths name the channel).
            filename: Its name.
            data: Its bytes.
            content_type: Its media type; None leaves the field out, as Discord does when it
                cannot tell.
            expired: Hand out a URL whose `ex` time has passed (its download is a 404).
            size: The size to report, when a test needs it to differ from `len(data)`.
        """
        attachment_id = self.next_id()
        now = int(time.time())
        expires = now - 60 if expired else now + CDN_LIFETIME
        self.files[attachment_id] = StoredFile(data, content_type, expires)
        attachment: Json = {
            "id": str(attachment_id),
            "filename": filename,
            "size": len(data) if size is None else size,
            "url": self.cdn_url(channel_id, attachment_id, filename, proxy=False),
            "proxy_url": self.cdn_url(channel_id, attachment_id, filename, proxy=True),
        }
        if content_type is not None:
            attachment["content_type"] = content_type
        if content_type is not None and content_type.startswith("image/"):
            attachment["width"] = attachment["height"] = 1
        return attachment

    def component_interaction(
        self,
        message_id: int,
        custom_id: str,
        *,
        channel: Json,
        author: Json,
        guild_id: int | None = None,
        roles: list[int] = (),  # type: ignore[assignment]
        seen: Json | None = None,
    ) -> Json:
        """An INTERACTION_CREATE payload for a click on a button of a message the bot posted.

        Args:
            seen: The message as the clicker's client showed it, when that is older than the
                message now (a click sent just before the bot edited it); default: as it is.

        Raises:
            AssertionError: The message has no button with that `custom_id`, so no one could
                click it.
        """
        message = self.messages[message_id] if seen is None else seen
        buttons = [c for row in message["components"] for c in row.get("components", [])]
        button = next((b for b in buttons if b.get("custom_id") == custom_id), None)
        assert button is not None, f"message {message_id} has no button {custom_id!r}"
        interaction = self._interaction_base(3, channel, author, guild_id, roles)
        interaction["data"] = {"custom_id": custom_id, "component_type": button["type"]}
        interaction["message"] = json.loads(json.dumps(message))
        self.interactions[int(interaction["id"])].original_id = message_id
        return interaction

    def member_permissions(self, guild_id: int, author: Json, roles: list[int]) -> int:
        """What Discord sends as an interaction member's `permissions`: the union of
        @everyone's and their roles' permission bits; every bit for the owner or an
        Administrator (channel overwrites are not modelled: the fake has none)."""
        guild = self.guilds.get(guild_id)
        if guild is None:
            return 0
        if author.get("id") == guild.get("owner_id"):
            return ALL_PERMISSIONS
        held = {str(guild_id), *(str(r) for r in roles)}
        bits = 0
        for role in guild["roles"]:
            if role["id"] in held:
                bits |= int(role["permissions"])
        return ALL_PERMISSIONS if bits & ADMINISTRATOR else bits

    def _interaction_base(
        self, kind: int, channel: Json, author: Json, guild_id: int | None, roles: list[int]
    ) -> Json:
        interaction: Json = {
            "id": str(self.next_id()),
            "application_id": str(APP_ID),
            "type": kind,
            "token": f"token-{self.next_id()}",
            "version": 1,
            "channel_id": channel["id"],
            "channel": channel,
            "locale": "en-US",
            "app_permissions": "0",
            "attachment_size_limit": self.upload_limit,
            "entitlements": [],
            "authorizing_integration_owners": {},
            "context": 0 if guild_id is not None else 1,
        }
        if guild_id is not None:
            interaction["guild_id"] = str(guild_id)
            interaction["guild_locale"] = "en-US"
            interaction["member"] = {
                "user": author,
                "roles": [str(r) for r in roles],
                "joined_at": now_iso(),
                "deaf": False,
                "mute": False,
                "flags": 0,
                "permissions": str(self.member_permissions(guild_id, author, roles)),
            }
        else:
            interaction["user"] = author
        # Discord's 3-second clock starts when it sends the event; close enough.
        self.interactions[int(interaction["id"])] = Interaction(interaction, time.monotonic())
        return interaction

    def command_interaction(
        self,
        name: str,
        *,
        channel: Json,
        author: Json,
        guild_id: int | None = None,
        options: list[Json] = (),  # type: ignore[assignment]
        roles: list[int] = (),  # type: ignore[assignment]
    ) -> Json:
        """An INTERACTION_CREATE payload for a slash command."""
        scope = str(guild_id) if guild_id is not None else "global"
        known = {c["name"]: c for c in self.commands.get(scope, self.commands.get("global", []))}
        interaction = self._interaction_base(2, channel, author, guild_id, list(roles))
        interaction["data"] = {
            "id": known.get(name, {}).get("id", "0"),
            "name": name,
            "type": 1,
            "options": list(options),
        }
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
        if self.gateway_down:
            self.refused_connections += 1
            raise web.HTTPServiceUnavailable()
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


def _error(status: int, code: int, message: str, errors: Json | None = None) -> web.Response:
    """An error in Discord's JSON error shape."""
    body: Json = {"message": message, "code": code}
    if errors is not None:
        body["errors"] = errors
    return _json(body, status=status)


async def _read_multipart(request: web.Request) -> tuple[Json, list[Upload]]:
    """A multipart body's `payload_json` (parsed; `{}` when absent) and its file parts."""
    payload: Json = {}
    uploads: list[Upload] = []
    reader = await request.multipart()
    async for part in reader:
        if not isinstance(part, BodyPartReader):
            continue  # a nested multipart: Discord reads none
        if part.name == "payload_json":
            payload = json.loads(await part.text())
        elif part.filename is not None:
            data = await part.read(decode=True)
            uploads.append(Upload(part.name or "", part.filename, bytes(data)))
    return payload, uploads


def _payload(request: web.Request) -> Json:
    """The request's JSON body, or a multipart request's `payload_json` (read by the
    middleware); `{}` for an empty body."""
    payload: Json = request.get(_PAYLOAD) or {}
    return payload


def _marked(files: Sequence[Json], flags: int) -> list[Json]:
    """Attachments as a message shows them: marked `ephemeral` on an ephemeral message."""
    if not flags & EPHEMERAL:
        return list(files)
    return [{**attachment, "ephemeral": True} for attachment in files]


def _unknown_message() -> web.Response:
    return _error(404, 10008, "Unknown Message")


def _too_long(limit: int) -> Json:
    return {
        "_errors": [
            {"code": "BASE_TYPE_MAX_LENGTH", "message": f"Must be {limit} or fewer in length."}
        ]
    }


def _invalid_form(payload: Json) -> web.Response | None:
    """A 400 Invalid Form Body (code 50035) for content or components Discord would refuse."""
    errors: Json = {}
    content = payload.get("content")
    if isinstance(content, str) and len(content) > MAX_CONTENT:
        errors["content"] = _too_long(MAX_CONTENT)
    components = payload.get("components") or []
    if len(components) > MAX_ROWS:
        errors["components"] = _too_long(MAX_ROWS)
    seen: set[str] = set()
    for row_index, row in enumerate(components):
        problem = _row_problem(row, seen)
        if problem is not None:
            errors.setdefault("components", {})[str(row_index)] = {
                "_errors": [{"code": "COMPONENT_INVALID", "message": problem}]
            }
    if not errors:
        return None
    return _error(400, 50035, "Invalid Form Body", errors)


def _row_problem(row: Json, seen: set[str]) -> str | None:
    """What is wrong with one action row of buttons, or None."""
    if row.get("type") != 1:
        return "Top-level components must be action rows (type 1)."
    items = row.get("components") or []
    if not 1 <= len(items) <= MAX_ROW_ITEMS:
        return f"An action row holds 1 to {MAX_ROW_ITEMS} buttons."
    for button in items:
        if button.get("type") != 2:
            return "Only buttons (type 2) are supported by this fake."
        style = button.get("style")
        if style not in (1, 2, 3, 4, 5, 6):
            return f"Invalid button style {style!r}."
        if len(button.get("label") or "") > MAX_LABEL:
            return f"A label is at most {MAX_LABEL} characters."
        custom_id = button.get("custom_id")
        if style == 5:
            if not button.get("url") or custom_id is not None:
                return "A link button has a url and no custom_id."
            continue
        if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= MAX_CUSTOM_ID:
            return f"A custom_id is 1 to {MAX_CUSTOM_ID} characters."
        if custom_id in seen:
            return "Component custom id cannot be duplicated."
        seen.add(custom_id)
    return None


def _sign(path: str, ex: str, issued: str) -> str:
    """The CDN's `hm` signature over a path and its validity window."""
    return hmac.new(_CDN_SECRET, f"{path}?{ex}&{issued}".encode(), hashlib.sha256).hexdigest()


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
