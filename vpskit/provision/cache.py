"""Redis: one ``redis-server@<site>`` instance per site (Debian's template unit), so no site can
read, overwrite, flush or inject into another's keys, channels or Celery queues.

Each instance has its own port (recorded in ``/etc/vpskit/redis/<site>``: a second provision
keeps it), password, memory policy and data file; it listens on localhost, plus the db host's
private address when the app runs on other hosts: they reach it over TLS only, on its TLS port
(the firewall admits exactly those to that port), verifying it against the db host's own CA
(:mod:`vpskit.provision.hostca`). ``CONFIG``, ``DEBUG`` and ``MODULE`` are disabled, so an app
cannot move its data file over a neighbour's. Sites from before (one shared ``redis-server``, a
database number each in ``/etc/vpskit/redis-db/``) move to their own instance at their next
provision: the app restarts on its new ``REDIS_URL``, the old database is flushed (a cache;
Celery tasks still queued there are not carried over), and the shared instance stops when no
site is left on it.
"""

from __future__ import annotations

import itertools
import re
import secrets
from dataclasses import dataclass

from vpskit import facts, plan, render, sh
from vpskit.config import Environment, Host
from vpskit.files import FileSpec, FileState, file_probe
from vpskit.plan import Plan
from vpskit.provision import hostca
from vpskit.provision.database import remote_clients

REGISTRY = "/etc/vpskit/redis"  # <site>: its instance's port
FIRST_PORT = 6380  # 6379 is the distribution's shared instance, which sites no longer use
DATA_DIR = "/var/lib/redis"
DISABLED = ("CONFIG", "DEBUG", "MODULE")
# Before per-site instances: the shared redis-server with our overrides, a database per site.
SHARED_REGISTRY = "/etc/vpskit/redis-db"
SHARED_CONF = "/etc/redis/vpskit.conf"
SHARED_UNIT = "redis-server.service"  # the instance of earlier versions, shared by every site
SHARED_INCLUDE = "include /etc/redis/vpskit.conf"
REDIS_CONF = "/etc/redis/redis.conf"

LEAVE_SHARED = sh.script("redis-leave-shared")
RETIRE_SHARED = sh.script("redis-retire-shared")


def unit(site: str) -> str:
    return f"redis-server@{site}.service"


def conf_path(site: str) -> str:
    """Where Debian's ``redis-server@.service`` reads the instance's config."""
    return f"/etc/redis/redis-{site}.conf"


def registry_path(site: str) -> str:
    return f"{REGISTRY}/{site}"


def data_file(site: str) -> str:
    return f"{DATA_DIR}/{site}.rdb"


@dataclass(frozen=True)
class CacheFacts:
    redis_conf: str | None
    redis_files: dict[str, FileState]
    redis_ports: dict[str, int]  # site: its instance's port
    redis_shared_sites: set[str]
    redis_unit: tuple[str, str]  # (is-enabled, is-active)
    redis_shared_unit: bool  # the shared instance runs or is enabled
    redis_shared_conf: bool
    redis_cert: str  # probe: hostca
    host_ca: str | None  # probe: hostca


def probes(env: Environment, host: Host) -> list[facts.Probe]:
    site = env.site
    return [
        facts.text(conf_path(site), "redis_conf"),
        file_probe([conf_path(site), registry_path(site)], "redis_files"),
        facts.registry(REGISTRY, "redis_ports", ports),
        facts.registry(SHARED_REGISTRY, "redis_shared_sites", lambda found: set(found)),
        facts.units([unit(site)], "redis_unit",
                    lambda states: (states[unit(site)][1], states[unit(site)][0])),
        facts.units([SHARED_UNIT], "redis_shared_unit", lambda states: (
            states[SHARED_UNIT][0] == "active"
            or states[SHARED_UNIT][1] in ("enabled", "enabled-runtime"))),
        facts.Probe("redis_shared_conf", f"test -e {SHARED_CONF}", lambda out, rc: rc == 0),
    ]


def ports(found: dict[str, list[str]]) -> dict[str, int]:
    """``{site: port}`` from the registry's ``{site: [lines]}`` (pure)."""
    return {site: int(lines[0]) for site, lines in found.items() if lines[0].strip().isdigit()}


def redis_port(site: str, registry: dict[str, int]) -> int:
    """The site's port: as recorded, else the lowest one from FIRST_PORT no other site has
    (pure)."""
    if site in registry:
        return registry[site]
    taken = set(registry.values())
    return next(p for p in itertools.count(FIRST_PORT) if p not in taken)


