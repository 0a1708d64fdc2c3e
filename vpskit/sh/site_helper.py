"""vpskit-site: all the CI login may run as root (installed by ``fab provision`` as
/usr/local/sbin/vpskit-site, its sudoers entry naming only this program).

    vpskit-site logs SITE LINES [--follow]   the site's journal on this host
    vpskit-site backups SITE                 "SIZE NAME" of each of its backups here
    vpskit-site backup SITE                  its backup service run; "made NAME SIZE SHA256"
    vpskit-site fetch SITE PATH              one of its backups, on stdout

A verb acts on SITE only as its entry in the root-only registry (/etc/vpskit/ci/SITE.json)
says, and only for a user that entry lists (sudo's SUDO_USER); every argument is matched whole
before anything runs. A refusal is one line on stderr and exit code 2. Standard library only,
beside ``prune_backups`` (which names a site's backups).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, "/usr/local/lib/vpskit-site")  # root-only: this program's own modules
from prune_backups import parse_name  # noqa: E402

REGISTRY = "/etc/vpskit/ci"
SITE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
LINES = re.compile(r"[1-9][0-9]{0,5}")
CHUNK = 1 << 20
BACKUP_HOURS = 2  # a backup still running then is stopped


class Refused(Exception):
    """A request this program will not carry out: the line saying why."""


def entry(site: str) -> dict:
    """SITE's registry entry, when the calling user is one it lists."""
    if not SITE.fullmatch(site):
        raise Refused(f"{site!r} is not a site name")
    user = os.environ.get("SUDO_USER", "")
    try:
        with open(f"{REGISTRY}/{site}.json") as f:
            found = json.load(f)
    except FileNotFoundError:
        raise Refused(f"no site {site} for the CI login on this host") from None
    if user not in found["users"]:
        raise Refused(f"user {user or '?'} may not act on {site}")
    return found


def backups(found: dict) -> dict[str, int]:
    """``{name: size}`` of the site's backups in its backup directory."""
    if "backup_dir" not in found:
        raise Refused(f"{found['site']} is not backed up on this host by its timer's service")
    directory = found["backup_dir"]
    names = os.listdir(directory) if os.path.isdir(directory) else []
    return {name: os.stat(os.path.join(directory, name)).st_size for name in names
            if parse_name(found["site"], name)}


def logs(found: dict, lines: str, *follow: str) -> int:
    if "units" not in found or not LINES.fullmatch(lines) or follow not in ((), ("--follow",)):
        raise Refused("usage: vpskit-site logs SITE LINES [--follow] (on an app host)")
    units = [word for unit in found["units"] for word in ("-u", unit)]
    argv = ["journalctl", "--no-pager", "-o", "short-iso", "-n", lines, *units]
    os.execvp("journalctl", argv + (["-f"] if follow else []))


def list_backups(found: dict) -> int:
    for name, size in backups(found).items():
        print(size, name)
    return 0


def backup(found: dict) -> int:
    """Run the site's backup service (it waits for the site's lock), stopped after
    ``BACKUP_HOURS``; then name each file it made; on failure, what the service itself wrote
    (not what PAM or systemd logged for it) on stderr."""
    before = backups(found)
    unit = found["backup_unit"]
    try:
        failed = subprocess.run(["systemctl", "start", unit], timeout=BACKUP_HOURS * 3600
                                ).returncode
    except subprocess.TimeoutExpired:
        subprocess.run(["systemctl", "stop", unit])
        print(f"{unit} ran over {BACKUP_HOURS} hours and was stopped", file=sys.stderr)
        return 1
    if failed:
        invocation = subprocess.run(["systemctl", "show", "-p", "InvocationID", "--value", unit],
                                    capture_output=True, text=True).stdout.strip()
        subprocess.run(["journalctl", "--no-pager", "-o", "cat",
                        f"_SYSTEMD_INVOCATION_ID={invocation}", "_TRANSPORT=stdout"],
                       stdout=sys.stderr)
        return 1
    for name in sorted(set(backups(found)) - set(before)):
        digest = hashlib.sha256()
        path = os.path.join(found["backup_dir"], name)
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
        print("made", name, os.stat(path).st_size, digest.hexdigest(), flush=True)
    return 0


def fetch(found: dict, path: str) -> int:
    directory, _, name = path.rpartition("/")
    if directory != found.get("backup_dir") or name not in backups(found):
        raise Refused(f"{path} is not a backup of {found['site']}")
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        while chunk := f.read(CHUNK):
            sys.stdout.buffer.write(chunk)
    sys.stdout.buffer.flush()
    return 0


VERBS = {"logs": logs, "backups": list_backups, "backup": backup, "fetch": fetch}
ARITY = {"logs": (1, 2), "backups": (0, 0), "backup": (0, 0), "fetch": (1, 1)}


def main(argv: list[str]) -> int:
    try:
        if len(argv) < 2 or argv[0] not in VERBS:
            raise Refused(f"usage: vpskit-site {{{','.join(VERBS)}}} SITE ...")
        verb, site, args = argv[0], argv[1], argv[2:]
        low, high = ARITY[verb]
        if not low <= len(args) <= high:
            raise Refused(f"vpskit-site {verb}: wrong number of arguments")
        return VERBS[verb](entry(site), *args)
    except Refused as exc:
        print(f"vpskit-site: refused: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
