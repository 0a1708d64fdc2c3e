"""Host commands and detached processes for the harness; every failure is one HarnessError line."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import time
from pathlib import Path

from vpskit.errors import ToolkitError

CHROOT_ENV = {
    "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    "LC_ALL": "C",
    "SYSTEMD_LOG_LEVEL": "err",  # trixie's systemctl warns "/proc is not mounted" in a chroot
    "DEBIAN_FRONTEND": "noninteractive",
}


class HarnessError(ToolkitError):
    """The test VPS harness could not do what was asked; the message says what and how to fix."""


def last_line(text: str, limit: int = 300) -> str:
    """The last non-empty line of ``text``, cut to ``limit`` characters."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:limit] if lines else ""


def run(
    *cmd: str | Path,
    check: bool = True,
    env: dict[str, str] | None = None,
    timeout: float | None = 600,
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` (an argument list), capture its output, raise HarnessError if it fails."""
    argv = [str(a) for a in cmd]
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, env=env, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except FileNotFoundError:
        raise HarnessError(f"{argv[0]}: command not found on this host") from None
    except subprocess.TimeoutExpired:
        raise HarnessError(f"{shlex.join(argv)}: no result within {timeout:g} s") from None
    if check and proc.returncode != 0:
        why = last_line(proc.stderr) or last_line(proc.stdout)
        raise HarnessError(f"{shlex.join(argv)} failed (exit {proc.returncode}): {why}")
    return proc


def chroot(root: Path, *cmd: str) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` inside the root filesystem ``root`` with a clean, quiet environment."""
    return run("chroot", root, *cmd, env=CHROOT_ENV)


def ensure_packages(*packages: str) -> None:
    """apt-get install those host ``packages`` that are missing; does nothing when all are there."""
    missing = [
        p
        for p in packages
        if run("dpkg-query", "-W", "-f=${db:Status-Abbrev}", p, check=False).stdout[:2] != "ii"
    ]
    if missing:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        run("apt-get", "update", "-q", env=env)
        run("apt-get", "install", "-y", "-q", "--no-install-recommends", *missing, env=env)


def spawn(argv: list[str], log: Path, cwd: Path, env: dict[str, str] | None = None) -> int:
    """Start ``argv`` detached (own session, no stdin, output appended to ``log``); return its PID.

    A throw-away ``sh`` starts it in the background and exits, so the process does not stay a
    child of the caller (no zombie, no ResourceWarning when a test session ends).
    """
    script = 'setsid "$@" </dev/null >>"$VPSKIT_LOG" 2>&1 & echo $!'
    env = dict(env or os.environ, VPSKIT_LOG=str(log))
    out = subprocess.run(
        ["sh", "-c", script, "sh", *argv], capture_output=True, text=True, env=env, cwd=cwd,
        check=True,
    )
    return int(out.stdout)


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live (non-zombie) process; unlike :func:`cmdline`, true while it
    execs (its argv reads empty for a moment then)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def cmdline(pid: int) -> list[str]:
    """The argv of a live (non-zombie) process, or ``[]`` (also for a moment while it execs)."""
    if not alive(pid):
        return []
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
    except OSError:
        return []


def find_pids(*argv_part: str) -> list[int]:
    """PIDs of live processes whose argv contains every string of ``argv_part``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and all(a in cmdline(int(entry.name)) for a in argv_part):
            pids.append(int(entry.name))
    return pids


def terminate(pids: list[int], timeout: float) -> None:
    """SIGTERM ``pids``, wait up to ``timeout`` s for them to end, then SIGKILL the rest."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while (pids := [p for p in pids if alive(p)]) and time.monotonic() < deadline:
            time.sleep(0.05)


def answers(address: str, port: int, prefix: bytes = b"", timeout: float = 1.0) -> bool:
    """Whether ``address:port`` accepts a TCP connection (and greets with ``prefix`` if given)."""
    try:
        with socket.create_connection((address, port), timeout=timeout) as sock:
            return not prefix or sock.recv(len(prefix)) == prefix
    except OSError:
        return False
