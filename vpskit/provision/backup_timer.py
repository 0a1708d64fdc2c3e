"""The server-side backup timer: its script, service and timer while ``backups.timer`` is set,
none of them once it is unset. The script runs what ``fab backup`` runs on the server."""

from __future__ import annotations

from vpskit import backups, facts, render
from vpskit.config import Environment
from vpskit.files import FileSpec, file_probe
from vpskit.provision.context import Context


def paths(env: Environment) -> list[str]:
    """Every file the timer needs, installed or not (pure)."""
    return [render.backup_script(env), *(f"{render.SYSTEMD_DIR}/{render.backup_unit_name(env, s)}"
                                         for s in ("service", "timer"))]


def specs(env: Environment) -> list[FileSpec]:
    """The files while ``backups.timer`` is set, else [] (pure)."""
    if not env.backups.timer:
        return []
    script = FileSpec(render.backup_script(env), backups.server_script(env), mode=0o700)
    return [script, *(FileSpec(path, text) for path, text in render.backup_units(env).items())]


def probes(ctx: Context) -> list[facts.Probe]:
    timer = render.backup_unit_name(ctx.env, "timer")
    return [file_probe(paths(ctx.env), "backup_files"),
            facts.units([timer], "backup_timer", lambda states: states[timer][:2])]


def backup_timer(ctx: Context) -> list[str]:
    """Install and enable the timer, or disable and remove it; changes only what differs."""
    env, present = ctx.env, ctx.facts["backup_files"]
    timer = render.backup_unit_name(env, "timer")
    wanted = specs(env)
    if not wanted:
        stale = [path for path in paths(env) if path in present]
        if stale:
            ctx.act(["systemctl", "disable", "--now", timer], check=False)
            ctx.act(["rm", "-f", *stale])
            ctx.act(["systemctl", "daemon-reload"])
        return [f"removed {' '.join(stale)}"] if stale else []
    changes = ctx.apply_files(wanted, present)
    units_changed = any(not c.startswith(render.backup_script(env)) for c in changes)
    if units_changed:
        ctx.act(["systemctl", "daemon-reload"])
    if units_changed or ctx.facts["backup_timer"] != ("active", "enabled"):
        ctx.act(["systemctl", "enable", timer])
        ctx.act(["systemctl", "restart", timer])  # a new OnCalendar takes effect now
        changes.append(f"{timer} enabled ({env.backups.timer})")
    return changes
