"""The operator page's HTTP server: aiohttp, the same library as the health endpoints.

Every route but sign-in and the stylesheet needs a session; every form posted needs its CSRF
token. Each answer carries a Content-Security-Policy that allows nothing from another site and
no script at all: the page has none, so an injected one could not run either.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from importlib.resources import files

from aiohttp import web

from ..ops.health import listen
from ..storage import StoreUnavailableError, failure
from . import approvals, overview, people, signing_in, thread, threads
from .access import SESSION_COOKIE
from .page import FORM, OPERATOR, Page

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PUBLIC = {"/signin", "/static/style.css", "/favicon.ico"}
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


class WebServer:
    """Serves the operator page until `close()`."""

    def __init__(self, page: Page, *, host: str, port: int) -> None:
        self._page = page
        self._host = host
        self._requested_port = port
        app = web.Application(middlewares=[self._guard], client_max_size=64 * 1024)
        app.router.add_get("/static/style.css", self._stylesheet)
        app.router.add_get("/favicon.ico", self._no_icon)
        for module in (signing_in, overview, threads, thread, people, approvals):
            app.add_routes(module.routes(page))
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        self.port: int | None = None
        """The port it listens on, once it does."""
        self._warming: asyncio.Task[None] | None = None
        self._css = files(__package__).joinpath("static/style.css").read_bytes()

    async def start(self) -> None:
        """Listen; raises `OSError` when the port is taken."""
        self.port = await listen(self._runner, self._host, self._requested_port)
        # The first search would otherwise wait for everything stored since the last one.
        self._warming = asyncio.create_task(self._index_for_search())
        logger.info("Serving the operator page on http://%s:%d", self._host, self.port)

    async def close(self) -> None:
        """Stop listening; safe to call more than once."""
        if self._warming is not None:
            self._warming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._warming
        await self._runner.cleanup()

    async def _index_for_search(self) -> None:
        try:
            await self._page.store.index_for_search()
        except Exception as exc:  # a search will try again, and say what went wrong
            logger.warning("Could not bring the search index up to date: %s", exc)

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        response = await self._answer(request, handler)
        # What the page cost the server, for a browser's developer tools and bench.web_bench.
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        if response.content_type == "text/html":
            response.headers["Cache-Control"] = "no-store"
        return response

    async def _answer(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        page = self._page
        if request.path not in PUBLIC:
            operator = page.access.operator(request.cookies.get(SESSION_COOKIE))
            if operator is None:
                return signing_in.form(page, request, status=401)
            request[OPERATOR] = operator
            if request.method == "POST":
                form = await request.post()
                token = form.get("csrf")
                if not isinstance(token, str) or not page.access.csrf_ok(operator, token):
                    return page.problem(
                        request,
                        403,
                        "This form has expired",
                        "Go back, reload the page and try again.",
                    )
                request[FORM] = {k: v for k, v in form.items() if isinstance(v, str)}
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except Exception as exc:
            known = failure(exc)
            if known is not None or isinstance(exc, StoreUnavailableError):
                logger.warning("The operator page could not reach the memory: %s", exc)
                return page.problem(
                    request,
                    503,
                    "The memory database is not answering",
                    "Try again in a moment; the bot's log says more.",
                )
            logger.exception("The operator page failed on %s", request.path)
            return page.problem(
                request, 500, "Something went wrong", "The bot's log has the details."
            )

    async def _no_icon(self, request: web.Request) -> web.Response:
        return web.Response(status=204, headers={"Cache-Control": "max-age=86400"})

    async def _stylesheet(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self._css,
            content_type="text/css",
            charset="utf-8",
            headers={"Cache-Control": "max-age=3600"},
        )
