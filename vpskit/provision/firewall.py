"""ufw: deny incoming by default; allow SSH (the configured port), 80 and 443 on the hosts the
world reaches (the lb, or the web hosts without one); from inside only what is needed: the
backend port from the lb, Postgres and the site's own Redis port on the db host from exactly
the site's app hosts.

Rules we add carry the comment ``vpskit``. What each site needs is recorded in
``/etc/vpskit/firewall/<site>``, so a rule no site on the host needs any more (an app host that
left the inventory, a host that went behind an lb, a removed site) is deleted. Rules without
our comment are the operator's and never touched, nor is the SSH port's.

ufw's state is read from its own files (what ``ufw status`` reports, without starting a Python
program that costs a tenth of a second on every provision).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from vpskit import facts, plan, render
from vpskit.config import Environment, Host
from vpskit.files import FileSpec, FileState, file_probe
from vpskit.plan import Plan
from vpskit.provision import cache, database

REGISTRY = "/etc/vpskit/firewall"
ANYWHERE = "Anywhere"
TAG = "vpskit"
Rule = tuple[int, str]  # (port, source address or ANYWHERE)
UFW_STATE = ("cat /etc/ufw/ufw.conf /etc/default/ufw; "
             "grep -h '^### tuple ### allow tcp ' /etc/ufw/user.rules")
# ufw's record of a rule: action proto dport dst sport src direction [comment=<hex>]
RULE_LINE = re.compile(r"^### tuple ### allow tcp (\d+) \S+ \S+ (\S+) in(?: comment=([0-9a-f]*))?$",
                       re.M)


@dataclass(frozen=True)
class FirewallFacts:
    ufw: str  # UFW_STATE's output
    ufw_sites: dict[str, set[Rule]]
    ufw_files: dict[str, FileState]
    redis_ports: dict[str, int]  # probe: cache


def probes(env: Environment, host: Host) -> list[facts.Probe]:
    return [*state_probes(), file_probe([registry_path(env.site)], "ufw_files")]


def state_probes() -> list[facts.Probe]:
    return [facts.Probe("ufw", UFW_STATE, lambda out, rc: out),
            facts.registry(REGISTRY, "ufw_sites", site_rules)]


def registry_path(site: str) -> str:
    return f"{REGISTRY}/{site}"


def site_rules(found: dict[str, list[str]]) -> dict[str, set[Rule]]:
    """``{site: rules}`` from the registry's ``{site: ["<port> <source>", ...]}`` (pure)."""
    rules: dict[str, set[Rule]] = {}
    for site, lines in found.items():
        for line in lines:
            port, _, source = line.partition(" ")
            if port.isdigit() and source:
                rules.setdefault(site, set()).add((int(port), source))
    return rules


def registry_text(rules: Iterable[Rule]) -> str:
    return "".join(f"{port} {source}\n" for port, source in rules)


def wanted(env: Environment, host: Host, redis_port: int) -> tuple[Rule, ...]:
    """Every rule this site needs on ``host``: the public ports, then those let in from inside
    (pure)."""
    return (*((port, ANYWHERE) for port in public_ports(env, host)),
            *admitted(env, host, redis_port))


def public_ports(env: Environment, host: Host) -> list[int]:
    return [host.port, 80, 443] if host in env.public_hosts else [host.port]


def admitted(env: Environment, host: Host, redis_port: int) -> tuple[Rule, ...]:
    """(port, source address) pairs let in from inside: on the db host each other app host, to
    Postgres and to the site's Redis instance; on a web host behind an lb the lb, to the
    backend port (pure)."""
    pairs: list[Rule] = []
    if host == env.db_host:
        pairs += [(port, h.private) for h in env.app_hosts if h != host
                  for port in database.service_ports(env, redis_port)]
    if env.lb_host and "web" in host.roles:
        pairs.append((render.BACKEND_PORT, env.lb_host.private))
    return tuple(pairs)


def present(status: str) -> dict[Rule, str]:
    """The IPv4 TCP allow rules in ``UFW_STATE``'s output with their comments (pure)."""
    return {(int(port), ANYWHERE if source == "0.0.0.0/0" else source):
            bytes.fromhex(comment or "").decode(errors="replace")
            for port, source, comment in RULE_LINE.findall(status)}


def ufw_commands(status: str, rules: Iterable[Rule], ssh_port: int) -> list[list[str]]:
    """Commands that bring ufw, as ``UFW_STATE`` printed it, to allowing exactly ``rules`` of
    ours (pure)."""
    rules = list(dict.fromkeys(rules))
    cmds: list[list[str]] = []
    if not re.search(r'^DEFAULT_INPUT_POLICY="DROP"$', status, re.M):
        cmds.append(["ufw", "default", "deny", "incoming"])
    if not re.search(r'^DEFAULT_OUTPUT_POLICY="ACCEPT"$', status, re.M):
        cmds.append(["ufw", "default", "allow", "outgoing"])
    have = present(status)
    cmds += [["ufw", "allow", *_rule_args(rule), "comment", TAG]
             for rule in rules if rule not in have]
    cmds += stale(status, rules, ssh_port)
    if not re.search(r"^ENABLED=yes$", status, re.M):
        cmds.append(["ufw", "--force", "enable"])
    return cmds


def stale(status: str, rules: Iterable[Rule], ssh_port: int) -> list[list[str]]:
    """Deletions of our rules that no longer appear in ``rules``; never the SSH port (pure)."""
    keep = set(rules)
    return [["ufw", "delete", "allow", *_rule_args(rule)]
            for rule, comment in present(status).items()
            if comment == TAG and rule not in keep and rule[0] != ssh_port]


def _rule_args(rule: Rule) -> list[str]:
    port, source = rule
    if source == ANYWHERE:
        return [f"{port}/tcp"]
    return ["proto", "tcp", "from", source, "to", "any", "port", str(port)]


def _needed(sites: dict[str, set[Rule]], first: Iterable[Rule] = ()) -> list[Rule]:
    return [*first, *(rule for site in sorted(sites) for rule in sorted(sites[site]))]


def firewall(env: Environment, host: Host, found: FirewallFacts) -> Plan:
    """Record what this site needs, then allow what any site on the host needs and no more."""
    mine = wanted(env, host, cache.redis_port(env.site, found.redis_ports))
    others = {s: r for s, r in found.ufw_sites.items() if s != env.site}
    return (plan.write([FileSpec(registry_path(env.site), registry_text(mine))], found.ufw_files)
            + plan.commands(ufw_commands(found.ufw, _needed(others, mine), host.port)))


def forget(site: str, status: str, sites: dict[str, set[Rule]], ssh_port: int) -> Plan:
    """For ``fab remove``, from :func:`state_probes`' facts (ufw's ``status``, every site's
    rules): the site's record dropped, and the rules no other site needs (pure)."""
    if site not in sites:
        return Plan()
    others = {s: r for s, r in sites.items() if s != site}
    return (plan.commands(stale(status, _needed(others), ssh_port))
            + plan.run("rm", "-f", registry_path(site), change=registry_path(site)))
