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
from collections.abc import Callable
from dataclasses import dataclass

from vpskit import facts, plan, render
from vpskit.config import TLS, Environment, Host
from vpskit.errors import ToolkitError
from vpskit.files import FileSpec, FileState, file_probe
from vpskit.plan import Plan
from vpskit.provision import web

DEPLOY_HOOK = "/etc/letsencrypt/renewal-hooks/deploy/vpskit-reload-nginx"
HOOK_SCRIPT = ("#!/bin/sh\n# Managed by vpskit: serve renewed certificates.\n"
               "nginx -t -q && systemctl reload nginx\n")
# certbot.timer runs certbot.service: renewals against a private CA need its bundle there too.
CA_DROPIN = "/etc/systemd/system/certbot.service.d/vpskit-ca-bundle.conf"
CHALLENGE_DIR = f"{render.ACME_WEBROOT}/.well-known/acme-challenge"

PEM_END = "-----END CERTIFICATE-----"


@dataclass(frozen=True)
class TlsFacts:
    cert_domains: set[str]  # the names the site's certificate covers
    tls_files: dict[str, FileState]
    certbot_timer: bool  # active and enabled
    cert_ready: bool  # probe: web


def probes(env: Environment, host: Host) -> list[facts.Probe]:
    cert = shlex.quote(render.cert_path(env))
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


def preflight_token() -> str:
    return f"vpskit-preflight-{secrets.token_hex(8)}"


def preflight_problem(domain: str, token: str, fetch: Callable[[str], str]) -> str | None:
    """What is wrong with fetching ``token`` through ``domain``: ``fetch(url)`` gives the body
    or raises; None when the token came back."""
    import urllib.error  # here: only a provision that issues a certificate needs HTTP
    url = f"http://{domain}/.well-known/acme-challenge/{token}"
    try:
        problem = None if fetch(url) == token else "answered with other content"
    except urllib.error.HTTPError as exc:
        problem = f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        problem = str(getattr(exc, "reason", exc))
    return f"{domain} ({url}: {problem})" if problem else None


def unreached(host: Host, problems: list[str]) -> ToolkitError:
    return ToolkitError(
        f"pre-flight: {host.address} is not reached through {'; '.join(problems)}; "
        f"point each domain's DNS A/AAAA record at this server and re-run (no certificate "
        f"was requested; Nginx serves as before)")


def renewal(env: Environment, found: TlsFacts) -> Plan:
    """Deploy hook, CA drop-in (added or removed with ``ca_bundle``), certbot.timer on."""
    tls, present = env.tls, found.tls_files
    result = plan.write(renewal_specs(tls), present)
    if CA_DROPIN in present and not tls.ca_bundle:
        result += plan.run("rm", "-f", CA_DROPIN, change=f"removed {CA_DROPIN}")
    if CA_DROPIN in plan.writes(result) or CA_DROPIN in present and not tls.ca_bundle:
        result += plan.run("systemctl", "daemon-reload")
    if not found.certbot_timer:
        result += plan.run("systemctl", "enable", "--now", "certbot.timer",
                           change="certbot.timer enabled")
    return result


def tls(env: Environment, host: Host, found: TlsFacts) -> Plan:
    """Get, expand or reissue the certificate when its domains differ (after the hatch
    ``tls_preflight`` saw every domain reach this host); then serve HTTPS."""
    if not env.tls.enabled:
        return Plan()
    result = renewal(env, found)
    change = certificate_change(found.cert_domains, set(env.domains))
    if change is None:
        return result
    result += (plan.hatch("tls_preflight", tuple(env.domains))
               + plan.run(*certbot_argv(env), timeout=300,
                          change=f"certificate {change} {', '.join(env.domains)}"))
    if not found.cert_ready:  # the nginx step rendered the site HTTP-only
        site = web.tls_site(env, host, tls_ready=True)
        result += Plan((plan.Write((site,), ("nginx", "-t", "-q")),),
                       (f"{site.path} serves HTTPS",))
    return result + web.reload_nginx()
