"""`/healthz`, `/readyz` and `/metrics`, on one small aiohttp server (`BOT_METRICS_PORT`).

- `/healthz`: 200 "ok" while the process runs (for a liveness probe: restart it if not).
- `/readyz`: 200 "ready" when every check passes (the database answers, each platform is
  connected, the bot is not shutting down); otherwise 503 with one line per failing part, e.g.
  "database: ConnectionRefusedError: ..." or "discord: not connected".
- `/metrics`: the Prometheus exposition of the bot's own registry, by prometheus_client's
  aiohttp handler (text format, or OpenMetrics when the scraper asks for it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.aiohttp import make_aiohttp_handler

logger = logging.getLogger(__name__)

Check = Callable[[], Awaitable[str | None]]
"""Says what is wrong with one part (None when nothing is); may raise, which is a problem too."""

CHECK_SECONDS = 2.0
"""How long one readiness check may take; a probe should answer well within its own timeout."""
MAX_REASON_CHARS = 300


async def listen(runner: web.AppRunner, host: str, port: int) -> int:
    """Start serving `runner`'s app on `host`:`port` (0: any free port) and return the port;
    raises `OSError` when it is taken, having released what it set up."""
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return int(runner.addresses[0][1])


class HealthServer:
    """Serves the health endpoints and the metrics until `close()`.

    Args:
        registry: What `/metrics` exports.
        checks: The parts `/readyz` asks, by name (the name starts each line of a 503).
        host: The address to listen on.
        port: The port; 0 lets the system pick one (see `port`).
        check_timeout: Seconds each check may take before it counts as failing.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        checks: Mapping[str, Check],
        *,
        host: str,
        port: int,
        check_timeout: float = CHECK_SECONDS,
    ) -> None:
        self._checks = dict(checks)
        self._host = host
        self._requested_port = port
        self._check_timeout = check_timeout
        self._last: tuple[str, ...] | None = None
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", make_aiohttp_handler(registry))
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        self.port: int | None = None
        """The port it listens on, once it does."""

    async def start(self) -> None:
        """Listen; raises `OSError` when the port is taken."""
        self.port = await listen(self._runner, self._host, self._requested_port)
        logger.info("Serving /healthz, /readyz and /metrics on http://%s:%d", self._host, self.port)

    async def close(self) -> None:
        """Stop listening; safe to call more than once."""
        await self._runner.cleanup()

    async def problems(self) -> list[str]:
        """One line per part that is not ready, all parts asked at once."""
        names = list(self._checks)
        found = await asyncio.gather(*(self._ask(name) for name in names))
        return [f"{name}: {problem}" for name, problem in zip(names, found, strict=True) if problem]

    async def _ask(self, name: str) -> str | None:
        try:
            async with asyncio.timeout(self._check_timeout):
                problem = await self._checks[name]()
        except TimeoutError:
            return f"no answer within {self._check_timeout:g}s"
        except Exception as exc:
            problem = f"{type(exc).__name__}: {exc}".removesuffix(": ")
        return None if problem is None else problem[:MAX_REASON_CHARS]

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        problems = await self.problems()
        self._note(problems)
        if problems:
            return web.Response(status=503, text="\n".join(problems) + "\n")
        return web.Response(text="ready\n")

    def _note(self, problems: list[str]) -> None:
        """Log readiness when it changes (probes ask every few seconds; say it once)."""
        current = tuple(problems)
        if current == self._last:
            return
        if problems:
            logger.warning("Not ready: %s", "; ".join(problems))
        elif self._last is not None:
            logger.info("Ready again")
        self._last = current
