"""The server-side backup timer: its script, service and timer while ``backups.timer`` is set,
none of them once it is unset. The script runs what ``fab backup`` runs on the server."""

from __future__ import annotations

from vpskit import backups, facts, render
from vpskit.config import Environment
from vpskit.files import FileSpec, file_probe
from vpskit.provision import timer
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
    unit = render.backup_unit_name(ctx.env, "timer")
    return [file_probe(paths(ctx.env), "backup_files"),
            facts.units([unit], "backup_timer", lambda states: states[unit][:2])]


def backup_timer(ctx: Context) -> list[str]:
    """Install and enable the timer, or disable and remove it; changes only what differs."""
    env = ctx.env
    return timer.converge(ctx, render.backup_unit_name(env, "timer"), ctx.facts["backup_timer"],
                          specs(env), paths(env), ctx.facts["backup_files"], env.backups.timer)
