"""Start-up and shutdown: wire the parts together once, run the adapters, close in reverse."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from collections.abc import Mapping, Sequence
from datetime import timedelta

from agents import FunctionTool, Tool
from openai import AsyncOpenAI

from .adapter import Adapter
from .agent import (
    agent_instructions,
    build_agent,
    build_client,
    build_model,
    build_run_config,
    build_summary_agent,
    model_name,
)
from .collector import collector_for_serving
from .commands import default_commands
from .config import Config, ConfigError
from .core import Core, CoreSettings
from .memory.planner import MemoryPlanner, MemorySettings
from .memory.search import SEARCH_TOOL, search_thread_tool
from .memory.summary import Summarizer, SummaryKeeper
from .ops.budget import Clock, DailyBudget, utc_now
from .ops.health import Check, HealthServer
from .ops.metrics import NO_OBSERVER, Metrics
from .platforms import load_adapter
from .runs.approvals import ApprovalSettings
from .runs.attachments import AttachmentReader, AttachmentSettings
from .runs.vision import BlindModels
from .storage import Store, open_store
from .tools import needs_approval, open_toolbox

logger = logging.getLogger(__name__)

RETENTION_SWEEP_SECONDS = 3600.0
LAST_WORDS_SECONDS = 3.0
"""Of the shutdown grace, what is kept for adapters to post their last notices and disconnect."""
DISCONNECT_SECONDS = 1.0
"""Of what is left after the turns, what is kept for the adapters to disconnect."""


async def serve(config: Config, platforms: Sequence[str], options: Mapping[str, str]) -> None:
    """Run the bot on `platforms` until they end or SIGINT/SIGTERM arrives."""
    config.require_model_credentials()
    factories = [load_adapter(name).create for name in platforms]
    async with contextlib.AsyncExitStack() as stack:
        client = build_client(config)
        stack.push_async_callback(client.close)
        store = await open_store(
            config.memory_location, pool_size=config.pool_size, lock_url=config.database_lock_url
        )
        stack.push_async_callback(store.close)
        toolbox = await stack.enter_async_context(open_toolbox(config, reserved=[SEARCH_TOOL]))
        # Metrics only when they are served: without them the core's observer does nothing.
        metrics = None if config.metrics_port is None else Metrics()
        core = build_core(config, store, client, tools=toolbox.tools, metrics=metrics)
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
        logger.info("Serving %s with memory in %s", ", ".join(platforms), store.location)
        with collector_for_serving():
            await run_until_stopped(core, adapters, store, config)


def build_core(
    config: Config,
    store: Store,
    client: AsyncOpenAI,
    tools: Sequence[Tool] = (),
    *,
    clock: Clock = utc_now,
    metrics: Metrics | None = None,
) -> Core:
    """The core with its agent, memory and the standard commands, from configuration.

    `tools` are the agent's tools beyond its own `search_thread` (MCP servers, plugins);
    `clock` tells the budget and `/usage` the time (tests move it instead of sleeping).
    With `metrics`, the core reports to them, and its turn and command writes are timed.
    """
    written = store if metrics is None else metrics.watch(store)
    every_tool = [search_thread_tool(store, bot_name=config.name), *tools]
    agent = build_agent(config, build_model(config, client), every_tool)
    run_config = build_run_config(config)
    planner = build_planner(config, store, every_tool)
    summary_model = config.summary_model or model_name(config)
    summarizer = Summarizer(
        build_summary_agent(config, build_model(config, client, summary_model)),
        run_config,
        bot_name=config.name,
        model=summary_model,
    )
    budget = DailyBudget(store, config.daily_tokens_per_user, clock=clock)
    return Core(
        agent=agent,
        store=written,
        planner=planner,
        summaries=SummaryKeeper(written, planner, summarizer),
        commands=default_commands(written, planner, config.name, budget),
        run_config=run_config,
        settings=CoreSettings(
            max_concurrency=config.max_concurrency,
            rate_limit_per_minute=config.rate_limit_per_minute,
            model_name=model_name(config),
            memory_scope=config.memory_scope,
            thread_wait=config.thread_wait,
            approvals=ApprovalSettings(timeout=config.approval_timeout, approvers=config.approvers),
            may_pause=needs_approval(every_tool),
        ),
        attachments=AttachmentReader(
            AttachmentSettings(vision=config.vision, max_bytes=config.max_attachment_bytes),
            BlindModels(written, endpoint=str(client.base_url), clock=clock),
        ),
        budget=budget,
        observer=NO_OBSERVER if metrics is None else metrics,
    )


def build_planner(config: Config, store: Store, tools: Sequence[Tool] = ()) -> MemoryPlanner:
    """The turn planner for the configured budget and the agent's instructions and tools."""
    return MemoryPlanner(
        store,
        MemorySettings(
            context_tokens=config.context_tokens,
            output_reserve=config.output_reserve,
            summary_tokens=config.summary_tokens,
            max_input_chars=config.max_input_chars,
        ),
        instructions=agent_instructions(config),
        fixed_chars=sum(
            len(tool.description) + len(json.dumps(tool.params_json_schema))
            for tool in tools
            if isinstance(tool, FunctionTool)
        ),
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
