"""Starting the operator page: beside the bot (`BOT_WEB_PORT`), or on its own against the
configured memory (`python -m bot web`), for a PostgreSQL fleet or a SQLite file."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

from ..admin.stores import open_for_writing
from ..config import Config, ConfigError
from ..storage import Store
from .access import Access, check_exposure
from .page import Page
from .server import WebServer

logger = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def open_page(
    config: Config,
    store: Store,
    *,
    host: str,
    port: int,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> AsyncIterator[WebServer]:
    """Serve the page on `store` for the block; refuses a non-loopback address without a
    password, and says which setting to change when the port is taken."""
    check_exposure(config, host)
    secure = bool(config.web_base_url and config.web_base_url.startswith("https:"))
    server = WebServer(
        Page(
            store=store,
            config=config,
            access=Access(config.web_password, secure=secure),
            clock=clock,
        ),
        host=host,
        port=port,
    )
    try:
        await server.start()
    except OSError as exc:
        raise ConfigError(
            f"cannot serve the operator page on {host}:{port} ({exc.strerror or exc}); "
            "pick another BOT_WEB_PORT"
        ) from None
    if config.web_password is None:
        logger.warning("The operator page has no password (BOT_WEB_PASSWORD): loopback only")
    try:
        yield server
    finally:
        await server.close()


async def serve_page(config: Config, *, host: str, port: int) -> None:
    """`python -m bot web`: the page alone until SIGINT or SIGTERM (a shutdown signal ends
    it at once; a request being answered then is cut short, which loses nothing: every
    action is one transaction)."""
    check_exposure(config, host)
    # As the admin commands open it: a SQLite file must exist already (never created here).
    store = await open_for_writing(config)
    try:
        async with open_page(config, store, host=host, port=port):
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError):  # Windows
                    loop.add_signal_handler(sig, stop.set)
            await stop.wait()
    finally:
        await store.close()
