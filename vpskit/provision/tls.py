"""Let's Encrypt (or any ACME CA) certificates through certbot's webroot plugin.

Nginx serves the ACME webroot on port 80 from the start (the nginx step renders the site
HTTP-only while no certificate exists); this step gets the certificate, then switches the site to
HTTPS. A pre-flight fetch of a random token through each domain turns a DNS mistake into a clear
error instead of a failed order (and a burned rate limit). Nginx is touched only after certbot
succeeded, through a validated write, so any failure leaves it serving as before.

Renewal is certbot's own timer; a deploy hook reloads Nginx so it serves a renewed certificate.
Will not request a certificate while the current one covers exactly the configured domains.
"""

from __future__ import annotations

import secrets
import shlex
import ssl
import tempfile

from vpskit import facts, files, render
from vpskit.config import TLS, Environment
from vpskit.errors import ToolkitError
from vpskit.files import FileSpec, file_probe
from vpskit.provision import web
from vpskit.provision.context import Context

DEPLOY_HOOK = "/etc/letsencrypt/renewal-hooks/deploy/vpskit-reload-nginx"
HOOK_SCRIPT = ("#!/bin/sh\n# Managed by vpskit: serve renewed certificates.\n"
               "nginx -t -q && systemctl reload nginx\n")
# certbot.timer runs certbot.service: renewals against a private CA need its bundle there too.
CA_DROPIN = "/etc/systemd/system/certbot.service.d/vpskit-ca-bundle.conf"
CHALLENGE_DIR = f"{render.ACME_WEBROOT}/.well-known/acme-challenge"

PEM_END = "-----END CERTIFICATE-----"


def probes(ctx: Context) -> list[facts.Probe]:
    cert = shlex.quote(render.cert_path(ctx.env))
    return [
        facts.Probe("cert_domains", f"cat {cert}",
                    lambda out, rc: pem_domains(out) if rc == 0 and out else set()),
        file_probe([DEPLOY_HOOK, CA_DROPIN], "tls_files"),
        facts.units(["certbot.timer"], "certbot_timer",
                    lambda states: states["certbot.timer"][:2] == ("active", "enabled")),
    ]


def pem_domains(pem: str) -> set[str]:
    """The DNS names of the first certificate of a PEM chain, read here by Python's own ssl
    parser (an ``openssl x509`` on the server costs a twentieth of a second per provision)."""
    first = pem[:pem.find(PEM_END) + len(PEM_END)]
    with tempfile.NamedTemporaryFile("w", suffix=".pem") as handle:
        handle.write(first)
        handle.flush()
        try:
            decoded = ssl._ssl._test_decode_cert(handle.name)  # type: ignore[attr-defined]
        except ssl.SSLError:  # not a certificate: as if there were none, so one is issued
            return set()
    return {value for kind, value in decoded.get("subjectAltName", ()) if kind == "DNS"}


def ca_env(tls: TLS) -> list[str]:
    """``["REQUESTS_CA_BUNDLE=<ca_bundle>"]`` when a private CA bundle is set, else [] (pure;
    inventory.load has checked it is a plain absolute path)."""
    return [f"REQUESTS_CA_BUNDLE={tls.ca_bundle}"] if tls.ca_bundle else []


def certbot_argv(env: Environment) -> list[str]:
    """The certonly line: webroot, one certificate named after the site, every domain (pure).

    Only ``REQUESTS_CA_BUNDLE`` is added to certbot's environment, and only with ``ca_bundle``.
    """
    tls = env.tls
    argv = ["certbot", "certonly", "--non-interactive", "--agree-tos", "--email", tls.email,
            "--webroot", "--webroot-path", render.ACME_WEBROOT, "--cert-name", env.site,
            "--server", tls.acme_url, "--keep-until-expiring"]
    for domain in env.domains:
        argv += ["--domain", domain]
    extra = ca_env(tls)
    return ["env", *extra, *argv] if extra else argv


