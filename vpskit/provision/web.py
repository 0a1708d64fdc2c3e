"""Nginx: the shared snippet, the site and its upstream; default site removed; ``nginx -t``
before every reload, and a reload only when something changed."""

from __future__ import annotations

import shlex

from vpskit import facts, render
from vpskit.files import FileSpec, file_probe
from vpskit.provision.context import Context

DEFAULT_SITE = "/etc/nginx/sites-enabled/default"


def probes(ctx: Context) -> list[facts.Probe]:
    env = ctx.env
    paths = [render.COMMON_CONF, render.site_path(env), render.upstream_path(env)]
    return [
        file_probe(paths, "nginx_files"),
        facts.Probe("nginx_default", f"test -e {DEFAULT_SITE}", lambda out, rc: rc == 0),
        facts.Probe("cert_ready", f"test -s {shlex.quote(render.cert_path(env))}",
                    lambda out, rc: rc == 0),
    ]


def nginx(ctx: Context) -> list[str]:
    """Install the site; keep the upstream a deploy wrote (it names the live release)."""
    env = ctx.env
    states = ctx.facts["nginx_files"]
    specs = [
        FileSpec(render.COMMON_CONF, render.nginx_common()),
        FileSpec(render.site_path(env), render.nginx_site(env, tls_ready=ctx.facts["cert_ready"])),
    ]
    if render.upstream_path(env) not in states:
        specs.append(FileSpec(render.upstream_path(env), render.nginx_upstream(env, None)))
    changes = []
    if ctx.facts["nginx_default"]:
        ctx.act(["rm", "-f", DEFAULT_SITE])
        changes.append(f"removed {DEFAULT_SITE}")
    changes += ctx.apply_files(specs, states, validate=["nginx", "-t", "-q"])
    if changes:
        reload_nginx(ctx)
    return changes


def reload_nginx(ctx: Context) -> None:
    """``nginx -t`` then a graceful reload (or a start when it is not running)."""
    ctx.act(["nginx", "-t", "-q"])
    ctx.act(["systemctl", "reload-or-restart", "nginx"])
