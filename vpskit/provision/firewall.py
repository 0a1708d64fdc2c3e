"""ufw: deny incoming by default; allow SSH (the configured port), 80 and 443 on web and lb
hosts, and on a separate db host Postgres/Redis from exactly the app hosts' addresses."""

from __future__ import annotations

import re

from vpskit import facts
from vpskit.config import Environment, Host
from vpskit.provision.context import Context


def probes(ctx: Context) -> list[facts.Probe]:
    return [facts.Probe("ufw", "ufw status verbose", lambda out, rc: out)]


def plan(status: str, ports: list[int], admitted: tuple[tuple[int, str], ...] = ()
         ) -> list[list[str]]:
    """Commands that bring ``ufw status verbose`` output to the wanted state (pure).

    Will not delete rules the operator added by hand.
    """
    cmds: list[list[str]] = []
    if not re.search(r"^Default: deny \(incoming\)", status, re.M):
        cmds.append(["ufw", "default", "deny", "incoming"])
    if not re.search(r"allow \(outgoing\)", status):
        cmds.append(["ufw", "default", "allow", "outgoing"])
    for port in ports:
        if not re.search(rf"^{port}/tcp\s+ALLOW IN\s+Anywhere\s*$", status, re.M):
            cmds.append(["ufw", "allow", f"{port}/tcp"])
    for port, source in admitted:
        if not re.search(rf"^{port}/tcp\s+ALLOW IN\s+{re.escape(source)}\s*$", status, re.M):
            cmds.append(["ufw", "allow", "proto", "tcp", "from", source, "to", "any", "port",
                         str(port)])
    if not re.search(r"^Status: active", status, re.M):
        cmds.append(["ufw", "--force", "enable"])
    return cmds


def public_ports(host: Host) -> list[int]:
    web = "web" in host.roles or "lb" in host.roles
    return [host.port, 80, 443] if web else [host.port]


def admitted(env: Environment, host: Host) -> tuple[tuple[int, str], ...]:
    """(port, source address) pairs the db host lets in: each other app host (pure)."""
    if host != env.db_host:
        return ()
    ports = [p for p, own in ((5432, env.own_postgres), (6379, env.own_redis)) if own]
    return tuple((port, h.private) for h in env.app_hosts if h != host for port in ports)


def firewall(ctx: Context) -> list[str]:
    cmds = plan(ctx.facts["ufw"], public_ports(ctx.host), admitted(ctx.env, ctx.host))
    for cmd in cmds:
        ctx.act(cmd)
    return [" ".join(cmd) for cmd in cmds]
