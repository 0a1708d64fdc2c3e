"""One deploy on one host: upload → venv → backup → release commands → start beside the live
release → health → switch → public health → stop old → prune.

Any failure before the switch stops the new release and leaves the old one serving; a failure
after it switches back to the old release (still running) and marks the new one bad.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import shlex
from dataclasses import dataclass
from datetime import UTC, datetime

from vpskit import applier, backups, facts, files, job_units, render, session, sh
from vpskit.applier import Context
from vpskit.config import Environment, Host
from vpskit.deploy import appcmd, pipfail, releases, switch
from vpskit.deploy.releases import Release, Releases
from vpskit.deploy.source import Source, required_python
from vpskit.errors import RemoteError, ToolkitError
from vpskit.plan import Plan, facts_of
from vpskit.remote import Remote
from vpskit.steps import Reporter, run_steps

VENV_SCRIPT = sh.script("venv")
PIP_FAILED = 3  # VENV_SCRIPT's exit code when pip failed; its output is then pip's log
PIP_LOG = ".vpskit-pip.log"

UNPACK_SCRIPT = sh.script("unpack")


@dataclass(frozen=True)
class DeployFacts:
    """What a deploy reads on each host before it changes anything."""
    releases: Releases
    python: tuple[int, int] | None  # the server's python3 (major, minor)
    provisioned: bool  # the site's env file is there
    tls: bool  # the site has a certificate
    upstream_release: str | None  # the release the site's Nginx upstream names


def probes(env: Environment) -> list[facts.Probe]:
    return [
        releases.probe(env),
        facts.Probe("python", "python3 -c 'import sys; print(*sys.version_info[:2])'",
                    lambda out, rc: tuple(int(x) for x in out.split()) if rc == 0 else None),
        facts.Probe("provisioned", f"test -f {shlex.quote(str(env.env_file))}",
                    lambda out, rc: rc == 0),
        facts.nonempty(render.cert_path(env), "tls"),
        switch.upstream_probe(env),
    ]


@dataclass
class Deploy:
    """State of one deploy on one host; :func:`vpskit.deploy.deploy_environment` runs its
    phases across the hosts (see :meth:`phase`)."""

    env: Environment
    host: Host
    remote: Remote
    source: Source
    release_id: str
    out: Reporter
    before: Releases | None = None
    python: tuple[int, int] | None = None
    tls: bool = False
    job_units: Plan | None = None  # planned from inspect's facts, applied after the switch
    uploaded: bool = False
    started: bool = False
    switched: bool = False
    committed: bool = False  # every web host serves it: a later failure never rolls back

    @property
    def release_dir(self) -> str:
        return render.release_dir(self.env, self.release_id)

    @property
    def live(self) -> str | None:
        return self.before.current if self.before else None

    @property
    def web(self) -> bool:
        return "web" in self.host.roles

    def phase(self, name: str) -> None:
        """Run one phase's steps for this host's roles: ``prepare`` (all), ``once`` (the host
        that migrates), ``start`` and ``switch`` (web), ``finish`` (all)."""
        worker = "worker" in self.host.roles
        steps = {
            "prepare": [("inspect", Deploy.inspect), ("upload", Deploy.upload),
                        ("virtualenv", Deploy.virtualenv)],
            "once": [("backup", Deploy.backup), ("release", Deploy.release_commands)],
            "start": [("start", Deploy.start), ("health", Deploy.health)] if self.web else [],
            "switch": [("switch", Deploy.switch), ("public", Deploy.public_health)]
                      if self.web else [],
            "finish": [("stop old", Deploy.stop_old) if self.web else ("current", Deploy.current),
                       *([("processes", Deploy.processes)] if worker else []),
                       ("jobs", Deploy.jobs), ("prune", Deploy.prune)],
        }[name]
        self.committed = self.committed or name == "finish"
        run_steps(self, steps, self.out)

    # ---- steps ---------------------------------------------------------------------------------
    def inspect(self) -> list[str]:
        gathered = facts.gather(self.remote, [*probes(self.env), *job_units.probes(self.env)])
        found = facts_of(DeployFacts, gathered)
        if not found.provisioned:
            raise ToolkitError(f"{self.remote.host} is not provisioned for {self.env.site} "
                               f"(no {self.env.env_file}); run: fab provision --env "
                               f"{self.env.name}")
        check_python(self.source, found.python)
        self.before, self.python, self.tls = found.releases, found.python, found.tls
        self.job_units = job_units.units(self.env, self.host,
                                         facts_of(job_units.JobFacts, gathered))
        repaired = switch.repair_current(self.remote, self.env, self.before.current,
                                         found.upstream_release) if self.web else None
        if repaired:
            self.before = releases.load(self.remote, self.env)
        return [repaired] if repaired else []

    def upload(self) -> list[str]:
        """Unpack the commit's tree as the new release, root's and read-only for the app; too
        little free space for it is one line."""
        archive = self.source.archive()
        argv = ["bash", "-c", UNPACK_SCRIPT, "unpack", self.release_dir, self.env.app_user,
                self.source.sha, str(len(archive))]
        result = self.remote.run(argv, stdin=archive, timeout=600, check=False)
        backups.check_room(self.remote, argv, result, "the release", str(self.env.releases_dir))
        self.uploaded = True
        self._meta("new")
        return [f"{self.release_id} ({self.source.ref} = {self.source.short})"]

    def virtualenv(self) -> list[str]:
        """Build the venv for this requirements file as the app user, then make it root's and
        read-only for the app (reused when built before); a pip failure is one line, with pip's
        full output left in the release's .vpskit-pip.log (0600), and so is too little space."""
        name = self.env.app.requirements
        key = hashlib.sha256(self.source.read(name) or b"").hexdigest()[:16]
        log = f"{self.release_dir}/{PIP_LOG}"
        venvs = f"{self.env.root}/venvs"
        argv = ["bash", "-c", VENV_SCRIPT, "venv", venvs, key, self.release_dir, name, log,
                self.env.app_user]
        result = self.remote.run(argv, check=False, timeout=1800)
        if result.exited == PIP_FAILED:
            summary = pipfail.summarize_pip_failure(result.stdout, self.python)
            raise RemoteError(self.remote.masked(
                f"{self.remote.host}: pip install -r {name} failed: {summary} (full output: "
                f"{log})"))
        backups.check_room(self.remote, argv, result, "a virtualenv", venvs)
        return [f"built venvs/{key}" if "built" in result.stdout else f"reused venvs/{key}"]

    def backup(self) -> list[str]:
        """A dump on the db host (this one or a separate one) before the release commands;
        then the automatic dumps beyond ``backups.keep_predeploy`` go."""
        db = self.env.db_host
        if not self.env.own_postgres or db is None:
            return []
        with contextlib.ExitStack() as stack:
            remote = self.remote if db == self.host else stack.enter_context(
                session.connected(self.env, db))
            where = "" if db == self.host else f"{db.address}: "
            made = backups.dump(remote, self.env, label=f"predeploy-{self.release_id}")
            pruned = backups.prune_automatic(remote, self.env)
        return [f"{where}{made}", *([f"pruned {len(pruned)} older pre-deploy dump(s)"]
                                    if pruned else [])]

    def release_commands(self) -> list[str]:
        done = []
        for argv in appcmd.release_commands(self.env.app):
            result = appcmd.run_release_command(self.remote, self.env, self.release_id, argv)
            if not result.ok:
                output = result.stdout + result.stderr
                log = self._save_log(" ".join(argv), output)
                raise RemoteError(self.remote.error(argv, result).args[0]
                                  + appcmd.lock_timeout_hint(self.env, output)
                                  + f" (full output: {log})")
            done.append(" ".join(argv[:3]))
        return done

    def start(self) -> list[str]:
        self.started = True
        switch.start(self.remote, self.env, self.release_id)
        return [f"{self.env.site}-web@{self.release_id}"]

    def health(self) -> list[str]:
        switch.check_socket(self.remote, self.env, self.release_id)
        return [f"{self.env.health.path} answered {self.env.health.status}"]

    def switch(self) -> list[str]:
        self.switched = True  # before the first change: an interrupt inside it is undone too
        switch.point_nginx(self.remote, self.env, self.release_id, self.live)
        switch.point_current(self.remote, self.env, self.release_id, web=True)
        return [f"nginx -> {self.release_id}"]

    def current(self) -> list[str]:
        """A host without web: the ``current`` link its processes run from."""
        self.switched = True
        switch.point_current(self.remote, self.env, self.release_id, web=False)
        self._meta("ok")
        return [f"current -> {self.release_id}"]

    def public_health(self) -> list[str]:
        return [switch.check_public(self.remote, self.env, self.tls)]

    def stop_old(self) -> list[str]:
        """The release that served before, and any other left running (by a deploy killed
        before it could stop them), stop in the background."""
        self._meta("ok")
        stopped = switch.stop_all_but(self.remote, self.env, self.release_id)
        return [f"stopping {', '.join(stopped)}"] if stopped else []

    def processes(self) -> list[str]:
        return switch.restart_processes(self.remote, self.env)

    def jobs(self) -> list[str]:
        """The inventory's scheduled jobs, on the live release from now on (:mod:`vpskit.jobs`)."""
        return applier.apply(Context(self.env, self.host, self.remote, self.out),
                             self.job_units or Plan())

    def prune(self) -> list[str]:
        doomed = releases.load(self.remote, self.env).to_prune(self.env.releases_keep)
        if doomed:
            self.remote.run(["bash", "-c", PRUNE_SCRIPT, "prune", str(self.env.root), *doomed])
        return [f"removed {len(doomed)} old release(s)"] if doomed else []

    # ---- failure -------------------------------------------------------------------------------
    def recover(self) -> str:
        """Undo what the failed deploy did; say what is serving now. Once committed (the
        ``finish`` phase: the old release is stopping), the new release stays."""
        if self.committed:
            return (f"release {self.release_id} is live; its last steps did not finish (old "
                    f"release stopping, workers restart, prune): run fab deploy --env "
                    f"{self.env.name} again to complete them")
        notes = []
        try:
            if self.switched and self.live:
                if self.web:
                    switch.point_nginx(self.remote, self.env, self.live, self.release_id)
                switch.point_current(self.remote, self.env, self.live, web=self.web)
                if "worker" in self.host.roles:
                    switch.restart_processes(self.remote, self.env)
                notes.append(f"rolled back to {self.live}")
            if self.started:
                switch.stop(self.remote, self.env, self.release_id)
            if self.uploaded:
                self._meta("bad" if self.switched else "failed")
        except Exception as exc:  # a lost connection too: say so, keep the first error
            notes.append(f"cleanup also failed: {exc}")
        serving = self.live or "nothing (first deploy)"
        notes.append(f"release {self.release_id} marked {'bad' if self.switched else 'failed'}; "
                     f"serving: {serving}; app log: journalctl -u "
                     f"{self.env.site}-web@{self.release_id}")
        return "; ".join(notes)

    def _meta(self, state: str) -> None:
        releases.write_meta(self.remote, self.env, Release(
            self.release_id, self.source.sha, self.source.ref, state,
            datetime.now(UTC).isoformat(timespec="seconds"), getpass.getuser()))

    def _save_log(self, what: str, output: str) -> str:
        path = f"{self.release_dir}/.vpskit-release.log"
        files.write(self.remote, files.FileSpec(path, f"$ {what}\n{output}", mode=0o600),
                    check=False)
        return path


PRUNE_SCRIPT = sh.script("prune-releases")


def check_python(source: Source, server: tuple[int, int] | None) -> None:
    """Refuse an app that needs a newer Python than the server's (pure)."""
    need = required_python(source)
    if need and server and server < need[1]:
        where, (major, minor) = need
        raise ToolkitError(
            f"the app needs Python >= {major}.{minor} ({where}) but the server has "
            f"{server[0]}.{server[1]}; use a server OS with a newer Python (Debian 13 has "
            f"3.13) or lower the requirement")


def deploy_line(env: Environment, release_id: str, sha: str, seconds: float, tls: bool) -> str:
    scheme = "https" if tls else "http"
    return (f"deployed {env.site} {release_id} (sha {sha[:12]}) in {seconds:.1f}s: "
            f"{scheme}://{env.primary_domain}/")
