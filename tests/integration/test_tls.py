"""TLS on the real test VPS against Pebble: certificates for every domain, a strict HTTPS
configuration, renewal through vpskit's deploy hook, pre-flight errors that leave Nginx serving,
no certificate requested twice, expansion to a new domain and the www redirect.

Tests run in file order; each leaves the site as it found it (HTTPS for ``site.domains``).
"""

from __future__ import annotations

import re
import socket
import ssl
import time
import urllib.error
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import pytest

from harness.testvps import network, state
from tests.helpers import machines
from tests.helpers.site import Site, step_states

pytestmark = pytest.mark.vps
T = TypeVar("T")

SITE = "shop-production"
CERT_DIRS = "/etc/letsencrypt/live /etc/letsencrypt/archive /etc/letsencrypt/renewal"
HOOK = "/etc/letsencrypt/renewal-hooks/deploy/vpskit-reload-nginx"
SECURITY_HEADERS = {
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "SAMEORIGIN",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}


INDEX = machines.INDEX + 6


# A VPS of its own: these tests delete and re-issue certificates and need to be its only site.
@pytest.fixture(scope="module")
def vps():
    domains = (f"tls{INDEX}.test",)
    with machines.booted(f"vpskit-l{INDEX}", INDEX, domains) as server:
        yield server


@pytest.fixture(scope="module")
def pebble(vps):
    with machines.pebble_for(vps) as server:
        yield server


@pytest.fixture(scope="module")
def site(vps, pebble, tmp_path_factory) -> Site:
    return Site.create(tmp_path_factory.mktemp("tls"), vps, pebble)


@pytest.fixture(scope="module")
def provisioned(site) -> dict:
    first = site.fab("provision")
    return {"first": first, "second": site.fab("provision")}


@pytest.fixture(scope="module")
def deployed(site, provisioned) -> dict:
    return {"first": site.fab("deploy")}


def tls_context(site: Site, version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    """Verifies against Pebble's root; ``version`` pins the protocol, old ones allowed here."""
    ctx = ssl.create_default_context(cafile=str(site.ca_file))
    if version:
        ctx.set_ciphers("DEFAULT@SECLEVEL=0")  # OpenSSL 3 would not even offer TLS 1.0/1.1
        ctx.minimum_version = ctx.maximum_version = version
    return ctx


def served_cert(site: Site, domain: str | None = None) -> dict:
    """The verified certificate Nginx serves for ``domain`` (SNI): serial, SANs..."""
    domain = domain or site.domain
    with socket.create_connection((domain, 443), timeout=10) as sock, \
            tls_context(site).wrap_socket(sock, server_hostname=domain) as conn:
        return conn.getpeercert()


def sans(cert: dict) -> set[str]:
    return {value for kind, value in cert["subjectAltName"] if kind == "DNS"}


def serial(site: Site) -> str:
    return served_cert(site)["serialNumber"]


def eventually(read: Callable[[], T], done: Callable[[T], bool], timeout: float = 15) -> T:
    """Poll ``read()`` until ``done``: a reload swaps Nginx's workers gracefully, and the old
    ones may still accept a connection or two with the previous configuration."""
    deadline = time.monotonic() + timeout
    while not done(value := read()) and time.monotonic() < deadline:
        time.sleep(0.2)
    return value


def renew(site: Site) -> None:
    """What certbot.timer runs, forced, without its random delay of up to 8 minutes."""
    out = site.sh(f"certbot renew --force-renewal --no-random-sleep-on-renew --cert-name {SITE} "
                  f"2>&1")
    assert "Congratulations, all renewals succeeded" in out, out


def certbot_state(site: Site) -> str:
    """Certbot's logs (rotated on every run) and certificate files: unchanged = no CA request."""
    return site.sh(f"ls -l --time-style=full-iso /var/log/letsencrypt; "
                   f"find {CERT_DIRS} -exec stat -c '%n %s %Y' {{}} + | sort")


def one_line_error(result) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@contextmanager
def inventory_changed(site: Site, change: Callable[[str], str]) -> Iterator[None]:
    path = site.dir / "inventory.yml"
    original = path.read_text()
    changed = change(original)
    assert changed != original
    path.write_text(changed)
    try:
        yield
    finally:
        path.write_text(original)


def with_domains(site: Site, *extra: str) -> Callable[[str], str]:
    line = f"domains: [{', '.join(site.domains)}]"
    return lambda text: text.replace(line, f"domains: [{', '.join((*site.domains, *extra))}]")


GO_HOSTS_CACHE = 5.5  # seconds: Go's resolver keeps /etc/hosts for 5 s (net/hosts.go)


@contextmanager
def resolving(vps, domain: str) -> Iterator[None]:
    """``domain`` resolves to the VPS on this host (for Pebble too) while the block runs.
    Pebble is a Go program: Go reads /etc/hosts again only when its copy is 5 s old, so the
    block starts once that has passed (else a challenge may meet the name unresolved)."""
    tag = f"{vps.name}-tls-test"
    with state.lock():
        network.write_hosts(network.hosts_with(network.HOSTS.read_text(), tag, vps.address,
                                               (domain,)))
    time.sleep(GO_HOSTS_CACHE)
    try:
        yield
    finally:
        with state.lock():
            network.write_hosts(network.hosts_without(network.HOSTS.read_text(), tag))


# ---- after provision ----------------------------------------------------------------------------
def test_https_certificate_covers_every_domain_verified_against_pebble_root(site, provisioned):
    first = provisioned["first"].stdout
    assert step_states(first)["nginx"] == step_states(first)["tls"] == "changed"
    # One run: the nginx step serves HTTP only, the tls step gets the certificate, then HTTPS.
    assert f"certificate issued for {', '.join(site.domains)}; " \
           f"/etc/nginx/sites-enabled/{SITE}.conf serves HTTPS" in first
    certs = [served_cert(site, domain) for domain in site.domains]
    for cert in certs:
        assert sans(cert) == set(site.domains)
    assert len({cert["serialNumber"] for cert in certs}) == 1  # one certificate, all SANs
    assert site.sh("systemctl is-enabled certbot.timer; systemctl is-active certbot.timer"
                   ).split() == ["enabled", "active"]
    assert site.sh(f"stat -c '%a %U' {HOOK}").split() == ["755", "root"]


def test_http_redirects_to_https_except_the_acme_path(site, provisioned):
    token = "vpskit-test-token"
    site.sh(f"install -d /var/lib/vpskit/acme/.well-known/acme-challenge && printf {token} > "
            f"/var/lib/vpskit/acme/.well-known/acme-challenge/{token}")
    try:
        for domain in site.domains:
            status, _, headers = site.get("/some/page?q=1", scheme="http", domain=domain)
            assert (status, headers["Location"]) == (301, f"https://{domain}/some/page?q=1")
            assert site.get(f"/.well-known/acme-challenge/{token}", scheme="http",
                            domain=domain)[:2] == (200, token)
            assert site.get("/.well-known/acme-challenge/missing", scheme="http",
                            domain=domain)[0] == 404
    finally:
        site.sh(f"rm -f /var/lib/vpskit/acme/.well-known/acme-challenge/{token}")


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1],
                         ids=lambda v: v.name)
