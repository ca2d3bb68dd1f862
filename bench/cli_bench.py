"""CLI benchmark: how long `python -m bot` takes to answer the commands that run no model.

    .venv/bin/python -m bench.cli_bench [--runs 7] [--threads 200] [--baseline-ref REF]
        [--top 12]

Each command runs `--runs` times as a fresh process, from the checkout's root with this
checkout's `.venv` Python, and the median wall time is reported: `--help`, `sessions --help`,
and `sessions` and `usage` on a SQLite file seeded once (not measured) with `--threads` threads
of four turns each. Then `-X importtime` of `import bot.cli`: the modules taking the most
cumulative import time.

With `--baseline-ref`, the same commands run from that git ref too (`git archive` into a temporary
folder, so no worktree is registered), the two taking turns run by run, and a ratio is
printed. Both use this checkout's `.venv`, so both import the same installed libraries; the
seeded file is made by this checkout's store, so the baseline must read its schema version.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Sequence
from io import BytesIO
from pathlib import Path

from bot.storage import Author, SQLiteStore, Usage

ROOT = Path(__file__).resolve().parents[1]
COMMANDS: tuple[tuple[str, ...], ...] = (
    ("--help",),
    ("sessions", "--help"),
    ("sessions",),
    ("usage",),
)
COST = Usage("bench", input_tokens=1_200, cached_tokens=0, output_tokens=80, input_chars=4_000)


async def seed(path: Path, threads: int) -> None:
    """`threads` threads of four turns, each turn a message and an answer with its usage."""
    async with await SQLiteStore.open(path) as store:
        for n in range(threads):
            thread = f"discord:1:{n}"
            for turn in range(4):
                await store.append(
                    thread,
                    [
                        {"role": "user", "content": f"[Ann] message {turn}"},
                        {"role": "assistant", "content": f"answer {turn}"},
                    ],
                    author=Author(f"U{n % 17}", "Ann"),
                    usage=COST,
                )


def checkout(ref: str, into: Path) -> Path:
    """The tree of `ref`, written out under `into` (no worktree, no change to the repository)."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", ref], cwd=ROOT, check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def run_once(root: Path, env: dict[str, str], args: Sequence[str]) -> float:
    """Seconds one `python -m bot ARGS` takes from `root`, start to exit."""
    command = [sys.executable, "-m", "bot", "--env-file", os.devnull, *args]
    started = time.perf_counter()
    subprocess.run(command, cwd=root, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def import_profile(root: Path, top: int) -> list[tuple[int, str]]:
    """`import bot.cli`'s slowest imports from `root`: (cumulative µs, module), slowest first."""
    ran = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import bot.cli"],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    )
    found = []
    for line in ran.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            found.append((int(parts[1]), parts[2].strip()))
    return sorted(found, reverse=True)[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="runs per command (median)")
    parser.add_argument("--threads", type=int, default=200, help="threads in the seeded file")
    parser.add_argument("--baseline-ref", help="a git ref to measure too, e.g. main or HEAD~3")
    parser.add_argument("--top", type=int, default=12, help="imports to list")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="cli-bench-") as folder:
        memory = Path(folder) / "memory.sqlite3"
        asyncio.run(seed(memory, args.threads))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "DISCORD_"))}
        env = {k: v for k, v in env.items() if not k.startswith("SLACK_")}
        env["BOT_DB_PATH"] = str(memory)
        roots = {"this checkout": ROOT}
        if args.baseline_ref:
            roots[args.baseline_ref] = checkout(args.baseline_ref, Path(folder) / "baseline")
        times: dict[tuple[str, tuple[str, ...]], list[float]] = {}
        for command in COMMANDS:
            for root in roots.values():  # a warm-up each: the first run fills the file cache
                run_once(root, env, command)
            for _ in range(args.runs):
                for name, root in roots.items():
                    times.setdefault((name, command), []).append(run_once(root, env, command))

        print(f"python -m bot ..., median of {args.runs} runs, seconds ({args.threads} threads)")
        names = list(roots)
        header = f"{'command':<18}" + "".join(f"{name:>16}" for name in names)
        print(header + ("   baseline / this" if len(names) == 2 else ""))
        for command in COMMANDS:
            medians = [statistics.median(times[name, command]) for name in names]
            line = f"{' '.join(command):<18}" + "".join(f"{m:>16.3f}" for m in medians)
            if len(medians) == 2:
                line += f"   {medians[1] / medians[0]:.1f}x"
            print(line)
        for name, root in roots.items():
            print(f"\nslowest imports of `import bot.cli` ({name}), cumulative:")
            for micros, module in import_profile(root, args.top):
                print(f"  {micros / 1000:8.1f} ms  {module}")


if __name__ == "__main__":
    main()
