"""The site's watchdog on every host (:mod:`vpskit.alerts`): its program, configuration,
service and timer while ``alerts`` names a receiver, none of the site's once it names none
(the program stays: other sites may use it)."""

from __future__ import annotations

from vpskit import alerts, facts, render, sh
from vpskit.files import file_probe
from vpskit.provision import timer
from vpskit.provision.context import Context

PROGRAM = sh.program("watchdog")


def probes(ctx: Context) -> list[facts.Probe]:
    unit = render.watchdog_unit_name(ctx.env, "timer")
    paths = [render.WATCHDOG_PROGRAM, render.watchdog_config(ctx.env),
             *render.watchdog_units(ctx.env)]
    return [file_probe(paths, "watchdog_files"),
            facts.units([unit], "watchdog_timer", lambda states: states[unit][:2])]


def watchdog(ctx: Context) -> list[str]:
    """Install and enable the timer, or disable it and remove the site's files."""
    env = ctx.env
    return timer.converge(
        ctx, render.watchdog_unit_name(env, "timer"), ctx.facts["watchdog_timer"],
        alerts.specs(env, ctx.host, PROGRAM),
        [render.watchdog_config(env), *render.watchdog_units(env)], ctx.facts["watchdog_files"],
        f"every {env.alerts.every} min")