def test_tls_1_0_and_1_1_are_refused_by_the_server(site, provisioned, version):
    with socket.create_connection((site.domain, 443), timeout=10) as sock, \
            pytest.raises(ssl.SSLError) as refused:
        tls_context(site, version).wrap_socket(sock, server_hostname=site.domain)
    # The server's protocol_version alert, not a client that would not try.
    assert refused.value.reason == "TLSV1_ALERT_PROTOCOL_VERSION", refused.value


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3],
                         ids=lambda v: v.name)
def test_tls_1_2_and_1_3_are_accepted(site, provisioned, version):
    with socket.create_connection((site.domain, 443), timeout=10) as sock, \
            tls_context(site, version).wrap_socket(sock, server_hostname=site.domain) as conn:
        assert conn.version() == version.name.replace("_", ".")


def test_hsts_and_security_headers_over_https_only(site, provisioned):
    for path in ("/", "/static/missing.css"):
        _, _, headers = site.get(path)
        assert {k: headers.get(k) for k in SECURITY_HEADERS} == SECURITY_HEADERS, path
    _, _, headers = site.get("/", scheme="http")
    assert "Strict-Transport-Security" not in headers


# ---- idempotence and renewal --------------------------------------------------------------------
def test_second_provision_requests_no_certificate(site, provisioned):
    assert step_states(provisioned["second"].stdout)["tls"] == "unchanged"
    before, files = serial(site), certbot_state(site)
    result = site.fab("provision")
    assert step_states(result.stdout)["tls"] == "unchanged", result.stdout
    assert (serial(site), certbot_state(site)) == (before, files)


def test_forced_renewal_is_served_through_the_deploy_hook(site, provisioned):
    before, nginx_pid = serial(site), site.service_pids()["nginx"]
    renew(site)
    assert f"Running deploy-hook command: {HOOK}" in site.sh(
        "cat /var/log/letsencrypt/letsencrypt.log")
    after = eventually(lambda: serial(site), lambda s: s != before)  # only the hook reloads
    assert after != before
    assert sans(served_cert(site)) == set(site.domains)
    assert site.service_pids()["nginx"] == nginx_pid  # reloaded, not restarted


