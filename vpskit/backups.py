"""Database dumps on the server: ``pg_dump -Fc`` to a temporary name, verified, then renamed.

A partial file is never a backup: the dump is written under ``.<name>.partial``, checked with
``pg_restore --list``, fsynced and only then renamed to ``<site>-<UTC>[-label].dump`` (0600 in a
0700 directory).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from vpskit.config import Environment
from vpskit.remote import Remote

DUMP_SCRIPT = r"""
set -eo pipefail; umask 077
dir="$1" name="$2" db="$3"
tmp="$dir/.$name.partial"
trap 'rm -f "$tmp"' EXIT
mkdir -p "$dir"; chmod 700 "$dir"
runuser -u postgres -- pg_dump --format=custom "$db" > "$tmp"
pg_restore --list "$tmp" > /dev/null
sync "$tmp"; mv "$tmp" "$dir/$name"; sync "$dir"
trap - EXIT
stat -c %s "$dir/$name"
"""


def dump_name(site: str, label: str = "", now: datetime | None = None) -> str:
    """``<site>-<UTC timestamp>[-label].dump`` (pure)."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    suffix = f"-{re.sub(r'[^A-Za-z0-9T.-]', '-', label)}" if label else ""
    return f"{site}-{stamp}{suffix}.dump"


def dump(remote: Remote, env: Environment, label: str = "") -> str:
    """Dump the app's database on the server; return its path. Always acts."""
    name = dump_name(env.site, label)
    result = remote.run(["bash", "-c", DUMP_SCRIPT, "dump", str(env.backup_dir), name,
                         env.db_name], timeout=3600)
    size = int(result.stdout.strip().splitlines()[-1])
    return f"{env.backup_dir}/{name} ({size / 1e6:.1f} MB)"
