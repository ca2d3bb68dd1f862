"""run.py as people use it: real `python3 run.py` processes, against a copy of the checkout.

Most borrow this checkout's installed .venv (a small venv whose site-packages points at it), so
no test installs anything or reaches the network; the decisions about a .venv are checked
directly on made-up ones, and once for real with the install failing offline."""

from __future__ import annotations

import ast
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import run
from tests.support.imports import ROOT
from tests.support.metrics import free_port

POSIX = pytest.mark.skipif(os.name != "posix", reason="POSIX processes and shell scripts")
BASE_PYTHON = str(getattr(sys, "_base_executable", sys.executable))
"""The Python the tests' venv was made from: run.py is run with a bare Python, as people do."""


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of what run.py reads from the checkout, with no .venv yet."""
    root = tmp_path / "checkout"
    (root / "requirements").mkdir(parents=True)
    for name in ("run.py", "pyproject.toml", "requirements/runtime.txt", "requirements/dev.txt"):
        shutil.copy(ROOT / name, root / name)
    return root


def borrow_venv(checkout: Path) -> None:
    """Give `checkout` a .venv that uses the tests' installed packages, marked as up to date."""
    if sys.prefix == sys.base_prefix:
        pytest.skip("the tests do not run in a virtual environment to borrow")
    env = checkout / ".venv"
    site = env / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    site.mkdir(parents=True)
    (env / "bin").mkdir()
    (env / "bin" / "python").symlink_to(BASE_PYTHON)
    shutil.copy(Path(sys.prefix) / "pyvenv.cfg", env / "pyvenv.cfg")
    # addsitedir, not a path line: the borrowed site-packages' own .pth files (the bot's
    # editable install) must run too.
    borrowed = sysconfig.get_paths()["purelib"]
    (site / "borrowed.pth").write_text(f"import site; site.addsitedir({borrowed!r})\n")
    run.stamp(env, checkout, "runtime").touch()
    assert run.venv_problem(env) is None


def bot_environment(**settings: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OPENAI_", "BOT_", "DISCORD_", "SLACK_", "PYTEST_"))
    }
    # A model that is never asked: the tests type nothing to the bot.
    env.update(OPENAI_API_KEY="sk-test-run-py", OPENAI_BASE_URL="http://127.0.0.1:9/v1")
    env.update(settings)
    return env


def answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            status: int = response.status
            return status == 200
    except (urllib.error.URLError, OSError):
        return False


def descendants(pid: int) -> list[int]:
    """Processes below `pid`, read from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts; whatever is left of them and below them is ended afterwards."""
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        for pid in [*descendants(process.pid), process.pid]:
            if running(pid):
                os.kill(pid, signal.SIGKILL)
        process.wait(timeout=30)
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                stream.close()


