"""``fab provision``: fresh Debian/Ubuntu VPSes become app servers, idempotently.

All hosts of the environment are worked on at once, in three phases: the base system (packages,
users, SSH, firewall) everywhere; then Postgres/Redis on the db host, whose URLs the app hosts
need; then the site on each host by its roles (app: directories, env file, units; db: backup
timer; web: Nginx and TLS, or Nginx as a backend of the lb host, which terminates TLS). Facts
are gathered in one round trip per host (two on a new server, whose packages change them);
each step compares and acts only where the server differs, so a second run changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from vpskit import envfile, facts, fleet, job_units, render, session, sftp_target
from vpskit import resident as resident_vpskit
from vpskit.applier import Context, step
from vpskit.config import Environment, Host
from vpskit.errors import ToolkitError
from vpskit.provision import (
    access,
    app,
    backup_timer,
    cache,
    ci,
    database,
    firewall,
    hostca,
    mail,
    offsite,
    resident,
    system,
    tls,
    watchdog,
    web,
)
from vpskit.remote import Remote
from vpskit.secret import looks_secret
from vpskit.steps import Outcome, Reporter, run_steps


@dataclass
class HostRun:
    """One host's provision across the phases."""

    ctx: Context
    outcomes: list[Outcome] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def steps(self, steps: list[tuple[str, Callable[[Context], list[str]]]]) -> None:
        self.outcomes += run_steps(self.ctx, steps, self.ctx.out, self.ctx.dry_run)

    def summary(self) -> str:
        n, trips = sum(o.changed for o in self.outcomes), self.ctx.remote.round_trips
        verb = "would change" if self.ctx.dry_run else "changed"
        return (f"{n} {verb}, {len(self.outcomes) - n} unchanged in "
                f"{time.monotonic() - self.started:.1f}s ({trips} round trip"
                f"{'' if trips == 1 else 's'})")


def first_facts(run: HostRun) -> None:
    """Before anything changes on any host, in one round trip: the facts of the system and of
    the site, and on the db host a refusal of a database or role another site has. The
    operator's side adds its own: the deploy user's key, the SFTP target's host keys."""
    ctx = run.ctx
    env, host = ctx.env, ctx.host
    claims = database.claim_probes() if host == env.db_host else []
    ctx.facts.update(facts.gather(ctx.remote, [*system.probes(env, host), *claims,
                                               *site_probes(env, host)]))
    database.check_claims(env, host, ctx.facts)
    ctx.facts.update(public_key=session.public_key(host), managed_env={},
                     ci_public_key=session.public_key(host.ci) if host.ci_user else None,
                     **resident.local_facts(env, host))
    if env.offsite.enabled and env.offsite.sftp and host == env.db_host:
        ctx.facts["offsite_host_keys"] = sftp_target.host_keys(env)


def site_probes(env: Environment, host: Host) -> list[facts.Probe]:
    """The probes of every step after the system's."""
    return [*access.probes(env, host), *firewall.probes(env, host),
            *database.probes(env, host), *hostca.probes(env), *cache.probes(env, host),
            *app.probes(env, host), *web.probes(env, host), *tls.probes(env, host),
            *backup_timer.probes(env, host), *job_units.probes(env),
            *mail.probes(env, host), *watchdog.probes(env, host), *offsite.probes(env, host),
            *ci.probes(env, host), *resident.probes(env, host)]


def base(run: HostRun) -> None:
    """Phase 1, every host: the system, users, SSH, firewall. When the system steps changed
    something (packages installed on a new server), the site's facts are read again."""
    ctx = run.ctx
    run.steps([(name, step(planner, system.SystemFacts)) for name, planner in (
        ("preflight", system.preflight), ("packages", system.packages),
        ("timezone", system.timezone), ("swap", system.swap))])
    if any(outcome.changed for outcome in run.outcomes):
        ctx.facts.update(facts.gather(ctx.remote, site_probes(ctx.env, ctx.host)))
    ctx.facts["app_env"] = envfile.parse(ctx.facts["env_file"] or "", str(ctx.env.env_file))
    for key, value in ctx.facts["app_env"].items():
        if looks_secret(key):
            ctx.remote.add_secret(value)
    run.steps([("users", step(access.users, access.AccessFacts)),
               ("ssh", step(access.harden_ssh, access.AccessFacts)),
               ("firewall", step(firewall.firewall, firewall.FirewallFacts))])
    if "web" in ctx.host.roles and ctx.env.lb_host:  # before the lb host's phase 3 trusts it
        run.steps([("backend tls", step(web.backend_certificate, web.BackendFacts))])
    if resident_vpskit.serves(ctx.env, ctx.host):  # before the other hosts' phase 3 allow it
        run.steps([("resident key", step(resident.self_key, resident.ResidentFacts))])


