"""Every way out of a task is safe: signals end it like Ctrl-C, and undo work is shielded.

While a task runs, SIGINT, SIGTERM and SIGHUP ask it to stop: the step running finishes and
:func:`check` (called by the step runner between steps) raises :class:`KeyboardInterrupt`, so
a deploy or restore stopped by Ctrl-C, CI or ``kill`` goes through the same recovery as one
that failed. Stopping at a step boundary never leaves a lock of the SSH library held (an
exception raised inside it can, and every later command would then hang); a second signal
stops at once. While a recovery runs, these signals are ignored: it is never cut half way.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from vpskit.errors import ToolkitError

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


_requested: list[str] = []  # the signal that asked this process to stop, if any


def _request_stop(signum: int, frame: object) -> None:
    name = signal.Signals(signum).name
    if _requested:
        raise KeyboardInterrupt(name)
    _requested.append(name)
    sys.stderr.write(f"{name}: stopping after the current step (again to stop at once)\n")


def check() -> None:
    """Raise :class:`KeyboardInterrupt` if a signal asked the task to stop (a safe point)."""
    if _requested:
        raise KeyboardInterrupt(_requested[0])


@contextmanager
def as_interrupts() -> Iterator[None]:
    """For the block: SIGINT, SIGTERM and SIGHUP ask to stop (see :func:`check`)."""
    _requested.clear()
    before = {s: signal.signal(s, _request_stop) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


@contextmanager
def shielded() -> Iterator[None]:
    """For the block (an undo): the signals are ignored. Outside the main thread, where
    signals are never delivered, it changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {s: signal.signal(s, signal.SIG_IGN) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def failure(exc: BaseException, notes: str) -> ToolkitError:
    """The error a task ends with after recovering from ``exc``: its line plus ``notes``."""
    if isinstance(exc, ToolkitError):
        return type(exc)(f"{exc}; {notes}")
    if isinstance(exc, KeyboardInterrupt):
        return ToolkitError(f"interrupted ({str(exc) or 'SIGINT'}); {notes}")
    return ToolkitError(f"{type(exc).__name__}: {str(exc).strip() or 'no detail'}; {notes}")
