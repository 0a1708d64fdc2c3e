"""``fab deploy`` and ``fab rollback`` over the app hosts of an environment; the graceful
restart of a live release (a changed env file)."""

from __future__ import annotations

import contextlib
import getpass
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack

from vpskit import applier, facts, fleet, hooks, interrupts, maintenance, render, session
from vpskit.applier import Context
from vpskit.config import Environment, Host
from vpskit.deploy import releases, switch
from vpskit.deploy.lock import armed, deploy_lock, disarmed
from vpskit.deploy.pipeline import Deploy, deploy_line
from vpskit.deploy.source import refuse_unsafe_files, resolve
from vpskit.errors import ToolkitError
from vpskit.plan import Plan
from vpskit.remote import Remote
from vpskit.steps import Reporter


def deploy_environment(env: Environment, ref: str | None, out: Reporter,
                       hosts: Sequence[Host] | None = None, batch: int = 1,
                       with_maintenance: bool = False) -> str:
    """Deploy ``ref`` (default: the inventory's) to the app hosts; return the release id.

    The ``pre_deploy`` hook runs before any connection. Every host is locked and prepared at
    once (upload, virtualenv); the database is dumped and the release commands run once, on the
    first web host; the new release starts beside the live one on every web host; then the web
    hosts switch ``batch`` at a time, each gated by its public health check; last, old releases
    stop and processes restart everywhere. A failure anywhere puts every host back on the
    release it was serving. ``with_maintenance``: :class:`vpskit.maintenance.DeployWindow`.
    Unlocked, ``post_deploy`` or ``failed_deploy`` runs last."""
    source = resolve(env.app.repo, ref or env.app.ref)
    refuse_unsafe_files(source, env.backups.local_dir)
    rid = releases.new_id(source.short)
    targets = [h for h in (hosts or env.hosts) if h.serves_app]
    if not targets:
        raise ToolkitError(f"no web or worker host of {env.site} among those chosen")
    about = hooks.variables(env, targets, rid, source.sha, source.ref)
    hooks.run(env, "pre_deploy", about, out)
    start = time.monotonic()
    jobs: dict[str, Deploy] = {}
    with ExitStack() as stack:
        def prepare(host: Host, host_out: Reporter) -> None:
            remote = stack.enter_context(session.connected(env, host))
            stack.enter_context(deploy_lock(remote, env.site, f"deploy {source.short}"))
            host_out.line(f"deploy {env.site} {rid} to {host.address}")
            jobs[host.address] = Deploy(env, host, remote, source, rid, host_out)
            jobs[host.address].phase("prepare")

        def phase(name: str, hosts: list[Host]) -> None:
            fleet.each_or_raise(hosts, lambda h, o: jobs[h.address].phase(name), out, "deploy",
                                alone=len(targets) == 1)

        lb: Remote | None = None  # the lb host's runner, once opened
        window = maintenance.DeployWindow(env)  # opened with --maintenance only
        try:
            _lock_db_host(env, targets, stack, f"deploy {source.short}")
            fleet.each_or_raise(targets, prepare, out, "deploy")
            if with_maintenance:
                window.open(_public(env, jobs, stack), source.read(maintenance.PAGE), out)
            web = [h for h in targets if "web" in h.roles] or targets
            phase("once", web[:1])
            phase("start", web)
            lb = _lb_remote(env, web, jobs, stack, f"deploy {source.short}")
            _switch_all(env, lb, web, batch, lambda h: phase("switch", h), out)
            window.close(out)
            phase("finish", targets)
        except BaseException as exc:  # any way out: an error, Ctrl-C, a signal, a lost link
            error = _undo(env, list(jobs.values()), lb, window, exc, out) if jobs else exc
            stack.close()  # unlocked before the hook
            hooks.warn(env, "failed_deploy", hooks.failed(about, error), out)
            if error is exc:
                raise
            raise error from exc
    tls = any(j.tls for j in jobs.values())
    out.line(deploy_line(env, rid, source.sha, time.monotonic() - start, tls)
             + (f" on {len(jobs)} hosts" if len(jobs) > 1 else ""))
    hooks.warn(env, "post_deploy", about, out)
    return rid


