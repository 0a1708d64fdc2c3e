"""``fab restore``: a backup back into the database, proven by the app's health check.

The current data is dumped first; the app is stopped on every app host while the dump is
restored in one transaction on the db host, then started and health-checked again. Any failure
before the commit leaves the database as it was and the app running. The replay is a unit of
its own on the db host (:mod:`vpskit.serverop`): an operator that dies (killed, link lost)
never cuts it short, and the lock holder there waits for it; the app's start is left to each
host's lock holder (:func:`vpskit.deploy.lock.armed`).
"""

from __future__ import annotations

import hashlib
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from vpskit import applier, facts, interrupts, offsite, plan, render, serverop, session, sh
from vpskit.backup_script import RESTORE_SCRIPT
from vpskit.backups import (
    SAFETY_LABEL,
    Artifact,
    age,
    archive,
    db_host,
    dump_name,
    latest,
    parse_name,
    server_backups,
    stream,
)
from vpskit.config import Environment, Host
from vpskit.deploy import releases, switch
from vpskit.deploy.lock import armed, deploy_lock, disarmed
from vpskit.errors import ToolkitError
from vpskit.plan import Plan
from vpskit.provision import database
from vpskit.remote import Remote
from vpskit.steps import Reporter, run_steps

UPLOAD_SCRIPT = sh.script("upload-dump")
RESTORE_TIMEOUT = 3600  # seconds the replay of a dump may take


@dataclass(frozen=True)
class AppHost:
    """An app host as the restore finds it: its runner, live release, certificate."""

    env: Environment
    host: Host
    remote: Remote
    live: str | None
    tls: bool

    def apply(self, plan: Plan) -> None:
        applier.apply_quietly(self.env, self.host, self.remote, plan)


@dataclass
class Restore:
    """One restore on the db host: safety dump, the app stopped on every app host, a
    one-transaction restore, the app started and health-checked again. A failed restore leaves
    the database as it was."""

    env: Environment
    remote: Remote  # the db host's
    name: str  # the backup's name in the server's backup directory
    upload_from: Path | None  # a local file to upload first
    apps: list[AppHost]
    safety: Artifact | None = None
    stopped: bool = False
    restored: bool = False

    def run(self, out: Reporter) -> None:
        steps = [("upload", Restore.upload)] if self.upload_from else []
        steps += [("safety dump", Restore.safety_dump), ("stop app", Restore.stop_app),
                  ("restore", Restore.restore), ("start app", Restore.start_app)]
        try:
            run_steps(self, steps, out)
        except BaseException as exc:  # any way out: an error, Ctrl-C, a signal, a lost link
            with interrupts.shielded():
                notes = self.recover()
            raise interrupts.failure(exc, notes) from exc

    def upload(self) -> list[str]:
        source = self.upload_from
        try:
            with source.open("rb") as f:
                sha256 = hashlib.file_digest(f, "sha256").hexdigest()
                f.seek(0)
                stream(self.remote, ["bash", "-c", UPLOAD_SCRIPT, "upload",
                                     str(self.env.backup_dir), self.name, sha256],
                       ["upload", self.name], source=f)
        except OSError as exc:
            raise ToolkitError(f"cannot read {source}: {exc.strerror or exc}") from None
        return [f"{source} -> {self.env.backup_dir}/{self.name} (sha256 verified)"]

    def safety_dump(self) -> list[str]:
        self.safety = archive(self.remote, self.env, dump_name(self.env.site, SAFETY_LABEL))
        return [str(self.safety)]

    def stop_app(self) -> list[str]:
        """Web and process units on every app host: nothing writes while the data is
        replaced."""
        env = self.env
        wait = max([env.app.graceful_timeout, *(p.stop_timeout for p in env.processes)]) + 60
        self.stopped = True
        for app in self.apps:  # a dead operator's lock holder starts it again
            app.apply(armed(env.site, self._start_commands(app))
                      + plan.run("systemctl", "stop", render.app_units(env), timeout=wait))
        return [f"{env.site}-*@* on {', '.join(a.host.address for a in self.apps)}"]

    def _start_commands(self, app: AppHost) -> list[list[str]]:
        """What starts the live release's web and process units on ``app``'s host."""
        env, commands = self.env, []
        if app.live and "web" in app.host.roles:
            commands.append(["systemctl", "start", render.web_unit_name(env, app.live)])
        units = [render.process_unit_name(env, p.name, i) for p in env.processes
                 for i in range(1, p.count + 1)]
        if app.live and "worker" in app.host.roles and units:
            commands.append(["systemctl", "start", *units])
        return commands

    def restore(self) -> list[str]:
        env = self.env
        args = [f"{env.backup_dir}/{self.name}", env.db_name, env.db_user]
        applier.apply_quietly(env, db_host(env), self.remote, plan.run(
            *serverop.script_argv(env.site, "restore", args, RESTORE_TIMEOUT),
            stdin=RESTORE_SCRIPT, timeout=RESTORE_TIMEOUT, check=False,
            read=("failed_as", "pg_restore", self.name)))
        self.restored = True
        return [f"{self.env.db_name} from {self.name}"]

    def start_app(self) -> list[str]:
        self._start()
        healthy = []
        for app in self.apps:
            if app.live and "web" in app.host.roles:
                app.apply(switch.check_socket(self.env, app.live)
                          + switch.check_public(self.env, app.tls))
                healthy.append(f"{app.host.address}: {app.live} healthy")
        return healthy

    def _start(self) -> None:
        for app in self.apps:
            started = Plan()
            if app.live and "web" in app.host.roles:
                started += switch.start(self.env, app.live)
            if app.live and "worker" in app.host.roles:
                started += switch.restart_processes(self.env, wait=True)
            app.apply(started + disarmed(self.env.site))
        self.stopped = False

    def recover(self) -> str:
        """Bring the app back after a failure; say what state the data is in."""
        notes = []
        if self.stopped:
            try:
                self._start()
                notes.append("app started again")
            except Exception as exc:  # a lost connection too: say so, keep the first error
                notes.append(f"starting the app also failed: {exc}")
        if self.safety and self.restored:
            notes.append(f"data before the restore: fab restore --env {self.env.name} --file "
                         f"{self.safety.name}")
        elif self.safety:
            notes.append("database unchanged")
        return "; ".join(notes) or "nothing changed"


