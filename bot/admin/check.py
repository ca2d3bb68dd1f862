"""`python -m bot check`: the preflight a container or deploy script runs before `serve`.

It does what start-up does short of connecting to a platform or a model: reads the settings,
finds the platforms to serve and parses their settings, and opens the memory (creating or
upgrading its schema, as start-up would) and closes it. Any problem is the same one line and
exit code `serve` would end with; success is one line saying what it found.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit

from ..config import Config
from ..platforms import load_adapter, serving
from ..storage import IN_MEMORY, open_store, schema_version, sqlite_path
from .command import AdminCommand, AdminContext


def check(ctx: AdminContext) -> None:
    """Fail as `serve` would, or write one line: the memory, its schema, the platforms."""
    config = ctx.config
    config.require_model_credentials()
    platforms = serving(config.environment)
    for name in platforms:
        load_adapter(name).check_settings(config)
    if config.web_port is not None:
        from ..web.access import check_exposure

        check_exposure(config, config.web_host)
    profiles = ""
    if config.profiles:
        # Only here: checking a profile's tools reads the tool plugins, which loads the SDK.
        from ..profiles.loading import read_profiles

        book = read_profiles(config)
        rules = len(book.rules)
        profiles = f"; profiles: {', '.join(book.profiles)} ({rules} rule{'s' * (rules != 1)})"

    async def open_and_close() -> int:
        store = await open_store(
            config.memory_location, pool_size=1, lock_url=config.database_lock_url
        )
        try:
            await store.ping()
            return schema_version(store)
        finally:
            await store.close()

    version = asyncio.run(open_and_close())
    ctx.out.write(
        f"ok: {describe_memory(config)}, schema v{version}; "
        f"platforms: {', '.join(platforms)}{profiles}\n"
    )


def describe_memory(config: Config) -> str:
    """The memory in a few words, no password: `PostgreSQL memorybot@db:5433`, or
    `SQLite /srv/bot/memory.sqlite3`."""
    if config.database_url is None:
        path = sqlite_path(config.db_path)
        return (
            "SQLite in memory (kept nowhere)"
            if path == IN_MEMORY
            else f"SQLite {Path(path).absolute()}"
        )
    url = urlsplit(config.database_url)
    where = url.hostname or "localhost"
    if url.port:
        where = f"{where}:{url.port}"
    database = url.path.lstrip("/") or url.username or "postgres"
    return f"PostgreSQL {database}@{where}"


CHECK = AdminCommand(
    "check",
    "check the settings, the memory and the platforms to serve, then exit (preflight)",
    check,
    description=(
        "Read the settings, parse each configured platform's, and open the memory database "
        "(creating or upgrading its schema, as start-up does), then close it. Exits 0 with "
        "one line when `serve` would start, or 2 (settings) or 1 (database) with the line "
        "`serve` would end with. Connects to no platform and no model."
    ),
)
