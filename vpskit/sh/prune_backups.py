"""Backup retention: which of a site's backups are past their age, and deleting them.

Standard library only: it runs here (``fab backup``) and, sent as is, on the server
(``python3 -c PROGRAM DIR SITE KEEP_DAYS``, from the backup timer's script).
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Iterable

STAMP = "%Y%m%dT%H%M%SZ"  # UTC; strftime and `date +` read it alike; sorts as time does


def parse_name(site: str, name: str) -> tuple[str, str, str] | None:
    """``(stamp, label, suffix)`` of a backup of ``site``, or None for any other file (pure)."""
    match = re.fullmatch(re.escape(site) + r"-(\d{8}T\d{6}Z)(?:-([A-Za-z0-9.-]+?))?"
                                           r"(\.dump|-media\.tar\.gz)", name)
    return match.groups("") if match else None


def prune_plan(site: str, names: Iterable[str], cutoff: str) -> list[str]:
    """Backups of ``site`` stamped before ``cutoff``, oldest first; the newest dump and the
    newest media archive stay whatever their age (pure)."""
    found = sorted((parsed[0], name, parsed[2]) for name in names
                   if (parsed := parse_name(site, name)))
    newest = {suffix: name for _, name, suffix in found}
    return [name for stamp, name, _ in found if stamp < cutoff and name not in newest.values()]


def prune_dir(directory: str, site: str, keep_days: int, now: float | None = None) -> list[str]:
    """Delete what :func:`prune_plan` names in ``directory``; return those names."""
    since = (time.time() if now is None else now) - keep_days * 86400
    doomed = prune_plan(site, os.listdir(directory), time.strftime(STAMP, time.gmtime(since)))
    for name in doomed:
        os.remove(os.path.join(directory, name))
    return doomed


if __name__ == "__main__":
    for gone in prune_dir(sys.argv[1], sys.argv[2], int(sys.argv[3])):
        print(gone)
