"""The Slack adapter's connection: Socket Mode, or an HTTP server for signed requests.

Socket Mode is used when an app token is set (no public URL needed); otherwise Bolt's aiohttp
server listens for Slack's signed HTTP requests, which Bolt verifies.

Slack lets an app keep up to 10 Socket Mode connections open, each from its own
`apps.connections.open` URL, and sends each event to one of them. Every connection is one of
bolt's own `AsyncSocketModeHandler`s on the same app, so each acks what arrived on it and
reconnects by itself when Slack asks it to (`disconnect`, reason `refresh_requested` or
`warning`); with two or more, the others carry the events meanwhile. A Slack retry may land
on another connection: the core drops a message it has taken already, by its ID.
"""

from __future__ import annotations

import asyncio
import logging
import os

from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.app.async_server import AsyncSlackAppServer

from bot.adapter import ConfigError

logger = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"


class SlackConnection:
    """Brings Slack's events to one bolt app, and takes them away again on `close()`."""

    def __init__(
        self,
        app: AsyncApp,
        *,
        app_token: str | None,
        host: str,
        port: int,
        ping_interval: float,
        socket_connections: int = 1,
    ) -> None:
        self._app = app
        self._app_token = app_token
        self._host = host
        self._port = port
        self._ping_interval = ping_interval
        self._socket_connections = socket_connections
        self._sockets: list[AsyncSocketModeHandler] = []
        self._runner: web.AppRunner | None = None
        self.http_port: int | None = None
        """The port the HTTP mode server listens on, once it does."""

    async def open(self) -> None:
        """Connect through Socket Mode, or start listening for HTTP requests."""
        if self._app_token is not None:
            await self._connect_sockets(self._app_token)
        else:
            await self._serve_http()

    async def _connect_sockets(self, app_token: str) -> None:
        self._sockets = [
            AsyncSocketModeHandler(self._app, app_token, ping_interval=self._ping_interval)
            for _ in range(self._socket_connections)
        ]
        await asyncio.gather(
            *(socket.connect_async() for socket in self._sockets)  # type: ignore[no-untyped-call]
        )
        count = len(self._sockets)
        logger.info(
            "Connected to Slack through Socket Mode (%d connection%s)",
            count,
            "" if count == 1 else "s",
        )

    async def _serve_http(self) -> None:
        server = AsyncSlackAppServer(port=self._port, path=EVENTS_PATH, app=self._app)
        self._runner = web.AppRunner(server.web_app, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        try:
            await site.start()
        except OSError as exc:
            # Said as the setting to change; left an OSError, the CLI would blame the database.
            raise ConfigError(
                f"cannot listen for Slack on {self._host}:{self._port} "
                f"({os.strerror(exc.errno) if exc.errno else exc}); pick another SLACK_PORT"
            ) from None
        sockets = getattr(site._server, "sockets", None) or []
        self.http_port = sockets[0].getsockname()[1] if sockets else self._port
        logger.info(
            "Listening for Slack on http://%s:%s%s", self._host, self.http_port, EVENTS_PATH
        )

    async def problem(self) -> str | None:
        """Why no event can arrive now; None when one can (one live connection is enough:
        Slack sends each event to one of those open)."""
        if self._app_token is None:
            return None if self._runner is not None else "not listening"
        for socket in self._sockets:
            if await socket.client.is_connected():
                return None
        return "not connected"

    async def close(self) -> None:
        """Disconnect, or stop listening; safe to call more than once."""
        sockets, self._sockets = self._sockets, []
        await asyncio.gather(*(_close_socket(socket) for socket in sockets))
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()


async def _close_socket(socket: AsyncSocketModeHandler) -> None:
    client = socket.client
    await socket.close_async()  # type: ignore[no-untyped-call]
    # close_async cancels its background tasks without waiting; wait so none leaks.
    tasks = [
        t
        for t in (client.message_processor, client.message_receiver, client.current_session_monitor)
        if isinstance(t, asyncio.Future)
    ]
    await asyncio.gather(*tasks, return_exceptions=True)
