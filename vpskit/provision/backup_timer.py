"""The server-side backup timer: its script, service and timer while ``backups.timer`` is set,
none of them once it is unset. The script runs what ``fab backup`` runs on the server."""

from __future__ import annotations

from dataclasses import dataclass

from vpskit import backup_script, facts, render
from vpskit.config import Environment, Host
from vpskit.files import FileSpec, FileState
from vpskit.plan import Plan
from vpskit.provision import timer


def paths(env: Environment) -> list[str]:
    """Every file the timer needs, installed or not (pure)."""
    return [render.backup_script(env), *(f"{render.SYSTEMD_DIR}/{render.backup_unit_name(env, s)}"
                                         for s in ("service", "timer"))]


def specs(env: Environment) -> list[FileSpec]:
    """The files while ``backups.timer`` is set, else [] (pure)."""
    if not env.backups.timer:
        return []
    script = FileSpec(render.backup_script(env), backup_script.server_script(env), mode=0o700)
    return [script, *(FileSpec(path, text) for path, text in render.backup_units(env).items())]


@dataclass(frozen=True)
class BackupTimerFacts:
    backup_files: dict[str, FileState]
    backup_timer: tuple[str, str]  # (active, enabled)


def probes(env: Environment, host: Host) -> list[facts.Probe]:
    return timer.probes("backup", paths(env), render.backup_unit_name(env, "timer"))


def backup_timer(env: Environment, host: Host, found: BackupTimerFacts) -> Plan:
    """Install and enable the timer, or disable and remove it; changes only what differs."""
    return timer.converge(render.backup_unit_name(env, "timer"), found.backup_timer, specs(env),
                          paths(env), found.backup_files, env.backups.timer)