def renewal_specs(tls: TLS) -> list[FileSpec]:
    """The deploy hook, plus the certbot.service drop-in when ``ca_bundle`` is set (pure)."""
    specs = [FileSpec(DEPLOY_HOOK, HOOK_SCRIPT, mode=0o755)]
    for assignment in ca_env(tls):
        specs.append(FileSpec(CA_DROPIN, f"# Managed by vpskit: trust the ACME server.\n"
                                         f'[Service]\nEnvironment="{assignment}"\n'))
    return specs


def certificate_change(have: set[str], wanted: set[str]) -> str | None:
    """How the certificate must change: None when it covers exactly ``wanted`` (pure)."""
    if have == wanted:
        return None
    if not have:
        return "issued for"
    return "expanded to" if have < wanted else "reissued for"


def preflight(ctx: Context) -> None:
    """Serve a random token from the webroot and fetch it through every domain from here.

    Raises one line naming each domain that does not answer with the token.
    """
    import urllib.error  # here: only a provision that issues a certificate needs HTTP
    import urllib.request
    token = f"vpskit-preflight-{secrets.token_hex(8)}"
    path = f"{CHALLENGE_DIR}/{token}"
    ctx.remote.run(["install", "-d", "-m", "755", CHALLENGE_DIR])  # nginx workers read it
    files.write(ctx.remote, files.FileSpec(path, token))
    try:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        problems = []
        for domain in ctx.env.domains:
            url = f"http://{domain}/.well-known/acme-challenge/{token}"
            try:
                with opener.open(url, timeout=10) as response:
                    body = response.read(200).decode(errors="replace")
                problem = None if body == token else "answered with other content"
            except urllib.error.HTTPError as exc:
                problem = f"HTTP {exc.code}"
            except (urllib.error.URLError, OSError) as exc:
                problem = str(getattr(exc, "reason", exc))
            if problem:
                problems.append(f"{domain} ({url}: {problem})")
    finally:
        ctx.remote.run(["rm", "-f", path], check=False)
    if problems:
        raise ToolkitError(
            f"pre-flight: {ctx.host.address} is not reached through {'; '.join(problems)}; "
            f"point each domain's DNS A/AAAA record at this server and re-run (no certificate "
            f"was requested; Nginx serves as before)")


def renewal(ctx: Context) -> list[str]:
    """Deploy hook, CA drop-in (added or removed with ``ca_bundle``), certbot.timer on."""
    tls, present = ctx.env.tls, ctx.facts["tls_files"]
    changes = ctx.apply_files(renewal_specs(tls), present)
    if CA_DROPIN in present and not tls.ca_bundle:
        ctx.act(["rm", "-f", CA_DROPIN])
        changes.append(f"removed {CA_DROPIN}")
    if any(CA_DROPIN in c for c in changes):
        ctx.act(["systemctl", "daemon-reload"])
    if not ctx.facts["certbot_timer"]:
        ctx.act(["systemctl", "enable", "--now", "certbot.timer"])
        changes.append("certbot.timer enabled")
    return changes


def tls(ctx: Context) -> list[str]:
    """Get, expand or reissue the certificate when its domains differ; then serve HTTPS."""
    env = ctx.env
    if not env.tls.enabled:
        return []
    changes = renewal(ctx)
    change = certificate_change(ctx.facts["cert_domains"], set(env.domains))
    if change is None:
        return changes
    changes.append(f"certificate {change} {', '.join(env.domains)}")
    if ctx.dry_run:
        return changes
    preflight(ctx)
    ctx.remote.run(certbot_argv(env), timeout=300)
    if not ctx.facts["cert_ready"]:  # the nginx step rendered the site HTTP-only
        site = web.tls_site(ctx, tls_ready=True)
        ctx.apply_files([site], {}, validate=["nginx", "-t", "-q"])
        changes.append(f"{site.path} serves HTTPS")
    web.reload_nginx(ctx)
    return changes
