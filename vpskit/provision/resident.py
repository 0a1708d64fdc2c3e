"""The resident vpskit (:mod:`vpskit.resident`) on the one host of an environment with a CI
login: installed or refreshed when this vpskit differs, its self login, the site's copy of the
inventory and secrets; without a CI login there, the site's copy removed."""

from __future__ import annotations

from dataclasses import dataclass

from vpskit import facts, plan, resident, sh
from vpskit.config import Environment, Host
from vpskit.files import FileSpec, FileState, file_probe
from vpskit.plan import Plan

INSTALL_SCRIPT = sh.script("resident-install")
SELF_KEY_SCRIPT = sh.script("self-key")


@dataclass(frozen=True)
class ResidentFacts:
    resident_files: dict[str, FileState]
    resident_stamp: str | None = None
    self_public_key: str | None = None
    host_key: str | None = None
    # This machine's side, with a resident only: the package, its requirements, the inventory.
    resident_package: bytes = b""
    resident_pins: tuple[str, ...] = ()
    resident_inventory: str = ""


def copy_paths(env: Environment) -> list[str]:
    """The site's copy of the inventory and of its secrets."""
    folder = resident.config_dir(env)
    return [f"{folder}/inventory.yml", f"{folder}/.env.{env.name}"]


def probes(env: Environment, host: Host) -> list[facts.Probe]:
    found = [file_probe([*copy_paths(env), resident.SELF_AUTHORIZED, resident.SELF_KNOWN_HOSTS],
                        "resident_files")]
    if resident.serves(env, host):
        found += [facts.text(resident.STAMP, "resident_stamp"),
                  facts.text(f"{resident.SELF_KEY}.pub", "self_public_key"),
                  facts.text(resident.HOST_KEY, "host_key")]
    return found


def local_facts(env: Environment, host: Host) -> dict:
    """This machine's facts of the step: what the resident would be, read here."""
    if not resident.serves(env, host):
        return {}
    with open(env.inventory_file) as f:
        original = f.read()
    return {"resident_package": resident.package(), "resident_pins": tuple(resident.pins()),
            "resident_inventory": resident.inventory_text(env, original)}


def resident_vpskit(env: Environment, host: Host, found: ResidentFacts) -> Plan:
    """The resident and the site's copy, or the copy gone without a CI login (pure)."""
    copies = copy_paths(env)
    if not resident.serves(env, host):
        if not any(path in found.resident_files for path in copies):
            return Plan()
        return plan.run("rm", "-rf", resident.config_dir(env),
                        change=f"removed {resident.config_dir(env)}")
    result = Plan()
    wanted = resident.digest(found.resident_package, list(found.resident_pins))
    if (found.resident_stamp or "").strip() != wanted:
        result += plan.run("bash", "-c", INSTALL_SCRIPT, "resident-install", resident.HOME,
                           wanted, *found.resident_pins, stdin=found.resident_package,
                           timeout=900, change=f"resident vpskit installed in {resident.HOME}")
    specs = [FileSpec(copies[0], found.resident_inventory, mode=0o600),
             FileSpec(copies[1], resident.secrets_text(env), mode=0o600, secret=True)]
    if found.host_key:
        specs.append(FileSpec(resident.SELF_KNOWN_HOSTS,
                              resident.known_hosts_text(host, found.host_key), mode=0o600))
    if found.self_public_key:
        specs.append(FileSpec(resident.SELF_AUTHORIZED,
                              resident.authorized_text(found.self_public_key)))
    else:
        result += plan.run("bash", "-c", SELF_KEY_SCRIPT, "self-key", resident.SELF_KEY,
                           resident.SELF_AUTHORIZED, resident.SELF_OPTIONS,
                           change=f"{resident.SELF_KEY} made, for loopback logins only")
    return result + plan.write(specs, found.resident_files)
