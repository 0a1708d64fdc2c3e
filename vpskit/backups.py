"""Backups: verified dumps on the server, an off-site copy here, retention (restore: see
``vpskit.restore``).

A partial file is never a backup. Dumps (``pg_dump -Fc``) and media archives are written under
``.<name>.partial``, checked (``pg_restore --list`` / ``tar -t``), fsynced and only then renamed
to ``<site>-<UTC>[-label].dump`` / ``<site>-<UTC>-media.tar.gz`` (0600 in a 0700 directory).
The copy streams over SSH (``sudo cat``: the deploy user cannot read root's files) into a
temporary name here and is renamed once its sha256 matches the server's. Retention keeps
``backups.keep_days`` days by the UTC time in the names, never the newest dump or media archive,
and runs only after a backup succeeded. The server-side timer runs the same commands; with a
CI login (``hosts[].ci_user``), ``fab backup`` runs the timer's service itself through
``vpskit-site`` and fetches through it too (:mod:`vpskit.ci_login`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shlex
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import paramiko

from vpskit import applier, ci_login, facts, offsite, plan, session
from vpskit.applier import Context
from vpskit.backup_script import (
    DUMP,
    Artifact,
    archived,
    backup_name,
    backup_steps,
    service_backup_steps,
)
from vpskit.config import Environment, Host
from vpskit.errors import RemoteError, ToolkitError
from vpskit.plan import Plan
from vpskit.remote import Remote, Result
from vpskit.sh.prune_backups import STAMP, parse_name, prune_dir
from vpskit.steps import Reporter

SAFETY_LABEL = "prerestore"
AUTOMATIC_LABELS = ("predeploy", SAFETY_LABEL)  # dumps taken by vpskit itself before a change
CHUNK = 1 << 20
IDLE_TIMEOUT = 300  # seconds without a byte before a transfer counts as dead
LOCK_QUEUE = 3600  # seconds a backup waits for a deploy, rollback or restore to finish

def dump_name(site: str, label: str = "", now: datetime | None = None) -> str:
    """``<site>-<UTC timestamp>[-label].dump`` (pure)."""
    return backup_name(site, (now or datetime.now(UTC)).strftime(STAMP), label)


def latest(site: str, names: Iterable[str]) -> str | None:
    """The newest dump that is not a restore's safety dump (pure)."""
    dumps = [(p[0], name) for name in names if (p := parse_name(site, name))
             and p[2] == DUMP and p[1] != SAFETY_LABEL]
    return max(dumps)[1] if dumps else None


def age(name: str, now: float) -> str:
    """How long before ``now`` the stamp in a backup's name is: '42s', '17m', '5h 03m',
    '12d 4h' (pure)."""
    stamp = re.search(r"\d{8}T\d{6}Z", name)[0]
    seconds = max(0, int(now - datetime.strptime(stamp, STAMP).replace(tzinfo=UTC).timestamp()))
    days, hours, minutes = seconds // 86400, seconds // 3600 % 24, seconds // 60 % 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m" if minutes else f"{seconds}s"


def local_dir(env: Environment, inventory_file: str | Path) -> Path:
    """``backups.local_dir``: relative to the inventory's directory unless absolute."""
    return Path(inventory_file).resolve().parent / Path(env.backups.local_dir).expanduser()


def local_backups(env: Environment, directory: Path) -> dict[str, int]:
    """``{name: size}`` of the site's backups in ``directory`` (none when it does not exist)."""
    if not directory.is_dir():
        return {}
    return {p.name: p.stat().st_size for p in directory.iterdir()
            if p.is_file() and parse_name(env.site, p.name)}


def server_backups(env: Environment) -> facts.Probe:
    """``{name: size}`` of the site's backups on the server."""
    d = shlex.quote(str(env.backup_dir))

    def parse(out: str, rc: int) -> dict[str, int]:
        pairs = (line.split(" ", 1) for line in out.splitlines() if " " in line)
        return {name: int(size) for size, name in pairs if parse_name(env.site, name)}
    return facts.Probe("backups", f"[ ! -d {d} ] || find {d} -maxdepth 1 -type f "
                                  f"-printf '%s %f\\n'", parse)