def redis_conf(site: str, port: int, password: str, maxmemory: str, policy: str,
               listen: tuple[str, ...] = ()) -> str:
    """The instance's whole config; Redis's defaults fill in the rest. Listening on ``listen``
    too, it takes TLS there on its TLS port with the host CA's certificate (pure)."""
    tls = [f"tls-port {hostca.redis_tls_port(port)}\n",
           f"tls-cert-file {render.host_cert_path('redis')}\n",
           f"tls-key-file {render.host_key_path('redis')}\n",
           f"tls-ca-cert-file {hostca.CA_CERT}\n",
           "tls-auth-clients no\n"] if listen else []  # clients prove themselves by password
    return "".join([
        f"# managed by vpskit: {unit(site)}\n",
        f"bind {' '.join(['127.0.0.1', '-::1', *listen])}\n",
        "protected-mode yes\n",
        f"port {port}\n",
        f"pidfile /run/redis-{site}/redis-server.pid\n",
        'logfile ""\n',  # the journal
        f"dir {DATA_DIR}\n",
        f"dbfilename {site}.rdb\n",
        f"requirepass {password}\n",
        f"maxmemory {maxmemory}\n",
        f"maxmemory-policy {policy}\n",
        *(f'rename-command {command} ""\n' for command in DISABLED),
        *tls,
    ])


def current_password(conf: str | None) -> str | None:
    match = re.search(r"^requirepass (\S+)$", conf or "", re.MULTILINE)
    return match.group(1) if match else None


def unit_plan(site: str, state: tuple[str, ...], conf_changed: bool) -> list[list[str]]:
    """Commands that leave the site's instance enabled and running its current config, from
    ``(is-enabled, is-active)``; none when it already does (pure)."""
    enabled, active = (*state, "", "")[:2]
    cmds = [] if enabled == "enabled" else [["systemctl", "enable", "--quiet", unit(site)]]
    if conf_changed:
        cmds.append(["systemctl", "restart", unit(site)])
    elif active != "active":
        cmds.append(["systemctl", "start", unit(site)])
    return cmds


def redis(env: Environment, host: Host, found: CacheFacts) -> Plan:
    """The site's own instance; keeps its port and password, restarts it only when its config
    changed. Moves a site off the shared instance of earlier versions."""
    if not env.own_redis:
        return Plan()
    port = redis_port(env.site, found.redis_ports)
    password = current_password(found.redis_conf) or secrets.token_urlsafe(24)
    listen = (host.private,) if remote_clients(env) else ()
    issued = hostca.certificate(host, "redis", found.redis_cert, found.host_ca) if listen \
        else Plan()
    conf = FileSpec(conf_path(env.site), redis_conf(env.site, port, password, env.redis.maxmemory,
                                                    env.redis.policy, listen),
                    "root", "redis", 0o640, secret=True)
    files = plan.write([conf, FileSpec(registry_path(env.site), f"{port}\n")], found.redis_files)
    units = plan.commands(unit_plan(env.site, found.redis_unit,
                                    bool(issued.actions) or conf.path in plan.writes(files)))
    shared_on = found.redis_shared_unit or found.redis_shared_conf
    leave = shared_plan(env.site, found.redis_shared_sites, shared_on)
    return (plan.secret(password) + issued + files + units
            + Plan(tuple(plan.Run(tuple(cmd)) for cmd in leave),
                   tuple(cmd[3] for cmd in leave))  # the script's name says what it did
            + plan.app_env({"REDIS_URL": f"redis://:{password}@127.0.0.1:{port}/0"}))


def shared_plan(site: str, shared_sites: set[str], shared_on: bool) -> list[list[str]]:
    """Commands that take ``site`` off the shared instance of earlier versions, and stop that
    instance once no other site is on it (on a new server too: the package starts it) (pure)."""
    cmds = []
    if site in shared_sites:
        cmds.append(["bash", "-c", LEAVE_SHARED, "redis-leave-shared", *leave_args(site)])
    if shared_on and not shared_sites - {site}:
        cmds.append(["bash", "-c", RETIRE_SHARED, "redis-retire-shared", REDIS_CONF,
                     SHARED_INCLUDE, SHARED_CONF, SHARED_REGISTRY])
    return cmds


def leave_args(site: str) -> list[str]:
    return [site, SHARED_REGISTRY, SHARED_CONF]
