#!/usr/bin/env python3
"""Run every benchmark in bench/bench_*.py and print its figures (`make bench`).

A benchmark is a module with a main() that prints figures as lines of the form
`name: value unit`. Each runs in its own subprocess, in its own session, with a
time limit; its output is shown as it comes, under a header. A summary at the
end lists every figure. The exit code is non-zero only when a benchmark failed:
it crashed (non-zero exit) or overran its time limit. The figures are also
written to bench/out/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
OUT_DIR = BENCH_DIR / "out"
DEFAULT_TIME_LIMIT_SECONDS = float(os.environ.get("BENCH_TIME_LIMIT", "300"))

# "name: value unit", value a number; the unit is optional.
FIGURE = re.compile(
    r"^\s*(?P<name>[^:]+?)\s*:\s*(?P<value>[-+]?\d[\d_]*(?:\.\d+)?(?:[eE][-+]?\d+)?)"
    r"\s*(?P<unit>\S.*?)?\s*$"
)

# Import the module by path and call its main() with an empty command line (as
# `python bench/bench_x.py` would give it); `__name__` is not "__main__", so a
# module's own command-line guard does not run it twice.
RUNNER = (
    "import runpy, sys; path = sys.argv.pop(1); sys.argv[0] = path; "
    "runpy.run_path(path, run_name='bench_module')['main']()"
)


@dataclass
class Figure:
    name: str
    value: float
    unit: str


@dataclass
class BenchResult:
    module: str
    status: str  # ok, failed (exit code), timeout
    exit_code: int | None
    seconds: float
    figures: list[Figure] = field(default_factory=list)


def parse_figure(line: str) -> Figure | None:
    """Return the figure a line states, or None for any other line."""
    match = FIGURE.match(line)
    if not match:
        return None
    return Figure(
        name=match["name"],
        value=float(match["value"].replace("_", "")),
        unit=match["unit"] or "",
    )


def discover(directory: Path, patterns: list[str]) -> list[Path]:
    """Return the benchmark modules, narrowed to those whose name holds a pattern."""
    modules = sorted(directory.glob("bench_*.py"))
    if patterns:
        modules = [m for m in modules if any(p in m.stem for p in patterns)]
    return modules


def run_one(module: Path, *, time_limit: float) -> BenchResult:
    """Run one benchmark module in a subprocess, echoing its output; return its result."""
    shown = module.relative_to(PROJECT_ROOT) if module.is_relative_to(PROJECT_ROOT) else module
    print(f"\n=== {module.stem} ({shown}) ===", flush=True)
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-c", RUNNER, str(module)],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(PROJECT_ROOT)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        # Figures come from stdout only: the lab's processes log to stderr, and a
        # log line ("2026-12-01 12:03:41,078 host INFO ...") read as "name: value".
        stderr=subprocess.PIPE,
        start_new_session=True,
        text=True,
        errors="replace",
    )
    figures: list[Figure] = []
    timed_out = False
    try:
        assert process.stdout is not None

        # Read line by line so output shows as it comes; the deadline is checked
        # by a timer that kills the group, which also ends the read.
        def kill_at_deadline() -> None:
            nonlocal timed_out
            timed_out = True
            kill_group(process)

        timer = threading.Timer(time_limit, kill_at_deadline)
        timer.daemon = True
        timer.start()
        echo = threading.Thread(target=_echo, args=(process.stderr,), daemon=True)
        echo.start()
        for line in process.stdout:
            line = line.rstrip("\n")
            print(f"  {line}", flush=True)
            figure = parse_figure(line)
            if figure:
                figures.append(figure)
        process.wait()
        timer.cancel()
        echo.join(5)
    finally:
        # Whatever the benchmark started in its session ends with it.
        kill_group(process)
        process.wait()
    seconds = time.monotonic() - started
    if timed_out:
        status = "timeout"
        print(f"  !! {module.stem} overran its time limit of {time_limit:.0f} s and was killed")
    elif process.returncode != 0:
        status = "failed"
        print(f"  !! {module.stem} exited with code {process.returncode}")
    else:
        status = "ok"
    return BenchResult(module.stem, status, process.returncode, round(seconds, 2), figures)


def _echo(stream) -> None:
    """Show a benchmark's stderr as it comes, indented like its stdout; parse none of it."""
    for line in stream:
        print(f"  {line.rstrip()}", flush=True)


def kill_group(process: subprocess.Popen[str]) -> None:
    """SIGKILL the process group of process, ignoring a group that is gone."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def print_summary(results: list[BenchResult]) -> None:
    print("\n=== summary ===")
    for result in results:
        print(f"{result.module}: {result.status} in {result.seconds:.1f} s")
        for figure in result.figures:
            print(f"  {figure.name}: {figure.value:g} {figure.unit}".rstrip())
        if result.status == "ok" and not result.figures:
            print("  (printed no figures)")
    failed = [r.module for r in results if r.status != "ok"]
    print(f"\n{len(results) - len(failed)} of {len(results)} benchmarks ran to completion", end="")
    print(f"; failed: {', '.join(failed)}" if failed else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "-k",
        dest="patterns",
        action="append",
        default=[],
        help="run only modules whose name contains this text (repeatable)",
    )
    parser.add_argument(
        "--time-limit",
        type=float,
        default=DEFAULT_TIME_LIMIT_SECONDS,
        metavar="SECONDS",
        help="per-benchmark limit (default: $BENCH_TIME_LIMIT or 300)",
    )
    parser.add_argument(
        "--directory", type=Path, default=BENCH_DIR, help="where to look for bench_*.py"
    )
    arguments = parser.parse_args(argv)

    modules = discover(arguments.directory, arguments.patterns)
    if not modules:
        print("no benchmarks found (bench/bench_*.py)")
        return 0
    results = [run_one(module, time_limit=arguments.time_limit) for module in modules]
    print_summary(results)
    OUT_DIR.mkdir(exist_ok=True)
    (OUT_DIR / "results.json").write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 1 if any(r.status != "ok" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
