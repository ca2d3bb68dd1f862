"""One whole bot worker process, serving Slack's Events API over HTTP, for multi-worker tests.

    python -m tests.worker_driver

Everything comes from the environment, as a deployed worker's settings do: `BOT_DATABASE_URL`
(the memory shared by the workers), `OPENAI_BASE_URL` (the fake model), `SLACK_BOT_TOKEN`,
`SLACK_SIGNING_SECRET` and `SLACK_PORT` (0 lets the OS pick a free port, as in any deployment),
plus two of the driver's own: `WORKER_SLACK_API_URL`, the fake Slack's Web API base URL, and
`WORKER_UPDATE_INTERVAL`, the least time between two edits of a streaming answer (default 1 s,
the adapter's own).

With `BOT_METRICS_PORT` it serves `/healthz`, `/readyz` and `/metrics` as the real bot does
(`bot.app.serve`), on 127.0.0.1; 0 lets the OS pick that port too.

Once the HTTP server listens it prints `READY <port>` on stdout, or `READY <port> METRICS
<port>` when it serves metrics; it stops on SIGTERM/SIGINT like the real bot
(`bot.app.run_until_stopped`), and tests SIGKILL it to play a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys

from adapters.slack import SlackAdapter
from adapters.slack.settings import SlackSettings
from bot.agent import build_client
from bot.app import build_core, readiness_checks, run_until_stopped
from bot.collector import collector_for_serving
from bot.config import load_config
from bot.ops.health import HealthServer
from bot.ops.logs import configure_logging
from bot.ops.metrics import Metrics
from bot.platforms import secrets
from bot.storage import open_store

API_URL = "WORKER_SLACK_API_URL"
UPDATE_INTERVAL = "WORKER_UPDATE_INTERVAL"


async def _announce(adapter: SlackAdapter, health: HealthServer | None) -> None:
    """Print the ports once the adapter listens (it says so only through `http_port`); the
    bot only logs the metrics port, and a bench keeps logs quiet."""
    metrics = "" if health is None else f" METRICS {health.port}"
    for _ in range(6000):
        if adapter.http_port is not None:
            sys.stdout.write(f"READY {adapter.http_port}{metrics}\n")
            sys.stdout.flush()
            return
        await asyncio.sleep(0.01)


async def main() -> None:
    config = load_config(dotenv_path=None)
    configure_logging(config.log_level or "INFO", config.secrets + secrets(config.environment))
    config.require_model_credentials()
    settings = SlackSettings.from_config(config)
    client = build_client(config)
    store = await open_store(
        config.memory_location, pool_size=config.pool_size, lock_url=config.database_lock_url
    )
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(client.close)
        stack.push_async_callback(store.close)
        # As `bot.app.serve`: metrics only when served, so a worker without them pays nothing.
        metrics = None if config.metrics_port is None else Metrics()
        core = build_core(config, store, client, metrics=metrics)
        adapter = SlackAdapter(
            core,
            settings,
            host="127.0.0.1",
            base_url=os.environ[API_URL],
            update_interval=float(os.environ.get(UPDATE_INTERVAL, "1.0")),
        )
        health: HealthServer | None = None
        if metrics is not None and config.metrics_port is not None:
            health = HealthServer(
                metrics.registry,
                readiness_checks(core, store, [adapter]),
                host="127.0.0.1",
                port=config.metrics_port,
            )
            await health.start()
            stack.push_async_callback(health.close)
        ready = asyncio.create_task(_announce(adapter, health))
        try:
            with collector_for_serving():  # as `bot.app.serve` runs the bot
                await run_until_stopped(core, [adapter], store, config)
        finally:
            ready.cancel()


if __name__ == "__main__":
    asyncio.run(main())
