"""One whole bot worker process, serving Slack's Events API over HTTP, for multi-worker tests.

    python -m tests.worker_driver

Everything comes from the environment, as a deployed worker's settings do: `BOT_DATABASE_URL`
(the memory shared by the workers), `OPENAI_BASE_URL` (the fake model), `SLACK_BOT_TOKEN`,
`SLACK_SIGNING_SECRET` and `SLACK_PORT` (0 lets the OS pick a free port, as in any deployment),
plus two of the driver's own: `WORKER_SLACK_API_URL`, the fake Slack's Web API base URL, and
`WORKER_UPDATE_INTERVAL`, the least time between two edits of a streaming answer (default 1 s,
the adapter's own).

Once the HTTP server listens it prints `READY <port>` on stdout; it stops on SIGTERM/SIGINT
like the real bot (`bot.app.run_until_stopped`), and tests SIGKILL it to play a crash.
"""

from __future__ import annotations

import asyncio
import os
import sys

from adapters.slack import SlackAdapter
from adapters.slack.settings import SlackSettings
from bot.agent import build_client
from bot.app import build_core, run_until_stopped
from bot.config import load_config
from bot.ops.logs import configure_logging
from bot.platforms import secrets
from bot.storage import open_store

API_URL = "WORKER_SLACK_API_URL"
UPDATE_INTERVAL = "WORKER_UPDATE_INTERVAL"


async def _announce(adapter: SlackAdapter) -> None:
    """Print the port once the adapter listens (it says so only through `http_port`)."""
    for _ in range(6000):
        if adapter.http_port is not None:
            sys.stdout.write(f"READY {adapter.http_port}\n")
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
    try:
        core = build_core(config, store, client)
        adapter = SlackAdapter(
            core,
            settings,
            host="127.0.0.1",
            base_url=os.environ[API_URL],
            update_interval=float(os.environ.get(UPDATE_INTERVAL, "1.0")),
        )
        ready = asyncio.create_task(_announce(adapter))
        try:
            await run_until_stopped(core, [adapter], store, config)
        finally:
            ready.cancel()
    finally:
        await store.close()
        await client.close()


if __name__ == "__main__":
    asyncio.run(main())
