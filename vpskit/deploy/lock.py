"""The site's lock: a server-side ``flock`` held by an SSH channel for a whole deploy,
rollback, restore, removal or backup (the backup timer takes it with ``flock`` too).

The kernel drops the lock when the holder's SSH session ends (deploy finished, crashed or was
killed) and the site's server-side units (:mod:`vpskit.serverop`: a migration, a restore) have
ended, so a dead deploy never blocks the next one, its work on the server is never raced, and
nothing has to guess whether the holder is gone. A holder file says who holds it, since when,
and with which pid.

Before a step that leaves the site down until a later one (a restore stops the app), the holder
arms an undo journal (:func:`armed`): commands the lock's server-side process runs, still
holding the lock, if the holder's session ends before the journal is removed, and which the
next holder runs first if even that process was killed.
"""

from __future__ import annotations

import getpass
import json
import os
import shlex
import socket
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from vpskit import facts, files, plan, serverop, sh
from vpskit.errors import LockHeldError, RemoteError
from vpskit.plan import Plan
from vpskit.remote import Remote
from vpskit.render import lock_path

BUSY = 75  # flock -E: exit code when the lock is taken
HOLD = sh.script("hold-lock")


def holder_info(what: str) -> str:
    """Who is deploying: user@machine, pid, start time and what (pure but for the clock)."""
    return json.dumps({"by": f"{getpass.getuser()}@{socket.gethostname()}", "pid": os.getpid(),
                       "since": datetime.now(UTC).isoformat(timespec="seconds"), "what": what})


def describe_holder(raw: str) -> str:
    try:
        info = json.loads(raw)
    except ValueError:
        return "another deploy"
    return f"{info['by']} (pid {info['pid']}, {info['what']}) since {info['since']}"


@contextmanager
def deploy_lock(remote: Remote, site: str, what: str, wait: float = 15, queue: int = 0,
                say: Callable[[str], None] = lambda text: print(text, file=sys.stderr)
                ) -> Iterator[None]:
    """Hold the lock for the ``with`` block; raise :class:`LockHeldError` naming the holder,
    at once or after waiting ``queue`` seconds for it. What the server finished or undid for
    an earlier holder that died is told through ``say`` (:func:`recovered_note`)."""
    path = lock_path(site)
    how = ["--wait", str(queue)] if queue else ["--nonblock"]
    line = remote.command(["flock", *how, "--conflict-exit-code", str(BUSY), path,
                           "bash", "-c", HOLD, "hold", path, holder_info(what),
                           serverop.units_glob(site)])
    wait += queue
    channel = remote.channel(line)
    channel.settimeout(wait)
    try:
        lines = channel.makefile("rb")
        deadline = time.monotonic() + wait
        first = b""
        while time.monotonic() < deadline:
            first = lines.readline()
            if not first.startswith(b"RECOVERED\t"):
                break
            say(f"{remote.host}: {recovered_note(first.decode(errors='replace'))}")
        if first.strip() != b"LOCKED":
            code = channel.recv_exit_status()
            if code == BUSY:
                holder = remote.run(["cat", f"{path}.holder"], check=False).stdout
                raise LockHeldError(
                    f"{remote.host}: {site} is locked by {describe_holder(holder)}; wait for it "
                    f"to finish (a killed deploy releases the lock when its SSH session ends "
                    f"and its work on the server is over)")
            raise RemoteError(f"{remote.host}: could not take the deploy lock {path} "
                              f"(exit {code}): {channel.recv_stderr(4096).decode().strip()}")
        yield
    finally:
        channel.shutdown_write()  # the holder's `cat` ends, flock releases
        channel.status_event.wait(5)
        channel.close()


def recovered_note(line: str) -> str:
    """``RECOVERED<TAB>time<TAB>holder<TAB>done`` from the lock's holder as a sentence (pure)."""
    _, when, holder, done = (line.rstrip("\n").split("\t") + ["", "", ""])[:4]
    return f"{describe_holder(holder)} ended before its work on the server; at {when} the " \
           f"server {done}"


def probe(site: str) -> facts.Probe:
    """The site's lock as ``fab status`` shows it: ``holder`` (a sentence, or None when free),
    ``working`` (the site's server-side units running) and ``recovered`` (what the server
    finished or undid for a holder that died, not yet told to a holder)."""
    path = shlex.quote(lock_path(site))
    command = (f"i=$(stat -c %i {path} 2>/dev/null) && grep -q \":$i \" /proc/locks && "
               f"cat {path}.holder; echo; echo ---; cat {path}.recovered 2>/dev/null; echo ---; "
               f"systemctl list-units --plain --no-legend --all --state=activating,active,"
               f"deactivating {shlex.quote(serverop.units_glob(site))} | cut -d' ' -f1")

    def parse(out: str, rc: int) -> dict[str, Any]:
        holder, recovered, working = (out.split("---\n") + ["", ""])[:3]
        return {"holder": describe_holder(holder) if holder.strip() else None,
                "recovered": [recovered_note(f"RECOVERED\t{line}")
                              for line in recovered.splitlines() if line.strip()],
                "working": working.split()}
    return facts.Probe("lock", command, parse)


def undo_path(site: str) -> str:
    return f"{lock_path(site)}.undo"


def armed(site: str, commands: Sequence[Sequence[str]]) -> Plan:
    """Leave ``commands`` to the lock's server-side process: it runs them if this holder's
    session ends before the journal is :func:`disarmed` (killed, link lost)."""
    text = "".join(shlex.join(command) + "\n" for command in commands)
    return plan.overwrite(files.FileSpec(undo_path(site), text, mode=0o600))


def disarmed(site: str) -> Plan:
    """What :func:`armed` left is done (or undone) by this holder itself."""
    return plan.run("rm", "-f", undo_path(site))
