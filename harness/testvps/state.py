"""Where the harness keeps things, the one lock over shared state, and the saved record of a VPS."""

from __future__ import annotations

import dataclasses
import fcntl
import json
import re
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.testvps.shell import HarnessError
from vpskit.config import Host

STATE_DIR = Path("/var/lib/vpskit-testvps")  # operator key, Pebble CA, one directory per VPS
CACHE_DIR = Path("/var/cache/vpskit")  # rootfs tarballs, apt and pip caches (kept across runs)
SUITES = ("bookworm", "trixie")
# "ve-" + name must fit a 15-character interface name, else nspawn shortens it.
NAME_RE = re.compile(r"[a-z][a-z0-9-]{0,11}")
LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
DOMAIN_RE = re.compile(rf"(?=.{{1,253}}$)({LABEL}\.)*{LABEL}")


@dataclass(frozen=True)
class Vps:
    """A running test VPS, as :func:`harness.testvps.up` started it."""

    name: str
    index: int
    suite: str
    address: str  # 10.77.<index>.2, inside the VPS's own network namespace
    host_address: str  # 10.77.<index>.1, the host's end of the veth (and where Pebble listens)
    pid: int  # the supervisor that runs systemd-nspawn
    key_path: str  # the operator's private key, authorized for root
    known_hosts_path: str  # pins this VPS's host keys
    domains: tuple[str, ...] = ()
    ssh_port: int = 22

    def connect_kwargs(self) -> dict[str, Any]:
        """Fabric ``connect_kwargs`` that log in with the operator key only."""
        return {"key_filename": self.key_path, "look_for_keys": False, "allow_agent": False}

    def host(self, user: str = "root") -> Host:
        """This VPS as an inventory host reached as ``user``, its host keys pinned."""
        return Host(
            address=self.address, user=user, port=self.ssh_port, key=self.key_path,
            known_hosts=self.known_hosts_path,
        )

    def ssh_command(self) -> str:
        """An ``ssh`` command line that logs in as root with strict host key checking."""
        return shlex.join([
            "ssh", "-i", self.key_path, "-o", f"UserKnownHostsFile={self.known_hosts_path}",
            "-o", "StrictHostKeyChecking=yes", f"root@{self.address}",
        ])


def check_args(name: str, index: int = 0, suite: str = "bookworm", domains=()) -> None:
    """Raise HarnessError for a bad VPS name, index, suite or domain; touches nothing."""
    if not NAME_RE.fullmatch(name):
        raise HarnessError(f"VPS name {name!r}: use 1-12 of a-z, 0-9, '-' starting with a letter")
    if not 0 <= index <= 255:
        raise HarnessError(f"VPS index {index}: must be 0..255 (the VPS gets 10.77.<index>.2)")
    if suite not in SUITES:
        raise HarnessError(f"suite {suite!r}: supported are {', '.join(SUITES)}")
    for domain in domains:
        if not DOMAIN_RE.fullmatch(domain):
            raise HarnessError(f"domain {domain!r}: not a lower-case host name")


def vps_dir(name: str) -> Path:
    return STATE_DIR / name


@contextmanager
def lock() -> Iterator[None]:
    """Hold the harness's one exclusive lock (not re-entrant: never nest it)."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with open(STATE_DIR / "lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def save(vps: Vps) -> None:
    path = vps_dir(vps.name) / "state.json"
    path.write_text(json.dumps(dataclasses.asdict(vps), indent=1) + "\n")


def load_all() -> list[Vps]:
    """Every VPS with a saved record, by name."""
    found = []
    for path in sorted(STATE_DIR.glob("*/state.json")):
        data = json.loads(path.read_text())
        found.append(Vps(**{**data, "domains": tuple(data["domains"])}))
    return found
