"""ufw: deny incoming by default, allow SSH (the configured port), 80 and 443."""

from __future__ import annotations

import re

from vpskit import facts
from vpskit.provision.context import Context


def probes(ctx: Context) -> list[facts.Probe]:
    return [facts.Probe("ufw", "ufw status verbose", lambda out, rc: out)]


def plan(status: str, ports: list[int]) -> list[list[str]]:
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
    if not re.search(r"^Status: active", status, re.M):
        cmds.append(["ufw", "--force", "enable"])
    return cmds


def firewall(ctx: Context) -> list[str]:
    cmds = plan(ctx.facts["ufw"], [ctx.host.port, 80, 443])
    for cmd in cmds:
        ctx.act(cmd)
    return [" ".join(cmd) for cmd in cmds]
