"""A timer-driven server job's files (a script or configuration, a service, a timer): installed
and the timer enabled while the inventory asks for the job, removed once it does not."""

from __future__ import annotations

from collections.abc import Sequence

from vpskit import facts, plan, render
from vpskit.files import FileSpec, FileState, file_probe
from vpskit.plan import Plan


def probes(prefix: str, paths: Sequence[str], timer: str) -> list[facts.Probe]:
    """``<prefix>_files``: the states of the job's ``paths``; ``<prefix>_timer``: its timer's
    (active, enabled)."""
    return [file_probe(paths, f"{prefix}_files"),
            facts.units([timer], f"{prefix}_timer", lambda states: states[timer][:2])]


def converge(timer: str, state: tuple[str, str], wanted: Sequence[FileSpec],
             owned: Sequence[str], present: dict[str, FileState], described: str) -> Plan:
    """Write ``wanted`` and leave ``timer`` enabled and active (``state`` is its (active,
    enabled) now), restarting it when its units changed; with nothing wanted, disable it and
    remove the ``owned`` paths that are ``present``. Changes only what differs (pure)."""
    if not wanted:
        stale = [path for path in owned if path in present]
        if not stale:
            return Plan()
        return (plan.run("systemctl", "disable", "--now", timer, check=False)
                + plan.run("rm", "-f", *stale, change=f"removed {' '.join(stale)}")
                + plan.run("systemctl", "daemon-reload"))
    result = plan.write(wanted, present)
    units_changed = any(p.startswith(render.SYSTEMD_DIR) for p in plan.writes(result))
    if units_changed:
        result += plan.run("systemctl", "daemon-reload")
    if units_changed or state != ("active", "enabled"):
        result += (plan.run("systemctl", "enable", timer)  # a new schedule takes effect now
                   + plan.run("systemctl", "restart", timer,
                              change=f"{timer} enabled ({described})"))
    return result
