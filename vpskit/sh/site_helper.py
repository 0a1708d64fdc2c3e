"""vpskit-site: all the CI login may run as root (installed by ``fab provision`` as
/usr/local/sbin/vpskit-site, its sudoers entry naming only this program).

    vpskit-site logs SITE LINES [--follow]   the site's journal on this host
    vpskit-site backups SITE                 "SIZE NAME" of each of its backups here
    vpskit-site backup SITE                  its backup service run; "made NAME SIZE SHA256"
    vpskit-site fetch SITE PATH              one of its backups, on stdout
    vpskit-site deploy SITE SHA [--batch=N] [--maintenance]
                                             that commit, from the git bundle on stdin, deployed
    vpskit-site rollback SITE [RELEASE]      back to the previous good release (or RELEASE)
    vpskit-site restore SITE NAME            its database from that backup (or "latest")

A verb acts on SITE only as its entry in the root-only registry (/etc/vpskit/ci/SITE.json)
says, and only for a user that entry lists (sudo's SUDO_USER); every argument is matched whole
before anything runs. A refusal is one line on stderr and exit code 2. Standard library only,
beside ``prune_backups`` (which names a site's backups). ``deploy``, ``rollback`` and
``restore`` run the host's resident vpskit (vpskit/resident.py) with the site's copy of its
inventory and secrets, written by ``fab provision``, in a root-only folder of the run's own.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

sys.path.insert(0, "/usr/local/lib/vpskit-site")  # root-only: this program's own modules
from prune_backups import parse_name  # noqa: E402

REGISTRY = "/etc/vpskit/ci"
SITE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
LINES = re.compile(r"[1-9][0-9]{0,5}")
CHUNK = 1 << 20
BACKUP_HOURS = 2  # a backup still running then is stopped
SHA = re.compile(r"[0-9a-f]{40}")
RELEASE = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,63}")
DEPLOY_OPTION = re.compile(r"--batch=[1-9][0-9]{0,2}|--maintenance")
RESIDENT = "/usr/local/lib/vpskit-site/resident/venv/bin/python"
RUNS = "/var/lib/vpskit-site"  # root-only: a folder per deploy, rollback or restore
MAX_BUNDLE = 4 << 30  # bytes of git bundle read from stdin, at most
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


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


def deploy(found: dict, sha: str, *options: str) -> int:
    """Fetch the commit from the git bundle on stdin, then the resident vpskit deploys it
    (``--batch=N``: web hosts switched at a time; ``--maintenance``: 503 meanwhile)."""
    if not SHA.fullmatch(sha):
        raise Refused(f"{sha!r} is not a full commit sha")
    for option in options:
        if not DEPLOY_OPTION.fullmatch(option) or options.count(option) > 1:
            raise Refused(f"{option!r}: deploy takes --batch=N and --maintenance, each once")
    with run_folder(found) as folder:
        bundle, repo = os.path.join(folder, "bundle"), os.path.join(folder, "repo")
        with open(bundle, "wb") as f:
            size = 0
            while chunk := sys.stdin.buffer.read(CHUNK):
                size += len(chunk)
                if size > MAX_BUNDLE:
                    raise Refused(f"the git bundle is over {MAX_BUNDLE >> 30} GB")
                f.write(chunk)
        for git in (["init", "--quiet", "--bare", repo],
                    ["-C", repo, "-c", "fetch.fsckObjects=true", "fetch", "--quiet", bundle,
                     "+refs/*:refs/*"],  # fsck: no tree with '..' or '.git' gets in
                    ["-C", repo, "cat-file", "-e", f"{sha}^{{commit}}"]):
            if subprocess.run(["git", *git], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL).returncode:
                raise Refused(f"stdin is not a git bundle holding commit {sha}")
        return resident(found, folder, "deploy", "--ref", sha, *options)


def rollback(found: dict, *to: str) -> int:
    if to and not RELEASE.fullmatch(to[0]):
        raise Refused(f"{to[0]!r} is not a release id")
    with run_folder(found) as folder:
        return resident(found, folder, "rollback", *(["--to", to[0]] if to else []))


def restore(found: dict, name: str) -> int:
    """NAME: one of the site's backups here, or on its db host when that is another (where the
    resident vpskit looks), or "latest"."""
    here = "backup_dir" in found
    if name != "latest" and not (name in backups(found) if here else parse_name(found["site"],
                                                                                name)):
        raise Refused(f"{name} is not a backup of {found['site']}"
                      f"{' on this host' if here else ''}")
    with run_folder(found) as folder:
        return resident(found, folder, "restore", "--file", name, "--yes")


@contextmanager
def run_folder(found: dict) -> Iterator[str]:
    """A root-only folder holding the site's copy of its inventory and secrets, gone after."""
    if "config" not in found:
        raise Refused(f"{found['site']} has no resident vpskit on this host: it must be the "
                      f"first host of its environment, with ci_user, provisioned so")
    os.makedirs(RUNS, mode=0o700, exist_ok=True)
    folder = tempfile.mkdtemp(prefix=f"{found['site']}-", dir=RUNS)
    try:
        for name in ("inventory.yml", f".env.{found['env']}"):
            shutil.copyfile(os.path.join(found["config"], name), os.path.join(folder, name))
            os.chmod(os.path.join(folder, name), 0o600)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def resident(found: dict, folder: str, task: str, *args: str) -> int:
    """``vpskit TASK`` of the resident vpskit on the copy in ``folder``; its exit code."""
    argv = [RESIDENT, "-m", "vpskit", task, "--env", found["env"], "--inventory",
            os.path.join(folder, "inventory.yml"), *args]
    return subprocess.run(argv, cwd=folder, stdin=subprocess.DEVNULL,
                          env={"PATH": PATH, "HOME": "/root", "LANG": "C.UTF-8"}).returncode


VERBS = {"logs": logs, "backups": list_backups, "backup": backup, "fetch": fetch,
         "deploy": deploy, "rollback": rollback, "restore": restore}
ARITY = {"logs": (1, 2), "backups": (0, 0), "backup": (0, 0), "fetch": (1, 1),
         "deploy": (1, 3), "rollback": (0, 1), "restore": (1, 1)}


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
