"""Run named steps, time them, and print one line each plus a summary.

A step is a function ``(ctx) -> list[str]`` returning what it changed; [] means unchanged
(a provision step applies its plan: :func:`vpskit.applier.step`).
On a terminal, a step running longer than :data:`LIVE_AFTER` seconds shows a live line
(``  packages     running      12s``) until its own line replaces it; without a terminal the
output is only the step lines.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TextIO, TypeVar

from vpskit import interrupts
from vpskit.errors import ToolkitError

LIVE_AFTER = 2.0  # seconds a step runs before the live line shows it
TICK = 1.0  # seconds between redraws
ERASE = "\r\x1b[K"  # back to column 0, clear to the end of the line


@dataclass(frozen=True)
class Outcome:
    name: str
    changes: list[str]
    seconds: float

    @property
    def changed(self) -> bool:
        return bool(self.changes)


class LiveLine:
    """The one line at the bottom of a terminal naming the steps still running, redrawn each
    :data:`TICK` by a thread that lives while any step runs.

    Reporters copied from one another (:func:`vpskit.fleet.reporter_for`) share it, so
    concurrent hosts show one combined line instead of overwriting each other's; every line
    they print goes through :meth:`write`, which erases the live line first.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.running: dict[object, tuple[str, str, float]] = {}  # token -> prefix, name, start
        self.shown = False
        self.changed = threading.Condition()
        self.thread: threading.Thread | None = None

    def begin(self, prefix: str, name: str) -> object:
        """Count step ``name`` as running; the token goes to :meth:`end`."""
        token = object()
        with self.changed:
            self.running[token] = (prefix, name, time.monotonic())
            if self.thread is None:
                self.thread = threading.Thread(target=self._redraw, name="vpskit-live",
                                               daemon=True)
                self.thread.start()
        return token

    def end(self, token: object) -> None:
        """The step is over; after the last one the thread has exited when this returns."""
        with self.changed:
            del self.running[token]
            thread = None if self.running else self.thread
            if thread:
                self.thread = None
                self.changed.notify_all()
        if thread:
            thread.join()

    def write(self, text: str) -> None:
        """Print ``text`` (whole lines) in place of the live line, then redraw it below."""
        with self.changed:
            self.stream.write((ERASE if self.shown else "") + text)
            self.shown = False
            self._draw()

    def _redraw(self) -> None:
        me = threading.current_thread()
        with self.changed:
            while self.thread is me:
                self._draw()
                self.changed.wait(TICK)
            if self.shown:
                self.stream.write(ERASE)
                self.stream.flush()
                self.shown = False

    def _draw(self) -> None:
        text = live_text(list(self.running.values()), time.monotonic())
        if text or self.shown:
            self.stream.write(ERASE + text[:_width(self.stream) - 1])
            self.shown = bool(text)
        self.stream.flush()


def live_text(running: Sequence[tuple[str, str, float]], now: float) -> str:
    """The live line for steps ``(prefix, name, start)`` running longer than
    :data:`LIVE_AFTER`: one step in the step-line layout, several named in one line."""
    shown = [(prefix, name, now - start) for prefix, name, start in running
             if now - start >= LIVE_AFTER]
    if not shown:
        return ""
    if len(shown) == 1:
        prefix, name, seconds = shown[0]
        return f"{prefix}  {name:<12} {'running':<12} {seconds:.0f}s"
    return "  running: " + ", ".join(f"{prefix}{name} {seconds:.0f}s"
                                     for prefix, name, seconds in shown)


def _width(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns or 80
    except (OSError, ValueError):
        return 80


@dataclass
class Reporter:
    """Prints step lines to ``stream``; ``quiet`` keeps it silent (cron), errors go to stderr.

    On a terminal it also keeps a :class:`LiveLine`, which copies of it share."""

    stream: TextIO = field(default_factory=lambda: sys.stdout)
    quiet: bool = False
    prefix: str = ""
    live: LiveLine | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.live is None and not self.quiet and self.stream.isatty():
            self.live = LiveLine(self.stream)

    def line(self, text: str) -> None:
        if self.quiet:
            return
        if self.live:
            self.live.write(f"{self.prefix}{text}\n")
        else:  # one write per line: threads' lines never interleave
            self.stream.write(f"{self.prefix}{text}\n")
            self.stream.flush()

    @contextmanager
    def running(self, name: str) -> Iterator[None]:
        """Show step ``name`` on the live line while the block runs (on a terminal only)."""
        if self.live is None or self.quiet:
            yield
            return
        token = self.live.begin(self.prefix, name)
        try:
            yield
        finally:
            self.live.end(token)

    def step(self, outcome: Outcome, dry_run: bool = False) -> None:
        state = ("would change" if dry_run else "changed") if outcome.changed else "unchanged"
        detail = "; ".join(outcome.changes)
        self.line(f"  {outcome.name:<12} {state:<12} {outcome.seconds:5.1f}s  {detail}".rstrip())


C = TypeVar("C")  # what every step of one run gets: a provision Context, a Deploy, ...


def run_steps(ctx: C, steps: Sequence[tuple[str, Callable[[C], list[str]]]], out: Reporter,
              dry_run: bool = False) -> list[Outcome]:
    """Run ``steps`` in order; the first error stops the run and is re-raised naming the step.
    A stop asked by a signal is raised between steps (see :func:`vpskit.interrupts.check`)."""
    outcomes = []
    for name, step in steps:
        interrupts.check()
        start = time.monotonic()
        try:
            with out.running(name):
                changes = step(ctx)
        except ToolkitError as exc:
            out.line(f"  {name:<12} {'failed':<12} {time.monotonic() - start:5.1f}s")
            raise type(exc)(f"{name}: {exc}") from exc
        outcome = Outcome(name, changes, time.monotonic() - start)
        out.step(outcome, dry_run)
        outcomes.append(outcome)
    interrupts.check()
    return outcomes