def _undo(env: Environment, jobs: list[Deploy], lb: Remote | None,
          window: maintenance.DeployWindow, exc: BaseException, out: Reporter) -> ToolkitError:
    """Put every host back on what it served, shielded from signals, then end the deploy's
    maintenance (the old release serves again); the error to end with."""
    with interrupts.shielded():
        notes = _recover(jobs, out)
        if lb:
            _on_lb(env, lb, switch.rotate(env) + disarmed(env.site))
        if window.opened:
            try:
                window.close(out)
                notes += "; maintenance off"
            except Exception as cleanup:  # a lost connection too: say so, keep the first error
                notes += (f"; maintenance is still on ({cleanup}): fab maintenance --env "
                          f"{env.name} off")
    return interrupts.failure(exc, notes)


def _lock_db_host(env: Environment, targets: list[Host], stack: ExitStack, what: str) -> None:
    """A separate db host is locked too: its backups wait for the deploy's dump."""
    db = env.db_host if env.own_postgres else None
    if db is not None and db not in targets:
        remote = stack.enter_context(session.connected(env, db))
        stack.enter_context(deploy_lock(remote, env.site, what))


def _remote(env: Environment, host: Host, jobs: dict[str, Deploy], stack: ExitStack) -> Remote:
    """The deploy's runner on ``host``: its job's, else a connection of its own."""
    if host.address in jobs:
        return jobs[host.address].remote
    return stack.enter_context(session.connected(env, host))


def _lb_remote(env: Environment, web: list[Host], jobs: dict[str, Deploy], stack: ExitStack,
               what: str) -> Remote | None:
    """The lb host's runner, when the web hosts deployed to sit behind one; locked too when it
    serves no app (its lock's holder undoes a rotation the deploy left half-done)."""
    if not env.lb_host or "web" not in web[0].roles:
        return None
    remote = _remote(env, env.lb_host, jobs, stack)
    locked = env.lb_host.address in jobs or (env.own_postgres and env.lb_host == env.db_host)
    if not locked:  # (a separate db host is locked by _lock_db_host)
        stack.enter_context(deploy_lock(remote, env.site, what))
    return remote


def _public(env: Environment, jobs: dict[str, Deploy], stack: ExitStack
            ) -> list[tuple[Host, Remote]]:
    """The hosts the world connects to (the lb, else the web hosts), connected."""
    return [(host, _remote(env, host, jobs, stack)) for host in env.public_hosts]


def _switch_all(env: Environment, lb: Remote | None, web: list[Host], batch: int,
                switch_hosts: Callable[[list[Host]], None], out: Reporter) -> None:
    """Switch the web hosts ``batch`` at a time, then health-check the lb's site."""
    for i in range(0, len(web), batch):
        _switch_batch(env, lb, web[i:i + batch], switch_hosts, out)
    if lb:
        tls = _has_cert(lb, env)
        _on_lb(env, lb, switch.check_public(env, tls, lb=True))
        url = switch.public_url(env, tls, lb=True)[2]
        out.line(f"lb {env.lb_host.address}: {url} answered {env.health.status}")


def _switch_batch(env: Environment, lb: Remote | None, hosts: list[Host],
                  switch_hosts: Callable[[list[Host]], None], out: Reporter) -> None:
    """Switch ``hosts``, out of the lb's rotation meanwhile when there is an lb; a host that
    fails stays out until the deploy is undone. The last web hosts in rotation never leave
    it: they switch in place (a graceful Nginx reload, as on a single host)."""
    if not lb:
        switch_hosts(hosts)
        return
    if len(hosts) >= len([h for h in env.hosts if "web" in h.roles]):
        out.line(f"lb {env.lb_host.address}: no other web host would serve; switching in place")
        switch_hosts(hosts)
        return
    names = ", ".join(h.address for h in hosts)
    _on_lb(env, lb, armed(env.site, [switch.all_in_rotation_argv(env)])  # should this operator die
           + switch.rotate(env, tuple(h.private for h in hosts)))
    out.line(f"lb {env.lb_host.address}: {names} out of rotation")
    switch_hosts(hosts)
    _on_lb(env, lb, switch.rotate(env) + disarmed(env.site))
    out.line(f"lb {env.lb_host.address}: {names} back in rotation")


def _on_lb(env: Environment, lb: Remote, plan: Plan) -> None:
    applier.apply_quietly(env, env.lb_host, lb, plan)


def _has_cert(remote: Remote, env: Environment) -> bool:
    return facts.gather(remote, [facts.nonempty(render.cert_path(env), "tls")])["tls"]