# ---- server commands -----------------------------------------------------------------------------
def archive(remote: Remote, env: Environment, name: str, kind: str = "dump") -> Artifact:
    """Write, verify and rename one backup file on the db host (always acts)."""
    ctx = applier.apply_quietly(env, db_host(env), remote, archived(env, name, kind))
    return ctx.facts[f"{env.backup_dir}/{name}"]


def dump(remote: Remote, env: Environment, label: str = "") -> str:
    """Dump the app's database on the server; return its path and size. Always acts."""
    return str(archive(remote, env, dump_name(env.site, label)))


def predeploy(env: Environment, release_id: str) -> Plan:
    """Before release ``release_id``'s commands: a dump on the db host (through the hatch
    ``predeploy_dump``), when the site has a Postgres of its own."""
    if not env.own_postgres or env.db_host is None:
        return Plan()
    return plan.hatch("predeploy_dump", release_id, would=f"dump {env.db_name}")


def automatic_prune_plan(site: str, names: Iterable[str], keep: int) -> list[str]:
    """The dumps vpskit took before deploys and restores, beyond the newest ``keep``, oldest
    first (pure)."""
    found = sorted((parsed[0], name) for name in names if (parsed := parse_name(site, name))
                   and parsed[2] == DUMP and parsed[1].startswith(AUTOMATIC_LABELS))
    return [name for _, name in found[:max(0, len(found) - keep)]]


def prune_automatic(remote: Remote, env: Environment) -> list[str]:
    """Delete the automatic dumps beyond ``backups.keep_predeploy``; return their names."""
    found = facts.gather(remote, [server_backups(env)])["backups"]
    doomed = automatic_prune_plan(env.site, found, env.backups.keep_predeploy)
    if doomed:
        remote.run(["rm", "-f", "--", *(f"{env.backup_dir}/{name}" for name in doomed)])
    return doomed


def stream(remote: Remote, argv: Sequence[str], what: Sequence[str],
           source: BinaryIO | None = None, sink: Callable[[bytes], object] | None = None) -> None:
    """Run ``argv`` on its own channel with ``source`` as stdin and stdout into ``sink``: files
    too big for :meth:`Remote.run`. Raises a one-line :class:`RemoteError` naming ``what``."""
    def recv(read: Callable[[int], bytes]) -> bytes:
        try:
            return read(CHUNK)
        except (OSError, paramiko.SSHException) as exc:
            raise RemoteError(f"{remote.host}: `{shlex.join(what)}` broke off: "
                              f"{exc or type(exc).__name__}") from None

    channel = remote.channel(remote.command(argv))
    try:
        channel.settimeout(IDLE_TIMEOUT)
        while source and (chunk := source.read(CHUNK)):
            try:
                channel.sendall(chunk)
            except OSError:
                break  # the command stopped reading; its exit status says why
        channel.shutdown_write()
        while data := recv(channel.recv):
            if sink:
                sink(data)
        err = b"".join(iter(lambda: recv(channel.recv_stderr), b""))
        code = channel.recv_exit_status()
    finally:
        channel.close()
    if code:
        raise remote.error(what, Result("", err.decode(errors="replace"), code))


