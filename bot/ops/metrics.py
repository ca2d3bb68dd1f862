"""Prometheus metrics, and the observer seam through which the core reports what it does.

The core knows only `Observer`: it is told when a turn starts and ends, what it waited for and
which command ran. `NO_OBSERVER` (the default) does nothing, so a bot without
`BOT_METRICS_PORT` pays a few empty method calls per turn. `Metrics` is the real one: every
metric lives in its own `CollectorRegistry` (never prometheus_client's global one), so two bots
in one process (the tests, the benchmarks) never count into each other.

Labels carry bounded values only: platform names, outcomes from a fixed list, model and
command names from the configuration, HTTP statuses. Never a session or user ID.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any, Final, Protocol, cast

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

from ..storage import Item, Store, Usage

__all__ = [
    "NO_OBSERVER",
    "Metrics",
    "Observer",
    "PlatformApi",
    "TurnWatch",
    "Waiting",
]

TURN_BUCKETS: Final = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0, 300.0)
FIRST_TOKEN_BUCKETS: Final = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)
WAIT_BUCKETS: Final = (0.001, 0.01, 0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0)
WRITE_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_ERROR_CODE = re.compile(r"[a-z0-9_]{1,40}")
"""What a platform's own error code (Slack's `missing_scope`) must look like to be a label."""


class TurnWatch(Protocol):
    """One turn, watched from when the core takes it until its reply is ready."""

    def first_text(self) -> None:
        """The first words of the answer reached the platform."""
        ...

    def finished(self, outcome: str) -> None:
        """The turn ended with `outcome` (answered, approval, busy, or an error kind)."""
        ...


class Waiting(Protocol):
    """A wait for a resource, as a context manager around it."""

    def __enter__(self) -> Waiting: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def paused(self) -> contextlib.AbstractContextManager[None]:
        """A stretch inside the wait that is a wait for something else (not counted here)."""
        ...


class PlatformApi(Protocol):
    """Counts one platform's failed API calls and the ones its library retried."""

    def error(self, status: str) -> None:
        """A call failed: an HTTP status ("429"), the platform's own error code
        ("missing_scope") or "connection"."""
        ...

    def retry(self) -> None:
        """The platform library is about to send a failed call again."""
        ...


class Observer(Protocol):
    """What the core reports as it works."""

    def turn(self, platform: str) -> TurnWatch:
        """A message became a turn; the watch is told how it goes."""
        ...

    def refused(self, platform: str, outcome: str) -> None:
        """A message was answered without a turn (rate_limited, empty, shutting_down...)."""
        ...

    def waiting(self, resource: str) -> Waiting:
        """A wait for a `thread` lock or a `model_slot`."""
        ...

    def command(self, name: str) -> None:
        """A command ran ("unknown" for a name that is none)."""
        ...

    def platform_api(self, platform: str) -> PlatformApi | None:
        """Counters for a platform's API calls; None when nobody counts them, so adapters
        add no hooks at all."""
        ...


_NOTHING: Final = contextlib.nullcontext()


class _Unwatched:
    """Does nothing, as fast as possible: the watch, wait and observer of a bot without
    metrics."""

    __slots__ = ()

    def first_text(self) -> None:
        pass

    def finished(self, outcome: str) -> None:
        pass

    def __enter__(self) -> _Unwatched:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def paused(self) -> contextlib.AbstractContextManager[None]:
        return _NOTHING

    def turn(self, platform: str) -> _Unwatched:
        return self

    def refused(self, platform: str, outcome: str) -> None:
        pass

    def waiting(self, resource: str) -> _Unwatched:
        return self

    def command(self, name: str) -> None:
        pass

    def platform_api(self, platform: str) -> PlatformApi | None:
        return None


NO_OBSERVER: Final[Observer] = _Unwatched()


