"""Let's Encrypt (or any ACME CA) certificates through certbot's webroot plugin.

Nginx serves the ACME webroot on port 80 from the start; certbot gets the certificate, then the
HTTPS server block is enabled. A pre-flight fetch of a random token through each domain turns a
DNS mistake into a clear error instead of a failed order (and a burned rate limit). Nothing
here touches Nginx before a certificate exists, so a failure leaves HTTP serving as before.
"""

from __future__ import annotations

import re
import secrets
import shlex
import urllib.error
import urllib.request

from vpskit import facts, render
from vpskit.errors import ToolkitError
from vpskit.files import FileSpec, file_probe
from vpskit.provision import web
from vpskit.provision.context import Context

DEPLOY_HOOK = "/etc/letsencrypt/renewal-hooks/deploy/vpskit-reload-nginx"
HOOK_SCRIPT = "#!/bin/sh\n# managed by vpskit: serve renewed certificates\nnginx -t -q && " \
              "systemctl reload nginx\n"
CHALLENGE_DIR = f"{render.ACME_WEBROOT}/.well-known/acme-challenge"


def probes(ctx: Context) -> list[facts.Probe]:
    cert = shlex.quote(render.cert_path(ctx.env))
    return [
        facts.Probe("cert_domains", f"openssl x509 -in {cert} -noout -ext subjectAltName",
                    lambda out, rc: set(re.findall(r"DNS:([^,\s]+)", out)) if rc == 0 else set()),
        file_probe([DEPLOY_HOOK], "tls_files"),
        facts.Probe("certbot_timer", "systemctl is-enabled certbot.timer; "
                                     "systemctl is-active certbot.timer",
                    lambda out, rc: out.split() == ["enabled", "active"]),
    ]


def certbot_argv(ctx: Context) -> list[str]:
    """The certonly line: webroot, one certificate named after the site, every domain (pure)."""
    env, tls = ctx.env, ctx.env.tls
    argv = ["certbot", "certonly", "--non-interactive", "--agree-tos", "--email", tls.email,
            "--webroot", "--webroot-path", render.ACME_WEBROOT, "--cert-name", env.site,
            "--server", tls.acme_url, "--keep-until-expiring"]
    for domain in env.domains:
        argv += ["--domain", domain]
    if tls.ca_bundle:
        argv = ["env", f"REQUESTS_CA_BUNDLE={tls.ca_bundle}", *argv]
    return argv


def preflight(ctx: Context) -> None:
    """Serve a random token from the webroot and fetch it through every domain from here."""
    token = f"vpskit-preflight-{secrets.token_hex(8)}"
    path = f"{CHALLENGE_DIR}/{token}"
    ctx.remote.run(["bash", "-c", 'mkdir -p "$(dirname "$1")" && printf %s "$2" > "$1" && '
                    'chmod 644 "$1"', "token", path, token])
    try:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        for domain in ctx.env.domains:
            url = f"http://{domain}/.well-known/acme-challenge/{token}"
            try:
                with opener.open(url, timeout=10) as response:
                    body = response.read(200).decode(errors="replace")
                problem = None if body == token else "answered with other content"
            except (urllib.error.URLError, OSError) as exc:
                problem = str(getattr(exc, "reason", exc))
            if problem:
                raise ToolkitError(
                    f"domain {domain} does not reach {ctx.host.address}: {url}: {problem}; "
                    f"point its DNS A/AAAA record at this server, then re-run (no certificate "
                    f"was requested, HTTP keeps serving)")
    finally:
        ctx.remote.run(["rm", "-f", path], check=False)


def tls(ctx: Context) -> list[str]:
    """Get or expand the certificate; never re-requests one that covers the same domains."""
    env = ctx.env
    if not env.tls.enabled:
        return []
    changes = ctx.apply_files([FileSpec(DEPLOY_HOOK, HOOK_SCRIPT, mode=0o755)],
                              ctx.facts["tls_files"])
    if not ctx.facts["certbot_timer"]:
        ctx.act(["systemctl", "enable", "--now", "certbot.timer"])
        changes.append("certbot.timer enabled")
    wanted = set(env.domains)
    if ctx.facts["cert_domains"] == wanted:
        return changes
    if ctx.dry_run:
        return [*changes, f"certificate for {', '.join(env.domains)}"]
    preflight(ctx)
    ctx.remote.run(certbot_argv(ctx), timeout=300)
    had = ctx.facts["cert_domains"]
    changes.append(f"certificate {'expanded to' if had else 'issued for'} {', '.join(env.domains)}")
    site = FileSpec(render.site_path(env), render.nginx_site(env, tls_ready=True))
    changes += ctx.apply_files([site], {}, validate=["nginx", "-t", "-q"])
    web.reload_nginx(ctx)
    return changes
