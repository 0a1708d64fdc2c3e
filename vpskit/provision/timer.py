"""A timer-driven server job's files (a script or configuration, a service, a timer): installed
and the timer enabled while the inventory asks for the job, removed once it does not."""

from __future__ import annotations

from collections.abc import Sequence

from vpskit import render
from vpskit.files import FileSpec, FileState
from vpskit.provision.context import Context


def converge(ctx: Context, timer: str, state: tuple[str, str], wanted: Sequence[FileSpec],
             owned: Sequence[str], present: dict[str, FileState], described: str) -> list[str]:
    """Write ``wanted`` and leave ``timer`` enabled and active (``state`` is its (active,
    enabled) now), restarting it when its units changed; with nothing wanted, disable it and
    remove the ``owned`` paths that are present. Changes only what differs."""
    if not wanted:
        stale = [path for path in owned if path in present]
        if stale:
            ctx.act(["systemctl", "disable", "--now", timer], check=False)
            ctx.act(["rm", "-f", *stale])
            ctx.act(["systemctl", "daemon-reload"])
        return [f"removed {' '.join(stale)}"] if stale else []
    changes = ctx.apply_files(wanted, present)
    units_changed = any(c.startswith(render.SYSTEMD_DIR) for c in changes)
    if units_changed:
        ctx.act(["systemctl", "daemon-reload"])
    if units_changed or state != ("active", "enabled"):
        ctx.act(["systemctl", "enable", timer])
        ctx.act(["systemctl", "restart", timer])  # a new schedule takes effect now
        changes.append(f"{timer} enabled ({described})")
    return changes
