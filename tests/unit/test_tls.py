"""The TLS step without a server: certbot's command line, the renewal files, and what the step
runs for given facts (a recording remote stands in for SSH; pre-flight is stubbed)."""

from __future__ import annotations

import dataclasses
import subprocess

import pytest

from vpskit import applier, hatch, render
from vpskit.applier import Context
from vpskit.config import LETSENCRYPT, LETSENCRYPT_STAGING, TLS, App, Environment, Host
from vpskit.deploy.switch import SWITCH_NGINX
from vpskit.errors import RemoteError, ToolkitError
from vpskit.files import FileState
from vpskit.plan import Plan
from vpskit.provision import tls
from vpskit.remote import Result
from vpskit.secret import Secret
from vpskit.steps import Reporter

DOMAINS = ("shop.example.com", "www.shop.example.com")
PEBBLE = "https://10.77.0.1:14000/dir"
RELOAD = ["bash", "-c", SWITCH_NGINX, "reload-nginx"]  # test, reload, wait for old workers


def make_env(domains: tuple[str, ...] = DOMAINS, **tls_settings: str) -> Environment:
    return Environment(name="production", hosts=(Host("203.0.113.20"),), domains=domains,
                       app=App(name="shop", repo="x", entry="shop.wsgi:application"),
                       tls=TLS(email="ops@example.com", **tls_settings),
                       secrets={"SECRET_KEY": Secret("s3cret-value-never-shown")})


def expected_argv(server: str) -> list[str]:
    return ["certbot", "certonly", "--non-interactive", "--agree-tos",
            "--email", "ops@example.com", "--webroot", "--webroot-path", "/var/lib/vpskit/acme",
            "--cert-name", "shop-production", "--server", server, "--keep-until-expiring",
            "--domain", "shop.example.com", "--domain", "www.shop.example.com"]


@pytest.mark.parametrize(("settings", "server"), [
    ({}, LETSENCRYPT),
    ({"acme_url": LETSENCRYPT_STAGING}, LETSENCRYPT_STAGING),
    ({"acme_url": PEBBLE}, PEBBLE),
], ids=["letsencrypt-default", "letsencrypt-staging", "custom"])
def test_certbot_argv_uses_the_configured_acme_directory(settings, server):
    assert LETSENCRYPT == "https://acme-v02.api.letsencrypt.org/directory"
    assert tls.certbot_argv(make_env(**settings)) == expected_argv(server)


def test_ca_bundle_sets_only_requests_ca_bundle_for_certbot_and_its_timer():
    env = make_env(acme_url=PEBBLE, ca_bundle="/usr/local/share/ca-certificates/pebble.crt")
    argv = tls.certbot_argv(env)
    assert argv == ["env", "REQUESTS_CA_BUNDLE=/usr/local/share/ca-certificates/pebble.crt",
                    *expected_argv(PEBBLE)]
    hook, dropin = tls.renewal_specs(env.tls)
    assert hook.path == tls.DEPLOY_HOOK and dropin.path == tls.CA_DROPIN
    assert dropin.content.splitlines()[1:] == [
        "[Service]", 'Environment="REQUESTS_CA_BUNDLE=/usr/local/share/ca-certificates/pebble.crt"']
    assert "s3cret" not in " ".join(argv) + dropin.content
    assert [s.path for s in tls.renewal_specs(make_env().tls)] == [tls.DEPLOY_HOOK]


def test_deploy_hook_validates_then_reloads_nginx():
    assert tls.HOOK_SCRIPT.startswith("#!/bin/sh\n")
    assert tls.HOOK_SCRIPT.splitlines()[-1] == "nginx -t -q && systemctl reload nginx"
    assert tls.DEPLOY_HOOK.startswith("/etc/letsencrypt/renewal-hooks/deploy/")


def test_the_certificates_dns_names_are_read_from_the_first_pem_of_the_chain(tmp_path):
    def cert(name: str, *alt: str) -> str:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(tmp_path / "k"),
                        "-out", str(tmp_path / name), "-days", "1", "-subj", "/CN=x",
                        *(["-addext", "subjectAltName=" + ",".join(alt)] if alt else [])],
                       check=True, capture_output=True)
        return (tmp_path / name).read_text()
    leaf = cert("leaf", *(f"DNS:{d}" for d in DOMAINS), "IP:203.0.113.20")
    assert tls.pem_domains(leaf + cert("ca", "DNS:ca.example")) == set(DOMAINS)
    assert tls.pem_domains(cert("none")) == set()
    assert tls.pem_domains("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n") \
        == set()


@pytest.mark.parametrize(("have", "wanted", "change"), [
    (set(DOMAINS), set(DOMAINS), None),
    (set(), set(DOMAINS), "issued for"),
    ({"shop.example.com"}, set(DOMAINS), "expanded to"),
    (set(DOMAINS), {"shop.example.com"}, "reissued for"),
    ({"old.example.com"}, {"shop.example.com"}, "reissued for"),
])
def test_certificate_change(have, wanted, change):
    assert tls.certificate_change(have, wanted) == change


# ---- the step, on a recording remote ------------------------------------------------------------
class RecordingRemote:
    """Records every argv; commands whose first words match ``fail`` exit 1."""

    def __init__(self, fail: tuple[str, ...] = ()) -> None:
        self.calls: list[list[str]] = []
        self.scripts: list[str] = []
        self.fail = fail
        self.secrets: list[str] = []

    def run(self, argv, *, check: bool = True, **_) -> Result:
        self.calls.append(list(argv))
        result = Result("", "certbot: an error", 1 if self.fails(argv) else 0)
        if check and not result.ok:
            raise RemoteError(f"`{argv[0]}` exited 1")
        return result

    def script(self, text: str, *, args=(), **kwargs) -> Result:
        self.scripts.append(text)
        return self.run(["bash", "-s", "--", *args], **kwargs)

    def fails(self, argv) -> bool:
        return bool(self.fail) and list(argv[:len(self.fail)]) == list(self.fail)

    def ran(self, *prefix: str) -> bool:
        return any(call[:len(prefix)] == list(prefix) for call in self.calls)


