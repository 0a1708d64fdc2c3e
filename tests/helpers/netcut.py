"""Cut one process's SSH connections to a VPS as a dead link does: every packet of them dropped
both ways on the test host (nftables), the process and the server left to find out by
themselves. Other connections to the VPS (the test's own checks) go on working."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager


def ssh_ports(pid: int, address: str) -> list[int]:
    """The local ports of ``pid``'s TCP connections to ``address``:22."""
    out = subprocess.run(["ss", "-Htnp", "dst", f"{address}:22"], check=True,
                         capture_output=True, text=True).stdout
    return [int(m[1]) for line in out.splitlines() if f"pid={pid}," in line
            for m in [re.search(r":(\d+)\s+\S*" + re.escape(address) + r":22\b", line)] if m]


@contextmanager
def cut(pid: int, address: str) -> Iterator[list[int]]:
    """Drop ``pid``'s SSH connections to ``address`` for the block; yields their ports."""
    ports = ssh_ports(pid, address)
    assert ports, f"process {pid} has no SSH connection to {address}"
    table = f"vpskit_cut_{pid}"
    listed = ", ".join(map(str, ports))
    rules = (f"table inet {table} {{\n"
             f"  chain out {{ type filter hook output priority 0; ip daddr {address} "
             f"tcp sport {{ {listed} }} drop; }}\n"
             f"  chain in {{ type filter hook input priority 0; ip saddr {address} "
             f"tcp dport {{ {listed} }} drop; }}\n}}\n")
    subprocess.run(["nft", "-f", "-"], input=rules, text=True, check=True)
    try:
        yield ports
    finally:
        subprocess.run(["nft", "delete", "table", "inet", table], check=True)
