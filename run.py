#!/usr/bin/env python3
"""Set up and run the bot, or its tests, with nothing but Python 3.11+ installed.

    python3 run.py [ARGS...]       the bot: `python -m bot ARGS`, in the folder you run it from
    python3 run.py test [ARGS...]  the test suite: `pytest ARGS`, in this checkout
    python3 run.py lock [ARGS...]  write uv.lock and requirements/ from pyproject.toml
                                   (`--check`: fail when they are out of date; other ARGS go
                                   to `uv lock`, e.g. `--upgrade-package aiohttp`)

The first run creates `.venv/` beside this file and installs the locked dependencies
(`requirements/*.txt`, hash-checked) and the bot into it; later runs reinstall only when those
files or `pyproject.toml` change, and make `.venv` again when its Python is too old or broken.
"""

import sys

# First, and in syntax any Python 3 parses, so an older Python says why in one line instead of
# a traceback, and before .venv is touched.
if sys.version_info < (3, 11):
    sys.exit(
        "run.py needs Python 3.11 or newer, and this is Python %d.%d (%s): run it with "
        "python3.11 or newer." % (sys.version_info[0], sys.version_info[1], sys.executable)
    )

import hashlib
import os
import subprocess
import venv
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
LOCKS = ROOT / "requirements"
MINIMUM = (3, 11)
KINDS = {"runtime": "", "dev": "dev"}
"""Each lock file under requirements/, and the pyproject.toml extra it holds."""
COVERS = {"runtime": ("runtime", "dev"), "dev": ("dev",)}
"""Which installs satisfy a kind: the dev lock holds every runtime pin too."""
PROBE = (
    "import importlib.util, sys; "
    "print(*sys.version_info[:2], importlib.util.find_spec('pip') is not None)"
)


class SetupError(Exception):
    """Setting up .venv failed; the message is the one line to show."""


def say(line: str) -> None:
    sys.stderr.write(f"run.py: {line}\n")
    sys.stderr.flush()


def python_in(env: Path) -> Path:
    return env / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def made_for(env: Path) -> tuple[int, int] | None:
    """The Python version `pyvenv.cfg` says the environment was made for, when it says."""
    try:
        lines = (env / "pyvenv.cfg").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in lines:
        key, _, value = line.partition("=")
        if key.strip() in ("version", "version_info"):
            parts = value.strip().split(".")
            if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
                return int(parts[0]), int(parts[1])
    return None


