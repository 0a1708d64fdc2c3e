"""Run named steps, time them, and print one line each plus a summary.

A step is a function ``(ctx) -> list[str]`` returning what it changed; [] means unchanged.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from vpskit.errors import ToolkitError


@dataclass(frozen=True)
class Outcome:
    name: str
    changes: list[str]
    seconds: float

    @property
    def changed(self) -> bool:
        return bool(self.changes)


@dataclass
class Reporter:
    """Prints step lines to ``stream``; ``quiet`` keeps it silent (cron), errors go to stderr."""

    stream: TextIO = field(default_factory=lambda: sys.stdout)
    quiet: bool = False
    prefix: str = ""

    def line(self, text: str) -> None:
        if not self.quiet:  # one write per line: threads' lines never interleave
            self.stream.write(f"{self.prefix}{text}\n")
            self.stream.flush()

    def step(self, outcome: Outcome, dry_run: bool = False) -> None:
        state = ("would change" if dry_run else "changed") if outcome.changed else "unchanged"
        detail = "; ".join(outcome.changes)
        self.line(f"  {outcome.name:<12} {state:<12} {outcome.seconds:5.1f}s  {detail}".rstrip())


Step = Callable[[Any], list[str]]


def run_steps(ctx: Any, steps: Sequence[tuple[str, Step]], out: Reporter,
              dry_run: bool = False) -> list[Outcome]:
    """Run ``steps`` in order; the first error stops the run and is re-raised naming the step."""
    outcomes = []
    for name, step in steps:
        start = time.monotonic()
        try:
            changes = step(ctx)
        except ToolkitError as exc:
            out.line(f"  {name:<12} {'failed':<12} {time.monotonic() - start:5.1f}s")
            raise type(exc)(f"{name}: {exc}") from exc
        outcome = Outcome(name, changes, time.monotonic() - start)
        out.step(outcome, dry_run)
        outcomes.append(outcome)
    return outcomes
