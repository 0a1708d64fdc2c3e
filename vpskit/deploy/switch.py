"""Start a release beside the live one, health-check it, move Nginx to it, stop the old one.

Shared by deploy and rollback. The new release listens on its own socket, so it is checked
before any request reaches it; the old one is stopped only after every Nginx worker that could
still send it a request has exited.
"""

from __future__ import annotations

import re
import shlex

from vpskit import facts, files, render, serverop, sh
from vpskit.config import Environment
from vpskit.deploy import applog
from vpskit.errors import HealthCheckError, RemoteError
from vpskit.provision.web import SWITCH_NGINX
from vpskit.remote import Remote

HEALTH_SCRIPT = sh.script("health")



def start(remote: Remote, env: Environment, release_id: str) -> None:
    remote.run(["systemctl", "start", render.web_unit_name(env, release_id)], timeout=120)


def stop(remote: Remote, env: Environment, release_id: str, wait: bool = True) -> None:
    """Graceful stop (SIGTERM; in-flight requests get app.graceful_timeout), and no start at
    boot; without ``wait`` it goes on in the background (a release Nginx no longer sends
    anything to)."""
    remote.run(["systemctl", "disable", "--now", "--no-reload", "-q",
                *([] if wait else ["--no-block"]), render.web_unit_name(env, release_id)],
               timeout=env.app.graceful_timeout + 30)


STOP_OTHERS = sh.script("stop-others")


def stop_all_but(remote: Remote, env: Environment, release_id: str) -> list[str]:
    """Stop (in the background) and disable every web instance of the site but
    ``release_id``'s; the release ids stopped."""
    result = remote.run(["bash", "-c", STOP_OTHERS, "stop-others", env.site,
                         render.web_unit_name(env, release_id)])
    return [line.removesuffix(".service") for line in result.stdout.split()]


def check_socket(remote: Remote, env: Environment, release_id: str) -> None:
    """Health-check a release on its own socket, before it gets traffic; on failure the
    message adds the last error line of the release's web process (from its journal)."""
    _check(remote, env, "socket", render.web_socket(env, release_id),
           f"release {release_id} on its socket", render.web_unit_name(env, release_id))


def check_public(remote: Remote, env: Environment, tls: bool, lb: bool = False) -> str:
    """Health-check through this host's Nginx with the real domain: the public site (TLS when
    a certificate exists), the backend port of a web host behind an lb, or with ``lb`` the
    lb's site. Returns the URL checked."""
    backend = env.lb_host is not None and not lb
    scheme = "https" if tls or backend else "http"  # a backend port is TLS, with its own CA
    port = render.BACKEND_PORT if backend else 443 if scheme == "https" else 80
    url = f"{scheme}://{env.primary_domain}:{port}{env.health.path}"
    _check(remote, env, scheme, str(port), f"{url} through nginx")
    return url


def _check(remote: Remote, env: Environment, mode: str, target: str, what: str,
           unit: str | None = None) -> None:
    """Poll until the health path answers; on failure raise one masked line, naming ``unit``'s
    last error when given."""
    h = env.health
    result = remote.run(["bash", "-c", HEALTH_SCRIPT, "health", mode, target, env.primary_domain,
                         h.path, str(h.status), str(h.retries), str(h.timeout)],
                        check=False, timeout=h.retries * (h.timeout + 2) + 30)
    if result.ok:
        return
    message = f"health check of {what} failed: {result.stdout.strip().removesuffix(':')}"
    if unit:
        journal = remote.run(applog.journal_argv(unit), check=False, timeout=30)
        error = applog.last_error_line(journal.stdout) if journal.ok else None
        message += f"; last error in {unit}: {error}" if error else ""
    raise HealthCheckError(remote.masked(" ".join(message.split())))


def upstream_probe(env: Environment) -> facts.Probe:
    """The release the site's Nginx upstream names (None: no upstream or none deployed)."""
    return facts.Probe("upstream_release", f"cat {shlex.quote(render.upstream_path(env))}",
                       lambda out, rc: upstream_release(out) if rc == 0 else None)


