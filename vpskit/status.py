"""``fab status``: each host's part of a site at a glance, as lines or as JSON.

Per host, by its roles: the live release and its units (state, CPU time, memory, restarts),
the site's requests through this host's Nginx (rate, 5xx, p50/p95 over the last 5 minutes and
the last hour, and a sparkline of the hour), the database's size and the newest backup's age,
free disk, and whether the site is in maintenance. Two round trips a host: what is deployed,
then the numbers of its units."""

from __future__ import annotations

import json
import shlex
import time
from typing import Any

from vpskit import backups, facts, fleet, maintenance, render, session, sh
from vpskit.config import Environment, Host
from vpskit.deploy import lock, releases
from vpskit.provision import cache
from vpskit.steps import Reporter

SERVICES = {"web": ("nginx",), "lb": ("nginx",), "db": ("postgresql",)}
METRICS_PROGRAM = sh.program("site_metrics")
BARS = "▁▂▃▄▅▆▇█"


def status(env: Environment, out: Reporter, as_json: bool = False) -> None:
    """Every host of the environment at once; JSON (``{address: report}``) with ``as_json``."""
    reports = fleet.each_or_raise(env.hosts, lambda host, _: _report(env, host), out, "status")
    if as_json:
        out.stream.write(json.dumps(reports, indent=2) + "\n")
        return
    for host in env.hosts:
        host_out = fleet.reporter_for(out, host, env.hosts)
        for line in lines(env, reports[host.address]):
            host_out.line(line)


def _report(env: Environment, host: Host) -> dict[str, Any]:
    with session.connected(env, host) as remote:
        found = facts.gather(remote, first_probes(env, host))
        live = _live(found.get("releases"))
        names = unit_names(env, host, live)
        more = facts.gather(remote, [facts.units(names), metrics_probe(env, host, names)])
    return report(env, host, found, more, live, time.time())


def first_probes(env: Environment, host: Host) -> list[facts.Probe]:
    probes = [facts.resources(), lock.probe(env.site)]
    if host.serves_app:
        probes.append(releases.probe(env))
    if host in env.public_hosts:
        probes.append(maintenance.probe(env))
    if host == env.db_host:
        probes += [backups.server_backups(env)] + ([database_size(env)] if env.own_postgres
                                                   else [])
    return probes


def _live(found: releases.Releases | None) -> releases.Release | None:
    return found.get(found.current) if found and found.current else None


def unit_names(env: Environment, host: Host, live: releases.Release | None) -> list[str]:
    """The units of the site on ``host``: the live release's web unit, the processes, the
    scheduled jobs (whose last run may show "failed"), and the services its roles run."""
    names = [render.web_unit_name(env, live.id)] if live and "web" in host.roles else []
    if "worker" in host.roles:
        names += [render.process_unit_name(env, p.name, i) for p in env.processes
                  for i in range(1, p.count + 1)]
    if host.serves_app and host == env.job_host:
        names += [render.job_unit_name(env, job.name, "service") for job in env.schedule]
    names += list(dict.fromkeys(u for role in host.roles for u in SERVICES.get(role, ())))
    if host == env.db_host and env.own_redis:
        names.append(cache.unit(env.site))
    return names


def access_logs(env: Environment, host: Host) -> dict[str, str]:
    """``{what: log path}`` of the site's Nginx on ``host``: the app's (web) and the lb's."""
    logs = {}
    if "web" in host.roles:
        logs["requests"] = render.access_log_path(env)
    if "lb" in host.roles:
        logs["lb_requests"] = render.access_log_path(env, lb=True)
    return logs


def metrics_probe(env: Environment, host: Host, units: list[str]) -> facts.Probe:
    """The site's request numbers from each of its logs on ``host`` (worked out on the
    server: an hour of a busy site's log is megabytes), and its units' accounting."""
    logs = access_logs(env, host)
    argv = [*logs.values(), "--", *units]

    def parse(out: str, rc: int) -> dict[str, Any]:
        try:
            found = json.loads(out)
        except ValueError:
            return {}
        return {"units": found["units"], **dict(zip(logs, found["logs"], strict=True))}
    return facts.Probe("metrics", f"python3 -c {shlex.quote(METRICS_PROGRAM)} "
                                  f"{shlex.join(argv)}", parse)