def hook_state() -> FileState:
    spec = tls.renewal_specs(TLS())[0]
    return FileState(spec.sha256, spec.owner, spec.group, spec.mode)


def step(env: Environment, cert_domains: set[str], remote: RecordingRemote,
         monkeypatch, preflight_error: str = "", tls_files=None, timer: bool = True) -> list[str]:
    def preflight(ctx, domains):
        ctx.remote.calls.append(["<pre-flight>"])
        if preflight_error:
            raise ToolkitError(preflight_error)
        return Plan()
    monkeypatch.setitem(hatch.HATCHES, "tls_preflight", preflight)
    ctx = Context(env=env, host=env.hosts[0], remote=remote, out=Reporter(quiet=True))
    found = tls.TlsFacts(cert_domains, {tls.DEPLOY_HOOK: hook_state()} if tls_files is None
                         else tls_files, timer, bool(cert_domains))
    return applier.apply(ctx, tls.tls(env, env.hosts[0], found))


def test_same_domains_request_nothing(monkeypatch):
    remote = RecordingRemote()
    assert step(make_env(domains=tuple(reversed(DOMAINS))), set(DOMAINS), remote,
                monkeypatch) == []
    assert remote.calls == []


def test_fresh_server_gets_hook_timer_certificate_then_https(monkeypatch):
    remote = RecordingRemote()
    changes = step(make_env(), set(), remote, monkeypatch, tls_files={}, timer=False)
    assert changes == [f"{tls.DEPLOY_HOOK} (created)", "certbot.timer enabled",
                       f"certificate issued for {', '.join(DOMAINS)}",
                       f"{render.site_path(make_env())} serves HTTPS"]
    order = [c[:4] for c in remote.calls
             if c[0] in ("<pre-flight>", "certbot", "nginx", "systemctl") or c[:4] == RELOAD]
    assert order == [["systemctl", "enable", "--now", "certbot.timer"], ["<pre-flight>"],
                     expected_argv(LETSENCRYPT)[:4], ["nginx", "-t", "-q"], RELOAD]


def test_added_domain_expands_and_reloads_without_rewriting_the_site(monkeypatch):
    remote = RecordingRemote()
    env = make_env(domains=(*DOMAINS, "api.example.com"))
    changes = step(env, set(DOMAINS), remote, monkeypatch)
    assert changes == [f"certificate expanded to {', '.join(env.domains)}"]
    assert remote.calls[1][-2:] == ["--domain", "api.example.com"]
    assert remote.calls[2:] == [[*RELOAD, "10"]]


@pytest.mark.parametrize("failure", ["pre-flight", "certbot"])
def test_failure_requests_nothing_more_and_leaves_nginx_alone(monkeypatch, failure):
    remote = RecordingRemote(fail=("certbot",) if failure == "certbot" else ())
    with pytest.raises(ToolkitError):
        step(make_env(), set(), remote, monkeypatch,
             preflight_error="pre-flight: no" if failure == "pre-flight" else "")
    assert remote.ran("certbot") == (failure == "certbot")
    assert not remote.ran("nginx") and not remote.ran(*RELOAD)
    assert not any(render.site_path(make_env()) in " ".join(c) for c in remote.calls)


def test_https_site_rejected_by_nginx_puts_the_http_site_back(monkeypatch):
    remote = RecordingRemote(fail=("nginx", "-t"))
    with pytest.raises(RemoteError, match="previous files restored"):
        step(make_env(), set(), remote, monkeypatch)
    assert remote.scripts[-1] == applier.RESTORE
    assert not remote.ran(*RELOAD)


def test_dry_run_only_reports(monkeypatch):
    remote = RecordingRemote()
    env = make_env()
    ctx = Context(env=env, host=env.hosts[0], remote=remote, out=Reporter(quiet=True),
                  dry_run=True)
    found = tls.TlsFacts(set(), {tls.DEPLOY_HOOK: hook_state()}, True, False)
    assert applier.apply(ctx, tls.tls(env, env.hosts[0], found)) == [
        f"certificate issued for {', '.join(DOMAINS)}", f"{render.site_path(env)} serves HTTPS"]
    assert remote.calls == [["cat", render.site_path(env)]]  # read for the diff it shows


def test_ca_bundle_drop_in_added_then_removed(monkeypatch):
    bundle = make_env(ca_bundle="/etc/ssl/private-ca.pem")
    remote = RecordingRemote()
    assert step(bundle, set(DOMAINS), remote, monkeypatch) == [f"{tls.CA_DROPIN} (created)"]
    assert remote.calls[-1] == ["systemctl", "daemon-reload"]
    dropin = tls.renewal_specs(bundle.tls)[1]
    present = {tls.DEPLOY_HOOK: hook_state(),
               tls.CA_DROPIN: FileState(dropin.sha256, "root", "root", 0o644)}
    remote = RecordingRemote()
    assert step(make_env(), set(DOMAINS), remote, monkeypatch, tls_files=present) == [
        f"removed {tls.CA_DROPIN}"]
    assert remote.calls == [["rm", "-f", tls.CA_DROPIN], ["systemctl", "daemon-reload"]]


def test_tls_disabled_does_nothing(monkeypatch):
    remote = RecordingRemote()
    env = dataclasses.replace(make_env(), tls=TLS(enabled=False))
    assert step(env, set(), remote, monkeypatch, tls_files={}, timer=False) == []
    assert remote.calls == []