@POSIX
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigterm_to_run_py_stops_the_bot_and_run_py_exits_with_its_status(
    checkout: Path, tmp_path: Path, started: list[subprocess.Popen[bytes]]
) -> None:
    borrow_venv(checkout)
    port = free_port()
    env = bot_environment(
        BOT_DB_PATH=str(tmp_path / "memory.sqlite3"),
        BOT_METRICS_PORT=str(port),
        BOT_METRICS_HOST="127.0.0.1",
    )
    # The console waits on its stdin, kept open: a bot that runs until it is stopped.
    process = subprocess.Popen(
        [BASE_PYTHON, str(checkout / "run.py"), "console"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    started.append(process)
    deadline = time.monotonic() + 60
    while not answers(port):
        assert process.poll() is None, process.communicate()[1].decode()
        assert time.monotonic() < deadline, "the bot never answered /healthz"
        time.sleep(0.1)
    family = descendants(process.pid)

    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=60)

    survivors = [pid for pid in family if running(pid)]
    assert (code, survivors) == (0, []), process.communicate()[1].decode()
    assert not answers(port)


def test_the_bot_runs_in_the_folder_run_py_is_called_from(checkout: Path, tmp_path: Path) -> None:
    borrow_venv(checkout)
    work = tmp_path / "work"
    work.mkdir()
    when = "2026-11-26T10:00:00Z"
    thread = {"type": "thread", "version": 1, "session_id": "console:moved"}
    thread |= {"created_at": when, "updated_at": when}
    item = {"role": "user", "content": "hi"}
    message: dict[str, object] = {"type": "message", "created_at": when, "author": None}
    message |= {"asked_by": None, "usage": None, "item": item}
    (work / "mine.jsonl").write_text(json.dumps(thread) + "\n" + json.dumps(message) + "\n")
    # Relative, like the default: the memory file is found where run.py is called from too.
    env = bot_environment(BOT_DB_PATH="memory.sqlite3")

    def run_py(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [BASE_PYTHON, str(checkout / "run.py"), *args],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    imported = run_py("import", "mine.jsonl")
    assert imported.returncode == 0, imported.stderr
    exported = run_py("export", "--all", "--output", "out.jsonl")
    assert exported.returncode == 0, exported.stderr

    assert '"session_id":"console:moved"' in (work / "out.jsonl").read_text().replace(" ", "")
    assert (work / "memory.sqlite3").is_file()
    assert not (checkout / "out.jsonl").exists()
    assert not (checkout / "memory.sqlite3").exists()


def older_python(minor: int) -> str:
    """An installed Python 3.MINOR that starts, or a skip."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [shutil.which(f"python3.{minor}")]
    candidates += [str(p) for p in sorted(pyenv.glob(f"versions/3.{minor}.*/bin/python3"))]
    for candidate in candidates:
        if candidate is None:
            continue
        probe = [candidate, "-c", "import sys; print(sys.version_info[1])"]
        ran = subprocess.run(probe, capture_output=True, text=True, check=False)
        if ran.returncode == 0 and ran.stdout.strip() == str(minor):
            return candidate
    pytest.skip(f"no Python 3.{minor} here")


@pytest.mark.parametrize("minor", [6, 8, 10])
def test_an_older_python_gets_one_line_and_the_venv_is_left_alone(
    checkout: Path, minor: int
) -> None:
    python = older_python(minor)
    ran = subprocess.run(
        [python, str(checkout / "run.py"), "test"], capture_output=True, text=True, timeout=60
    )
    assert ran.returncode == 1
    assert ran.stderr.startswith("run.py needs Python 3.11 or newer, and this is Python 3.")
    assert ran.stderr.count("\n") == 1, ran.stderr
    assert not (checkout / ".venv").exists()


def test_run_py_is_written_so_old_pythons_can_read_it() -> None:
    # What the check above needs from every Python it cannot run here: it must parse before it
    # can refuse.
    ast.parse((ROOT / "run.py").read_text(), feature_version=(3, 6))


def fake_venv(env: Path, *, says: str | None, made_for: str | None = "3.11.7") -> None:
    """A .venv whose python is a shell script: `says` is its whole body (None: no python)."""
    (env / "bin").mkdir(parents=True)
    if made_for is not None:
        (env / "pyvenv.cfg").write_text(f"home = /nowhere\nversion = {made_for}\n")
    if says is not None:
        python = env / "bin" / "python"
        python.write_text(f"#!/bin/sh\n{says}\n")
        python.chmod(0o755)


@POSIX
@pytest.mark.parametrize(
    ("says", "made_for", "problem"),
    [
        (None, "3.11.7", "its Python is missing"),
        ("exit 1", "3.11.7", "its Python does not start"),
        (
            "echo 3 10 True",
            "3.10.13",
            "it was made by Python 3.10, and the bot needs 3.11 or newer",
        ),
        ("echo 3 12 True", "3.11.7", "it was made for Python 3.11 but its python is now 3.12"),
        ("echo 3 11 False", "3.11.7", "it has no pip"),
        ("echo 3 11 True", "3.11.7", None),
        ("echo 3 12 True", None, None),
    ],
)
def test_what_makes_a_venv_unusable(
    tmp_path: Path, says: str | None, made_for: str | None, problem: str | None
) -> None:
    fake_venv(tmp_path / ".venv", says=says, made_for=made_for)
    assert run.venv_problem(tmp_path / ".venv") == problem


@POSIX
def test_a_broken_venv_is_made_again_with_one_line_saying_why(checkout: Path) -> None:
    env = checkout / ".venv"
    fake_venv(env, says="exit 1", made_for="3.10.13")
    # An install that fails at once and offline: the venv is what is checked here.
    missing = "no-such-package-for-run-py-tests==1.0 --hash=sha256:" + "0" * 64
    (checkout / "requirements" / "runtime.txt").write_text(missing + "\n")
    offline = dict(os.environ, PIP_NO_INDEX="1")

    def run_py() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [BASE_PYTHON, str(checkout / "run.py"), "--help"],
            cwd=checkout.parent,
            env=offline,
            capture_output=True,
            text=True,
            timeout=300,
        )

    first = run_py()
    said = [line for line in first.stderr.splitlines() if line.startswith("run.py:")]
    assert said[0] == "run.py: making .venv again: its Python does not start."
    assert said[-1].startswith("run.py: installing into .venv failed (pip install ")
    assert first.returncode == 1, first.stderr
    assert "Traceback" not in first.stderr
    assert run.venv_problem(env) is None
    assert run.made_for(env) == sys.version_info[:2]

    second = run_py()
    assert "making .venv again" not in second.stderr
    assert "installing into .venv failed" in second.stderr