def database_size(env: Environment) -> facts.Probe:
    """The site's database size in bytes (None when Postgres does not answer)."""
    query = f"SELECT pg_database_size({_literal(env.db_name)})"
    return facts.Probe("database_size", "p=(/usr/lib/postgresql/*/bin/psql); runuser -u "
                       f"postgres -- \"${{p[-1]}}\" -XAt -c {shlex.quote(query)}",
                       lambda out, rc: int(out.strip()) if rc == 0 and out.strip().isdigit()
                       else None)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def report(env: Environment, host: Host, found: dict[str, Any], more: dict[str, Any],
           live: releases.Release | None, now: float) -> dict[str, Any]:
    """The host's part of the site as plain data (pure)."""
    metrics = more["metrics"]
    accounting = metrics.get("units", {})
    data: dict[str, Any] = {"site": env.site, "host": host.address, "roles": list(host.roles)}
    if host.serves_app:
        data["release"] = None if live is None else {
            "id": live.id, "sha": live.sha, "deployed": live.at, "by": live.by}
    data["units"] = {unit: {"active": active, "enabled": enabled, "pid": pid,
                            **accounting.get(unit, {})}
                     for unit, (active, enabled, pid) in more["units"].items()}
    for what in access_logs(env, host):
        data[what] = metrics.get(what)
    if host == env.db_host:
        names = found["backups"]
        newest = backups.latest(env.site, names)
        data["backups"] = {"count": len(names), "newest": newest,
                           "age": backups.age(newest, now) if newest else None}
        if env.own_postgres:
            size = found["database_size"]
            data["database_mb"] = None if size is None else round(size / 2**20, 1)
    data["disk_free_mb"] = found["resources"]["disk_free_mb"]
    data["lock"] = found["lock"]
    if "maintenance" in found:
        data["maintenance"] = found["maintenance"]
    return data


def lines(env: Environment, data: dict[str, Any]) -> list[str]:
    """The report as the lines ``fab status`` prints (pure)."""
    out = [f"{env.site} on {data['host']}" + (" (lb)" if data["roles"] == ["lb"] else "")]
    if "release" in data:
        live = data["release"]
        out.append(f"  release   {live['id']}  sha {live['sha'][:12]}  deployed {live['deployed']}"
                   f" by {live['by']}" if live else "  release   none deployed yet (fab deploy)")
    for unit, u in data["units"].items():
        out.append(f"  {unit:<40} {u['active']:<10} {u['enabled']:<10} pid {u['pid']}"
                   + _usage(u))
    for what, title in (("requests", "requests"), ("lb_requests", "lb"),):
        if what in data:
            out += request_lines(title, data[what])
    if "database_mb" in data:
        size = data["database_mb"]
        out.append(f"  database  {'unknown' if size is None else f'{size} MiB'}")
    if "backups" in data:
        b = data["backups"]
        out.append(f"  backups   {b['count']} on the server, newest {b['age']} ago"
                   if b["newest"] else "  backups   none on the server yet (fab backup)")
    out.append(f"  disk      {data['disk_free_mb']} MiB free on /")
    out += lock_lines(data["lock"])
    if "maintenance" in data:
        out.append(_maintenance_line(env, data["maintenance"]))
    return out


def lock_lines(lock: dict[str, Any]) -> list[str]:
    """Who holds the site's lock, what the server is still doing or did for a holder that
    died; nothing when it is free and idle (pure)."""
    lines = [f"  lock      held by {lock['holder']}"] if lock["holder"] else []
    lines += [f"  working   {unit} (the lock stays held until it ends)" for unit in lock["working"]]
    return lines + [f"  recovered {note}" for note in lock["recovered"]]


def _usage(unit: dict[str, Any]) -> str:
    parts = []
    if unit.get("cpu_s") is not None:
        parts.append(f"cpu {unit['cpu_s']:.1f}s")
    if unit.get("memory_mb") is not None:
        parts.append(f"mem {unit['memory_mb']:.0f} MiB")
    if unit.get("restarts") is not None:
        parts.append(f"restarts {unit['restarts']}")
    return ("  " + "  ".join(parts)) if parts else ""


def request_lines(title: str, numbers: dict[str, Any] | None) -> list[str]:
    """Requests over the last 5 minutes and the last hour, and the hour's sparkline (pure)."""
    if not numbers:
        return [f"  {title:<9} no request log yet"]
    rows = []
    for window, label in (("5m", "5 min"), ("1h", "1 hour")):
        n = numbers[window]
        rows.append(f"  {title if window == '5m' else '':<9} last {label:<6} {n['requests']:>6} "
                    f"({n['per_minute']:g}/min)  5xx {n['errors_5xx']} "
                    f"({n['error_rate'] * 100:.1f}%)  p50 {_ms(n['p50_ms'])}  "
                    f"p95 {_ms(n['p95_ms'])}")
    rows.append(f"  {'':<9} last hour  {sparkline(numbers['minutes'])}  (per minute)")
    return rows


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def sparkline(counts: list[int]) -> str:
    """One bar per count, scaled to the largest; a space for none (pure)."""
    top = max(counts, default=0)
    if not top:
        return " " * len(counts)
    return "".join(BARS[round(c * (len(BARS) - 1) / top)] if c else " " for c in counts)


def _maintenance_line(env: Environment, on: bool) -> str:
    if not on:
        return "  maintenance off"
    return (f"  maintenance ON: {maintenance.describe(env, True)}; fab maintenance --env "
            f"{env.name} off ends it")
