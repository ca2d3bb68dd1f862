"""Start-up and shutdown: wire the parts together once, run the adapters, close in reverse."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Mapping, Sequence
from datetime import timedelta

from agents import Tool
from openai import AsyncOpenAI

from .adapter import Adapter
from .agent import ModelClients, build_run_config
from .collector import collector_for_serving
from .commands import default_commands
from .config import Config, ConfigError
from .core import Core, CoreSettings
from .memory.search import SEARCH_TOOL, search_thread_tool
from .ops.budget import Clock, DailyBudget, utc_now
from .ops.health import Check, HealthServer
from .ops.metrics import NO_OBSERVER, Metrics
from .platforms import load_adapter
from .profiles.choices import REFRESH_SECONDS, ProfileChoices
from .profiles.command import ProfileCommand
from .profiles.desk import ProfileDesk
from .profiles.kits import Shared, build_planner, build_profile
from .profiles.loading import read_profiles
from .profiles.spec import ProfileBook
from .runs.approvals import ApprovalDesk, ApprovalSettings
from .storage import Store, open_store
from .tools import open_toolbox

__all__ = ["build_core", "build_planner", "serve"]

logger = logging.getLogger(__name__)

RETENTION_SWEEP_SECONDS = 3600.0
LAST_WORDS_SECONDS = 3.0
"""Of the shutdown grace, what is kept for adapters to post their last notices and disconnect."""
DISCONNECT_SECONDS = 1.0
"""Of what is left after the turns, what is kept for the adapters to disconnect."""


async def serve(config: Config, platforms: Sequence[str], options: Mapping[str, str]) -> None:
    """Run the bot on `platforms` until they end or SIGINT/SIGTERM arrives."""
    config.require_model_credentials()
    # Before anything connects: a mistake in the file stops the start with its one line.
    book = read_profiles(config)
    if config.web_port is not None:
        from .web import check_exposure

        check_exposure(config, config.web_host)
    factories = [load_adapter(name).create for name in platforms]
    async with contextlib.AsyncExitStack() as stack:
        clients = ModelClients(config)
        stack.push_async_callback(clients.close)
        store = await open_store(
            config.memory_location, pool_size=config.pool_size, lock_url=config.database_lock_url
        )
        stack.push_async_callback(store.close)
        toolbox = await stack.enter_async_context(open_toolbox(config, reserved=[SEARCH_TOOL]))
        # Metrics only when they are served: without them the core's observer does nothing.
        metrics = None if config.metrics_port is None else Metrics()
        core = build_core(
            config,
            store,
            clients,
            tools=toolbox.tools,
            metrics=metrics,
            profiles=book,
            tool_sources=toolbox.sources,
        )
        adapters = [factory(core, config, options) for factory in factories]
        if metrics is not None and config.metrics_port is not None:
            health = HealthServer(
                metrics.registry,
                readiness_checks(core, store, adapters),
                host=config.metrics_host,
                port=config.metrics_port,
            )
            try:
                await health.start()
            except OSError as exc:
                raise ConfigError(
                    f"cannot serve metrics on {config.metrics_host}:{config.metrics_port} "
                    f"({exc.strerror or exc}); pick another BOT_METRICS_PORT"
                ) from None
            stack.push_async_callback(health.close)
        if config.web_port is not None:
            # Imported only when served: jinja2 and the page's views cost a start nothing else.
            from .web import open_page

            await stack.enter_async_context(
                open_page(config, store, host=config.web_host, port=config.web_port)
            )
        logger.info("Serving %s with memory in %s", ", ".join(platforms), store.location)
        with collector_for_serving():
            await run_until_stopped(core, adapters, store, config)


def build_core(
    config: Config,
    store: Store,
    client: AsyncOpenAI | ModelClients,
    tools: Sequence[Tool] = (),
    *,
    clock: Clock = utc_now,
    metrics: Metrics | None = None,
    profiles: ProfileBook | None = None,
    tool_sources: Mapping[str, str] | None = None,
    choices_refresh: float = REFRESH_SECONDS,
) -> Core:
    """The core with its agents (one per profile), memory and the standard commands.

    `client` is the model client of the global settings, or the clients of every endpoint the
    profiles name (`ModelClients`, which the caller closes). `tools` are the agent's tools
    beyond its own `search_thread` (MCP servers, plugins), and `tool_sources` the server or
    plugin each came from, by tool name, which profiles' `tools` lists name. `clock` tells the
    budget and `/usage` the time (tests move it instead of sleeping). With `metrics`, the core
    reports to them, and its turn and command writes are timed. `choices_refresh` is how
    stale this worker's copy of the profiles chosen in the chat may get (see `choices`).
    """
    book = profiles or ProfileBook()
    clients = client if isinstance(client, ModelClients) else ModelClients(config, client)
    written = store if metrics is None else metrics.watch(store)
    run_config = build_run_config(config)
    desk = ApprovalDesk(
        ApprovalSettings(timeout=config.approval_timeout, approvers=config.approvers)
    )
    shared = Shared(
        store=written,
        clients=clients,
        run_config=run_config,
        desk=desk,
        budget=DailyBudget(store, config.daily_tokens_per_user, clock=clock),
        own_tools=[search_thread_tool(store, bot_name=config.name)],
        tools=tools,
        sources=tool_sources or {},
        clock=clock,
    )
    built = {name: build_profile(config, spec, shared) for name, spec in book.profiles.items()}
    profile_desk = ProfileDesk(book, built, ProfileChoices(store, refresh=choices_refresh))
    choosing = ProfileCommand(profile_desk)
    for profile in built.values():
        standard = default_commands(written, profile.planner, config.name, profile.budget)
        for command in standard:
            if command.name == "help":
                profile.commands.register(choosing)
            profile.commands.register(command)
    return Core(
        store=written,
        profiles=profile_desk,
        desk=desk,
        settings=CoreSettings(
            max_concurrency=config.max_concurrency,
            rate_limit_per_minute=config.rate_limit_per_minute,
            thread_wait=config.thread_wait,
        ),
        observer=NO_OBSERVER if metrics is None else metrics,
    )


def readiness_checks(core: Core, store: Store, adapters: Sequence[Adapter]) -> dict[str, Check]:
    """What `/readyz` asks: the bot is not stopping, the database answers, and each
    platform is connected."""

    async def bot() -> str | None:
        return None if core.accepting else "shutting down"

    async def database() -> str | None:
        await store.ping()
        return None

    checks: dict[str, Check] = {"bot": bot, "database": database}
    checks.update({adapter.name: adapter.problem for adapter in adapters})
    return checks


async def run_until_stopped(
    core: Core, adapters: Sequence[Adapter], store: Store, config: Config
) -> None:
    """Run adapters until one ends or a stop signal; then drain turns and close adapters."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # not on Windows
            loop.add_signal_handler(sig, stop.set)
    tasks = {asyncio.create_task(a.run(), name=f"adapter-{a.name}") for a in adapters}
    waiter = asyncio.create_task(stop.wait(), name="stop-signal")
    sweepers = [asyncio.create_task(_expire_approvals(core, config), name="approvals")]
    if config.retention_days:
        sweepers.append(
            asyncio.create_task(_sweep_idle(store, config.retention_days), name="retention")
        )
    try:
        done, _ = await asyncio.wait({*tasks, waiter}, return_when=asyncio.FIRST_COMPLETED)
        for task in done & tasks:
            failure = None if task.cancelled() else task.exception()
            if failure is not None:
                raise failure
    finally:
        await _shut_down(core, adapters, config.shutdown_grace)
        for task in [*tasks, waiter, *sweepers]:
            task.cancel()
        await asyncio.gather(*tasks, waiter, *sweepers, return_exceptions=True)
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(sig)


