"""What every benchmark shares: its options, the record of commands run, load processes, polling."""

from __future__ import annotations

import json
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.procs import LOAD_CPU, Server, pinned

PYTHON = str(Path(sys.executable))


@dataclass
class Options:
    """How long and how often to measure; `quick` shortens everything to validate the harness."""

    quick: bool = False
    reps: int = 5
    round_no: int = 0  # counts repetitions, so each writes to times of its own
    began_s: int = 0  # when the running benchmark began: points its servers get alike end here
    series: int | None = None  # the million-series benchmark's size, if not its default
    commands: list[str] = field(default_factory=list)

    def seconds(self, full: float, quick: float) -> float:
        return quick if self.quick else full

    def note(self, argv: Sequence[str]) -> None:
        """Remember a command line, to print it with the figures."""
        line = shlex.join(argv)
        if line not in self.commands:
            self.commands.append(line)


def run_load(options: Options, args: Sequence[str], timeout_s: float = 180.0) -> dict[str, Any]:
    """Run `python -m bench.load ARGS` on the load core and return its JSON report."""
    argv = pinned([PYTHON, "-m", "bench.load", *args], LOAD_CPU)
    options.note(argv)
    done = subprocess.run(argv, capture_output=True, timeout=timeout_s, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed ({done.returncode}): {done.stderr.decode()}")
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def settled(read: Callable[[], int], interval_s: float = 0.25, timeout_s: float = 15.0) -> int:
    """Poll a counter until two reads `interval_s` apart agree: the server has caught up."""
    deadline = time.monotonic() + timeout_s
    last = read()
    while time.monotonic() < deadline:
        time.sleep(interval_s)
        now = read()
        if now == last:
            return now
        last = now
    return last


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def note_server(options: Options, server: Server) -> None:
    options.note(server.argv)
