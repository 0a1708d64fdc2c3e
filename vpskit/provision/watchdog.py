"""The site's watchdog on every host (:mod:`vpskit.alerts`): its program, configuration,
service and timer while ``alerts`` names a receiver, none of the site's once it names none
(the program stays: other sites may use it)."""

from __future__ import annotations

from dataclasses import dataclass

from vpskit import alerts, facts, render, sh
from vpskit.config import Environment, Host
from vpskit.files import FileState
from vpskit.plan import Plan
from vpskit.provision import timer

PROGRAM = sh.program("watchdog")


@dataclass(frozen=True)
class WatchdogFacts:
    watchdog_files: dict[str, FileState]
    watchdog_timer: tuple[str, str]  # (active, enabled)


def probes(env: Environment, host: Host) -> list[facts.Probe]:
    return timer.probes("watchdog", [render.WATCHDOG_PROGRAM, render.watchdog_config(env),
                                     *render.watchdog_units(env)],
                        render.watchdog_unit_name(env, "timer"))


def watchdog(env: Environment, host: Host, found: WatchdogFacts) -> Plan:
    """Install and enable the timer, or disable it and remove the site's files."""
    return timer.converge(
        render.watchdog_unit_name(env, "timer"), found.watchdog_timer,
        alerts.specs(env, host, PROGRAM),
        [render.watchdog_config(env), *render.watchdog_units(env)], found.watchdog_files,
        f"every {env.alerts.every} min")
