"""The resident vpskit (:mod:`vpskit.resident`): on the first host of an environment with a CI
login there, its key (made before the other hosts' steps read it), the resident installed or
refreshed when this vpskit differs, the site's copy of the inventory and secrets and the hosts'
keys; on the environment's other hosts, that key allowed from the first host. Without a CI
login there, the site's copy and its key's lines elsewhere are removed."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from vpskit import facts, plan, resident, sh
from vpskit.config import Environment, Host
from vpskit.files import FileSpec, FileState, file_probe
from vpskit.plan import Plan

INSTALL_SCRIPT = sh.script("resident-install")
SELF_KEY_SCRIPT = sh.script("self-key")


@dataclass(frozen=True)
class ResidentFacts:
    resident_files: dict[str, FileState]
    self_authorized: str | None = None  # sshd's second AuthorizedKeysFile
    resident_stamp: str | None = None
    resident_sites: list[str] = field(default_factory=list)  # whose copies the host keeps
    self_public_key: str | None = None  # the first host's, on every host of the environment
    resident_host_keys: dict[str, str] = field(default_factory=dict)  # by address
    # This machine's side, with a resident only: the package, its requirements, the inventory.
    resident_package: bytes = b""
    resident_pins: tuple[str, ...] = ()
    resident_inventory: str = ""


def copy_paths(env: Environment) -> list[str]:
    """The site's copy of the inventory, of its secrets and its hosts' keys."""
    folder = resident.config_dir(env)
    return [f"{folder}/inventory.yml", f"{folder}/.env.{env.name}", resident.known_hosts_path(env)]


def probes(env: Environment, host: Host) -> list[facts.Probe]:
    found = [file_probe([*copy_paths(env), resident.SELF_AUTHORIZED], "resident_files"),
             facts.text(resident.SELF_AUTHORIZED, "self_authorized"),
             facts.text(resident.STAMP, "resident_stamp"),
             facts.Probe("resident_sites", f"cd {resident.COPIES} && ls -d -- *.d",
                         lambda out, rc: [n.removesuffix(".d") for n in out.split()] if rc == 0
                         else [])]
    if resident.serves(env, host):
        found.append(self_key_probe())
    if resident.orchestrator(env):
        found.append(host_key_probe())
    return found


def self_key_probe() -> facts.Probe:
    return facts.text(f"{resident.SELF_KEY}.pub", "self_public_key")


def host_key_probe() -> facts.Probe:
    return facts.text(resident.HOST_KEY, "host_key")


def local_facts(env: Environment, host: Host) -> dict:
    """This machine's facts of the step: what the resident would be, read here."""
    if not resident.serves(env, host):
        return {}
    with open(env.inventory_file) as f:
        original = f.read()
    return {"resident_package": resident.package(), "resident_pins": tuple(resident.pins()),
            "resident_inventory": resident.inventory_text(env, original)}


def self_key(env: Environment, host: Host, found: ResidentFacts) -> Plan:
    """The resident's key, made once on its host; its public half a fact (pure)."""
    if not resident.serves(env, host) or found.self_public_key:
        return Plan()
    return plan.run("bash", "-c", SELF_KEY_SCRIPT, "self-key", resident.SELF_KEY,
                    read=("printed", "self_public_key", "self-key", resident.SELF_KEY),
                    change=f"{resident.SELF_KEY} made, for the resident vpskit's logins")


def resident_vpskit(env: Environment, host: Host, found: ResidentFacts) -> Plan:
    """The resident and the site's copy on its host; its key's line on every host of the
    environment; without a CI login, the copy and the key's lines on the other hosts gone, and
    the resident itself once no site on its host has a copy (pure)."""
    if resident.serves(env, host):
        return _resident(env, host, found) + _authorized(found, {
            resident.SELF_TAG: resident.SELF_OPTIONS})
    result = Plan()
    if any(path in found.resident_files for path in copy_paths(env)):
        result += plan.run("rm", "-rf", resident.config_dir(env),
                           change=f"removed {resident.config_dir(env)}")
    lines = {resident.member_tag(env): resident.member_options(env)
             if host in resident.members(env) else None}
    if found.resident_stamp is not None and set(found.resident_sites) <= {env.site}:
        result += plan.run("rm", "-rf", resident.HOME, os.path.dirname(resident.SELF_KEY),
                           change="removed the resident vpskit and its key: no site here "
                                  "deploys through it")
        lines[resident.SELF_TAG] = None
    return result + _authorized(found, lines)


def _resident(env: Environment, host: Host, found: ResidentFacts) -> Plan:
    result = Plan()
    wanted = resident.digest(found.resident_package, list(found.resident_pins))
    if (found.resident_stamp or "").strip() != wanted:
        result += plan.run("bash", "-c", INSTALL_SCRIPT, "resident-install", resident.HOME,
                           wanted, *found.resident_pins, stdin=found.resident_package,
                           timeout=900, change=f"resident vpskit installed in {resident.HOME}")
    copies = copy_paths(env)
    return result + plan.write([
        FileSpec(copies[0], found.resident_inventory, mode=0o600),
        FileSpec(copies[1], resident.secrets_text(env), mode=0o600, secret=True),
        FileSpec(copies[2], resident.known_hosts_text(env, found.resident_host_keys), mode=0o600)],
        found.resident_files)


def _authorized(found: ResidentFacts, lines: dict[str, str | None]) -> Plan:
    """sshd's second AuthorizedKeysFile with the resident key's line ending in each tag of
    ``lines`` given those options, or gone (None); a line to add waits for the key (a dry
    run)."""
    current = wanted = found.self_authorized or ""
    for tag, options in lines.items():
        if options is None:
            wanted = resident.authorized_text(wanted, tag, None)
        elif found.self_public_key:
            wanted = resident.authorized_text(wanted, tag, resident.authorized_line(
                options, found.self_public_key, tag))
    if wanted == current:
        return Plan()
    return plan.write([FileSpec(resident.SELF_AUTHORIZED, wanted)], found.resident_files)