def services(run: HostRun) -> None:
    """Phase 2, the db host: Postgres and Redis, and the URLs the app hosts get."""
    run.steps([("postgres", step(database.postgres, database.DatabaseFacts)),
               ("redis", step(cache.redis, cache.CacheFacts)),
               ("credentials", step(database.credentials, database.CredentialsFacts))])


def site(run: HostRun, db_access: ServiceAccess, db: Host | None,
         backend_cas: list[str]) -> None:
    """Phase 3, every host by its roles; the lb host trusts the web hosts' ``backend_cas``."""
    ctx, host = run.ctx, run.ctx.host
    ca_path = render.db_ca_path(ctx.env)
    ctx.facts["managed_env"].update({k: database.url_for(v, db, host, ca_path)
                                     for k, v in db_access.urls.items()})
    steps = [("directories", step(app.site_dirs, app.DirectoryFacts))]
    if host.serves_app and host != db and db_access.ca:
        steps.append(("db ca", step(partial(hostca.trust, ca_path, [db_access.ca]),
                                    hostca.TrustFacts)))
    if host.serves_app:
        steps += [("db reach", step(database.reach, database.ReachFacts)),
                  ("app", step(app.app_service, app.AppFacts)),
                  ("jobs", step(job_units.units, job_units.JobFacts))]
    if host == db:
        steps += [("backups", step(backup_timer.backup_timer, backup_timer.BackupTimerFacts)),
                  ("offsite", step(offsite.server_key, offsite.OffsiteFacts,
                                   (offsite.offsite_config, offsite.OffsiteFacts)))]
    if "web" in host.roles:
        steps.append(("nginx", step(web.nginx, web.WebFacts)))
    if "lb" in host.roles:
        steps += [("backend cas", step(partial(hostca.trust, render.web_cas_path(ctx.env),
                                               backend_cas), hostca.TrustFacts)),
                  ("lb", step(web.lb, web.WebFacts))]
    if host in ctx.env.public_hosts:
        steps.append(("tls", step(tls.tls, tls.TlsFacts)))
    steps += [("mail", step(mail.mail, mail.MailFacts)),
              ("watchdog", step(watchdog.watchdog, watchdog.WatchdogFacts)),
              ("ci login", step(ci.ci_access, ci.CiFacts)),
              ("resident", step(resident.resident_vpskit, resident.ResidentFacts))]
    run.steps(steps)
    if ctx.facts.get("restart_app"):
        run.steps([("restart", step(app.restart, app.RestartFacts))])


def provision_environment(env: Environment, out: Reporter, dry_run: bool = False,
                          hosts: Sequence[Host] | None = None,
                          connect: Callable[[Host], Remote] | None = None) -> int:
    """Provision ``hosts`` (default: all of ``env``) at once; return the number of changed
    steps. A failing host stops the later phases everywhere; the error names each one.
    ``connect(host)`` gives each host's connection (default: :func:`session.open_for_provision`,
    see :func:`session.opening` to have them made ahead)."""
    hosts = tuple(hosts or env.hosts)
    connect = connect or (lambda host: session.open_for_provision(env, host))
    started = time.monotonic()
    runs: dict[str, HostRun] = {}
    done = False
    try:
        fleet.each_or_raise(hosts, lambda h, o: _open(env, h, o, dry_run, runs, connect), out,
                            "provision (connect)")
        fleet.each_or_raise(hosts, lambda h, o: first_facts(runs[h.address]), out, "provision")
        fleet.each_or_raise(hosts, lambda h, o: base(runs[h.address]), out, "provision")
        found, cas = _service_access(env, runs), _backend_cas(env, runs)
        _share_resident_keys(env, runs)
        fleet.each_or_raise(hosts, lambda h, o: site(runs[h.address], found, env.db_host, cas),
                            out, "provision")
        done = True
    finally:
        for run in runs.values():
            run.ctx.remote.close()
        if done or len(hosts) > 1:  # one host's error says it all
            for host in hosts:
                if host.address in runs:
                    out.line(f"{host.address}: {runs[host.address].summary()}")
    if len(hosts) > 1:
        out.line(f"provisioned {len(hosts)} host(s) in {time.monotonic() - started:.1f}s")
    return sum(o.changed for run in runs.values() for o in run.outcomes)


