"""The units of the site's scheduled jobs (:mod:`vpskit.jobs`) a host should have: every
job's timer and service on the job host, none elsewhere. Provision and deploy both plan them
from the same facts."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from vpskit import facts, plan, render
from vpskit.config import Environment, Host
from vpskit.files import FileSpec, FileState, parse_states, states_command
from vpskit.plan import Plan

STAMPS = "/var/lib/systemd/timers"  # Persistent= timers' last-run stamps


@dataclass(frozen=True)
class JobFacts:
    jobs_installed: dict[str, FileState]  # the site's job unit files on the host
    job_timers: dict[str, str]  # timer: "<enabled> <active>", of the timers listed


def probes(env: Environment) -> list[facts.Probe]:
    pattern = shlex.quote(f"{render.SYSTEMD_DIR}/{env.site}-job-") + "*.{service,timer}"
    listing = facts.Probe("jobs_installed", states_command(pattern), parse_states)
    timers = [render.job_unit_name(env, job.name, "timer") for job in env.schedule]
    return [listing, facts.units(timers, "job_timers", lambda states: {
        timer: f"{enabled} {active}" for timer, (active, enabled, _) in states.items()})]


def units(env: Environment, host: Host, found: JobFacts) -> Plan:
    """Writes what differs, enables and restarts a timer whose file changed or that is not
    enabled and active (a new calendar counts from now); disables and deletes the units of
    jobs no longer listed, with their stamps. Leaves a running job run to its end (pure)."""
    wanted = render.job_units(env) if host == env.job_host else {}
    write = plan.write([FileSpec(path, text) for path, text in wanted.items()],
                       found.jobs_installed)
    remove = sorted(set(found.jobs_installed) - set(wanted))
    stale_timers = [p.rsplit("/", 1)[1] for p in remove if p.endswith(".timer")]
    result = write + Plan(tuple(plan.Run(("systemctl", "disable", "--now", t), check=False)
                                for t in stale_timers))
    if remove:
        result += plan.run("rm", "-f", *remove, *(f"{STAMPS}/stamp-{t}" for t in stale_timers),
                           change=f"removed {' '.join(remove)}")
    if write.actions or remove:
        result += plan.run("systemctl", "daemon-reload")
    result += Plan(tuple(plan.Run(("systemctl", "reset-failed", p.rsplit("/", 1)[1]),
                                  check=False) for p in remove if p.endswith(".service")))
    written = {path.rsplit("/", 1)[1] for path in plan.writes(write)}
    for job in env.schedule if wanted else ():
        timer = render.job_unit_name(env, job.name, "timer")
        if timer in written or found.job_timers.get(timer) != "enabled active":
            result += (plan.run("systemctl", "enable", timer)
                       + plan.run("systemctl", "restart", timer,
                                  change=f"{timer} on ({'; '.join(job.calendars)})"))
    return result
