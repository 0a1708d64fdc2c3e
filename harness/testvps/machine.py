"""Start, stop and wait for the supervisor process that runs one VPS (see supervisor.py)."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import harness
from harness.testvps import cgroup
from harness.testvps.shell import HarnessError, answers, find_pids, last_line, spawn, terminate

SUPERVISOR = "harness.testvps.supervisor"


def start(name: str, vps_dir: Path, host_cidr: str, binds: list[str]) -> int:
    """Start the supervisor of VPS ``name`` (rootfs in ``vps_dir/rootfs``); return its PID."""
    repository = str(Path(harness.__file__).resolve().parent.parent)  # harness/ lives here
    env = dict(os.environ, PYTHONPATH=repository)
    argv = [sys.executable, "-m", SUPERVISOR, name, str(vps_dir / "rootfs"), host_cidr, *binds]
    return spawn(argv, vps_dir / "console.log", cwd=vps_dir, env=env)


def _supervisors(name: str) -> list[int]:
    """PIDs of the supervisors of VPS ``name`` (its name is an exact argv element)."""
    return find_pids(SUPERVISOR, name)


def running(name: str) -> bool:
    return bool(_supervisors(name))


def stop(name: str, vps_dir: Path, timeout: float = 20) -> None:
    """Halt VPS ``name``: SIGTERM its supervisor, then SIGKILL whatever is left in its cgroups."""
    terminate(_supervisors(name), timeout)
    saved = vps_dir / "cgroups.json"
    if saved.exists():
        cgroup.kill_and_remove([Path(d) for d in json.loads(saved.read_text())])


def power_cut(name: str, address: str, vps_dir: Path) -> None:
    """Kill every process of VPS ``name`` at once (its supervisor boots it again); return once
    SSH answers again."""
    for pid in _supervisors(name):
        os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while answers(address, 22, b"SSH-", timeout=0.5) and time.monotonic() < deadline:
        time.sleep(0.05)
    wait_ssh(name, address, vps_dir)


def wait_ssh(name: str, address: str, vps_dir: Path, timeout: float = 90) -> None:
    """Wait until sshd on ``address`` greets; fail early if the VPS stops while booting."""
    deadline = time.monotonic() + timeout
    while not answers(address, 22, b"SSH-", timeout=1):
        if not _supervisors(name):
            raise HarnessError(f"VPS {name} stopped while booting: {_log_tail(vps_dir)}")
        if time.monotonic() > deadline:
            raise HarnessError(f"VPS {name}: no SSH on {address}:22 after {timeout:g} s: "
                               f"{_log_tail(vps_dir)}")
        time.sleep(0.1)


def _log_tail(vps_dir: Path) -> str:
    log = vps_dir / "console.log"
    tail = last_line(log.read_text(errors="replace")) if log.exists() else ""
    return f"last console line: {tail!r} (full log: {log})"
