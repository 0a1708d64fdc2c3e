"""Redis bound to localhost (and the db host's private address when the app runs on other
hosts), with a generated password and a memory policy.

Each site on the host gets a database number of its own, recorded in ``/etc/vpskit/redis-db/``,
so staging and production (or two apps) never see each other's keys.
"""

from __future__ import annotations

import re
import secrets
from urllib.parse import urlsplit

from vpskit import facts
from vpskit.errors import ToolkitError
from vpskit.files import FileSpec, file_probe
from vpskit.provision.context import Context
from vpskit.provision.database import known_url, remote_clients

REDIS_CONF = "/etc/redis/redis.conf"
VPSKIT_CONF = "/etc/redis/vpskit.conf"
REGISTRY = "/etc/vpskit/redis-db"
DATABASES = 16  # Redis's default ``databases``
INCLUDE = f"include {VPSKIT_CONF}"


def probes(ctx: Context) -> list[facts.Probe]:
    return [
        facts.Probe("redis_include", f"grep -qxF '{INCLUDE}' {REDIS_CONF}",
                    lambda out, rc: rc == 0),
        facts.text(VPSKIT_CONF, "redis_conf"),
        file_probe([VPSKIT_CONF, registry_path(ctx.env.site)], "redis_files"),
        facts.registry(REGISTRY, "redis_dbs", db_numbers),
    ]


def registry_path(site: str) -> str:
    return f"{REGISTRY}/{site}"


def db_numbers(found: dict[str, list[str]]) -> dict[str, int]:
    """``{site: number}`` from the registry's ``{site: [lines]}`` (pure)."""
    return {site: int(lines[0]) for site, lines in found.items() if lines[0].strip().isdigit()}


def redis_db(site: str, registry: dict[str, int], current_url: str, host: str) -> int:
    """The site's database number: as recorded; else the one its REDIS_URL already uses, if
    no other site has it; else the lowest free one (pure)."""
    if site in registry:
        return registry[site]
    taken = {n for other, n in registry.items() if other != site}
    current = urlsplit(current_url).path.lstrip("/") if current_url else ""
    if current.isdigit() and int(current) not in taken:
        return int(current)
    free = [n for n in range(DATABASES) if n not in taken]
    if not free:
        raise ToolkitError(f"Redis on {host} has all {DATABASES} databases taken by other sites "
                           f"({', '.join(sorted(registry))}); give this environment its own db "
                           f"host, or REDIS_URL of a managed Redis under secrets")
    return free[0]


def redis_conf(password: str, maxmemory: str, policy: str, listen: tuple[str, ...] = ()) -> str:
    """Our overrides, included last by redis.conf so they win (pure)."""
    return (
        "# managed by vpskit\n"
        f"bind {' '.join(['127.0.0.1', '-::1', *listen])}\n"
        "protected-mode yes\n"
        "port 6379\n"
        f"requirepass {password}\n"
        f"maxmemory {maxmemory}\n"
        f"maxmemory-policy {policy}\n"
    )


def current_password(conf: str | None) -> str | None:
    match = re.search(r"^requirepass (\S+)$", conf or "", re.MULTILINE)
    return match.group(1) if match else None


def redis(ctx: Context) -> list[str]:
    """Keep the existing password; restart redis only when its config changed."""
    cfg = ctx.env.redis
    if not ctx.env.own_redis:
        return []
    password = current_password(ctx.facts["redis_conf"]) or secrets.token_urlsafe(24)
    ctx.remote.add_secret(password)
    changes = []
    if not ctx.facts["redis_include"]:
        ctx.act(["bash", "-c", 'printf "\\n%s\\n" "$1" >> "$2"', "append", INCLUDE, REDIS_CONF])
        changes.append(f"{REDIS_CONF}: {INCLUDE}")
    listen = (ctx.host.private,) if remote_clients(ctx.env) else ()
    spec = FileSpec(VPSKIT_CONF, redis_conf(password, cfg.maxmemory, cfg.policy, listen),
                    "redis", "redis", 0o640, secret=True)
    changes += ctx.apply_files([spec], ctx.facts["redis_files"])
    if changes:
        ctx.act(["systemctl", "restart", "redis-server"])
    number = redis_db(ctx.env.site, ctx.facts["redis_dbs"], known_url(ctx, "REDIS_URL"),
                      ctx.host.address)
    changes += ctx.apply_files([FileSpec(registry_path(ctx.env.site), f"{number}\n")],
                               ctx.facts["redis_files"])
    ctx.managed_env["REDIS_URL"] = f"redis://:{password}@127.0.0.1:6379/{number}"
    return changes
