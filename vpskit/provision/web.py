"""Nginx: the shared snippet, the site and its upstream; default site removed; ``nginx -t``
before every reload, and a reload only when something changed.

A web host serves the live release (to the world, or as a backend of the lb host, over TLS
with a certificate of its own CA); the lb host has a site of its own that terminates TLS and
spreads requests over the web hosts, verifying each against the web hosts' CAs.
"""

from __future__ import annotations

from vpskit import facts, render
from vpskit.deploy.switch import SWITCH_NGINX
from vpskit.files import FileSpec, file_probe
from vpskit.provision import hostca
from vpskit.provision.context import Context

DEFAULT_SITE = "/etc/nginx/sites-enabled/default"
LOG_OWNER = ("www-data", "adm", "640")  # as Debian's logrotate makes them: no site user reads it


def probes(ctx: Context) -> list[facts.Probe]:
    env = ctx.env
    paths = [render.COMMON_CONF, render.site_path(env), render.upstream_path(env),
             render.lb_site_path(env), render.lb_upstream_path(env)]
    return [
        file_probe(paths, "nginx_files"),
        facts.Probe("nginx_default", f"test -e {DEFAULT_SITE}", lambda out, rc: rc == 0),
        facts.nonempty(render.cert_path(env), "cert_ready"),
        facts.owners([render.access_log_path(env), render.access_log_path(env, lb=True)],
                     "nginx_logs"),
    ]


def tls_site(ctx: Context, tls_ready: bool) -> FileSpec:
    """The site that terminates TLS on this host: the lb's, or the web site without an lb."""
    if "lb" in ctx.host.roles:
        return FileSpec(render.lb_site_path(ctx.env), render.nginx_site(ctx.env, tls_ready, "lb"))
    return FileSpec(render.site_path(ctx.env),
                    render.nginx_site(ctx.env, tls_ready, render.web_mode(ctx.env)))


def nginx(ctx: Context) -> list[str]:
    """Install the web site; keep the upstream a deploy wrote (it names the live release)."""
    env, states = ctx.env, ctx.facts["nginx_files"]
    specs = [FileSpec(render.site_path(env), render.nginx_site(
        env, tls_ready=ctx.facts["cert_ready"], mode=render.web_mode(env)))]
    if render.upstream_path(env) not in states:
        specs.append(FileSpec(render.upstream_path(env), render.nginx_upstream(env, None)))
    return _apply(ctx, specs, render.access_log_path(env))


def backend_certificate(ctx: Context) -> list[str]:
    """A web host behind an lb: the certificate of its backend port, for the name the lb
    verifies it by, from the host's own CA."""
    return hostca.ensure_certificate(ctx, "backend", render.BACKEND_NAME)


def lb(ctx: Context) -> list[str]:
    """Install the load balancer's site and its upstream of every web host, all in rotation."""
    env = ctx.env
    return _apply(ctx, [tls_site(ctx, ctx.facts["cert_ready"]),
                        FileSpec(render.lb_upstream_path(env), render.nginx_lb_upstream(env))],
                  render.access_log_path(env, lb=True))


def _apply(ctx: Context, specs: list[FileSpec], log: str) -> list[str]:
    changes = _access_log(ctx, log)
    if ctx.facts["nginx_default"]:
        ctx.act(["rm", "-f", DEFAULT_SITE])
        ctx.facts["nginx_default"] = False
        changes.append(f"removed {DEFAULT_SITE}")
    specs = [FileSpec(render.COMMON_CONF, render.nginx_common()), *specs]
    changes += ctx.apply_files(specs, ctx.facts["nginx_files"], validate=["nginx", "-t", "-q"])
    if changes:
        reload_nginx(ctx)
    return changes


def _access_log(ctx: Context, path: str) -> list[str]:
    """The site's request log, made before Nginx opens it (Nginx would make it world-readable),
    or its owner and mode put right; never emptied."""
    found = ctx.facts["nginx_logs"].get(path)
    if found == LOG_OWNER:
        return []
    owner, group, mode = LOG_OWNER
    if found is None:
        ctx.act(["install", "-m", mode, "-o", owner, "-g", group, "/dev/null", path])
    else:
        ctx.act(["chown", f"{owner}:{group}", path])
        ctx.act(["chmod", mode, path])
    ctx.facts["nginx_logs"][path] = LOG_OWNER
    return [f"{path} ({'created' if found is None else 'owner and mode'})"]


def reload_nginx(ctx: Context) -> None:
    """``nginx -t`` then a graceful reload (or a start when it is not running); returns once
    the old workers are gone (at most 10 s), so the next step meets the new configuration."""
    ctx.act(["bash", "-c", SWITCH_NGINX, "reload-nginx", "10"])