def upstream_release(text: str) -> str | None:
    """The release id in an upstream file's socket path ``.../web-<id>.sock`` (pure)."""
    match = re.search(r"/web-([^/\s]+)\.sock", text)
    return match[1] if match and match[1] != "none" else None


def repair_current(remote: Remote, env: Environment, current: str | None,
                   upstream: str | None) -> str | None:
    """Where a cut between the two left Nginx and ``current`` on different releases, point
    ``current`` (and the unit enabled at boot) at what Nginx serves; say so, or None."""
    if not upstream or upstream == current:
        return None
    point_current(remote, env, upstream, web=True)
    return f"repaired: current -> {upstream}, the release nginx serves (was {current})"


def point_nginx(remote: Remote, env: Environment, release_id: str, previous: str | None) -> None:
    """Rewrite the upstream to ``release_id`` and reload gracefully, as a server-side unit
    (:mod:`vpskit.serverop`: the lock is held until it is over, even if this operator dies); on
    a bad config the previous upstream is put back. Returns once the old Nginx workers have
    exited."""
    path = render.upstream_path(env)
    files.write(remote, files.FileSpec(path, render.nginx_upstream(env, release_id)))
    result = serverop.run_script(remote, env.site, "switch", SWITCH_NGINX,
                                 [str(env.app.graceful_timeout)], env.app.graceful_timeout + 60)
    if result.exited in (3, 4):
        files.write(remote, files.FileSpec(path, render.nginx_upstream(env, previous)))
        remote.run(["systemctl", "reload", "nginx"], check=False)
        raise RemoteError(f"{remote.host}: nginx refused the new upstream; previous one restored")


def rotate(remote: Remote, env: Environment, out_of_rotation: tuple[str, ...] = ()) -> None:
    """On the lb host: take the web hosts at these private addresses out of rotation (or put
    all back with none); returns once no old Nginx worker can send them a request."""
    files.write(remote, files.FileSpec(render.lb_upstream_path(env),
                                       render.nginx_lb_upstream(env, out_of_rotation)))
    result = remote.run(["bash", "-c", SWITCH_NGINX, "rotate", str(env.app.graceful_timeout)],
                        check=False, timeout=env.app.graceful_timeout + 60)
    if result.exited in (3, 4):
        raise RemoteError(f"{remote.host}: nginx refused the lb upstream")


PUT_BACK_UPSTREAM = sh.script("put-back-upstream")


def all_in_rotation_argv(env: Environment) -> list[str]:
    """The lb host's command that puts every web host back in rotation (an undo journal's)."""
    return ["bash", "-c", PUT_BACK_UPSTREAM, "put-back-upstream", render.lb_upstream_path(env),
            render.nginx_lb_upstream(env)]


POINT_CURRENT = sh.script("point-current")


def point_current(remote: Remote, env: Environment, release_id: str, web: bool) -> None:
    """Move the ``current`` symlink atomically (rename over the old link); on a ``web`` host
    also make the release's web unit the one that starts at boot (the others' are disabled)."""
    tmp = f"{env.current_link}.vpskit-new"
    unit = render.web_unit_name(env, release_id) if web else ""
    remote.run(["bash", "-c", POINT_CURRENT, "current", f"releases/{release_id}", tmp,
                str(env.current_link), unit])


PROCESSES_SCRIPT = sh.script("processes")


def restart_processes(remote: Remote, env: Environment, wait: bool = False) -> list[str]:
    """Restart every process type on the live release, gracefully (SIGTERM, then its
    stop_timeout); in the background unless ``wait``, so a long job never holds up a deploy or
    rollback. Instances beyond the configured count are stopped."""
    if not env.processes:
        return []
    args = [str(x) for p in env.processes for x in (p.name, p.count)]
    timeout = max(p.stop_timeout for p in env.processes) + 60
    remote.run(["bash", "-c", PROCESSES_SCRIPT, "processes", "" if wait else "--no-block",
                env.site, *args], timeout=timeout)
    return [f"{p.name} x{p.count}{'' if wait else ' restarting'}" for p in env.processes]