async def _shut_down(core: Core, adapters: Sequence[Adapter], grace: float) -> None:
    """Stop within `grace` seconds in all, however many adapters there are.

    Turns get the grace less a moment kept for the adapters' last words; then every adapter
    delivers what it still has and disconnects, all at once, within what is left.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    logger.info("Shutting down (within %gs)", grace)
    await core.drain(grace=max(0.0, grace - min(LAST_WORDS_SECONDS, grace / 5)))
    left = max(0.0, deadline - loop.time())
    delivering = max(0.0, left - min(DISCONNECT_SECONDS, left / 2))

    async def close(adapter: Adapter) -> None:
        try:
            async with asyncio.timeout_at(deadline):
                await adapter.close(grace=delivering)
        except TimeoutError:
            logger.warning("The %s adapter did not close in time; leaving it", adapter.name)
        except Exception:
            logger.exception("Closing the %s adapter failed", adapter.name)

    await asyncio.gather(*(close(adapter) for adapter in adapters))


async def _expire_approvals(core: Core, config: Config) -> None:
    # Often enough that an expiry is never late by more than a quarter of the timeout (and
    # at most 30 s); the query finds nothing in a thread that never paused. The first sweep
    # also tells of approved calls the last stop cut off, once the platforms are connected.
    interval = min(30.0, max(1.0, config.approval_timeout / 4))
    while True:
        await asyncio.sleep(interval)
        try:
            await core.expire_approvals()
        except Exception:
            logger.exception("Expiring approvals failed; will try again later")


async def _sweep_idle(store: Store, retention_days: float) -> None:
    idle_for = timedelta(days=retention_days)
    while True:
        try:
            deleted = await store.delete_idle(idle_for)
        except Exception:
            logger.exception("The retention sweep failed; will try again later")
        else:
            if deleted:
                logger.info("Forgot %d thread(s) idle for over %g days", deleted, retention_days)
        await asyncio.sleep(RETENTION_SWEEP_SECONDS)
