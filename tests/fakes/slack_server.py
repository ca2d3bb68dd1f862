"""A fake Slack on loopback: the Web API, a Socket Mode websocket and `response_url`s.

Point the real `AsyncWebClient` at `FakeSlack.api_url`. Every Web API call is recorded with
its parsed body and the TCP connection it came on; messages the bot posts, streams and edits
are kept per channel, each with every version people saw, so a test can read a thread as a
person would see it, then and now. Faults are queued per method: an HTTP status with headers
(429 + Retry-After) or a Slack error code (`{"ok": false, "error": ...}`).

The Socket Mode side behaves as Slack documents it: every `apps.connections.open` returns a new
URL, an app may keep several connections open at once (Slack allows 10), each gets `hello` (with
how many are open), and envelopes a test delivers (events, slash commands, shortcuts;
redeliveries carry `retry_attempt` and `retry_reason`) go to one open connection each, taking
turns. A test can send one connection `disconnect` (`refresh_requested`, `warning`,
`link_disabled`) and close it, as Slack does when it refreshes connections. Acks are recorded
with the connection they came back on.

Messages keep their Block Kit `blocks`: `chat.update` replaces them only when the call gives
`blocks` (an empty list removes them), as Slack documents, so a test can see buttons come and
go. `block_action()` builds the `block_actions` payload Slack sends when someone clicks a button
that is on a message (and refuses a button that is not there any more); its `response_url`
takes ephemeral replies, replacements and deletions of the clicked message. Files a person
shares are hosted at `url_private` / `url_private_download` and served only to a bearer token
with `files:read`; anything else gets Slack's sign-in page, as HTML with status 200.

Files the bot uploads go the way Slack documents for `files_upload_v2`:
`files.getUploadURLExternal` (`filename`, `length` > 0) answers an `upload_url` and a `file_id`;
the upload URL takes the bytes in a POST (raw, or as a multipart form) with no token, and
answers `OK - <length>` as text; `files.completeUploadExternal` (`files` = `[{"id", "title"}]`,
optional `channel_id`, `thread_ts`, `initial_comment`) may be called once per file, only after
its bytes arrived, and shares it in the channel as a bot message carrying the file (hosted like
shared files). `conversations.open` with one user opens (or finds again) the DM with them.
Those methods check the token's scopes (`files:write`; `im:write`) and answer a missing one as
Slack does: `{"ok": false, "error": "missing_scope", "needed": ..., "provided": ...}`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import mimetypes
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote

from aiohttp import WSMsgType, web

from tests.fakes.loopback import serve_on_loopback

TEAM = "T0TEAM"
BOT_USER = "U0BOT"
BOT_ID = "B0BOT"
APP_ID = "A0APP"
BOT_TOKEN = "xoxb-test"
USERS = {"U0ANN": "Ann", "U0BEN": "Ben"}
BOT_SCOPES = frozenset(
    {
        "app_mentions:read",
        "channels:history",
        "groups:history",
        "im:history",
        "mpim:history",
        "chat:write",
        "commands",
        "users:read",
        "files:read",
        "files:write",
        "im:write",
    }
)
"""What slack-manifest.yml asks for; a test takes one away to see the bot without it."""
METHOD_SCOPES: dict[str, tuple[str, ...]] = {
    "files.getUploadURLExternal": ("files:write",),
    "files.completeUploadExternal": ("files:write",),
    # Any one will do: each opens the kind of conversation it is named for.
    "conversations.open": ("im:write", "mpim:write", "channels:manage", "groups:write"),
}
"""Methods whose scopes the fake checks (the bot's other methods are not checked)."""
MAX_UPLOAD = 1024**3
"""The largest file Slack takes (1 GB)."""
SIGN_IN_PAGE = (
    "<!DOCTYPE html><html><head><title>Slack</title></head>"
    "<body><h1>Sign in to your workspace</h1></body></html>"
)
"""What Slack serves for a private file to a request without a token that may read it."""


@dataclass
class ApiCall:
    method: str
    body: dict[str, Any]
    token: str | None
    at: float = field(default_factory=time.monotonic)
    connection: tuple[str, int] | None = None
    """The caller's end of the TCP connection the call came on (its address and port)."""


class SlackError(Exception):
    """A method's `{"ok": false, "error": ...}` answer, with any extra fields Slack adds."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


@dataclass
class Upload:
    """A file the bot is uploading: asked for, then its bytes, then completed (shared)."""

    id: str
    filename: str
    length: int
    data: bytes | None = None
    """What arrived at the upload URL; None until then."""
    completed: bool = False


@dataclass
class ApiFault:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None


@dataclass(eq=False)
class Connection:
    """One open Socket Mode connection."""

    number: int
    """1 for the first URL `apps.connections.open` handed out, 2 for the next, and so on."""
    ws: web.WebSocketResponse
    draining: bool = False
    """Told to disconnect: Slack sends it nothing new."""


@dataclass
class Posted:
    """A message as Slack would show it."""

    channel: str
    ts: str
    text: str
    thread_ts: str | None = None
    user: str = BOT_USER
    bot_id: str | None = BOT_ID
    streaming: bool = False
    edits: int = 0
    blocks: list[dict[str, Any]] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)
    """Files shared with the message (as `files.completeUploadExternal` shares them)."""
    versions: list[tuple[str, bool]] = field(default_factory=list)
    """Every state people saw the message in, oldest first: its text, and whether it was
    still streaming (Slack shows a streaming message as unfinished)."""

    def seen(self) -> None:
        """Note the message's current state as one people saw."""
        self.versions.append((self.text, self.streaming))

    def buttons(self) -> list[dict[str, Any]]:
        """The buttons on the message, in the order Slack shows them."""
        return [
            dict(element, block_id=block.get("block_id", ""))
            for block in self.blocks
            if block.get("type") == "actions"
            for element in block.get("elements", [])
            if element.get("type") == "button"
        ]


@dataclass
class Ephemeral:
    """A message only `user` sees (chat.postEphemeral, or an ephemeral `response_url` reply)."""

    channel: str
    user: str
    text: str
    thread_ts: str | None = None
    blocks: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class HostedFile:
    """A file someone shared, and what Slack serves for it."""

    id: str
    name: str
    mimetype: str
    filetype: str
    content: bytes
    user: str


@dataclass
class Interaction:
    """What a `response_url` handed out with an interaction may act on."""

    channel: str
    user: str
    message_ts: str | None = None
    thread_ts: str | None = None


class FakeSlack:
    """`async with FakeSlack() as slack:` then `AsyncWebClient(base_url=slack.api_url)`."""

    def __init__(self) -> None:
        self.calls: list[ApiCall] = []
        self.faults: dict[str, deque[ApiFault]] = {}
        self.disabled: dict[str, str] = {}
        self.refusals: dict[str, list[tuple[Callable[[dict[str, Any]], bool], str]]] = {}
        self.drops: dict[str, list[Callable[[dict[str, Any]], bool]]] = {}
        self.holds: dict[str, asyncio.Event] = {}
        self.messages: list[Posted] = []
        self._by_channel: dict[str, list[Posted]] = {}  # keeps lookups cheap in benchmarks
        self.responses: list[dict[str, Any]] = []
        self.ephemerals: list[Ephemeral] = []
        self.tokens: dict[str, set[str]] = {BOT_TOKEN: set(BOT_SCOPES)}
        """Bot tokens Slack knows, with the scopes each was granted."""
        self.files: dict[str, HostedFile] = {}
        self.downloads: list[tuple[str, str | None]] = []
        self.uploads: dict[str, Upload] = {}
        """Files the bot uploads, by file ID (their upload URLs end in the ID)."""
        self.dms: dict[str, str] = {}
        """The DM channel `conversations.open` gave for each user."""
        self.roles: dict[str, str] = {}
        """Users' standing in the workspace: `admin`, `owner` or `primary_owner` (others are
        members), as `users.info` reports it in `is_admin`, `is_owner`, `is_primary_owner`."""
        """Every request for a private file: its path, and the bearer token it came with."""
        self._interactions: dict[str, Interaction] = {}
        self._file_ids = itertools.count(1)
        self.statuses: dict[tuple[str, str], str] = {}
        """The assistant status shown under each thread; Slack clears it when the app replies."""
        self.acks: dict[str, dict[str, Any]] = {}
        self.connections: list[Connection] = []
        """Open Socket Mode connections, oldest first."""
        self.tickets: dict[str, int] = {}
        """Every URL handed out by `apps.connections.open`, by ticket, with its number."""
        self.delivered_on: dict[str, int] = {}
        """The connection (its number) each envelope was sent on, by envelope ID."""
        self.acked_on: dict[str, int] = {}
        """The connection (its number) each ack came back on, by envelope ID."""
        self.connected = asyncio.Event()
        """Set while at least one Socket Mode connection is open."""
        self._turn = itertools.count()
        self._closers: set[asyncio.Task[None]] = set()
        self.changed = asyncio.Condition()
        self._ts = itertools.count(1)
        self._envelopes = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ----- set-up --------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    @property
    def response_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/respond/{next(self._envelopes)}"

    def _interaction_url(self, interaction: Interaction) -> str:
        key = str(next(self._envelopes))
        self._interactions[key] = interaction
        return f"http://127.0.0.1:{self.port}/respond/{key}"

    @property
    def sockets(self) -> list[web.WebSocketResponse]:
        """The open Socket Mode websockets, oldest first."""
        return [c.ws for c in self.connections]

    async def start(self) -> FakeSlack:
        app = web.Application(client_max_size=MAX_UPLOAD + 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/upload/v1/{file_id}", self._upload)
        app.router.add_get("/link/", self._socket)
        app.router.add_post("/respond/{id}", self._respond)
        app.router.add_get("/files-pri/{owner}/download/{name}", self._file)
        app.router.add_get("/files-pri/{owner}/{name}", self._file)
        self._runner, self.port = await serve_on_loopback(app)
        return self

    async def close(self) -> None:
        for closer in list(self._closers):
            closer.cancel()
        await asyncio.gather(*self._closers, return_exceptions=True)
        for ws in list(self.sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeSlack:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def fail_next(self, method: str, *faults: ApiFault) -> None:
        self.faults.setdefault(method, deque()).extend(faults)

    def disable(self, method: str, error: str = "unknown_method") -> None:
        """Make every call of `method` fail, like a workspace without the feature."""
        self.disabled[method] = error

    def refuse(self, method: str, error: str, when: Callable[[dict[str, Any]], bool]) -> None:
        """Make every call of `method` whose body matches `when` fail with `error`."""
        self.refusals.setdefault(method, []).append((when, error))

    def drop(self, method: str, when: Callable[[dict[str, Any]], bool]) -> None:
        """Drop the connection of every call of `method` whose body matches `when`, with no
        answer (as a proxy or a network failure does)."""
        self.drops.setdefault(method, []).append(when)

    def hold(self, method: str) -> asyncio.Event:
        """Keep calls of `method` waiting until the returned event is set (a slow Slack)."""
        released = self.holds[method] = asyncio.Event()
        return released

    def new_ts(self) -> str:
        return f"{int(time.time())}.{next(self._ts):06d}"

    # ----- what a test reads ---------------------------------------------------------------

    def called(self, method: str) -> list[dict[str, Any]]:
        return [c.body for c in self.calls if c.method == method]

    def bot_messages(self, channel: str, thread_ts: str | None = None) -> list[Posted]:
        """The bot's messages in a thread (or top-level when `thread_ts` is None)."""
        return [
            m
            for m in self._by_channel.get(channel, [])
            if m.thread_ts == thread_ts and m.user == BOT_USER
        ]

    def thread_text(self, channel: str, thread_ts: str | None = None) -> str:
        return "\n".join(m.text for m in self.bot_messages(channel, thread_ts))

    async def wait_for(self, predicate: Any, within: float = 10.0) -> None:
        """Wait until `predicate()` holds, re-checking whenever something changes."""

        async def check() -> None:
            async with self.changed:
                await self.changed.wait_for(predicate)

        await asyncio.wait_for(check(), within)

    async def wait_for_replies(
        self, channel: str, thread_ts: str | None, count: int = 1, within: float = 10.0
    ) -> list[Posted]:
        """Wait until `count` finished bot messages are in the thread."""

        def done() -> bool:
            found = self.bot_messages(channel, thread_ts)
            # A post-and-update answer ends in " …" until its last edit.
            return len(found) >= count and not any(
                m.streaming or m.text.endswith(" …") for m in found
            )

        await self.wait_for(done, within)
        return self.bot_messages(channel, thread_ts)

    # ----- Socket Mode ---------------------------------------------------------------------

    def live(self) -> list[Connection]:
        """Connections Slack would send an envelope to: open, and not told to disconnect."""
        return [c for c in self.connections if not c.draining and not c.ws.closed]

    async def wait_connections(self, count: int, within: float = 10.0) -> None:
        """Wait until `count` connections are open and not draining."""
        await self.wait_for(lambda: len(self.live()) >= count, within)

    async def deliver(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        retry_attempt: int = 0,
        retry_reason: str = "timeout",
        via: int | None = None,
    ) -> str:
        """Send one envelope and return its ID.

        It goes to connection number `via`, or else to the open connections in turn.
        """
        await self.wait_for(self.live)
        live = self.live()
        if via is None:
            connection = live[next(self._turn) % len(live)]
        else:
            connection = next(c for c in live if c.number == via)
        envelope_id = f"env-{next(self._envelopes)}"
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind != "events_api",
            "retry_attempt": retry_attempt,
            "retry_reason": retry_reason if retry_attempt else "",
        }
        self.delivered_on[envelope_id] = connection.number
        await connection.ws.send_str(json.dumps(envelope))
        return envelope_id

    async def wait_ack(self, envelope_id: str, within: float = 5.0) -> dict[str, Any]:
        await self.wait_for(lambda: envelope_id in self.acks, within)
        return self.acks[envelope_id]

    async def disconnect(
        self, number: int, reason: str = "refresh_requested", *, close_after: float = 1.0
    ) -> None:
        """Tell connection `number` to go (`refresh_requested`, `warning`, `link_disabled`).

        As Slack does when it refreshes a connection, it is sent nothing more, and closed
        `close_after` seconds later unless the app has closed it first (slack_sdk does, once
        its new connection is open).
        """
        connection = next(c for c in self.connections if c.number == number)
        connection.draining = True
        message = {"type": "disconnect", "reason": reason, "debug_info": {"host": "fake-applink"}}
        await connection.ws.send_str(json.dumps(message))
        closer = asyncio.create_task(self._close_later(connection.ws, close_after))
        self._closers.add(closer)
        closer.add_done_callback(self._closers.discard)

    @staticmethod
    async def _close_later(ws: web.WebSocketResponse, delay: float) -> None:
        await asyncio.sleep(delay)
        await ws.close()

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        number = self.tickets.get(request.query.get("ticket", ""))
        if number is None:
            raise web.HTTPUnauthorized(text="invalid_ticket")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        connection = Connection(number, ws)
        async with self.changed:
            self.connections.append(connection)
            self.connected.set()
            self.changed.notify_all()
        hello = {
            "type": "hello",
            "num_connections": len(self.connections),
            "debug_info": {"host": "fake-applink", "approximate_connection_time": 18060},
            "connection_info": {"app_id": APP_ID},
        }
        await ws.send_str(json.dumps(hello))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    data = json.loads(msg.data)
                    if "envelope_id" in data:
                        async with self.changed:
                            self.acks[data["envelope_id"]] = data
                            self.acked_on[data["envelope_id"]] = number
                            self.changed.notify_all()
        finally:
            async with self.changed:
                self.connections.remove(connection)
                if not self.connections:
                    self.connected.clear()
                self.changed.notify_all()
        return ws

    # ----- response_url --------------------------------------------------------------------

    async def _respond(self, request: web.Request) -> web.Response:
        body = await request.json()
        interaction = self._interactions.get(request.match_info["id"])
        async with self.changed:
            self.responses.append(body)
            if interaction is not None:
                self._act_on_response(interaction, body)
            self.changed.notify_all()
        return web.Response(text="ok")

    def _act_on_response(self, interaction: Interaction, body: dict[str, Any]) -> None:
        """What Slack does with a reply to a message's `response_url`: replace or delete the
        message, or (by default) show the reply to the person who clicked only."""
        clicked = interaction.message_ts
        if clicked is not None and _truthy(body.get("delete_original")):
            listed = self._by_channel.get(interaction.channel, [])
            listed[:] = [m for m in listed if m.ts != clicked]
            self.messages[:] = [
                m for m in self.messages if (m.channel, m.ts) != (interaction.channel, clicked)
            ]
        elif clicked is not None and _truthy(body.get("replace_original")):
            message = self._find(interaction.channel, clicked)
            message.text = body.get("text", "")
            message.blocks = _blocks(body.get("blocks")) or []
            message.edits += 1
            message.seen()
        elif body.get("response_type") == "in_channel":
            self._add(
                Posted(
                    interaction.channel,
                    self.new_ts(),
                    body.get("text", ""),
                    body.get("thread_ts") or interaction.thread_ts,
                    blocks=_blocks(body.get("blocks")) or [],
                )
            )
        else:
            self.ephemerals.append(
                Ephemeral(
                    interaction.channel,
                    interaction.user,
                    body.get("text", ""),
                    interaction.thread_ts,
                    _blocks(body.get("blocks")) or [],
                )
            )

    # ----- interactions ----------------------------------------------------------------------

    def block_action(
        self, channel: str, ts: str, action_id: str, user: str, *, channel_name: str = "general"
    ) -> dict[str, Any]:
        """The `block_actions` payload Slack sends when `user` clicks the button `action_id` on
        the message `ts` (shaped as Slack's reference documents it).

        Raises:
            LookupError: The message has no such button (any more): nobody could click it.
        """
        message = self._find(channel, ts)
        button = next((b for b in message.buttons() if b.get("action_id") == action_id), None)
        if button is None:
            raise LookupError(f"message {ts} has no {action_id!r} button to click")
        name = USERS.get(user, user)
        shown: dict[str, Any] = {
            "type": "message",
            "text": message.text,
            "ts": message.ts,
            "user": message.user,
            "bot_id": message.bot_id,
            "app_id": APP_ID if message.bot_id else None,
            "team": TEAM,
            "blocks": message.blocks,
        }
        shown = {k: v for k, v in shown.items() if v is not None}
        container: dict[str, Any] = {
            "type": "message",
            "message_ts": message.ts,
            "channel_id": channel,
            "is_ephemeral": False,
        }
        if message.thread_ts is not None:
            shown["thread_ts"] = container["thread_ts"] = message.thread_ts
        interaction = Interaction(channel, user, message.ts, message.thread_ts)
        return {
            "type": "block_actions",
            "user": {"id": user, "username": name.lower(), "name": name.lower(), "team_id": TEAM},
            "api_app_id": APP_ID,
            "token": "legacy",
            "container": container,
            "trigger_id": f"{next(self._envelopes)}.trigger",
            "team": {"id": TEAM, "domain": "fake"},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": channel, "name": channel_name},
            "message": shown,
            "state": {"values": {}},
            "response_url": self._interaction_url(interaction),
            "actions": [
                {
                    "action_id": button["action_id"],
                    "block_id": button["block_id"],
                    "text": button.get("text", {}),
                    "value": button.get("value", ""),
                    **({"style": button["style"]} if "style" in button else {}),
                    "type": "button",
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }

    # ----- files -----------------------------------------------------------------------------

    def share_file(
        self, name: str, content: bytes, mimetype: str, *, filetype: str = "", user: str = ""
    ) -> dict[str, Any]:
        """Host a file and return its object as message events carry it in `files`."""
        file_id = f"F{next(self._file_ids):06d}"
        return self._host(file_id, name, content, mimetype, filetype=filetype, user=user)

    def _host(
        self,
        file_id: str,
        name: str,
        content: bytes,
        mimetype: str,
        *,
        filetype: str = "",
        user: str = "",
        title: str | None = None,
    ) -> dict[str, Any]:
        hosted = HostedFile(file_id, name, mimetype, filetype or _filetype(name), content, user)
        self.files[file_id] = hosted
        base = f"http://127.0.0.1:{self.port}/files-pri/{TEAM}-{file_id}"
        now = int(time.time())
        return {
            "id": file_id,
            "created": now,
            "timestamp": now,
            "name": name,
            "title": title or name,
            "mimetype": mimetype,
            "filetype": hosted.filetype,
            "pretty_type": hosted.filetype.upper(),
            "user": user,
            "user_team": TEAM,
            "editable": False,
            "size": len(content),
            "mode": "hosted",
            "is_external": False,
            "external_type": "",
            "is_public": False,
            "public_url_shared": False,
            "display_as_bot": False,
            "username": "",
            "url_private": f"{base}/{quote(name)}",
            "url_private_download": f"{base}/download/{quote(name)}",
            "permalink": f"https://fake.slack.com/files/{user}/{file_id}/{quote(name)}",
            "has_rich_preview": False,
            "file_access": "visible",
        }

    async def _file(self, request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
        async with self.changed:
            self.downloads.append((request.path, token))
            self.changed.notify_all()
        owner = request.match_info["owner"]
        hosted = self.files.get(owner.removeprefix(f"{TEAM}-"))
        if token is None or "files:read" not in self.tokens.get(token, set()):
            # Slack does not say 401 here: it sends the browser to sign in.
            return web.Response(text=SIGN_IN_PAGE, content_type="text/html", charset="utf-8")
        if hosted is None or request.match_info["name"] != hosted.name:
            return web.Response(status=404, text="file_not_found")
        disposition = "attachment" if "/download/" in request.path else "inline"
        return web.Response(
            body=hosted.content,
            headers={
                "Content-Type": hosted.mimetype,
                "Content-Disposition": f'{disposition}; filename="{hosted.name}"',
            },
        )

    # ----- Web API -------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        raw = await request.text()
        if request.content_type == "application/json":
            body: dict[str, Any] = json.loads(raw) if raw else {}
        else:
            body = dict(parse_qsl(raw))
        body.update(request.query)
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") or body.get("token")
        peer = request.transport.get_extra_info("peername") if request.transport else None
        connection = (str(peer[0]), int(peer[1])) if peer else None
        held = self.holds.get(method)
        if held is not None:
            await held.wait()
        async with self.changed:
            self.calls.append(ApiCall(method, body, token, connection=connection))
            if any(when(body) for when in self.drops.get(method, [])):
                self.changed.notify_all()
                if request.transport is not None:
                    request.transport.abort()
                return web.Response(status=500)
            queue = self.faults.get(method)
            fault = queue.popleft() if queue else None
            if fault is not None:
                self.changed.notify_all()
                payload = {"ok": False, "error": fault.error or "ratelimited"}
                return web.json_response(payload, status=fault.status, headers=fault.headers)
            refused = next((e for when, e in self.refusals.get(method, []) if when(body)), None)
            if method in self.disabled or refused is not None:
                self.changed.notify_all()
                error = refused or self.disabled[method]
                return web.json_response({"ok": False, "error": error})
            handler = getattr(self, "_" + method.replace(".", "_"), None)
            try:
                self._check_scopes(method, token)
                result = handler(body) if handler else {}
            except SlackError as exc:
                self.changed.notify_all()
                return web.json_response({"ok": False, "error": exc.error, **exc.extra})
            self.changed.notify_all()
        return web.json_response({"ok": True, **result})

    def _check_scopes(self, method: str, token: str | None) -> None:
        needed = METHOD_SCOPES.get(method)
        granted = self.tokens.get(token or "", set())
        if needed is not None and not granted.intersection(needed):
            raise SlackError(
                "missing_scope", needed=",".join(needed), provided=",".join(sorted(granted))
            )

    def _auth_test(self, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": "https://fake.slack.com/",
            "team": "Fake Team",
            "user": "memorybot",
            "team_id": TEAM,
            "user_id": BOT_USER,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _apps_connections_open(self, body: dict[str, Any]) -> dict[str, Any]:
        ticket = secrets.token_hex(8)
        self.tickets[ticket] = len(self.tickets) + 1
        return {"url": f"ws://127.0.0.1:{self.port}/link/?ticket={ticket}&app_id={APP_ID}"}

    def _users_info(self, body: dict[str, Any]) -> dict[str, Any]:
        user = body.get("user", "")
        name = USERS.get(user, user)
        # Slack sets every flag that applies: the primary owner is also an owner and an admin.
        standing = self.roles.get(user, "member")
        owner = standing in ("owner", "primary_owner")
        return {
            "user": {
                "id": user,
                "team_id": TEAM,
                "name": name.lower(),
                "is_bot": False,
                "is_admin": standing != "member",
                "is_owner": owner,
                "is_primary_owner": standing == "primary_owner",
                "profile": {"display_name": name},
            }
        }

    def _post(self, body: dict[str, Any], text: str, *, streaming: bool = False) -> Posted:
        posted = Posted(
            channel=body["channel"],
            ts=self.new_ts(),
            text=text,
            thread_ts=body.get("thread_ts") or None,
            streaming=streaming,
            blocks=_blocks(body.get("blocks")) or [],
        )
        self._add(posted)
        return posted

    def _add(self, posted: Posted) -> None:
        posted.seen()
        if posted.thread_ts is not None and posted.user == BOT_USER:
            self.statuses.pop((posted.channel, posted.thread_ts), None)
        self.messages.append(posted)
        self._by_channel.setdefault(posted.channel, []).append(posted)

    def _find(self, channel: str, ts: str) -> Posted:
        for message in self._by_channel.get(channel, []):
            if message.ts == ts:
                return message
        raise KeyError(ts)

    def _chat_postMessage(self, body: dict[str, Any]) -> dict[str, Any]:
        posted = self._post(body, body.get("text", ""))
        return {"channel": posted.channel, "ts": posted.ts}

    def _chat_update(self, body: dict[str, Any]) -> dict[str, Any]:
        message = self._find(body["channel"], body["ts"])
        message.text = body.get("text", "")
        # Slack keeps a message's blocks unless the update gives some (`[]` removes them).
        blocks = _blocks(body.get("blocks"))
        if blocks is not None:
            message.blocks = blocks
        message.streaming = False
        message.edits += 1
        message.seen()
        return {"channel": message.channel, "ts": message.ts}

    def _chat_postEphemeral(self, body: dict[str, Any]) -> dict[str, Any]:
        self.ephemerals.append(
            Ephemeral(
                body["channel"],
                body["user"],
                body.get("text", ""),
                body.get("thread_ts") or None,
                _blocks(body.get("blocks")) or [],
            )
        )
        return {"message_ts": self.new_ts()}

    @staticmethod
    def _chunk_text(body: dict[str, Any]) -> str:
        chunks = body.get("chunks") or []
        if isinstance(chunks, str):
            chunks = json.loads(chunks)
        text = "".join(c.get("text", "") for c in chunks if c.get("type") == "markdown_text")
        return str(body.get("markdown_text") or "") + text

    def _chat_startStream(self, body: dict[str, Any]) -> dict[str, Any]:
        posted = self._post(body, self._chunk_text(body), streaming=True)
        return {"channel": posted.channel, "ts": posted.ts}

    def _chat_appendStream(self, body: dict[str, Any]) -> dict[str, Any]:
        message = self._find(body["channel"], body["ts"])
        message.text += self._chunk_text(body)
        message.seen()
        return {"channel": message.channel, "ts": message.ts}

    def _chat_stopStream(self, body: dict[str, Any]) -> dict[str, Any]:
        message = self._find(body["channel"], body["ts"])
        message.text += self._chunk_text(body)
        message.streaming = False
        message.seen()
        return {"channel": message.channel, "ts": message.ts, "message": {"text": message.text}}

    def _assistant_threads_setStatus(self, body: dict[str, Any]) -> dict[str, Any]:
        key = (body["channel_id"], body["thread_ts"])
        if body.get("status"):
            self.statuses[key] = body["status"]
        else:
            self.statuses.pop(key, None)
        return {}

    def _conversations_replies(self, body: dict[str, Any]) -> dict[str, Any]:
        channel, ts = body.get("channel"), body.get("ts")
        found = [
            {"ts": m.ts, "user": m.user, "bot_id": m.bot_id, "text": m.text, "thread_ts": ts}
            for m in self.messages
            if m.channel == channel and (m.ts == ts or m.thread_ts == ts)
        ]
        return {"messages": found, "has_more": False}

    # ----- files the bot uploads -----------------------------------------------------------

    def _conversations_open(self, body: dict[str, Any]) -> dict[str, Any]:
        users = [u for u in str(body.get("users") or "").split(",") if u]
        if not users:
            raise SlackError("users_list_not_supplied")
        if len(users) > 1:
            raise SlackError("method_not_supported_for_channel_type")  # mpims: not faked
        user = users[0]
        if user not in USERS:
            raise SlackError("user_not_found")
        already = user in self.dms
        channel = self.dms.setdefault(user, "D" + user.removeprefix("U"))
        return {"no_op": already, "already_open": already, "channel": {"id": channel}}

    def _files_getUploadURLExternal(self, body: dict[str, Any]) -> dict[str, Any]:
        filename, length = str(body.get("filename") or ""), str(body.get("length") or "")
        if not filename or not length.isdigit() or int(length) == 0:
            raise SlackError("missing_argument")
        if int(length) > MAX_UPLOAD:
            raise SlackError("file_upload_size_restricted")
        file_id = f"F{next(self._file_ids):06d}"
        self.uploads[file_id] = Upload(file_id, filename, int(length))
        url = f"http://127.0.0.1:{self.port}/upload/v1/{file_id}"
        return {"upload_url": url, "file_id": file_id}

    async def _upload(self, request: web.Request) -> web.Response:
        """The upload URL: takes the bytes (raw, or the file part of a form), no token."""
        upload = self.uploads.get(request.match_info["file_id"])
        if upload is None or upload.completed:
            return web.Response(status=404, text="not_found")
        if request.content_type == "multipart/form-data":
            form = await request.post()
            part = next((v for v in form.values() if isinstance(v, web.FileField)), None)
            data = b"" if part is None else part.file.read()
        else:
            data = await request.read()
        async with self.changed:
            upload.data = data
            self.changed.notify_all()
        return web.Response(text=f"OK - {len(data)}")

    def _files_completeUploadExternal(self, body: dict[str, Any]) -> dict[str, Any]:
        raw = body.get("files")
        listed = json.loads(raw) if isinstance(raw, str) else raw
        if not isinstance(listed, list) or not listed:
            raise SlackError("invalid_arguments")
        uploads: list[tuple[Upload, str]] = []
        for entry in listed:
            upload = self.uploads.get(str(entry.get("id") or ""))
            if upload is None or upload.data is None or upload.completed:
                # Never asked for, bytes never sent, or completed already (once per file).
                raise SlackError("file_not_found")
            uploads.append((upload, str(entry.get("title") or upload.filename)))
        channel = str(body.get("channel_id") or "")
        if channel and channel not in self.dms.values() and not channel.startswith("C"):
            raise SlackError("channel_not_found")
        shared: list[dict[str, Any]] = []
        for upload, title in uploads:
            upload.completed = True
            mimetype = mimetypes.guess_type(upload.filename)[0] or "text/plain"
            data = upload.data or b""
            shared.append(
                self._host(upload.id, upload.filename, data, mimetype, user=BOT_USER, title=title)
            )
        if channel:
            posted = Posted(
                channel,
                self.new_ts(),
                str(body.get("initial_comment") or ""),
                body.get("thread_ts") or None,
                files=shared,
            )
            self._add(posted)
        return {"files": [{"id": f["id"], "title": f["title"]} for f in shared]}

    def record_user_message(
        self, channel: str, text: str, user: str, ts: str, thread_ts: str | None = None
    ) -> None:
        """Keep a person's message so `conversations.replies` can show it."""
        self._add(Posted(channel, ts, text, thread_ts, user=user, bot_id=None))


def _blocks(raw: Any) -> list[dict[str, Any]] | None:
    """A call's `blocks`, sent as a JSON array or (form-encoded) as a JSON string."""
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = json.loads(raw) if raw else []
    return list(raw)


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _filetype(name: str) -> str:
    return name.rsplit(".", 1)[-1].lower() if "." in name else "binary"
