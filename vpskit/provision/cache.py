"""Redis bound to localhost (and the db host's private address when the app runs on other
hosts), with a generated password and a memory policy."""

from __future__ import annotations

import re
import secrets

from vpskit import facts
from vpskit.files import FileSpec, file_probe
from vpskit.provision.context import Context
from vpskit.provision.database import remote_clients

REDIS_CONF = "/etc/redis/redis.conf"
VPSKIT_CONF = "/etc/redis/vpskit.conf"
INCLUDE = f"include {VPSKIT_CONF}"


def probes(ctx: Context) -> list[facts.Probe]:
    return [
        facts.Probe("redis_include", f"grep -qxF '{INCLUDE}' {REDIS_CONF}",
                    lambda out, rc: rc == 0),
        facts.text(VPSKIT_CONF, "redis_conf"),
        file_probe([VPSKIT_CONF], "redis_files"),
    ]


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
    ctx.managed_env["REDIS_URL"] = f"redis://:{password}@127.0.0.1:6379/0"
    return changes