def venv_problem(env: Path) -> str | None:
    """Why `env` cannot be used and must be made again, or None when it can be used.

    A .venv made by an older Python, or whose Python was replaced or removed since (an upgrade
    of the Python it was made from), never recovers by installing into it again.
    """
    python = python_in(env)
    if not python.exists():
        return "its Python is missing"
    try:
        probe = subprocess.run(
            [str(python), "-c", PROBE], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"its Python does not start ({exc})"
    words = probe.stdout.split()
    if probe.returncode != 0 or len(words) != 3:
        return "its Python does not start"
    running = (int(words[0]), int(words[1]))
    if running < MINIMUM:
        return f"it was made by Python {running[0]}.{running[1]}, and the bot needs 3.11 or newer"
    cfg = made_for(env)
    if cfg is not None and cfg != running:
        return (
            f"it was made for Python {cfg[0]}.{cfg[1]} but its python is now "
            f"{running[0]}.{running[1]}"
        )
    if words[2] != "True":
        return "it has no pip"
    return None


def stamp(env: Path, root: Path, kind: str) -> Path:
    """The file marking `env` as holding this version of the `kind` lock and the project."""
    digest = hashlib.sha256()
    for name in ("pyproject.toml", f"requirements/{kind}.txt"):
        digest.update((root / name).read_bytes())
    return env / f".installed-{kind}-{digest.hexdigest()[:16]}"


def pip(python: Path, *args: str) -> None:
    command = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    if subprocess.run([*command, *args], cwd=ROOT, check=False).returncode != 0:
        raise SetupError(
            f"installing into .venv failed (pip install {' '.join(args)}; pip said why above)"
        )


def ensure_environment(kind: str) -> Path:
    """Make `.venv` when it is missing or unusable, and install the `kind` lock and the bot.

    Returns the Python to run.
    """
    problem = venv_problem(VENV) if VENV.exists() else None
    if not VENV.exists() or problem is not None:
        say(f"making .venv again: {problem}." if problem else "creating .venv ...")
        # clear: whatever an older or broken environment left there goes.
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    python = python_in(VENV)
    if any(stamp(VENV, ROOT, covering).exists() for covering in COVERS[kind]):
        return python
    say(f"installing the bot{' with its ' + kind + ' tools' if KINDS[kind] else ''} into .venv ...")
    pip(python, "--require-hashes", "-r", str(LOCKS / f"{kind}.txt"))
    # The bot itself, for its entry points (adapters are found through them); editable, so a
    # change to its code needs no reinstall. Its dependencies are all in the lock already.
    pip(python, "--no-deps", "--editable", str(ROOT))
    for old in VENV.glob(f".installed-{kind}-*"):
        old.unlink()
    stamp(VENV, ROOT, kind).touch()
    return python


def export(uv: Path, kind: str) -> str:
    """The `kind` lock file as uv writes it from uv.lock."""
    extra = ["--extra", KINDS[kind]] if KINDS[kind] else []
    command = ["export", "--frozen", "--format", "requirements-txt", "--no-emit-project"]
    exported = subprocess.run(
        [str(uv), *command, "--no-header", *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if exported.returncode != 0:
        raise SetupError(f"uv export failed: {exported.stderr.strip()}")
    header = (
        "# Every dependency of the bot"
        + (f" with its {KINDS[kind]} extra" if KINDS[kind] else "")
        + ", pinned and hashed: written from uv.lock by\n"
        "# `python3 run.py lock`, never by hand. Install with pip install --require-hashes -r.\n"
    )
    return header + exported.stdout


def lock(args: Sequence[str]) -> int:
    """`run.py lock`: uv.lock from pyproject.toml (keeping its pins unless they must move), and
    the pip-readable lock files from uv.lock; with `--check`, only say whether they are current."""
    ensure_environment("dev")
    uv = VENV / ("Scripts/uv.exe" if os.name == "nt" else "bin/uv")
    check = "--check" in args
    rest = [arg for arg in args if arg != "--check"]
    # The check needs no network (uv compares uv.lock with pyproject.toml), so it cannot flake.
    mode = ["--check", "--offline"] if check else []
    locked = subprocess.run([str(uv), "lock", *mode, *rest], cwd=ROOT)
    if locked.returncode != 0:
        raise SetupError(
            "uv.lock is out of date with pyproject.toml: run python3 run.py lock"
            if check
            else "uv lock failed (it said why above)"
        )
    for kind in KINDS:
        path = LOCKS / f"{kind}.txt"
        text = export(uv, kind)
        if not check:
            path.parent.mkdir(exist_ok=True)
            path.write_text(text, encoding="utf-8")
        elif not path.is_file() or path.read_text(encoding="utf-8") != text:
            raise SetupError(
                f"{path.relative_to(ROOT)} is out of date with uv.lock: run python3 run.py lock"
            )
    say("the lock files match pyproject.toml." if check else "wrote uv.lock and requirements/.")
    return 0


def run(command: list[str], cwd: Path | None) -> int:
    """Run `command` as this process, in `cwd` (None: where run.py was started)."""
    if cwd is not None:
        os.chdir(cwd)
    if os.name == "posix":
        # The bot becomes this process: SIGTERM and Ctrl-C reach it directly, a process manager
        # watching run.py watches the bot, and its exit status is run.py's.
        os.execv(command[0], command)
    try:
        return subprocess.run(command, check=False).returncode
    except KeyboardInterrupt:
        return 130


def main(argv: list[str]) -> int:
    try:
        if argv[:1] == ["lock"]:
            return lock(argv[1:])
        if argv[:1] == ["test"]:
            python = ensure_environment("dev")
            # pytest finds its settings and the tests from the checkout.
            return run([str(python), "-m", "pytest", *argv[1:]], ROOT)
        python = ensure_environment("runtime")
        # -P: the folder it runs in is not searched for modules, so one holding its own `bot`
        # cannot stand in for the installed bot.
        return run([str(python), "-P", "-m", "bot", *argv], None)
    except SetupError as exc:
        say(str(exc))
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
