"""Start a release beside the live one, health-check it, move Nginx to it, stop the old one:
as plans (pure; :mod:`vpskit.applier` carries them out).

Shared by deploy, rollback and restore. The new release listens on its own socket, so it is
checked before any request reaches it; the old one is stopped only after every Nginx worker that
could still send it a request has exited.
"""

from __future__ import annotations

import re
import shlex

from vpskit import facts, plan, render, serverop, sh
from vpskit.config import Environment, Host
from vpskit.deploy.releases import Release, Releases, marked
from vpskit.files import FileSpec
from vpskit.plan import Plan
from vpskit.provision.web import SWITCH_NGINX

HEALTH_SCRIPT = sh.script("health")


def start(env: Environment, release_id: str) -> Plan:
    return plan.run("systemctl", "start", render.web_unit_name(env, release_id), timeout=120)


def stop(env: Environment, release_id: str, wait: bool = True) -> Plan:
    """Graceful stop (SIGTERM; in-flight requests get app.graceful_timeout), and no start at
    boot; without ``wait`` it goes on in the background (a release Nginx no longer sends
    anything to)."""
    return plan.run("systemctl", "disable", "--now", "--no-reload", "-q",
                    *([] if wait else ["--no-block"]), render.web_unit_name(env, release_id),
                    timeout=env.app.graceful_timeout + 30)


STOP_OTHERS = sh.script("stop-others")


def stop_all_but(env: Environment, release_id: str) -> Plan:
    """Stop (in the background) and disable every web instance of the site but
    ``release_id``'s; its line names the ones stopped."""
    return plan.run("bash", "-c", STOP_OTHERS, "stop-others", env.site,
                    render.web_unit_name(env, release_id), read=("stopped",))


def health_argv(env: Environment, mode: str, target: str) -> list[str]:
    """Poll the health path through ``mode`` (socket, http, https) at ``target`` (a socket
    path or a port) until it answers the wanted status (``sh/health.sh``)."""
    h = env.health
    return ["bash", "-c", HEALTH_SCRIPT, "health", mode, target, env.primary_domain, h.path,
            str(h.status), str(h.retries), str(h.timeout)]


def check_socket(env: Environment, release_id: str) -> Plan:
    """Health-check a release on its own socket, before it gets traffic; on failure the
    message adds the last error line of the release's web process (from its journal)."""
    return plan.hatch("health", "socket", render.web_socket(env, release_id),
                      f"release {release_id} on its socket",
                      render.web_unit_name(env, release_id))


def public_url(env: Environment, tls: bool, lb: bool = False) -> tuple[str, str, str]:
    """Where :func:`check_public` asks, as (scheme, port, URL): the public site (TLS when a
    certificate exists), the backend port of a web host behind an lb, or with ``lb`` the lb's
    site."""
    backend = env.lb_host is not None and not lb
    scheme = "https" if tls or backend else "http"  # a backend port is TLS, with its own CA
    port = render.BACKEND_PORT if backend else 443 if scheme == "https" else 80
    return scheme, str(port), f"{scheme}://{env.primary_domain}:{port}{env.health.path}"


def check_public(env: Environment, tls: bool, lb: bool = False) -> Plan:
    """Health-check :func:`public_url` through this host's Nginx with the real domain."""
    scheme, port, url = public_url(env, tls, lb)
    return plan.hatch("health", scheme, port, f"{url} through nginx", "")


def upstream_probe(env: Environment) -> facts.Probe:
    """The release the site's Nginx upstream names (None: no upstream or none deployed)."""
    return facts.Probe("upstream_release", f"cat {shlex.quote(render.upstream_path(env))}",
                       lambda out, rc: upstream_release(out) if rc == 0 else None)


def upstream_release(text: str) -> str | None:
    """The release id in an upstream file's socket path ``.../web-<id>.sock`` (pure)."""
    match = re.search(r"/web-([^/\s]+)\.sock", text)
    return match[1] if match and match[1] != "none" else None


def repair_current(env: Environment, current: str | None, upstream: str | None) -> Plan:
    """Where a cut between the two left Nginx and ``current`` on different releases, point
    ``current`` (and the unit enabled at boot) at what Nginx serves, and say so."""
    if not upstream or upstream == current:
        return Plan()
    return point_current(env, upstream, web=True) + Plan(changes=(
        f"repaired: current -> {upstream}, the release nginx serves (was {current})",))


