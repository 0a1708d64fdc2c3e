"""The process that runs a VPS: ``python -m harness.testvps.supervisor NAME ROOT CIDR [--bind=]..``.

It moves itself into the VPS's own cgroup, runs systemd-nspawn, gives the host's end of each new
veth its address, and starts nspawn again when it exits with 133 (``systemctl reboot`` inside),
as a real VPS comes back after a reboot. SIGTERM halts the container and ends the loop.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from harness.testvps import cgroup, network
from harness.testvps.shell import HarnessError, run

REBOOT = 133


def _wait_for(check, timeout: float, child: subprocess.Popen | None = None) -> bool:
    """Poll ``check`` until true (True), or until timeout or ``child``'s exit (False)."""
    deadline = time.monotonic() + timeout
    while not check():
        if (child and child.poll() is not None) or time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def main(name: str, root: str, host_cidr: str, *binds: str) -> int:
    dirs = cgroup.enter_own(name)
    (Path(root).parent / "cgroups.json").write_text(json.dumps([str(d) for d in dirs]))
    veth = Path(f"/sys/class/net/{network.veth(name)}")
    child: subprocess.Popen | None = None
    stopping = power_cut = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)

    def cut_power(signum, frame):
        nonlocal power_cut
        power_cut = True
        for pid in cgroup.pids(dirs) - {os.getpid()}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, stop)
    signal.signal(signal.SIGUSR1, cut_power)
    while not stopping:
        child = subprocess.Popen([
            "systemd-nspawn", "-D", root, "--boot", f"--machine={name}",
            "--register=no", "--keep-unit", "--network-veth", *binds,
        ], stdin=subprocess.DEVNULL)
        if stopping:  # SIGTERM came between the loop test and Popen
            child.send_signal(signal.SIGTERM)
        if _wait_for(veth.exists, 30, child):
            try:
                network.add_host_address(name, host_cidr)
            except HarnessError as exc:
                print(f"supervisor: {exc}", flush=True)
        code = child.wait()
        if (code != REBOOT and not power_cut) or stopping:
            print(f"supervisor: systemd-nspawn exited with {code}", flush=True)
            return code
        print(f"supervisor: {'power cut' if power_cut else 'VPS rebooted'}, starting it again",
              flush=True)
        power_cut = False
        if not _wait_for(lambda: not veth.exists(), 5):
            run("ip", "link", "delete", veth.name, check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
