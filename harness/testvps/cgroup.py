"""One cgroup subtree per VPS, in the cgroup2 and ``name=systemd`` hierarchies.

With ``--keep-unit`` every container would share the caller's cgroup, and parallel halts hang now
and then (``systemd-halt.service`` stuck); a sub-cgroup of its own per VPS fixes that.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from harness.testvps.shell import HarnessError


def _hierarchies() -> list[tuple[Path, str]]:
    """``(mount point, this process's path in it)`` for cgroup2 and the name=systemd v1 tree."""
    mounts = {}
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _, mount_point, fstype, options = line.split()[:4]
        if fstype == "cgroup2":
            mounts["0:"] = Path(mount_point)
        elif fstype == "cgroup" and "name=systemd" in options.split(","):
            mounts["name=systemd"] = Path(mount_point)
    found = []
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        number, controllers, path = line.split(":", 2)
        key = "0:" if number == "0" else controllers
        if key in mounts:
            found.append((mounts[key], path))
    return found


def enter_own(name: str) -> list[Path]:
    """Move this process into ``<current>/vps-<name>`` in each hierarchy; return those dirs."""
    dirs = []
    for mount_point, path in _hierarchies():
        own = mount_point / path.lstrip("/") / f"vps-{name}"
        own.mkdir(exist_ok=True)
        (own / "cgroup.procs").write_text(f"{os.getpid()}\n")
        dirs.append(own)
    return dirs


def pids(dirs: list[Path]) -> set[int]:
    """Every process in the cgroup subtrees ``dirs``."""
    pids = set()
    for top in dirs:
        for folder, _, _ in os.walk(top):
            with contextlib.suppress(OSError):  # gone meanwhile
                pids.update(int(p) for p in Path(folder, "cgroup.procs").read_text().split())
    return pids


def kill_and_remove(dirs: list[Path], timeout: float = 5) -> None:
    """SIGKILL whatever is left in ``dirs`` and remove the subtrees, deepest first."""
    deadline = time.monotonic() + timeout
    while (left := pids(dirs)) and time.monotonic() < deadline:
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    for top in dirs:
        for folder, _, _ in sorted(os.walk(top), key=lambda entry: -len(entry[0])):
            try:
                os.rmdir(folder)
            except FileNotFoundError:
                pass
            except OSError as exc:
                stuck = sorted(pids([Path(folder)]))
                why = f"cannot remove {folder} ({exc.strerror}); PIDs in it: {stuck}"
                raise HarnessError(why) from None
