"""ufw: deny incoming by default; allow SSH (the configured port), 80 and 443 on the hosts the
world reaches (the lb, or the web hosts without one); from inside only what is needed: the
backend port from the lb, Postgres/Redis on the db host from exactly the app hosts."""

from __future__ import annotations

import re

from vpskit import facts, render
from vpskit.config import Environment, Host
from vpskit.provision import database
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


def public_ports(env: Environment, host: Host) -> list[int]:
    return [host.port, 80, 443] if host in env.public_hosts else [host.port]


def admitted(env: Environment, host: Host) -> tuple[tuple[int, str], ...]:
    """(port, source address) pairs let in from inside: on the db host each other app host;
    on a web host behind an lb the lb, to the backend port (pure)."""
    pairs: list[tuple[int, str]] = []
    if host == env.db_host:
        pairs += [(port, h.private) for h in env.app_hosts if h != host
                  for port in database.service_ports(env)]
    if env.lb_host and "web" in host.roles:
        pairs.append((render.BACKEND_PORT, env.lb_host.private))
    return tuple(pairs)


def firewall(ctx: Context) -> list[str]:
    cmds = plan(ctx.facts["ufw"], public_ports(ctx.env, ctx.host), admitted(ctx.env, ctx.host))
    for cmd in cmds:
        ctx.act(cmd)
    return [" ".join(cmd) for cmd in cmds]
