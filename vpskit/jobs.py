"""Scheduled jobs (``schedule:``): a systemd timer and service per job, named by site and job,
on :attr:`~vpskit.config.Environment.job_host` alone so a job never runs twice.

Provision and deploy both reconcile them on every app host: the job host gets what the
inventory lists, every host loses the site's job units the inventory no longer lists. A job
runs the live release through ``current/``, so after a deploy it runs the new code; it never
takes the deploy lock. ``fab jobs`` lists each job's next run and recent runs (from the
journal); ``fab jobs --run NAME`` runs one now and streams its output.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from datetime import UTC, datetime

from vpskit import facts, render, session, sh
from vpskit.config import Environment, Job
from vpskit.errors import ToolkitError
from vpskit.steps import Reporter

RUN_JOB = sh.script("run-job")
# The journal's message ids of a unit starting, started (JOB_RESULT done) and failing to start.
STARTING = "7d4958e842da4a758f6c1cdc7b36dcc5"
STARTED = "39f53479d3a045ac8e11786248231fbf"
FAILED = "be02cf6855d2428ba40df7e9d022f03d"
RUNS_SHOWN = 5


# ---- fab jobs ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Run:
    started: datetime
    seconds: float | None  # None: still running
    ok: bool


def parse_runs(journal: str) -> list[Run]:
    """Runs of a job's service, oldest first, from ``journalctl -o json`` lines of its unit's
    messages: each is a start and the next end, ok when the start job is ``done`` (pure)."""
    runs: list[Run] = []
    started: datetime | None = None
    for line in journal.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        at = datetime.fromtimestamp(int(entry.get("__REALTIME_TIMESTAMP", 0)) / 1e6, UTC)
        message = entry.get("MESSAGE_ID")
        if message == STARTING:
            started = at
        elif message in (STARTED, FAILED) and started is not None:
            runs.append(Run(started, (at - started).total_seconds(),
                            entry.get("JOB_RESULT") == "done"))
            started = None
    if started is not None:
        runs.append(Run(started, None, False))
    return runs


def _journal_probe(env: Environment, job: Job) -> facts.Probe:
    service = shlex.quote(render.job_unit_name(env, job.name, "service"))
    timer = shlex.quote(render.job_unit_name(env, job.name, "timer"))
    return facts.Probe(job.name, (
        f"systemctl show -p NextElapseUSecRealtime --value {timer}; "
        f"journalctl --no-pager -o json --output-fields=MESSAGE_ID,JOB_RESULT -n 400 "
        f"UNIT={service}"), lambda out, rc: (out.partition("\n")[0].strip(),
                                             parse_runs(out.partition("\n")[2])))


def describe(job: Job, next_run: str, runs: list[Run]) -> list[str]:
    """The lines ``fab jobs`` prints for one job, newest run first (pure)."""
    lines = [f"  {job.name}  ({job.written}; timeout {job.timeout}s)",
             f"    next  {next_run or 'none (the timer is not active: fab provision)'}"]
    for run in reversed(runs[-RUNS_SHOWN:]):
        when = run.started.strftime("%Y-%m-%d %H:%M:%S UTC")
        result = "running" if run.seconds is None else "ok" if run.ok else "FAILED"
        took = "" if run.seconds is None else f"  {run.seconds:.1f}s"
        lines.append(f"    run   {when}  {result}{took}")
    if not runs:
        lines.append("    run   none yet")
    return lines


def show(env: Environment, out: Reporter) -> None:
    """``fab jobs``: each job with its next run and its last runs (result and duration)."""
    host = env.job_host
    if not env.schedule:
        out.line(f"{env.site}: no scheduled jobs (add them under schedule: in the inventory)")
        return
    with session.connected(env, host) as remote:
        found = facts.gather(remote, [_journal_probe(env, job) for job in env.schedule])
    out.line(f"{env.site} jobs on {host.address}")
    for job in env.schedule:
        for line in describe(job, *found[job.name]):
            out.line(line)


def run_now(env: Environment, name: str, out: Reporter) -> int:
    """``fab jobs --run NAME``: run the job now on the job host as its timer would, print its
    output as it comes; return 0 when it succeeded."""
    if name not in {job.name for job in env.schedule}:
        known = ", ".join(job.name for job in env.schedule) or "none"
        raise ToolkitError(f"no job {name!r} in {env.name}'s schedule (jobs: {known})")
    unit = render.job_unit_name(env, name, "service")
    with session.connected(env, env.job_host) as remote:
        result = remote.run(["bash", "-c", RUN_JOB, "run-job", unit], check=False,
                            timeout=None, on_stdout=out.line)
    tail = result.stderr.strip().splitlines()
    verdict = tail[-1].removeprefix("result=") if tail else "unknown"
    if result.exited == 2:
        raise ToolkitError(f"{env.job_host.address}: {verdict}")
    out.line(f"{name}: {'ok' if result.ok else f'FAILED ({verdict})'} on {env.job_host.address}")
    return 0 if result.ok else 1