def fetch(remote: Remote, made: Artifact, dest: Path, via: Sequence[str]) -> None:
    """Copy ``made`` to ``dest`` (0600, directory 0700) under a temporary name, by ``via``
    (the command printing a file, given its path); rename only when the sha256 of what
    arrived matches the server's."""
    tmp = dest.with_name(f".{dest.name}.partial")
    digest = hashlib.sha256()
    try:
        dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
            stream(remote, [*via, made.path], [via[0], made.path],
                   sink=lambda data: (digest.update(data), out.write(data)))
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != made.sha256:
            raise RemoteError(f"{remote.host}: the copy of {made.path} arrived damaged (sha256 "
                              f"{digest.hexdigest()[:12]}, server {made.sha256[:12]})")
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)
    except OSError as exc:
        raise ToolkitError(f"cannot write {dest}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(OSError):  # absent, or its directory could not be made
            tmp.unlink()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---- fab backup ----------------------------------------------------------------------------------
def db_host(env: Environment) -> Host:
    """The host whose database is backed up and restored (the first with the db role)."""
    if not env.own_postgres or env.db_host is None:
        raise ToolkitError(f"{env.site} has no Postgres of its own (disabled, or DATABASE_URL "
                           f"is a managed database): back that up with its provider's tools")
    return env.db_host


def fetch_all(remote: Remote, made: Sequence[Artifact], local: Path, via: Sequence[str]) -> str:
    """Copy each of ``made`` into ``local`` by ``via``, verified (:func:`fetch`); the line
    saying so."""
    for artifact in made:
        fetch(remote, artifact, local / artifact.name, via)
    return f"{local}: {', '.join(m.name for m in made)} (sha256 verified)"


def prune_copies(env: Environment, local: Path) -> list[str]:
    """Prune the copies here and off-site (with the operator's credentials) by age; a line
    for each place something went."""
    try:
        here = prune_dir(str(local), env.site, env.backups.keep_days)
    except OSError as exc:
        raise ToolkitError(f"cannot prune {local}: {exc.strerror or exc}") from None
    remote = offsite.prune(env) if env.offsite.enabled else []
    return [f"{where}: removed {', '.join(gone)}"
            for where, gone in (("local", here), ("off-site", remote)) if gone]


def through_ci_login(env: Environment) -> bool:
    """Whether ``fab backup`` logs into the db host as its CI login (``vpskit-site``), which
    sends none of the app's secrets: cron then needs neither them nor a root key."""
    return ci_login.backs_up(env, db_host(env))


def backup(env: Environment, local: Path, out: Reporter) -> None:
    """``fab backup``: dump (and media) on the server, copy here verified, prune both sides."""
    from vpskit.deploy.lock import deploy_lock  # here: the deploy package is not provision's
    host = db_host(env)
    start = time.monotonic()
    if through_ci_login(env):  # the server's backup service, which takes the lock itself
        with session.connected(env, host.ci) as remote:
            out.line(f"backup {env.site} on {host.address} as {host.ci_user}")
            applier.apply_steps(Context(env, host, remote, out),
                                service_backup_steps(env, str(local)))
    else:
        with session.connected(env, host) as remote, \
                deploy_lock(remote, env.site, "backup", queue=LOCK_QUEUE):
            out.line(f"backup {env.site} on {host.address}")
            steps = backup_steps(env, datetime.now(UTC).strftime(STAMP), str(local))
            applier.apply_steps(Context(env, host, remote, out), steps)
    out.line(f"backed up {env.site} in {time.monotonic() - start:.1f}s")


def list_backups(env: Environment, local: Path, out: Reporter) -> None:
    """``fab backup --list``: the site's backups on the server and here, sizes and ages."""
    host = db_host(env)
    if through_ci_login(env):
        with session.connected(env, host.ci) as remote:
            server = server_backups(env).parse(remote.run(ci_login.argv("backups", env)).stdout, 0)
    else:
        with session.connected(env, host) as remote:
            server = facts.gather(remote, [server_backups(env)])["backups"]
    now = time.time()
    places = [(f"{host.address}:{env.backup_dir}", server, env.backups.keep_days),
              (str(local), local_backups(env, local), env.backups.keep_days)]
    if env.offsite.enabled and offsite.has_admin(env):
        places.append((f"off-site {offsite.where(env)}",
                       offsite.copies(env), env.offsite.keep_days))
    for where, found, keep_days in places:
        total = sum(found.values()) / 1e6
        out.line(f"{where}: {len(found)} backup(s), {total:.1f} MB (keep {keep_days} days)")
        for name in sorted(found, key=lambda n: parse_name(env.site, n)[0], reverse=True):
            out.line(f"  {name:<72} {found[name] / 1e6:9.1f} MB  {age(name, now):>8}")