def point_nginx(env: Environment, release_id: str, previous: str | None) -> Plan:
    """Rewrite the upstream to ``release_id`` and reload gracefully, as a server-side unit
    (:mod:`vpskit.serverop`: the lock is held until it is over, even if this operator dies);
    should Nginx refuse it, the ``previous`` upstream is put back. Done once the old Nginx
    workers have exited (pure but for the unit's name)."""
    path, timeout = render.upstream_path(env), env.app.graceful_timeout + 60
    back = plan.overwrite(FileSpec(path, render.nginx_upstream(env, previous))) \
        + plan.run("systemctl", "reload", "nginx", check=False)
    risky = (plan.overwrite(FileSpec(path, render.nginx_upstream(env, release_id)))
             + plan.run(*serverop.script_argv(env.site, "switch",
                                              [str(env.app.graceful_timeout)], timeout),
                        stdin=SWITCH_NGINX, timeout=timeout, check=False,
                        read=("nginx_switch", "the new upstream")))
    return plan.guarded(risky, back, "previous one restored")


def rotate(env: Environment, out_of_rotation: tuple[str, ...] = ()) -> Plan:
    """On the lb host: take the web hosts at these private addresses out of rotation (or put
    all back with none); done once no old Nginx worker can send them a request."""
    spec = FileSpec(render.lb_upstream_path(env), render.nginx_lb_upstream(env, out_of_rotation))
    return plan.overwrite(spec) + plan.run(
        "bash", "-c", SWITCH_NGINX, "rotate", str(env.app.graceful_timeout), check=False,
        timeout=env.app.graceful_timeout + 60, read=("nginx_switch", "the lb upstream"))


PUT_BACK_UPSTREAM = sh.script("put-back-upstream")


def all_in_rotation_argv(env: Environment) -> list[str]:
    """The lb host's command that puts every web host back in rotation (an undo journal's)."""
    return ["bash", "-c", PUT_BACK_UPSTREAM, "put-back-upstream", render.lb_upstream_path(env),
            render.nginx_lb_upstream(env)]


POINT_CURRENT = sh.script("point-current")


def point_current(env: Environment, release_id: str, web: bool) -> Plan:
    """Move the ``current`` symlink atomically (rename over the old link); on a ``web`` host
    also make the release's web unit the one that starts at boot (the others' are disabled)."""
    tmp = f"{env.current_link}.vpskit-new"
    unit = render.web_unit_name(env, release_id) if web else ""
    return plan.run("bash", "-c", POINT_CURRENT, "current", f"releases/{release_id}", tmp,
                    str(env.current_link), unit)


PROCESSES_SCRIPT = sh.script("processes")


def restart_processes(env: Environment, wait: bool = False) -> Plan:
    """Restart every process type on the live release, gracefully (SIGTERM, then its
    stop_timeout); in the background unless ``wait``, so a long job never holds up a deploy or
    rollback. Instances beyond the configured count are stopped."""
    if not env.processes:
        return Plan()
    args = [str(x) for p in env.processes for x in (p.name, p.count)]
    timeout = max(p.stop_timeout for p in env.processes) + 60
    return Plan(plan.run("bash", "-c", PROCESSES_SCRIPT, "processes",
                         "" if wait else "--no-block", env.site, *args, timeout=timeout).actions,
                tuple(f"{p.name} x{p.count}{'' if wait else ' restarting'}"
                      for p in env.processes))


def switch_steps(env: Environment, host: Host, target: Release, found: Releases, tls: bool
                 ) -> list[tuple[str, Plan]]:
    """Move ``host`` from its live release to ``target`` (a rollback, a restart), as named
    steps of plans: on a web host start it beside the live one (stopped again should its
    health check on its socket fail), point Nginx and ``current`` at it, then stop the old
    one (marked ``bad`` when it was newer: rolled back from); restart the processes."""
    live = found.get(found.current) if found.current else None
    if "web" in host.roles:
        started = (plan.guarded(start(env, target.id) + check_socket(env, target.id),
                                stop(env, target.id))
                   + Plan(changes=(f"{target.id} healthy on its socket",)))
        flip = (point_nginx(env, target.id, found.current) + point_current(env, target.id, web=True)
                + check_public(env, tls) + Plan(changes=(f"nginx -> {target.id}",)))
        retire = marked(env, target, "ok")
        if live and live.id < target.id:  # rolled forward: the release left behind is not to blame
            retire += stop(env, live.id, wait=False) + Plan(changes=(f"stopping {live.id}",))
        elif live:
            retire += (stop(env, live.id, wait=False) + marked(env, live, "bad")
                       + Plan(changes=(f"stopping {live.id}, marked bad",)))
        steps = [("start", started), ("switch", flip), ("stop old", retire)]
    else:
        steps = [("current", point_current(env, target.id, web=False)
                  + marked(env, target, "ok") + Plan(changes=(f"current -> {target.id}",)))]
    if "worker" in host.roles:
        steps.append(("processes", restart_processes(env)))
    return steps
