"""One deploy on one host: upload → venv → backup → release commands → start beside the live
release → health → switch → public health → stop old → prune.

Any failure before the switch stops the new release and leaves the old one serving; a failure
after it switches back to the old release (still running) and marks the new one bad.
"""

from __future__ import annotations

import getpass
import shlex
from dataclasses import dataclass
from datetime import UTC, datetime

from vpskit import applier, backups, facts, job_units, render
from vpskit.applier import Context
from vpskit.config import Environment, Host
from vpskit.deploy import appcmd, releases, switch
from vpskit.deploy.releases import Release, Releases
from vpskit.deploy.source import Source, required_python
from vpskit.errors import ToolkitError
from vpskit.plan import Plan, facts_of
from vpskit.remote import Remote
from vpskit.steps import Reporter, run_steps


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
    """State of one deploy on one host; :func:`vpskit.deploy.run.deploy_environment` runs its
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
        repaired = self._apply(switch.repair_current(
            self.env, self.before.current, found.upstream_release)) if self.web else []
        if repaired:
            self.before = releases.load(self.remote, self.env)
        return repaired

    def upload(self) -> list[str]:
        self._apply(releases.unpack(self.env, self._release("new"), self.source.archive()))
        self.uploaded = True
        return [f"{self.release_id} ({self.source.ref} = {self.source.short})"]

    def virtualenv(self) -> list[str]:
        return self._apply(releases.virtualenv(self.env, self.release_id,
                                               self.source.read(self.env.app.requirements),
                                               self.python))

    def backup(self) -> list[str]:
        return self._apply(backups.predeploy(self.env, self.release_id))

    def release_commands(self) -> list[str]:
        return self._apply(appcmd.release_plan(self.env, self.release_id))

    def start(self) -> list[str]:
        self.started = True
        self._apply(switch.start(self.env, self.release_id))
        return [f"{self.env.site}-web@{self.release_id}"]

    def health(self) -> list[str]:
        self._apply(switch.check_socket(self.env, self.release_id))
        return [f"{self.env.health.path} answered {self.env.health.status}"]

    def switch(self) -> list[str]:
        self.switched = True  # before the first change: an interrupt inside it is undone too
        self._apply(switch.point_nginx(self.env, self.release_id, self.live))
        self._apply(switch.point_current(self.env, self.release_id, web=True))
        return [f"nginx -> {self.release_id}"]

    def current(self) -> list[str]:
        """A host without web: the ``current`` link its processes run from."""
        self.switched = True
        self._apply(switch.point_current(self.env, self.release_id, web=False))
        self._meta("ok")
        return [f"current -> {self.release_id}"]

    def public_health(self) -> list[str]:
        self._apply(switch.check_public(self.env, self.tls))
        return [switch.public_url(self.env, self.tls)[2]]

    def stop_old(self) -> list[str]:
        """The release that served before, and any other left running (by a deploy killed
        before it could stop them), stop in the background."""
        self._meta("ok")
        return self._apply(switch.stop_all_but(self.env, self.release_id))

    def processes(self) -> list[str]:
        return self._apply(switch.restart_processes(self.env))

    def jobs(self) -> list[str]:
        """The inventory's scheduled jobs, on the live release from now on (:mod:`vpskit.jobs`)."""
        return self._apply(self.job_units or Plan())

    def prune(self) -> list[str]:
        return self._apply(releases.pruned(self.env, releases.load(self.remote, self.env)))

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
                    self._apply(switch.point_nginx(self.env, self.live, self.release_id))
                self._apply(switch.point_current(self.env, self.live, web=self.web))
                if "worker" in self.host.roles:
                    self._apply(switch.restart_processes(self.env))
                notes.append(f"rolled back to {self.live}")
            if self.started:
                self._apply(switch.stop(self.env, self.release_id))
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
        self._apply(releases.record(self.env, self._release(state)))

    def _release(self, state: str) -> Release:
        return Release(self.release_id, self.source.sha, self.source.ref, state,
                       datetime.now(UTC).isoformat(timespec="seconds"), getpass.getuser())

    def _apply(self, plan: Plan) -> list[str]:
        return applier.apply(Context(self.env, self.host, self.remote, self.out), plan)


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
