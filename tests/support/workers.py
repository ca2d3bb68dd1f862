"""Whole bot processes (`tests.worker_driver`) for the multi-worker tests and the workers bench.

`worker_environment` gives a worker its settings, `Workers` starts a number of them on those
and stops them all; each is a `Worker`: the process, the port its Events API listens on (and
its metrics' port, with `BOT_METRICS_PORT`), and the file its log goes to.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path

from bot.storage.urls import is_postgres_url
from tests.support.slack import SECRET

ROOT = Path(__file__).resolve().parents[2]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
OWN_SETTINGS = ("BOT_", "SLACK_", "OPENAI_", "DISCORD_")
"""Prefixes of the developer's own bot settings, which must not leak into a worker."""


def worker_environment(
    memory: str, model_url: str, slack_api_url: str, **settings: str | float
) -> dict[str, str]:
    """A worker's environment: this process's, without the developer's own bot settings; the
    memory at `memory` (a PostgreSQL URL, or a SQLite file's path for a lone worker), the fake
    model and the fake Slack's Web API; and `settings` (variable names and values, such as
    `BOT_THREAD_WAIT=15`)."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(OWN_SETTINGS)}
    return {
        **inherited,
        ("BOT_DATABASE_URL" if is_postgres_url(memory) else "BOT_DB_PATH"): memory,
        "OPENAI_API_KEY": "sk-test-not-a-real-key",
        "OPENAI_BASE_URL": model_url,
        "BOT_MODEL": "fake-model",
        "BOT_MODEL_API": "chat_completions",
        "BOT_MODEL_RETRIES": "0",
        "BOT_RATE_LIMIT": "0",
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_PORT": "0",
        "WORKER_SLACK_API_URL": slack_api_url,
        **{name: str(value) for name, value in settings.items()},
    }


def cpu_seconds(pid: int) -> float:
    """The CPU time process `pid` has used (user and system), from /proc."""
    # The command name, in brackets, may hold spaces: the fields are counted after it.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


@dataclass
class Worker:
    """One bot process and the port its Events API listens on (0 until it says)."""

    process: asyncio.subprocess.Process
    port: int
    log: Path
    metrics_port: int | None = None
    """Where it serves `/metrics`, when started with `BOT_METRICS_PORT`."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slack/events"

    @property
    def metrics_url(self) -> str:
        if self.metrics_port is None:
            raise RuntimeError("the worker serves no metrics: start it with BOT_METRICS_PORT")
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def cpu_seconds(self) -> float:
        """The CPU time the process has used (user and system)."""
        return cpu_seconds(self.process.pid)

    def tcp_ports(self) -> set[int]:
        """The local ports of this process's TCP sockets (its database connections among them)."""
        pid = self.process.pid
        inodes = set()
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[len("socket:[") : -1])
        ports = set()
        for table in ("tcp", "tcp6"):
            path = Path(f"/proc/{pid}/net/{table}")
            if not path.exists():
                continue
            for line in path.read_text().splitlines()[1:]:
                fields = line.split()
                if fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        return ports


@dataclass
class Workers:
    """Worker processes on one environment, logging to `<logs>/<name>-<n>.log`, stopped together.

    A worker counts as started once its process is, so `stop` (or leaving the `async with`)
    also stops one that never became ready.
    """

    environment: dict[str, str]
    logs: Path
    _: KW_ONLY
    name: str = "worker"
    start_within: float = 20.0
    """Seconds a worker may take to print `READY <port>` (`READY <port> METRICS <port>`)."""
    stop_within: float = 5.0
    """Seconds a worker may take to stop on SIGTERM before it is killed."""
    started: list[Worker] = field(default_factory=list)

    async def start(self, count: int) -> list[Worker]:
        """`count` more workers, once every one of them listens."""
        first = len(self.started)
        return list(await asyncio.gather(*(self._start(first + n) for n in range(count))))

    async def _start(self, n: int) -> Worker:
        log = self.logs / f"{self.name}-{n}.log"
        with log.open("wb") as stderr:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.worker_driver",
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                cwd=ROOT,
                env=self.environment,
            )
        worker = Worker(process, 0, log)
        self.started.append(worker)
        assert process.stdout is not None
        try:
            async with asyncio.timeout(self.start_within):
                line = (await process.stdout.readline()).decode()
        except TimeoutError:
            line = f"nothing within {self.start_within:g}s"
        if not line.startswith("READY "):
            said = line.strip() or "its output ended"
            raise RuntimeError(f"worker {n} did not start: {said}; {log}:\n{worker.log_tail()}")
        ports = line.split()
        worker.port = int(ports[1])
        if ports[2:3] == ["METRICS"]:
            worker.metrics_port = int(ports[3])
        return worker

    async def stop(self) -> None:
        """SIGTERM to every worker still running; those that are not gone in time are killed."""
        for worker in self.started:
            if worker.running:
                worker.process.send_signal(signal.SIGTERM)
        for worker in self.started:
            try:
                async with asyncio.timeout(self.stop_within):
                    await worker.process.wait()
            except TimeoutError:
                worker.process.kill()
                await worker.process.wait()

    async def __aenter__(self) -> Workers:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
