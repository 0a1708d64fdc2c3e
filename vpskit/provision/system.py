"""Preflight checks and the base system: packages, unattended upgrades, timezone, swap."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from vpskit import facts, files, plan, resident, sh
from vpskit.config import Environment, Host
from vpskit.errors import ToolkitError
from vpskit.files import FileSpec, FileState, file_probe
from vpskit.plan import Plan
from vpskit.provision import mail

SUPPORTED = {("debian", "12"), ("debian", "13"), ("ubuntu", "22.04"), ("ubuntu", "24.04")}
RESIDENT_PACKAGES = ("git", "python3-venv")  # vpskit/resident.py
BASE_PACKAGES = ("ca-certificates", "curl", "sudo", "ufw", "unattended-upgrades", "tzdata", "socat")
ROLE_PACKAGES = {"web": ("python3", "python3-venv", "nginx", "certbot"),
                 "worker": ("python3", "python3-venv"),
                 "db": ("postgresql", "redis-server"),
                 "lb": ("nginx", "certbot")}
APT_FRESH_SECONDS = 24 * 3600
AUTO_UPGRADES = FileSpec(
    "/etc/apt/apt.conf.d/20auto-upgrades",
    'APT::Periodic::Update-Package-Lists "1";\nAPT::Periodic::Unattended-Upgrade "1";\n',
)
APT_ENV = ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-q", "-y",
           "-o", "DPkg::Lock::Timeout=300", "-o", "Dpkg::Options::=--force-confdef",
           "-o", "Dpkg::Options::=--force-confold"]


def packages_for(roles: tuple[str, ...], offsite: bool = False, mta: bool = False,
                 resident: bool = False) -> list[str]:
    """What a host with ``roles`` needs installed; ``age`` on the host that encrypts the
    off-site copies, Postfix where alerts are mailed, git and a virtualenv where a resident
    vpskit deploys (pure)."""
    wanted = [*BASE_PACKAGES, *(p for role in roles for p in ROLE_PACKAGES[role]),
              *(["age"] if offsite else []), *(mail.PACKAGES if mta else ()),
              *(RESIDENT_PACKAGES if resident else ())]
    return list(dict.fromkeys(wanted))


def wanted_packages(env: Environment, host: Host, mta: bool = True) -> list[str]:
    return packages_for(host.roles, env.offsite.enabled and host == env.db_host,
                        mta and mail.wanted(env), resident.serves(env, host))


@dataclass(frozen=True)
class SystemFacts:
    os: dict[str, str]
    resources: dict[str, int]
    packages: set[str]
    apt_age: int  # seconds since the apt lists were refreshed
    timezone_ok: bool
    system_files: dict[str, FileState]
    dpkg_unsettled: bool  # apt busy, or an earlier install cut off
    other_mta: bool = False  # gathered by mail's probes, when alerts are mailed


def probes(env: Environment, host: Host) -> list[facts.Probe]:
    """Facts the preflight and system steps need, gathered before anything changes."""
    return [
        facts.os_release(), facts.resources(), facts.packages(wanted_packages(env, host)),
        facts.Probe("apt_age", "echo $(( $(date +%s) - $(stat -c %Y /var/lib/apt/lists "
                               "/var/cache/apt/pkgcache.bin 2>/dev/null | sort -n | tail -1) ))",
                    lambda out, rc: int(out.strip() or 10**9)),
        facts.Probe("timezone_ok", 'test "$(readlink -f /etc/localtime)" = "$(readlink -f '
                    f'{shlex.quote("/usr/share/zoneinfo/" + env.system.timezone)})"',
                    lambda out, rc: rc == 0),
        file_probe([AUTO_UPGRADES.path], "system_files"),
        facts.Probe("dpkg_unsettled", "pgrep -x 'apt|apt-get|dpkg' || "
                    "dpkg --audit", lambda out, rc: bool(out.strip())),
    ]


def check_supported(os_info: dict[str, str], resources: dict[str, int], min_free_mb: int) -> None:
    """Refuse an OS we do not support or a disk too full to provision (pure)."""
    key = (os_info.get("ID", "?"), os_info.get("VERSION_ID", "?"))
    if key not in SUPPORTED:
        name = os_info.get("PRETTY_NAME", " ".join(key))
        raise ToolkitError(f"unsupported OS '{name}'; vpskit supports Debian 12/13 and "
                           f"Ubuntu 22.04/24.04 — reinstall the VPS with one of those")
    if resources["disk_free_mb"] < min_free_mb:
        raise ToolkitError(f"only {resources['disk_free_mb']} MiB free on /; need "
                           f"{min_free_mb} MiB — free space or resize the disk "
                           f"(system.min_free_mb lowers the bar)")


def preflight(env: Environment, host: Host, found: SystemFacts) -> Plan:
    """Always reads, never changes: OS, disk, sudo."""
    check_supported(found.os, found.resources, env.system.min_free_mb)
    return Plan()


def packages(env: Environment, host: Host, found: SystemFacts) -> Plan:
    """Refresh apt lists when older than a day or packages are missing; install the missing."""
    result = Plan()
    if found.dpkg_unsettled:  # apt still busy, or an earlier run was cut off mid-install
        result += plan.run("bash", "-c", SETTLE_DPKG, timeout=1800,
                           change="waited for apt/dpkg and finished any interrupted install")
    wanted = wanted_packages(env, host, mta=not found.other_mta)  # a host's own MTA stays
    missing = [p for p in wanted if p not in found.packages]
    if missing or found.apt_age > APT_FRESH_SECONDS:
        result += plan.run(*APT_ENV, "update", timeout=600, change="apt lists refreshed")
    if missing:
        result += plan.run(*APT_ENV, "install", "--no-install-recommends", *missing,
                           timeout=1800, change=f"installed {' '.join(missing)}")
    return result + plan.write([AUTO_UPGRADES], found.system_files)


def timezone(env: Environment, host: Host, found: SystemFacts) -> Plan:
    """Set the timezone (UTC by default) by linking /etc/localtime; never restarts anything."""
    zone = env.system.timezone
    if found.timezone_ok:
        return Plan()
    spec = files.FileSpec("/etc/timezone", f"{zone}\n")
    return (plan.run("ln", "-sfn", f"/usr/share/zoneinfo/{zone}", "/etc/localtime",
                     change=f"timezone {zone}")
            + plan.run(*files.write_argv(spec), stdin=spec.content))


def swap(env: Environment, host: Host, found: SystemFacts) -> Plan:
    """A swap file on machines with less than 2 GiB RAM and no swap (system.swap_mb)."""
    res, size = found.resources, env.system.swap_mb
    if size == 0 or res["mem_mb"] >= 2048 or res["swap_mb"] > 0:
        return Plan()
    return plan.run("bash", "-c", SWAP_SCRIPT, "swap", str(size), change=f"/swapfile {size} MiB")


SWAP_SCRIPT = sh.script("swap")


SETTLE_DPKG = sh.script("settle-dpkg")
