"""Nginx: the shared snippet, the site and its upstream; default site removed; ``nginx -t``
before every reload, and a reload only when something changed.

A web host serves the live release (to the world, or as a backend of the lb host, over TLS
with a certificate of its own CA); the lb host has a site of its own that terminates TLS and
spreads requests over the web hosts, verifying each against the web hosts' CAs.
"""

from __future__ import annotations

from dataclasses import dataclass

from vpskit import facts, plan, render, sh
from vpskit.config import Environment, Host
from vpskit.files import FileSpec, FileState, file_probe
from vpskit.plan import Plan
from vpskit.provision import hostca

DEFAULT_SITE = "/etc/nginx/sites-enabled/default"
LOG_OWNER = ("www-data", "adm", "640")  # as Debian's logrotate makes them: no site user reads it
SWITCH_NGINX = sh.script("switch-nginx")  # Nginx's reload, switch and rotation (deploy's too)


@dataclass(frozen=True)
class WebFacts:
    nginx_files: dict[str, FileState]
    nginx_default: bool  # Debian's default site is enabled
    cert_ready: bool  # the site's certificate is there
    nginx_logs: dict[str, tuple[str, str, str]]  # access log: (owner, group, mode)


@dataclass(frozen=True)
class BackendFacts:
    backend_cert: str  # probe: hostca
    host_ca: str | None  # probe: hostca


def probes(env: Environment, host: Host) -> list[facts.Probe]:
    paths = [render.COMMON_CONF, render.site_path(env), render.upstream_path(env),
             render.lb_site_path(env), render.lb_upstream_path(env)]
    return [
        file_probe(paths, "nginx_files"),
        facts.Probe("nginx_default", f"test -e {DEFAULT_SITE}", lambda out, rc: rc == 0),
        facts.nonempty(render.cert_path(env), "cert_ready"),
        facts.owners([render.access_log_path(env), render.access_log_path(env, lb=True)],
                     "nginx_logs"),
    ]


def tls_site(env: Environment, host: Host, tls_ready: bool) -> FileSpec:
    """The site that terminates TLS on this host: the lb's, or the web site without an lb."""
    if "lb" in host.roles:
        return FileSpec(render.lb_site_path(env), render.nginx_site(env, tls_ready, "lb"))
    return FileSpec(render.site_path(env),
                    render.nginx_site(env, tls_ready, render.web_mode(env)))


def nginx(env: Environment, host: Host, found: WebFacts) -> Plan:
    """Install the web site; keep the upstream a deploy wrote (it names the live release)."""
    specs = [FileSpec(render.site_path(env), render.nginx_site(
        env, tls_ready=found.cert_ready, mode=render.web_mode(env)))]
    if render.upstream_path(env) not in found.nginx_files:
        specs.append(FileSpec(render.upstream_path(env), render.nginx_upstream(env, None)))
    return _site(found, specs, render.access_log_path(env))


def backend_certificate(env: Environment, host: Host, found: BackendFacts) -> Plan:
    """A web host behind an lb: the certificate of its backend port, for the name the lb
    verifies it by, from the host's own CA."""
    return hostca.certificate(host, "backend", found.backend_cert, found.host_ca,
                              render.BACKEND_NAME)


def lb(env: Environment, host: Host, found: WebFacts) -> Plan:
    """Install the load balancer's site and its upstream of every web host, all in rotation."""
    return _site(found, [tls_site(env, host, found.cert_ready),
                         FileSpec(render.lb_upstream_path(env), render.nginx_lb_upstream(env))],
                 render.access_log_path(env, lb=True))


def _site(found: WebFacts, specs: list[FileSpec], log: str) -> Plan:
    result = _access_log(found, log)
    if found.nginx_default:
        result += (plan.run("rm", "-f", DEFAULT_SITE, change=f"removed {DEFAULT_SITE}")
                   + plan.outputs(nginx_default=False))
    result += plan.write([FileSpec(render.COMMON_CONF, render.nginx_common()), *specs],
                         found.nginx_files, validate=["nginx", "-t", "-q"])
    return result + reload_nginx() if result.changes else result


def _access_log(found: WebFacts, path: str) -> Plan:
    """The site's request log, made before Nginx opens it (Nginx would make it world-readable),
    or its owner and mode put right; never emptied."""
    have = found.nginx_logs.get(path)
    if have == LOG_OWNER:
        return Plan()
    owner, group, mode = LOG_OWNER
    if have is None:
        result = plan.run("install", "-m", mode, "-o", owner, "-g", group, "/dev/null", path,
                          change=f"{path} (created)")
    else:
        result = (plan.run("chown", f"{owner}:{group}", path, change=f"{path} (owner and mode)")
                  + plan.run("chmod", mode, path))
    return result + plan.outputs(nginx_logs={**found.nginx_logs, path: LOG_OWNER})


def reload_nginx() -> Plan:
    """``nginx -t`` then a graceful reload (or a start when it is not running); returns once
    the old workers are gone (at most 10 s), so the next step meets the new configuration."""
    return plan.run("bash", "-c", SWITCH_NGINX, "reload-nginx", "10")