def _recover(jobs: list[Deploy], out: Reporter) -> str:
    """Put every host back on what it served; one note (per host when several)."""
    if len(jobs) == 1:
        return jobs[0].recover()
    by_address = {j.host.address: j for j in jobs}
    notes, _ = fleet.each([j.host for j in jobs], lambda h, o: by_address[h.address].recover(),
                          out)
    return "; ".join(f"{address}: {note}" for address, note in notes.items())


def rollback_environment(env: Environment, to: str | None, out: Reporter,
                         hosts: Sequence[Host] | None = None, dry_run: bool = False) -> str:
    """Switch every app host back to the previous good release (or ``to``), all at once; then
    the inventory's ``post_rollback`` hook runs (its failure is a warning). A dry run takes no
    lock and changes nothing: it says what each step would do, with a diff per file."""
    def one(host: Host, host_out: Reporter) -> releases.Release:
        start = time.monotonic()
        with session.connected(env, host) as remote, \
                contextlib.nullcontext() if dry_run else deploy_lock(remote, env.site, "rollback"):
            target = _rollback_host(Context(env, host, remote, host_out, dry_run), to)
        verb = "would roll back" if dry_run else "rolled back"
        host_out.line(f"{verb} {env.site} on {host.address} to {target.id} in "
                      f"{time.monotonic() - start:.1f}s")
        return target

    targets = [h for h in (hosts or env.hosts) if h.serves_app]
    target = next(iter(fleet.each_or_raise(targets, one, out, "rollback").values()))
    if not dry_run:
        hooks.warn(env, "post_rollback", hooks.variables(env, targets, target.id, target.sha,
                                                         target.ref), out)
    return target.id


def _rollback_host(ctx: Context, to: str | None) -> releases.Release:
    remote = ctx.remote
    found = releases.load(remote, ctx.env)
    target = found.get(to) if to else found.previous_good()
    if target is None:
        known = ", ".join(f"{r.id} ({r.state})" for r in found.items) or "none"
        wanted = f"release '{to}'" if to else "earlier release in state ok"
        raise ToolkitError(f"no {wanted} to roll back to on {remote.host}; releases: {known}")
    if found.current == target.id:
        raise ToolkitError(f"{target.id} is already live on {remote.host}")
    _switch_host(ctx, target, found)
    return target


def restart_host(env: Environment, host: Host, remote: Remote, note: str, out: Reporter
                 ) -> releases.Release | None:
    """Restart the live release gracefully, e.g. with a changed env file: its files become a
    new release (:func:`releases.clone`) that starts beside the live one and takes over as in
    a rollback, so the old one serves until the new one answers. The new release, or None when
    nothing is deployed here; if it fails, it is marked ``failed`` and the live one serves on."""
    found = releases.load(remote, env)
    live = found.get(found.current) if found.current else None
    if live is None:
        return None
    made = releases.successor(live, note, getpass.getuser())
    ctx = Context(env, host, remote, out)
    applier.apply(ctx, releases.clone(env, live, made))
    try:
        _switch_host(ctx, made, found)
    except BaseException as exc:  # any way out, as in a deploy
        with interrupts.shielded():
            raise interrupts.failure(exc, _back_to(ctx, live, made)) from exc
    return made


def _back_to(ctx: Context, live: releases.Release, made: releases.Release) -> str:
    """Undo a restart that failed before the new release was marked good: Nginx and
    ``current`` back on ``live``, the new one stopped and marked ``failed``; what was done."""
    env = ctx.env
    try:
        if releases.load(ctx.remote, env).get(made.id).state == "ok":
            return f"{made.id} serves; only what came after failed"
        web = "web" in ctx.host.roles
        if web:
            applier.apply(ctx, switch.point_nginx(env, live.id, made.id))
            applier.apply(ctx, switch.stop(env, made.id))
        applier.apply(ctx, switch.point_current(env, live.id, web=web)
                      + releases.marked(env, made, "failed"))
        return f"{live.id} serves on; {made.id} marked failed"
    except Exception as cleanup:  # a lost connection too: say so, keep the first error
        return f"putting {live.id} back also failed: {cleanup}"


def _switch_host(ctx: Context, target: releases.Release, found: releases.Releases) -> None:
    """Move the context's host from its live release to ``target``
    (:func:`switch.switch_steps`)."""
    tls = _has_cert(ctx.remote, ctx.env)
    applier.apply_steps(ctx, switch.switch_steps(ctx.env, ctx.host, target, found, tls))
