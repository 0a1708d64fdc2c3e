"""The server-side backup timer: its script, service and timer while ``backups.timer`` is set;
the script and service alone for a CI login to run (``vpskit-site backup``); none of them
otherwise. The script runs what ``fab backup`` runs on the server."""

from __future__ import annotations

from dataclasses import dataclass

from vpskit import backup_script, ci_login, facts, plan, render
from vpskit.config import Environment, Host
from vpskit.files import FileSpec, FileState
from vpskit.plan import Plan
from vpskit.provision import timer


def paths(env: Environment) -> list[str]:
    """Every file the timer needs, installed or not (pure)."""
    return [render.backup_script(env), *(f"{render.SYSTEMD_DIR}/{render.backup_unit_name(env, s)}"
                                         for s in ("service", "timer"))]


def specs(env: Environment) -> list[FileSpec]:
    """The files the timer or the CI login needs, else [] (pure)."""
    units = render.backup_units(env) or (
        render.backup_service(env) if ci_login.backs_up(env, env.db_host) else {})
    if not units:
        return []
    script = FileSpec(render.backup_script(env), backup_script.server_script(env), mode=0o700)
    return [script, *(FileSpec(path, text) for path, text in units.items())]


@dataclass(frozen=True)
class BackupTimerFacts:
    backup_files: dict[str, FileState]
    backup_timer: tuple[str, str]  # (active, enabled)


def probes(env: Environment, host: Host) -> list[facts.Probe]:
    return timer.probes("backup", paths(env), render.backup_unit_name(env, "timer"))


def backup_timer(env: Environment, host: Host, found: BackupTimerFacts) -> Plan:
    """Install and enable the timer, or disable and remove it (leaving the script and service
    the CI login runs); changes only what differs."""
    name, wanted = render.backup_unit_name(env, "timer"), specs(env)
    if env.backups.timer or not wanted:
        return timer.converge(name, found.backup_timer, wanted, paths(env), found.backup_files,
                              env.backups.timer)
    kept = {spec.path for spec in wanted}
    service = plan.write(wanted, found.backup_files)
    if service.actions:
        service += plan.run("systemctl", "daemon-reload")
    return timer.converge(name, found.backup_timer, [],
                          [path for path in paths(env) if path not in kept],
                          found.backup_files, "") + service