def _open(env: Environment, host: Host, out: Reporter, dry_run: bool,
          runs: dict[str, HostRun], connect: Callable[[Host], Remote]) -> None:
    remote = connect(host)
    runs[host.address] = HostRun(Context(env=env, host=host, remote=remote, out=out,
                                         dry_run=dry_run))
    out.line(f"provision {env.site} on {host.address} ({', '.join(host.roles)}) as "
             f"{remote.conn.user}{' (dry run: nothing is changed)' if dry_run else ''}")


@dataclass(frozen=True)
class ServiceAccess:
    """What the db host's phase 2 gives the app hosts: DATABASE_URL/REDIS_URL as the db host
    sees them, and the certificate of its CA (None when it has none, e.g. no other app host)."""
    urls: dict[str, str] = field(default_factory=dict)
    ca: str | None = None


def _fact(env: Environment, runs: dict[str, HostRun], host: Host, probe: facts.Probe) -> Any:
    """``probe``'s fact on ``host``: as its run has it when it is being provisioned, else read
    over a login of its own."""
    if host.address in runs:
        return runs[host.address].ctx.facts.get(probe.name)
    with session.connected(env, host) as remote:
        return facts.gather(remote, [probe])[probe.name]


def _backend_cas(env: Environment, runs: dict[str, HostRun]) -> list[str]:
    """The CA certificates of the web hosts behind an lb host being provisioned, as their
    phase 1 left them, or read from the ones not provisioned now; none without one."""
    if env.lb_host is None or env.lb_host.address not in runs:
        return []
    web = env.hosts_with("web")
    ordered = [h for h in web if h.address in runs] + [h for h in web if h.address not in runs]
    found = [_fact(env, runs, host, hostca.ca_probe()) for host in ordered]
    return [ca for ca in found if ca]


def _share_resident_keys(env: Environment, runs: dict[str, HostRun]) -> None:
    """With a resident vpskit: its key's public half to every host being provisioned, and
    every host's own key to its host; read from the hosts not provisioned now."""
    first = resident_vpskit.orchestrator(env)
    if first is None:
        return
    key = _fact(env, runs, first, resident.self_key_probe())
    host_keys = {h.address: _fact(env, runs, h, resident.host_key_probe()) for h in env.hosts}
    for run in runs.values():
        run.ctx.facts.update(self_public_key=key, resident_host_keys={
            address: found for address, found in host_keys.items() if found})


def _service_access(env: Environment, runs: dict[str, HostRun]) -> ServiceAccess:
    """The db host's :class:`ServiceAccess`: made by its phase 2 when it is being provisioned,
    else read from its credentials file and CA certificate."""
    db = env.db_host
    if db is None or not (env.own_postgres or env.own_redis):
        return ServiceAccess()
    if db.address in runs:
        run = runs[db.address]
        services(run)
        made = run.ctx.facts["managed_env"]
        return ServiceAccess({k: made[k] for k in database.SERVICE_URLS if made.get(k)},
                             run.ctx.facts["host_ca"])
    with session.connected(env, db) as remote:
        found = facts.gather(remote, [facts.text(database.credentials_path(env), "c"),
                                      hostca.ca_probe()])
    if found["c"] is None:
        raise ToolkitError(f"db host {db.address} has no {database.credentials_path(env)} yet; "
                           f"provision it first: fab provision --env {env.name} --hosts "
                           f"{db.address}")
    return ServiceAccess({k: v for k, v in envfile.parse(found["c"]).items()
                          if k in database.SERVICE_URLS}, found["host_ca"])
