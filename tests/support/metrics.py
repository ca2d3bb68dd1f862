"""The bot's health and metrics endpoints as a probe and Prometheus read them: over HTTP on
loopback, the exposition parsed by prometheus_client's own parser."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import aiohttp
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from bot.ops.health import Check, HealthServer


class Scrape:
    """One `/metrics` answer, parsed."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: list[Sample] = [
            sample for family in text_string_to_metric_families(text) for sample in family.samples
        ]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples called `name` whose labels include `labels` (0 if none)."""
        return sum(
            s.value
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )

    def names(self) -> set[str]:
        return {s.name for s in self.samples}

    def label_values(self) -> set[str]:
        """Every label value on every sample."""
        return {value for s in self.samples for value in s.labels.values()}


class Endpoint:
    """The health server of a test, at `base_url`."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    async def get(self, path: str) -> tuple[int, str]:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{self.base_url}{path}") as response,
        ):
            return response.status, await response.text()

    async def scrape(self) -> Scrape:
        status, text = await self.get("/metrics")
        assert status == 200, text
        return Scrape(text)

    async def until(self, path: str, status: int, within: float = 30.0) -> str:
        """Ask `path` until it answers `status` (a probe's loop); returns that body."""
        async with asyncio.timeout(within):
            while True:
                got, body = await self.get(path)
                if got == status:
                    return body
                await asyncio.sleep(0.02)


@asynccontextmanager
async def serving(
    checks: Mapping[str, Check] | None = None, registry: CollectorRegistry | None = None
) -> AsyncIterator[Endpoint]:
    """The real health server asking `checks` and exporting `registry` (an empty one by
    default), on 127.0.0.1 at a free port."""
    server = HealthServer(registry or CollectorRegistry(), checks or {}, host="127.0.0.1", port=0)
    await server.start()
    try:
        yield Endpoint(f"http://127.0.0.1:{server.port}")
    finally:
        await server.close()


def free_port() -> int:
    """A port nothing listens on right now on 127.0.0.1, for a server in a child process."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
