"""What ``fab remove`` takes off a host (:mod:`vpskit.remove` runs it): the facts of what of the
site is there, and pure plans removing exactly that, a change line per thing. Everything is
named by the site, so no other site's unit, file, rule, database or Redis key is ever named.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import PurePosixPath

from vpskit import ci_login, facts, plan, render
from vpskit.config import Environment, Host
from vpskit.files import FileSpec
from vpskit.plan import Plan
from vpskit.provision import cache, database, firewall, web


def nginx_paths(env: Environment) -> list[str]:
    return [render.site_path(env), render.lb_site_path(env),
            str(PurePosixPath(render.upstream_path(env)).parent)]


def other_paths(env: Environment) -> list[str]:
    return [str(env.root), str(env.run_dir), render.backup_script(env),
            database.credentials_path(env), render.maintenance_page_path(env),
            ci_login.registry_path(env)]


def _lines(out: str, rc: int) -> list[str]:
    return out.split()


def _removed(paths: list[str], *flags: str) -> Plan:
    """Each path removed, its line the path itself."""
    return Plan(tuple(plan.Run(("rm", *flags, "--", path)) for path in paths), tuple(paths))


@dataclass(frozen=True)
class SiteFacts:
    site_units: list[str]  # the units named <site>-* systemd has loaded
    site_unit_files: list[str]
    site_cert: bool  # a certificate, and certbot to delete it
    site_paths: dict[str, tuple[str, ...]]  # those of the site's paths that exist
    users: dict[str, list[str]]  # the site's system user, when it exists
    site_group: bool
    ufw: str  # probe: firewall
    ufw_sites: dict[str, set[firewall.Rule]]  # probe: firewall


def site_probes(env: Environment) -> list[facts.Probe]:
    pattern = shlex.quote(f"{env.site}-*")
    cert_dir = shlex.quote(str(PurePosixPath(render.cert_path(env)).parent))
    return [
        facts.Probe("site_units", f"systemctl list-units --all --plain --no-legend {pattern} "
                                  "| awk '{print $1}'", _lines),
        facts.Probe("site_unit_files", f"find {render.SYSTEMD_DIR} -name {pattern}", _lines),
        facts.Probe("site_cert", f"test -d {cert_dir} && command -v certbot",
                    lambda out, rc: rc == 0),
        facts.owners([*nginx_paths(env), *other_paths(env)], "site_paths"),
        facts.users([env.site]), facts.group(env.site, "site_group"),
        *firewall.state_probes(),
    ]


def site(env: Environment, host: Host, found: SiteFacts) -> Plan:
    """The site's units stopped and their files gone, its certificate, Nginx sites (then a
    reload), directories and files, system user and group, and the firewall rules no other
    site needs (pure)."""
    result = Plan()
    for unit in found.site_units:  # an instance of a template unit cannot be disabled
        result += (plan.run("systemctl", "disable", "--now", "--quiet", unit, check=False,
                            change=f"unit {unit}")
                   + plan.run("systemctl", "stop", unit, check=False))
    if found.site_unit_files:
        result += (plan.run("rm", "-rf", *found.site_unit_files,
                            change=f"unit files {env.site}-*")
                   + plan.run("systemctl", "daemon-reload")
                   + plan.run("systemctl", "reset-failed", f"{env.site}-*", check=False))
    if found.site_cert:
        result += plan.run("certbot", "delete", "--non-interactive", "--cert-name", env.site,
                           change=f"certificate {env.site}")
    nginx = [path for path in nginx_paths(env) if path in found.site_paths]
    result += _removed(nginx, "-rf") + (web.reload_nginx() if nginx else Plan())
    result += _removed([path for path in other_paths(env) if path in found.site_paths], "-rf")
    if env.site in found.users:
        result += plan.run("userdel", env.site, change=f"user {env.site}")
    if found.site_group:  # www-data's membership kept it; userdel may have taken it
        result += plan.run("groupdel", env.site, check=False, change=f"group {env.site}")
    return result + firewall.forget(env.site, found.ufw, found.ufw_sites, host.port)


@dataclass(frozen=True)
class ServiceFacts:
    pg_version: str  # probe: database
    pg_hba: str  # probe: database
    pg_claims: dict[str, dict[str, str]]  # probe: database
    pg_owners: dict[str, str]  # database: its owner (probe: database)
    pg_roles: set[str]
    redis_unit: tuple[str, str]  # (is-enabled, is-active)
    redis_paths: dict[str, tuple[str, ...]]  # those of the instance's files that exist
    redis_shared_db: str | None  # its database number on the shared instance of old versions


def service_probes(env: Environment) -> list[facts.Probe]:
    site, unit = env.site, cache.unit(env.site)
    return [
        *database.cluster_probes(), *database.claim_probes(),
        database.psql_probe("pg_roles", "SELECT rolname FROM pg_roles",
                            lambda out: set(out.split()), set()),
        facts.units([unit], "redis_unit", lambda states: (states[unit][1], states[unit][0])),
        facts.owners(redis_paths(site), "redis_paths"),
        facts.text(f"{cache.SHARED_REGISTRY}/{site}", "redis_shared_db"),
    ]


def redis_paths(site: str) -> list[str]:
    return [cache.conf_path(site), cache.data_file(site), cache.registry_path(site)]


def services(env: Environment, host: Host, found: ServiceFacts) -> Plan:
    """On the db host: the database (dumped first) and role (the hatch ``drop_database``),
    the site's pg_hba block, its claim, its Redis instance and its database on the shared
    instance of earlier versions (pure)."""
    result = Plan()
    if env.own_postgres:
        there = ([f"database {env.db_name} (dumped first)"] if env.db_name in found.pg_owners
                 else []) + ([f"role {env.db_user}"] if env.db_user in found.pg_roles else [])
        result += plan.hatch("drop_database", would=", ".join(there)) if there else Plan()
        kept = database.hba_with(found.pg_hba, env.site, env.db_name, env.db_user, [])
        if kept != found.pg_hba:
            path = database.hba_path(found.pg_version)
            result += (Plan((plan.Write((FileSpec(path, kept, "postgres", "postgres", 0o640),)),),
                            (f"{path}: {env.site} block",))
                       + plan.run("systemctl", "reload", f"postgresql@{found.pg_version}-main"))
        if env.site in found.pg_claims:
            claim = database.claim_path(env.site)
            result += plan.run("rm", "-f", claim, change=claim)
    if env.own_redis:
        unit, data = cache.unit(env.site), cache.data_file(env.site)
        running = found.redis_unit[0] == "enabled" or found.redis_unit[1] == "active"
        if running:
            result += plan.run("systemctl", "disable", "--now", "--quiet", unit, change=unit)
        result += _removed([path for path in redis_paths(env.site) if path in found.redis_paths
                            or path == data and running], "-f")  # its stop saves the data
        if found.redis_shared_db is not None:
            result += plan.run("bash", "-c", cache.LEAVE_SHARED, "redis-leave-shared",
                               *cache.leave_args(env.site),
                               change=f"shared redis database {found.redis_shared_db.strip()}")
    return result