def resolve(env: Environment, file: str, on_server: Iterable[str]) -> tuple[str, Path | None]:
    """``(name on the server, local file to upload or None)`` for ``--file``: 'latest', a
    local file, or a backup's name on the server."""
    on_server = list(on_server)
    if file == "latest":
        name = latest(env.site, on_server)
        if not name:
            raise ToolkitError(f"no backup of {env.site} on the server; pass --file with a "
                               f"local copy (fab backup --list shows them)")
        return name, None
    path = Path(file).expanduser()
    if path.is_file():
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", path.name):
            raise ToolkitError(f"{path.name!r}: rename the file to letters, digits, '.', '_' "
                               f"and '-' only")
        return path.name, path
    if file in on_server:
        return file, None
    raise ToolkitError(f"no backup '{file}': not a local file, not on the server (fab backup "
                       f"--list shows them)")


def restore(env: Environment, file: str, yes: bool, out: Reporter,
            ask: Callable[[str], str] = input, source: str = "server") -> None:
    """``fab restore``: confirm, then :class:`Restore` under the deploy lock of every host.
    From ``source`` "offsite", the copy (``file``, or the newest dump) is fetched and
    decrypted here first, then restored as a local file."""
    if not yes and not sys.stdin.isatty():
        raise ToolkitError(f"restore replaces the {env.site} database: confirm it on a "
                           f"terminal, or pass --yes (stdin is not a terminal)")
    if source not in ("server", "offsite"):
        raise ToolkitError(f"--from {source}: expected server or offsite")
    if source == "offsite":
        if not env.offsite.enabled:
            raise ToolkitError(f"no off-site copies for {env.name}: set offsite.endpoint")
        name = latest(env.site, offsite.copies(env)) if file == "latest" else file
        if not name:
            raise ToolkitError(f"no off-site copy of {env.site} in {offsite.where(env)}")
        with tempfile.TemporaryDirectory(prefix="vpskit-offsite-") as scratch:
            fetched = offsite.fetch(env, name, Path(scratch))
            out.line(f"fetched {name} from {offsite.where(env)} (decrypted here)")
            restore(env, str(fetched), yes, out, ask)
        return
    host = db_host(env)
    with ExitStack() as stack:
        remotes = {h.address: stack.enter_context(session.connected(env, h))
                   for h in dict.fromkeys([host, *env.app_hosts])}
        remote = remotes[host.address]
        found = facts.gather(remote, [server_backups(env), *database.claim_probes()])
        database.check_claims(env, host, found)  # never into another site's database
        name, upload_from = resolve(env, file, found["backups"])
        if not yes:
            confirm(env, host, name, upload_from, ask, out)
        for r in remotes.values():
            stack.enter_context(deploy_lock(r, env.site, f"restore {name}"))
        out.line(f"restore {env.site} on {host.address} from {name}")
        Restore(env, remote, name, upload_from, [_app_host(env, h, remotes[h.address])
                                                  for h in env.app_hosts]).run(out)
    out.line(f"restored {env.site} from {name}")


def _app_host(env: Environment, host: Host, remote: Remote) -> AppHost:
    found = facts.gather(remote, [releases.probe(env),
                                  facts.nonempty(render.cert_path(env), "tls")])
    return AppHost(env, host, remote, found["releases"].current, found["tls"])


def confirm(env: Environment, host: Host, name: str, upload_from: Path | None,
            ask: Callable[[str], str], out: Reporter) -> None:
    """Ask for the environment's name; anything else cancels."""
    where = f"local file {upload_from}" if upload_from else f"{env.backup_dir}/{name}"
    stamped = f", made {age(name, time.time())} ago" if parse_name(env.site, name) else ""
    out.line(f"restore database {env.db_name} on {host.address} from {where}{stamped}.")
    out.line("The current data is dumped first; the app is stopped during the restore.")
    try:
        answer = ask(f"Type the environment name ({env.name}) to go on: ")
    except EOFError:
        answer = ""
    if answer.strip() != env.name:
        raise ToolkitError("restore cancelled; nothing changed")
