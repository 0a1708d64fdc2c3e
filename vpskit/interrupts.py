"""Every way out of a task is safe: signals end it like Ctrl-C, and undo work is shielded.

While a task runs, SIGTERM and SIGHUP raise :class:`KeyboardInterrupt` in the main thread as
SIGINT does, so a deploy or restore killed by its terminal, CI or ``kill`` goes through the
same recovery as one that failed. While a recovery runs, these signals are ignored: a second
Ctrl-C never stops an undo half way.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from vpskit.errors import ToolkitError

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextmanager
def as_interrupts() -> Iterator[None]:
    """For the block: SIGINT, SIGTERM and SIGHUP raise :class:`KeyboardInterrupt`."""
    before = {s: signal.signal(s, _interrupt) for s in SIGNALS}
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
        return ToolkitError(f"interrupted ({exc or 'SIGINT'}); {notes}")
    return ToolkitError(f"{type(exc).__name__}: {str(exc).strip() or 'no detail'}; {notes}")
