"""Host side of a VPS's network: veth address, NAT chain, ip_forward and /etc/hosts lines.

Callers hold the harness lock around :func:`add_nat`, :func:`remove_nat` and the hosts file.
"""

from __future__ import annotations

from pathlib import Path

from harness.testvps.shell import HarnessError, run
from harness.testvps.state import STATE_DIR

TABLE = "vpsnat"
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
SAVED_FORWARD = STATE_DIR / "ip_forward.before"
HOSTS = Path("/etc/hosts")


def subnet(index: int) -> str:
    return f"10.77.{index}.0/24"


def veth(name: str) -> str:
    return f"ve-{name}"


def check_free(name: str, index: int) -> None:
    """Fail clearly when a process left from an earlier run holds the veth name or the /24."""
    if Path(f"/sys/class/net/{veth(name)}").exists():
        raise HarnessError(
            f"interface {veth(name)} already exists (left by an earlier run?): "
            f"run `python -m harness.testvps down --name {name}`"
        )
    used = run("ip", "-4", "-o", "addr", "show", "to", subnet(index)).stdout.split()
    if used:
        raise HarnessError(
            f"{subnet(index)} is already on interface {used[1]}: pick another --index, "
            "or down the VPS that uses it"
        )


def add_host_address(name: str, host_cidr: str) -> None:
    """Give the host's end of the (re-created) veth its address and bring it up."""
    run("ip", "addr", "replace", host_cidr, "dev", veth(name))
    run("ip", "link", "set", veth(name), "up")


def _chain(name: str) -> str:
    return "post_" + name.replace("-", "_")


def _exists(*what: str) -> bool:
    """Whether an nft object exists, by the exit code of ``nft list`` (no pipe to grep)."""
    return run("nft", "list", *what, check=False).returncode == 0


def default_interface() -> str:
    words = run("ip", "-4", "route", "show", "default").stdout.split()
    if "dev" not in words:
        raise HarnessError("this host has no IPv4 default route: a VPS could not reach its mirror")
    return words[words.index("dev") + 1]


def add_nat(name: str, index: int) -> None:
    """Masquerade the VPS's /24 out of the default route's interface, in its own nft chain."""
    if not _exists("table", "ip", TABLE):
        if not SAVED_FORWARD.exists():
            SAVED_FORWARD.write_text(IP_FORWARD.read_text())
        run("nft", "add", "table", "ip", TABLE)
    IP_FORWARD.write_text("1\n")
    chain = _chain(name)
    run("nft", "add", "chain", "ip", TABLE, chain,
        "{ type nat hook postrouting priority 100 ; }")
    run("nft", "flush", "chain", "ip", TABLE, chain)
    run("nft", "add", "rule", "ip", TABLE, chain, "ip", "saddr", subnet(index),
        "oifname", default_interface(), "masquerade")


def remove_nat(name: str) -> None:
    """Delete the VPS's chain; with the last one, the table too, and restore ip_forward."""
    if _exists("chain", "ip", TABLE, _chain(name)):
        run("nft", "delete", "chain", "ip", TABLE, _chain(name))
    if _exists("table", "ip", TABLE):
        if "chain " in run("nft", "list", "table", "ip", TABLE).stdout:
            return
        run("nft", "delete", "table", "ip", TABLE)
    if SAVED_FORWARD.exists():
        IP_FORWARD.write_text(SAVED_FORWARD.read_text())
        SAVED_FORWARD.unlink()


def _tag(name: str) -> str:
    return f"# vpskit-testvps:{name}"


def hosts_without(text: str, name: str) -> str:
    """``text`` (an /etc/hosts) without the lines tagged for VPS ``name``."""
    return "".join(
        line for line in text.splitlines(keepends=True) if not line.rstrip().endswith(_tag(name))
    )


def hosts_with(text: str, name: str, address: str, domains: tuple[str, ...]) -> str:
    """``text`` with exactly one tagged line ``<address> <domain>`` per domain of VPS ``name``."""
    text = hosts_without(text, name)
    if text and not text.endswith("\n"):
        text += "\n"
    return text + "".join(f"{address} {domain}  {_tag(name)}\n" for domain in domains)


def write_hosts(text: str) -> None:
    """Rewrite /etc/hosts in place (it may be a bind mount, which a rename would fail on)."""
    if text != HOSTS.read_text():
        with HOSTS.open("r+") as handle:
            handle.write(text)
            handle.truncate()
