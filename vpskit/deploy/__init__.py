"""``fab deploy`` and ``fab rollback`` over the web hosts of an environment."""

from __future__ import annotations

import time

from vpskit import session
from vpskit.config import Environment
from vpskit.deploy import releases, switch
from vpskit.deploy.lock import deploy_lock
from vpskit.deploy.pipeline import Deploy, deploy_line
from vpskit.deploy.source import release_id, resolve
from vpskit.errors import ToolkitError
from vpskit.steps import Reporter, run_steps


def deploy_environment(env: Environment, ref: str | None, out: Reporter) -> str:
    """Deploy ``ref`` (default: the inventory's) to every web host; return the release id."""
    source = resolve(env.app.repo, ref or env.app.ref)
    rid = release_id(source)
    for host in env.hosts_with("web"):
        start = time.monotonic()
        remote = session.open_remote(env, host)
        try:
            out.line(f"deploy {env.site} {rid} to {host.address}")
            with deploy_lock(remote, env.site, f"deploy {source.short}"):
                job = Deploy(env, remote, source, rid, out)
                job.run()
            out.line(deploy_line(env, rid, source.sha, time.monotonic() - start, job.tls))
        finally:
            remote.conn.close()
    return rid


def rollback_environment(env: Environment, to: str | None, out: Reporter) -> str:
    """Switch every web host back to the previous good release (or ``to``)."""
    target_id = ""
    for host in env.hosts_with("web"):
        start = time.monotonic()
        remote = session.open_remote(env, host)
        try:
            with deploy_lock(remote, env.site, "rollback"):
                target_id = _rollback_host(env, remote, to, out)
            out.line(f"rolled back {env.site} on {host.address} to {target_id} in "
                     f"{time.monotonic() - start:.1f}s")
        finally:
            remote.conn.close()
    return target_id


def _rollback_host(env: Environment, remote, to: str | None, out: Reporter) -> str:
    found = releases.load(remote, env)
    target = found.get(to) if to else found.previous_good()
    if target is None:
        known = ", ".join(f"{r.id} ({r.state})" for r in found.items) or "none"
        wanted = f"release '{to}'" if to else "earlier release in state ok"
        raise ToolkitError(f"no {wanted} to roll back to on {remote.host}; releases: {known}")
    live = found.get(found.current) if found.current else None
    if live and live.id == target.id:
        raise ToolkitError(f"{target.id} is already live on {remote.host}")
    tls = remote.run(["test", "-s", f"/etc/letsencrypt/live/{env.site}/fullchain.pem"],
                     check=False).ok

    def start(_):
        switch.start(remote, env, target.id)
        try:
            switch.check_socket(remote, env, target.id)
        except ToolkitError:
            switch.stop(remote, env, target.id)
            raise
        return [f"{target.id} healthy on its socket"]

    def flip(_):
        switch.point_nginx(remote, env, target.id, found.current)
        switch.point_current(remote, env, target.id)
        switch.check_public(remote, env, tls)
        return [f"nginx -> {target.id}"]

    def retire(_):
        releases.set_state(remote, env, target, "ok")
        if not live:
            return []
        switch.stop(remote, env, live.id)
        if live.id < target.id:  # rolled forward: the release left behind is not to blame
            return [f"stopped {live.id}"]
        releases.set_state(remote, env, live, "bad")
        return [f"stopped {live.id}, marked bad"]

    run_steps(None, [("start", start), ("switch", flip), ("stop old", retire),
                     ("processes", lambda _: switch.restart_processes(remote, env))], out)
    return target.id