# ---- pre-flight and failures --------------------------------------------------------------------
def test_unresolvable_domain_fails_preflight_and_https_keeps_serving(site, provisioned):
    nowhere = f"nowhere.{site.domain}"
    before, files = serial(site), certbot_state(site)
    try:
        with inventory_changed(site, with_domains(site, nowhere)):
            result = site.fab("provision", check=False)
        error = one_line_error(result)
        assert error.startswith("error: tls: pre-flight: ") and f" {nowhere} (http://" in error
        assert not any(f" {domain} (http://" in error for domain in site.domains)
        assert "no certificate was requested" in error
        assert step_states(result.stdout)["tls"] == "failed"
        assert (serial(site), certbot_state(site)) == (before, files)  # nothing asked of the CA
        site.sh("nginx -t -q")
        assert site.get("/", scheme="http")[0] == 301
        assert sans(served_cert(site)) == set(site.domains)
    finally:
        site.fab("provision")
    assert serial(site) == before


def test_failures_before_the_first_certificate_leave_the_app_on_http(site, deployed):
    """A server without a certificate yet (as on the first provision): a DNS mistake or a CA
    error keeps the app answering over HTTP; fixed, one provision switches it to HTTPS."""
    before = serial(site)
    site.sh(f"certbot delete --non-interactive --cert-name {SITE}")
    try:
        files = certbot_state(site)
        with inventory_changed(site, with_domains(site, f"nowhere.{site.domain}")):
            error = one_line_error(site.fab("provision", check=False))
        assert error.startswith("error: tls: pre-flight: "), error
        assert certbot_state(site) == files
        assert_app_on_plain_http(site)

        acme_dir = re.compile(r"(acme_url: https://\S+)/dir")
        with inventory_changed(site, lambda text: acme_dir.sub(r"\1/no-such-dir", text)):
            error = one_line_error(site.fab("provision", check=False))
        assert error.startswith("error: tls: ") and "certbot certonly" in error, error
        assert_app_on_plain_http(site)
    finally:
        result = site.fab("provision")
    assert f"certificate issued for {', '.join(site.domains)}" in result.stdout
    assert f"/etc/nginx/sites-enabled/{SITE}.conf serves HTTPS" in result.stdout
    assert serial(site) != before
    assert eventually(lambda: site.get("/", scheme="http")[0], lambda s: s == 301) == 301
    assert site.get("/")[0] == 200


def assert_app_on_plain_http(site: Site) -> None:
    site.sh("nginx -t -q")
    status, body, headers = eventually(lambda: site.get("/", scheme="http"),
                                       lambda answer: answer[0] != 301)
    assert status == 200 and "VERSION=" in body, (status, body)
    assert "Strict-Transport-Security" not in headers
    with pytest.raises(urllib.error.URLError, match="SSL|handshake|alert"):
        site.get("/")  # 443 is the default server's alone: it refuses every TLS handshake


# ---- a new domain, the www redirect -------------------------------------------------------------
@pytest.fixture(scope="module")
def expanded(site, provisioned, vps) -> Iterator[dict]:
    """``www.<domain>`` added (resolving to the VPS) with ``www_redirect: to_bare``; afterwards
    the inventory is restored and provisioned again."""
    www = f"www.{site.domain}"
    add_redirect = with_domains(site, www)
    before = served_cert(site)
    with resolving(vps, www):
        try:
            with inventory_changed(site, lambda text: add_redirect(text).replace(
                    "tls:\n", "tls:\n  www_redirect: to_bare\n")):
                result = site.fab("provision")
                yield {"www": www, "before": before, "result": result}
        finally:
            site.fab("provision")
    assert sans(served_cert(site)) == set(site.domains)


def test_adding_a_domain_expands_the_certificate(site, expanded):
    domains = (*site.domains, expanded["www"])
    assert f"certificate expanded to {', '.join(domains)}" in expanded["result"].stdout
    for domain in domains:
        cert = served_cert(site, domain)
        assert sans(cert) == set(domains)
        assert cert["serialNumber"] != expanded["before"]["serialNumber"]


def test_www_redirects_to_the_bare_domain(site, expanded):
    www = expanded["www"]
    status, _, headers = site.get("/a/b?c=1", domain=www)
    assert (status, headers["Location"]) == (301, f"https://{site.domain}/a/b?c=1")
    assert headers["Strict-Transport-Security"] == SECURITY_HEADERS["Strict-Transport-Security"]
    status, _, headers = site.get("/a/b?c=1", scheme="http", domain=www)
    assert (status, headers["Location"]) == (301, f"https://{www}/a/b?c=1")


def test_renewal_keeps_working_after_the_domain_list_changed(site, expanded):
    before = serial(site)
    renew(site)
    assert eventually(lambda: serial(site), lambda s: s != before) != before
    assert sans(served_cert(site)) == {*site.domains, expanded["www"]}
