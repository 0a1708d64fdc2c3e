"""Find the line that says why a process failed, in its journal or build output (pure)."""

from __future__ import annotations

import re

JOURNAL_LINES = 50
# A Python exception as a traceback ends: ``ModuleNotFoundError: No module named 'shop'``,
# ``django.core.exceptions.ImproperlyConfigured: ...``; not all-caps log levels (``ERROR:``).
EXCEPTION = re.compile(r"^(?:[A-Za-z_]\w*\.)*[A-Z][A-Za-z0-9]*[a-z][A-Za-z0-9]*: \S")
ERRORISH = re.compile(r"error|fail", re.IGNORECASE)
# Lines that only say that something failed, never why (gunicorn's and systemd's).
GENERIC = re.compile(r"Worker failed to boot|Shutting down: Master|Exception in worker process"
                     r"|Worker \(pid:\d+\) exited|Reason: |Main process exited"
                     r"|Failed with result|Failed to start")
# Log-line prefixes: gunicorn ``[time] [pid] [LEVEL] ``, uvicorn ``ERROR:    ``, daphne
# ``2026-01-01 10:00:00,123 ERROR    ``.
PREFIX = re.compile(r"^(?:\[[^\]]*\] \[\d+\] \[[A-Z]+\] |[A-Z]+:\s+"
                    r"|\d{4}-\d\d-\d\d [\d:,.]+ [A-Z]+\s+)")
MAX_CHARS = 300


def journal_argv(unit: str, lines: int = JOURNAL_LINES) -> list[str]:
    """The command printing a unit's last ``lines`` messages, without metadata or a pager."""
    return ["journalctl", "-u", unit, "-n", str(lines), "-o", "cat", "--no-pager"]


def last_error_line(journal: str) -> str | None:
    """The line of ``journal`` that best says why the process failed, or None.

    Prefers the last Python exception line (``SomeError: ...``), then the last line mentioning
    an error or failure; a generic line (gunicorn's "Worker failed to boot", systemd's "Failed
    with result") only when nothing better is there. Log prefixes are dropped and the line is
    cut to 300 characters.
    """
    lines = [line.strip() for line in journal.splitlines()]
    exceptions = [line for line in lines if EXCEPTION.match(line)]
    errors = [PREFIX.sub("", line) for line in lines if ERRORISH.search(line)]
    for group in (exceptions, errors):
        specific = [line for line in group if not GENERIC.search(line)]
        if specific:
            return specific[-1][:MAX_CHARS]
    generic = exceptions or errors
    return generic[-1][:MAX_CHARS] if generic else None