class Metrics:
    """Every metric of one bot, in its own registry; an `Observer` for its core.

    Args:
        process: Also export the process's own metrics (CPU, memory, open files, GC, Python
            version), as prometheus_client's default registry does.
    """

    def __init__(self, *, process: bool = True) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        if process:
            # The same collectors prometheus_client registers globally, on our registry.
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)
        self.turns = Counter(
            "memorybot_turns",
            "Messages handled as turns, by how they ended.",
            ["platform", "outcome"],
            registry=registry,
        )
        self.turn_seconds = Histogram(
            "memorybot_turn_duration_seconds",
            "From taking a message to its reply being ready (waits and downloads included).",
            ["platform"],
            buckets=TURN_BUCKETS,
            registry=registry,
        )
        self.first_token_seconds = Histogram(
            "memorybot_time_to_first_token_seconds",
            "From taking a message to the first words of the answer reaching the platform.",
            ["platform"],
            buckets=FIRST_TOKEN_BUCKETS,
            registry=registry,
        )
        self.tokens = Counter(
            "memorybot_model_tokens",
            "Model tokens recorded with turns and summaries (cached is part of input).",
            # Profile names come from the profiles file, so the label's values stay few.
            ["kind", "model", "profile"],
            registry=registry,
        )
        self.waiting_now = Gauge(
            "memorybot_turns_waiting",
            "Turns and commands waiting right now, by what they wait for.",
            ["resource"],
            registry=registry,
        )
        self.wait_seconds = Histogram(
            "memorybot_wait_seconds",
            "Time spent waiting for a thread's earlier turn or for a model slot.",
            ["resource"],
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        self.store_write_seconds = Histogram(
            "memorybot_store_write_seconds",
            "Durable writes of turns and commands to the memory database.",
            buckets=WRITE_BUCKETS,
            registry=registry,
        )
        self.api_errors = Counter(
            "memorybot_platform_api_errors",
            "Platform API calls that failed, by HTTP status or the platform's error code.",
            ["platform", "status"],
            registry=registry,
        )
        self.api_retries = Counter(
            "memorybot_platform_api_retries",
            "Platform API calls the platform library sent again (rate limits, server errors).",
            ["platform"],
            registry=registry,
        )
        self.active_turns = Gauge(
            "memorybot_active_turns",
            "Turns under way (waiting or running).",
            registry=registry,
        )
        self.commands = Counter(
            "memorybot_commands",
            "Commands run, by name.",
            ["command"],
            registry=registry,
        )

    # ----- Observer ------------------------------------------------------------------------

    def turn(self, platform: str) -> TurnWatch:
        return _Turn(self, platform)

    def refused(self, platform: str, outcome: str) -> None:
        self.turns.labels(platform, outcome).inc()

    def waiting(self, resource: str) -> Waiting:
        return _Wait(self.waiting_now.labels(resource), self.wait_seconds.labels(resource))

    def command(self, name: str) -> None:
        self.commands.labels(name).inc()

    def platform_api(self, platform: str) -> PlatformApi:
        return _Api(self, platform)

    # ----- what the store records ----------------------------------------------------------

    def watch(self, store: Store) -> Store:
        """`store`, with each turn commit and command write timed and the model usage it
        records counted; hand it to whatever the metrics should see write."""
        return cast(Store, _WatchedStore(store, self))

    def count_usage(self, usage: Usage) -> None:
        """Add one model call's (or turn's) reported tokens."""
        model = usage.model or "default"
        profile = usage.profile or "default"
        self.tokens.labels("input", model, profile).inc(usage.input_tokens)
        self.tokens.labels("cached", model, profile).inc(usage.cached_tokens)
        self.tokens.labels("output", model, profile).inc(usage.output_tokens)


class _Turn:
    __slots__ = ("_metrics", "_open", "_platform", "_started")

    def __init__(self, metrics: Metrics, platform: str) -> None:
        self._metrics = metrics
        self._platform = platform
        self._started = time.perf_counter()
        self._open = True
        metrics.active_turns.inc()

    def first_text(self) -> None:
        seconds = time.perf_counter() - self._started
        self._metrics.first_token_seconds.labels(self._platform).observe(seconds)

    def finished(self, outcome: str) -> None:
        if not self._open:
            return
        self._open = False
        metrics = self._metrics
        metrics.active_turns.dec()
        metrics.turns.labels(self._platform, outcome).inc()
        seconds = time.perf_counter() - self._started
        metrics.turn_seconds.labels(self._platform).observe(seconds)


class _Wait:
    """Counts itself in the gauge while waiting, and observes the time waited when done."""

    __slots__ = ("_gauge", "_histogram", "_since", "_spent")

    def __init__(self, gauge: Gauge, histogram: Histogram) -> None:
        self._gauge = gauge
        self._histogram = histogram
        self._since = 0.0
        self._spent = 0.0

    def __enter__(self) -> _Wait:
        self._gauge.inc()
        self._since = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self._gauge.dec()
        self._histogram.observe(self._spent + time.perf_counter() - self._since)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        self._gauge.dec()
        self._spent += time.perf_counter() - self._since
        try:
            yield
        finally:
            self._gauge.inc()
            self._since = time.perf_counter()


class _Api:
    __slots__ = ("_errors", "_platform", "_retries")

    def __init__(self, metrics: Metrics, platform: str) -> None:
        self._errors = metrics.api_errors
        self._platform = platform
        self._retries = metrics.api_retries.labels(platform)

    def error(self, status: str) -> None:
        # A code the platform made up on the spot must not become a label of its own.
        label = status if _ERROR_CODE.fullmatch(status) else "other"
        self._errors.labels(self._platform, label).inc()

    def retry(self) -> None:
        self._retries.inc()


class _WatchedStore:
    """A store that times turn commits and command writes, and counts the usage it records.

    Only the writes are wrapped; everything else is the store's own attribute, so a new
    store method needs nothing here.
    """

    def __init__(self, store: Store, metrics: Metrics) -> None:
        self._store = store
        self._metrics = metrics

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def append(self, session_id: str, items: Sequence[Item], **options: Any) -> None:
        with self._metrics.store_write_seconds.time():
            await self._store.append(session_id, items, **options)
        usage = options.get("usage")
        if usage is not None:
            self._metrics.count_usage(usage)

    async def record_usage(self, session_id: str, usage: Usage, **options: Any) -> None:
        await self._store.record_usage(session_id, usage, **options)
        self._metrics.count_usage(usage)

    async def clear(self, session_id: str) -> Any:
        with self._metrics.store_write_seconds.time():
            return await self._store.clear(session_id)

    async def undo_last_exchange(self, session_id: str) -> Any:
        with self._metrics.store_write_seconds.time():
            return await self._store.undo_last_exchange(session_id)
