"""The Dockerfile: what `docker build` makes of it, read without Docker (there may be no engine
where the tests run), plus hadolint where it is installed."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support.imports import ROOT
from tests.support.tools import tool


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str

    @property
    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form ENTRYPOINT, CMD or HEALTHCHECK ... CMD, else None."""
        text = self.arguments
        if self.keyword == "HEALTHCHECK":
            text = text.partition(" CMD ")[2]
        try:
            parsed = json.loads(text)
        except ValueError:
            return None
        return parsed if isinstance(parsed, list) else None


def stages() -> list[list[Instruction]]:
    """Each stage's instructions, continuation lines joined and comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = "\n".join(lines).replace("\\\n", " ")
    found: list[list[Instruction]] = []
    for line in joined.splitlines():
        keyword, _, arguments = line.strip().partition(" ")
        if not keyword:
            continue
        if keyword.upper() == "FROM":
            found.append([])
        elif found:
            found[-1].append(Instruction(keyword.upper(), " ".join(arguments.split())))
    return found


def only(stage: list[Instruction], keyword: str) -> Instruction:
    matches = [i for i in stage if i.keyword == keyword]
    assert len(matches) == 1, f"want one {keyword}, found {matches}"
    return matches[0]


def test_the_bot_is_built_in_one_stage_and_run_from_another() -> None:
    _build, final = stages()
    assert any("/opt/bot" in i.arguments and i.keyword == "COPY" for i in final)
    # The final stage takes the installed bot, never the source or the lock file.
    copies = [i.arguments for i in final if i.keyword == "COPY"]
    assert copies
    assert all(c.startswith("--from=build ") for c in copies), copies


def test_dependencies_come_from_the_lock_in_a_layer_before_the_source() -> None:
    build, _ = stages()
    keywords = [(i.keyword, i.arguments) for i in build]
    lock_copy = next(n for n, (k, a) in enumerate(keywords) if k == "COPY" and "requirements/" in a)
    lock_install = next(n for n, (k, a) in enumerate(keywords) if "--require-hashes" in a)
    source_copy = next(n for n, (k, a) in enumerate(keywords) if k == "COPY" and "bot" in a.split())
    assert lock_copy < lock_install < source_copy
    assert "requirements/runtime.txt" in keywords[lock_copy][1]
    # The bot itself without its dependencies: they all came hash-checked from the lock.
    assert any(k == "RUN" and "install --no-deps ." in a for k, a in keywords[source_copy:])


def test_it_runs_as_an_unprivileged_user() -> None:
    _, final = stages()
    user = only(final, "USER").arguments.split(":")[0]
    assert user not in ("root", "0"), user


def test_the_bot_gets_sigterm_directly_in_exec_form() -> None:
    _, final = stages()
    assert only(final, "STOPSIGNAL").arguments == "SIGTERM"
    entrypoint = only(final, "ENTRYPOINT").exec_form
    command = only(final, "CMD").exec_form
    # Exec form: no shell in between to swallow the signal; tini passes it on and reaps.
    assert entrypoint == ["/usr/bin/tini", "--", "python", "-m", "bot"]
    assert command == ["serve"]
    everything = " ".join(i.arguments for i in final if i.keyword in ("ENTRYPOINT", "CMD"))
    assert "pip" not in everything
    assert "sh -c" not in everything


def test_the_health_check_asks_readyz_on_the_metrics_port_the_image_sets() -> None:
    _, final = stages()
    check = only(final, "HEALTHCHECK")
    argv = check.exec_form
    assert argv is not None
    assert argv[:2] == ["python", "-c"], check.arguments
    assert "/readyz" in argv[2]
    assert "BOT_METRICS_PORT" in argv[2]
    env = " ".join(i.arguments for i in final if i.keyword == "ENV")
    assert "BOT_METRICS_PORT=9100" in env


class _Readiness(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/readyz" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        """Quiet: the test says what went wrong."""


@pytest.fixture
def readyz() -> Iterator[tuple[ThreadingHTTPServer, type[_Readiness]]]:
    handler = type("Handler", (_Readiness,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, handler
    server.shutdown()
    server.server_close()


def test_the_health_check_passes_when_ready_and_fails_on_503(
    readyz: tuple[ThreadingHTTPServer, type[_Readiness]],
) -> None:
    server, handler = readyz
    argv = only(stages()[1], "HEALTHCHECK").exec_form
    assert argv is not None
    env = {"BOT_METRICS_PORT": str(server.server_address[1]), "PATH": ""}

    def check() -> int:
        ran = subprocess.run([sys.executable, *argv[1:]], env=env, capture_output=True, timeout=30)
        return ran.returncode

    assert check() == 0
    handler.status = 503
    assert check() != 0


def test_the_build_context_leaves_out_secrets_memory_and_caches() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for pattern in ("**/.env", "**/*.sqlite3", ".git", ".venv", "**/__pycache__", ".pytest_cache"):
        assert pattern in ignored, pattern


@pytest.mark.skipif(tool("hadolint") is None, reason="hadolint is not installed")
def test_hadolint_finds_nothing() -> None:
    hadolint = tool("hadolint")
    assert hadolint is not None
    ran = subprocess.run(
        [hadolint, "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True, text=True
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
