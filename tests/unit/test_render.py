"""Rendered server files: their key content, and the real validators on the exact output.

``nginx -t`` runs Debian's own nginx.conf over a temporary tree that mirrors ``/etc`` (the site,
its upstream, the shared conf and a throwaway certificate); ``systemd-analyze verify --root``
checks the units against a copy of the host's unit directory, with stub executables standing in
for the release's virtualenv and the backup script.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from vpskit import inventory, render
from vpskit.config import TLS, App, Backups, Environment, Host, Nginx, Process
from vpskit.deploy import appcmd
from vpskit.errors import InventoryError

RELEASE = "20261126T184500Z-abc1234"
NGINX_CONF = Path("/etc/nginx/nginx.conf")
SYSTEM_UNITS = next((p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))
                     if p.is_dir()), None)

APPS = {
    "django-gunicorn-sync": App(name="shop", repo="x", kind="django",
                                entry="shop.wsgi:application", django_settings="shop.settings"),
    "flask-gunicorn-gevent": App(name="blog", repo="x", kind="flask", entry="blog:create_app()",
                                 worker_class="gevent", workers=3, timeout=90),
    "asgi-uvicorn": App(name="chat", repo="x", kind="asgi", server="uvicorn",
                        entry="chat.asgi:application", django_settings="chat.settings"),
    "asgi-daphne": App(name="live", repo="x", kind="asgi", server="daphne",
                       entry="live.asgi:application"),
    "asgi-gunicorn": App(name="api", repo="x", kind="asgi", entry="api.main:app"),
}
SECURITY_HEADERS = {"X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy",
                    "Permissions-Policy"}
HSTS = "Strict-Transport-Security"


def make_env(app: App = APPS["django-gunicorn-sync"], name: str = "production",
             domains: tuple[str, ...] = ("shop.example.com", "www.shop.example.com"),
             www_redirect: str = "none", timer: str = "") -> Environment:
    return Environment(name=name, hosts=(Host("203.0.113.20"),), domains=domains, app=app,
                       tls=TLS(www_redirect=www_redirect), backups=Backups(timer=timer),
                       nginx=Nginx(client_max_body_size="25m", rate_limit="5r/s", rate_burst=7))


# ---- a minimal nginx config parser, enough to check what each block declares ------------------
@dataclasses.dataclass
class Block:
    head: str
    directives: list[list[str]]
    children: list[Block]

    def args(self, name: str) -> list[list[str]]:
        return [d[1:] for d in self.directives if d[0] == name]

    def headers(self) -> set[str]:
        return {args[0] for args in self.args("add_header")}

    def walk(self):
        yield self
        for child in self.children:
            yield from child.walk()


def parse_nginx(text: str) -> Block:
    text = re.sub(r"#[^\n]*", "", text)
    root = Block("", [], [])
    stack = [root]
    for token in re.findall(r"[^;{}]*[;{}]", text):
        words = re.findall(r'"[^"]*"|\S+', token[:-1])
        words = [w.strip('"') for w in words]
        if token.endswith("{"):
            block = Block(" ".join(words), [], [])
            stack[-1].children.append(block)
            stack.append(block)
        elif token.endswith("}"):
            stack.pop()
        else:
            stack[-1].directives.append(words)
    assert len(stack) == 1, "unbalanced braces"
    return root


def servers(text: str) -> list[Block]:
    return [b for b in parse_nginx(text).children if b.head == "server"]


def location(server: Block, prefix: str) -> Block:
    return next(b for b in server.children if b.head.split()[-1] == prefix)


# ---- validators ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def certificate(tmp_path_factory) -> tuple[bytes, bytes]:
    """A throwaway self-signed (cert, key) pair: ``nginx -t`` loads the files it names."""
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("cert")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=test",
                    "-keyout", d / "key.pem", "-out", d / "cert.pem"],
                   check=True, capture_output=True)
    return (d / "cert.pem").read_bytes(), (d / "key.pem").read_bytes()


def nginx_test(tmp_path: Path, envs: list[tuple[Environment, bool, str | None]],
               certificate: tuple[bytes, bytes], more: dict[str, str] | None = None) -> None:
    """Install the rendered files of each (env, tls_ready, release) under ``tmp_path`` at their
    server paths, absolute ``/etc/...`` references rebased there, and run ``nginx -t`` on
    Debian's nginx.conf pointed at that tree. Any [warn] or [emerg] fails."""
    if not shutil.which("nginx"):
        pytest.skip("nginx is not installed (apt-get install nginx-light or nginx)")
    if not NGINX_CONF.is_file():
        pytest.skip(f"{NGINX_CONF} is missing")
    if os.geteuid() != 0:
        pytest.skip(f"nginx -t on {NGINX_CONF} needs root (it opens /run/nginx.pid, its logs)")
    etc = f" {tmp_path}/etc/"

    def install(path: str, text: str | bytes) -> Path:
        target = tmp_path / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, str):
            text = text.replace(" /etc/", etc)
            assert "/etc/" not in text.replace(etc, ""), "a path was not rebased"
            target.write_text(text)
        else:
            target.write_bytes(text)
        return target

    install(render.COMMON_CONF, render.nginx_common())
    for path, text in (more or {}).items():
        install(path, text)
    for env, tls_ready, release in envs:
        install(render.site_path(env), render.nginx_site(env, tls_ready, render.web_mode(env)))
        install(render.upstream_path(env), render.nginx_upstream(env, release))
        install(render.cert_path(env), certificate[0])
        install(render.key_path(env), certificate[1])
        install(render.web_cas_path(env), certificate[0])
    install(render.host_cert_path("backend"), certificate[0])
    install(render.host_key_path("backend"), certificate[1])
    main = NGINX_CONF.read_text()
    for pattern in ("/etc/nginx/conf.d/*.conf", "/etc/nginx/sites-enabled/*"):
        assert f"include {pattern};" in main, f"{NGINX_CONF} does not include {pattern}"
        main = main.replace(f"include {pattern};", f"include {tmp_path}{pattern};")
    (tmp_path / "nginx.conf").write_text(main)
    result = subprocess.run(["nginx", "-t", "-c", tmp_path / "nginx.conf"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "[warn]" not in result.stderr and "[emerg]" not in result.stderr, result.stderr
    assert "test is successful" in result.stderr


def systemd_verify(tmp_path: Path, files: dict[str, str], units: list[str]) -> None:
    """Install ``files`` at their paths in a root holding a copy of the host's unit directory,
    stub every executable they start (``%i`` = RELEASE), and ``systemd-analyze verify`` the
    ``units`` there. Any message at all fails: verify reports bad keys only as warnings."""
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    if SYSTEM_UNITS is None:
        pytest.skip("no system unit directory to verify against")
    root = tmp_path / "root"
    shutil.copytree(SYSTEM_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    for path, text in files.items():
        (root / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (root / path.lstrip("/")).write_text(text)
        for line in text.splitlines():
            if re.match(r"Exec\w+=", line):
                binary = root / line.split("=", 1)[1].split()[0].lstrip("-@:+!").lstrip("/")
                binary = Path(str(binary).replace("%i", RELEASE))
                binary.parent.mkdir(parents=True, exist_ok=True)
                binary.write_text("#!/bin/sh\n")
                binary.chmod(0o755)
    for unit in units:
        result = subprocess.run(
            ["systemd-analyze", "verify", f"--root={root}", root / "etc/systemd/system" / unit],
            capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout + result.stderr == "", result.stdout + result.stderr


# ---- nginx --------------------------------------------------------------------------------------
@pytest.mark.parametrize("app", APPS.values(), ids=APPS.keys())
@pytest.mark.parametrize("www_redirect", ["none", "to_bare", "to_www"])
@pytest.mark.parametrize("tls_ready", [True, False], ids=["tls", "http-only"])
def test_nginx_site_passes_nginx_t(tmp_path, certificate, app, www_redirect, tls_ready):
    env = make_env(app, www_redirect=www_redirect)
    nginx_test(tmp_path, [(env, tls_ready, RELEASE)], certificate)


def test_nginx_before_first_deploy_and_two_sites_side_by_side(tmp_path, certificate):
    """Provision's first state (HTTP only, no release) next to a live TLS site of the same app."""
    staging = make_env(name="staging", domains=("staging.shop.example.com",))
    production = make_env(www_redirect="to_bare")
    nginx_test(tmp_path, [(staging, False, None), (production, True, RELEASE)], certificate)


@pytest.mark.parametrize("tls_ready", [True, False], ids=["tls", "http-only"])
def test_lb_and_backend_on_one_host_pass_nginx_t(tmp_path, certificate, tls_ready):
    """An lb+web host: the lb's site (TLS, upstream of both web hosts, one out of rotation)
    beside the same site's backend on port 8080."""
    hosts = (Host("203.0.113.20", roles=("lb", "web", "worker"), private_address="10.0.0.20"),
             Host("203.0.113.21", roles=("web",), private_address="10.0.0.21"),
             Host("203.0.113.22", roles=("db",)))
    env = dataclasses.replace(make_env(www_redirect="to_bare"), hosts=hosts)
    lb_site = render.nginx_site(env, tls_ready, "lb")
    upstream = render.nginx_lb_upstream(env, ("10.0.0.21",))
    nginx_test(tmp_path, [(env, tls_ready, RELEASE)], certificate,
               {render.lb_site_path(env): lb_site, render.lb_upstream_path(env): upstream})
    backend = render.nginx_site(env, True, "backend")
    assert "listen 8080 ssl;" in backend
    assert "ssl_certificate /etc/ssl/vpskit/backend.crt;" in backend
    assert "proxy_pass https://shop_production_lb;" in lb_site
    for line in ("proxy_ssl_verify on;", "proxy_ssl_name vpskit-backend.internal;",
                 "proxy_ssl_trusted_certificate /etc/ssl/vpskit/shop-production-web-cas.crt;"):
        assert line in lb_site, line
    assert "set_real_ip_from 10.0.0.20;" in backend and "acme-challenge" not in backend
    assert "X-Forwarded-Proto $http_x_forwarded_proto" in backend
    assert "location /static/" not in lb_site and "X-Forwarded-Proto $scheme" in lb_site
    assert "server 10.0.0.20:8080 max_fails=1 fail_timeout=5s;" in upstream
    assert "server 10.0.0.21:8080 max_fails=1 fail_timeout=5s down;" in upstream


@pytest.mark.parametrize("app", APPS.values(), ids=APPS.keys())
def test_https_site_content(app):
    env = make_env(app)
    text = render.nginx_site(env, tls_ready=True)
    site = env.site
    ident = site.replace("-", "_")
    assert f"limit_req_zone $binary_remote_addr zone={ident}:10m rate=5r/s;" in text
    assert f"include /etc/nginx/vpskit/{site}/upstream.conf;" in text
    plain, secure = servers(text)
    # Port 80: ACME challenges from the webroot, everything else 301 to https.
    assert ["80"] in plain.args("listen") and ["[::]:80"] in plain.args("listen")
    assert plain.args("server_name") == [["shop.example.com", "www.shop.example.com"]]
    acme = location(plain, "/.well-known/acme-challenge/")
    assert acme.args("root") == [["/var/lib/vpskit/acme"]]
    assert location(plain, "/").args("return") == [["301", "https://$host$request_uri"]]
    # 443: TLS, the certificate of the site, HTTP/2 as a listen parameter (nginx 1.22).
    assert secure.args("listen") == [["443", "ssl", "http2"], ["[::]:443", "ssl", "http2"]]
    assert not secure.args("http2")
    assert secure.args("ssl_certificate") == [[f"/etc/letsencrypt/live/{site}/fullchain.pem"]]
    assert secure.args("ssl_certificate_key") == [[f"/etc/letsencrypt/live/{site}/privkey.pem"]]
    assert secure.args("ssl_protocols") == [["TLSv1.2", "TLSv1.3"]]
    assert "max-age=31536000; includeSubDomains" in text
    assert secure.args("client_max_body_size") == [["25m"]]
    proxy = location(secure, "/")
    assert proxy.args("proxy_pass") == [[f"http://{ident}"]]
    assert proxy.args("limit_req") == [[f"zone={ident}", "burst=7", "nodelay"]]
    assert proxy.args("proxy_http_version") == [["1.1"]]
    forwarded = {args[0]: args[1] for args in proxy.args("proxy_set_header")}
    assert forwarded == {"Host": "$host", "X-Real-IP": "$remote_addr",
                         "X-Forwarded-For": "$remote_addr",
                         "X-Forwarded-Proto": "$scheme", "X-Forwarded-Host": "$host",
                         "Upgrade": "$http_upgrade", "Connection": "$connection_upgrade"}
    timeout = "3600s" if app.kind == "asgi" else f"{max(60, app.timeout + 5)}s"
    assert proxy.args("proxy_read_timeout") == [[timeout]]
    static, media = location(secure, "/static/"), location(secure, "/media/")
    assert static.args("alias") == [[f"/srv/{site}/shared/static/"]]
    assert media.args("alias") == [[f"/srv/{site}/shared/media/"]]
    assert "immutable" in static.args("add_header")[0][1]
    assert not static.args("limit_req") and not media.args("limit_req")
    # add_header is inherited only by blocks that declare none: each one must carry them all.
    for block in secure.walk():
        if block.args("add_header"):
            assert block.headers() >= SECURITY_HEADERS | {HSTS}, block.head


def test_http_only_site_proxies_the_app_on_port_80():
    text = render.nginx_site(make_env(), tls_ready=False)
    (server,) = servers(text)
    assert ["80"] in server.args("listen")
    assert "listen 443" not in text and "ssl_" not in text
    assert location(server, "/").args("proxy_pass") == [["http://shop_production"]]
    assert location(server, "/.well-known/acme-challenge/").args("root")
    for block in server.walk():
        if block.args("add_header"):
            assert block.headers() >= SECURITY_HEADERS, block.head
            assert HSTS not in block.headers(), "HSTS must not be sent over plain http"


def test_tls_disabled_stays_on_http():
    env = dataclasses.replace(make_env(), tls=TLS(enabled=False))
    assert render.nginx_site(env, tls_ready=True) == render.nginx_site(env, tls_ready=False)


@pytest.mark.parametrize(("www_redirect", "source", "target"), [
    ("to_bare", "www.shop.example.com", "shop.example.com"),
    ("to_www", "shop.example.com", "www.shop.example.com"),
])
def test_www_redirect(www_redirect, source, target):
    env = make_env(www_redirect=www_redirect)
    plain, redirect, app = servers(render.nginx_site(env, tls_ready=True))
    assert plain.args("server_name") == [list(env.domains)]  # both names: ACME + https
    assert redirect.args("server_name") == [[source]]
    assert redirect.args("return") == [["301", f"https://{target}$request_uri"]]
    assert redirect.headers() == {HSTS} and redirect.args("ssl_certificate")
    assert app.args("server_name") == [[target]]
    # Before the certificate: the redirect stays on http and still answers ACME challenges.
    redirect, app = servers(render.nginx_site(env, tls_ready=False))
    assert location(redirect, "/").args("return") == [["301", f"http://{target}$request_uri"]]
    assert location(redirect, "/.well-known/acme-challenge/").args("root")
    assert app.args("server_name") == [[target]]


def test_www_redirect_needs_both_names():
    env = make_env(domains=("shop.example.com", "api.example.com"), www_redirect="to_bare")
    assert render.www_redirects(env) == []
    assert len(servers(render.nginx_site(env, tls_ready=True))) == 2
    env = make_env(domains=("a.example.com", "www.a.example.com", "b.example.com",
                            "www.b.example.com"), www_redirect="to_www")
    assert render.www_redirects(env) == [("a.example.com", "www.a.example.com"),
                                         ("b.example.com", "www.b.example.com")]


def test_upstream_names_the_release_socket():
    env = make_env()
    text = render.nginx_upstream(env, RELEASE)
    (upstream,) = parse_nginx(text).children
    assert upstream.head == "upstream shop_production"
    assert upstream.args("server") == [
        [f"unix:/run/shop-production/web-{RELEASE}.sock", "fail_timeout=0"]]
    assert render.web_socket(env, RELEASE) == f"/run/shop-production/web-{RELEASE}.sock"
    assert "unix:/run/shop-production/web-none.sock " in render.nginx_upstream(env, None)


def test_common_conf_defines_the_websocket_map_once():
    text = render.nginx_common()
    assert text.count("map $http_upgrade $connection_upgrade") == 1
    assert not parse_nginx(text).args("server_tokens")  # Debian 13's nginx.conf sets it there


def test_every_server_block_hides_the_nginx_version():
    text = render.nginx_site(make_env(), tls_ready=True)
    assert text.count("server_tokens off;") == text.count("server {")


# ---- systemd ------------------------------------------------------------------------------------
@pytest.mark.parametrize("app", APPS.values(), ids=APPS.keys())
def test_web_unit_passes_systemd_analyze_verify(tmp_path, app):
    env = make_env(app)
    files = render.unit_files(env)
    assert list(files) == [f"/etc/systemd/system/{env.site}-web@.service"]
    systemd_verify(tmp_path, files, [render.web_unit_name(env, RELEASE)])


def test_backup_units_pass_systemd_analyze_verify(tmp_path):
    env = make_env(timer="*-*-* 03:00:00")
    files = render.unit_files(env)
    systemd_verify(tmp_path, files, ["shop-production-backup.timer",
                                     "shop-production-backup.service"])
    timer = files["/etc/systemd/system/shop-production-backup.timer"]
    assert "OnCalendar=*-*-* 03:00:00\n" in timer and "Persistent=true\n" in timer
    assert "RandomizedDelaySec=" in timer and "WantedBy=timers.target" in timer
    service = files["/etc/systemd/system/shop-production-backup.service"]
    assert ("ExecStart=/usr/bin/flock --wait 3600 /run/vpskit-shop-production.lock "
            "/usr/local/lib/vpskit/backup-shop-production\n") in service  # waits for deploys
    assert render.backup_units(make_env()) == {}


def test_process_units_pass_systemd_analyze_verify(tmp_path):
    env = dataclasses.replace(make_env(), processes=(
        Process("worker", "celery -A shop worker --concurrency 2", count=2, stop_timeout=90),))
    files = render.process_units(env)
    systemd_verify(tmp_path, files, ["shop-production-worker@1.service"])
    unit = files["/etc/systemd/system/shop-production-worker@.service"]
    assert ("ExecStart=/srv/shop-production/current/.venv/bin/celery -A shop worker "
            "--concurrency 2\n") in unit
    assert "TimeoutStopSec=90s\n" in unit and "KillSignal=SIGTERM\n" in unit
    assert "WorkingDirectory=/srv/shop-production/current\n" in unit


def unit_settings(text: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def test_web_unit_settings():
    env = make_env()
    unit = unit_settings(render.web_unit(env))
    root = "/srv/shop-production"
    assert unit["User"] == unit["Group"] == ["shop-production"]
    assert unit["WorkingDirectory"] == [f"{root}/releases/%i"]
    assert unit["EnvironmentFile"] == [f"{root}/shared/.env"]
    assert "RELEASE=%i" in unit["Environment"]
    assert "DJANGO_SETTINGS_MODULE=shop.settings" in unit["Environment"]
    assert unit["RuntimeDirectory"] == ["shop-production"]
    assert unit["RuntimeDirectoryMode"] == ["0750"]
    assert unit["RuntimeDirectoryPreserve"] == ["yes"]
    assert unit["ReadWritePaths"] == [f"{root}/shared/media"]
    for key, value in {"Restart": "on-failure", "NoNewPrivileges": "yes",
                       "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
                       "PrivateDevices": "yes", "KillSignal": "SIGTERM",
                       "TimeoutStopSec": "35s"}.items():
        assert unit[key] == [value], key
    assert render.web_unit_name(env, RELEASE) == f"shop-production-web@{RELEASE}.service"


@pytest.mark.parametrize(("name", "expected"), [
    ("django-gunicorn-sync",
     "/srv/shop-production/releases/%i/.venv/bin/gunicorn"
     " --bind=unix:/run/shop-production/web-%i.sock --workers=2 --worker-class=sync"
     " --timeout=30 --graceful-timeout=30 --access-logfile=-"
     " shop.wsgi:application"),
    ("flask-gunicorn-gevent",
     "/srv/blog-production/releases/%i/.venv/bin/gunicorn"
     " --bind=unix:/run/blog-production/web-%i.sock --workers=3 --worker-class=gevent"
     " --timeout=90 --graceful-timeout=30 --access-logfile=-"
     " blog:create_app()"),
    ("asgi-uvicorn",
     "/srv/chat-production/releases/%i/.venv/bin/uvicorn"
     " --uds=/run/chat-production/web-%i.sock --workers=2 --forwarded-allow-ips=*"
     " --timeout-graceful-shutdown=30 chat.asgi:application"),
    ("asgi-daphne",
     "/srv/live-production/releases/%i/.venv/bin/daphne"
     " --unix-socket=/run/live-production/web-%i.sock --proxy-headers --http-timeout=30"
     " --access-log=- live.asgi:application"),
    ("asgi-gunicorn",
     "/srv/api-production/releases/%i/.venv/bin/gunicorn"
     " --bind=unix:/run/api-production/web-%i.sock --workers=2"
     " --worker-class=uvicorn.workers.UvicornWorker --timeout=30 --graceful-timeout=30"
     " --forwarded-allow-ips=* --access-logfile=- api.main:app"),
])
def test_exec_start(name, expected):
    env = make_env(APPS[name])
    assert " ".join(render.exec_start(env)) == expected
    assert f"\nExecStart={expected}\n" in render.web_unit(env)
    settings = unit_settings(render.web_unit(env))["Environment"]
    assert bool(APPS[name].django_settings) == any(
        s.startswith("DJANGO_SETTINGS_MODULE=") for s in settings)


def test_uvicorn_factory_entry():
    app = dataclasses.replace(APPS["asgi-uvicorn"], entry="chat.main:create_app()")
    assert render.exec_start(make_env(app))[-2:] == ["--factory", "chat.main:create_app"]


# ---- security: default server, client address, sandbox -----------------------------------------
INVENTORY = """\
app: {{name: shop, repo: ., entry: "shop.wsgi:application"{app}}}
nginx: {{client_max_body_size: 20m{nginx}}}
tls: {{enabled: false}}
postgres: {{enabled: false}}
redis: {{enabled: false}}
environments:
  production:
    hosts: [{{address: 203.0.113.20, roles: [web]}}]
    domains: [shop.example.com]
"""
LB_HOSTS = (Host("203.0.113.20", roles=("lb", "web", "worker"), private_address="10.0.0.20"),
            Host("203.0.113.21", roles=("web",), private_address="10.0.0.21"),
            Host("203.0.113.22", roles=("db",)))
CELERY = Process("worker", "celery -A shop worker", count=2)


def test_security_default_server_takes_unknown_names_so_no_site_does(tmp_path, certificate):
    """The shared conf's server is the default of 80 and 443: 444 on 80, no TLS handshake for
    an unknown SNI, with the sites' TLS settings (OpenSSL takes them from the default server)."""
    (default,) = servers(render.nginx_common())
    assert default.args("listen") == [["80", "default_server"], ["[::]:80", "default_server"],
                                      ["443", "ssl", "default_server"],
                                      ["[::]:443", "ssl", "default_server"]]
    assert default.args("ssl_reject_handshake") == [["on"]]
    assert default.args("return") == [["444"]] and default.args("server_tokens") == [["off"]]
    site_tls = servers(render.nginx_site(make_env(), tls_ready=True))[1]
    for name in ("ssl_protocols", "ssl_ciphers", "ssl_prefer_server_ciphers",
                 "ssl_session_cache", "ssl_session_timeout", "ssl_session_tickets"):
        assert default.args(name) == site_tls.args(name), name
    lb_env = dataclasses.replace(make_env(), hosts=LB_HOSTS)
    sites = [render.nginx_site(make_env(), ready) for ready in (True, False)] + [
        render.nginx_site(lb_env, True, mode) for mode in ("lb", "backend")]
    assert not any("default_server" in text for text in sites)
    nginx_test(tmp_path, [(make_env(), True, RELEASE)], certificate)  # one default per port


def test_security_backend_port_serves_only_the_lb_and_this_host(tmp_path, certificate):
    env = dataclasses.replace(make_env(), hosts=LB_HOSTS)
    text = render.nginx_site(env, True, "backend")
    (geo,) = [b for b in parse_nginx(text).children if b.head.startswith("geo")]
    assert geo.head == "geo $realip_remote_addr $shop_production_backend_peer"
    assert {tuple(d) for d in geo.directives} == {("default", "0"), ("10.0.0.20", "1"),
                                                 ("127.0.0.1", "1"), ("::1", "1")}
    (server,) = servers(text)
    (gate,) = [b for b in server.children if b.head.startswith("if")]
    assert gate.head == "if ($shop_production_backend_peer = 0)"
    assert gate.args("return") == [["444"]]
    assert server.args("set_real_ip_from") == [["10.0.0.20"]]
    assert server.args("real_ip_header") == [["X-Real-IP"]]
    nginx_test(tmp_path, [(env, True, RELEASE)], certificate)


@pytest.mark.parametrize("mode", ["web", "lb", "backend"])
def test_security_app_hears_the_client_address_from_nginx_only(mode):
    env = dataclasses.replace(make_env(), hosts=LB_HOSTS)
    text = render.nginx_site(env, True, mode)
    assert "$proxy_add_x_forwarded_for" not in text and "$http_x_forwarded_for" not in text
    for server in servers(text):
        for block in server.walk():
            if block.args("proxy_pass"):
                forwarded = {args[0]: args[1] for args in block.args("proxy_set_header")}
                assert forwarded["X-Forwarded-For"] == forwarded["X-Real-IP"] == "$remote_addr"
        if mode != "backend":  # nothing in front of the lb or a lone web host to trust
            assert not server.args("set_real_ip_from") and not server.args("real_ip_header")


def test_security_trusted_proxies_name_the_client_for_the_rate_limit(tmp_path, certificate):
    env = dataclasses.replace(make_env(), nginx=Nginx(trusted_proxies=("10.0.0.0/8",
                                                                       "2001:db8::/32")))
    plain, secure = servers(render.nginx_site(env, tls_ready=True))
    assert secure.args("set_real_ip_from") == [["10.0.0.0/8"], ["2001:db8::/32"]]
    assert secure.args("real_ip_header") == [["X-Forwarded-For"]]
    assert secure.args("real_ip_recursive") == [["on"]]
    (http_only,) = servers(render.nginx_site(env, tls_ready=False))
    assert http_only.args("set_real_ip_from") == secure.args("set_real_ip_from")
    nginx_test(tmp_path, [(env, True, RELEASE)], certificate)


@pytest.mark.parametrize("name", APPS)
def test_security_app_servers_trust_forwarded_headers_from_the_socket_only(name):
    """Gunicorn trusts its Unix socket's peer (nginx) without a list; uvicorn needs ``*``
    there, as it sees no peer address on a Unix socket."""
    argv = render.exec_start(make_env(APPS[name]))
    trust = [a for a in argv if a.startswith("--forwarded-allow-ips")]
    uvicorn = APPS[name].kind == "asgi" and APPS[name].server != "daphne"
    assert trust == (["--forwarded-allow-ips=*"] if uvicorn else [])


def security_score(tmp_path: Path, name: str, text: str) -> float:
    """``systemd-analyze security --offline`` of the unit ``text`` saved as ``name``."""
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    unit = tmp_path / name
    unit.write_text(text)
    result = subprocess.run(["systemd-analyze", "security", "--offline=true", unit],
                            capture_output=True, text=True, cwd=tmp_path)
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert found, result.stdout + result.stderr
    return float(found.group(1))


@pytest.mark.parametrize("app", APPS.values(), ids=APPS.keys())
def test_security_units_are_rated_ok_offline(tmp_path, app):
    env = dataclasses.replace(make_env(app), processes=(CELERY,))
    units = {render.web_unit_name(env, RELEASE): render.web_unit(env),
             f"{env.site}-worker@1.service": render.process_units(env)[
                 f"/etc/systemd/system/{env.site}-worker@.service"]}
    for name, text in units.items():
        score = security_score(tmp_path, name, text)
        assert score <= 4.0, f"{name}: exposure {score}, above 4.0 (OK)"


def test_security_release_commands_run_in_the_units_sandbox():
    env = dataclasses.replace(make_env(), processes=(CELERY,))
    argv = appcmd.release_command_argv(env, RELEASE, ["python", "manage.py", "migrate"], 60)
    properties = [a.removeprefix("--property=") for a in argv if a.startswith("--property=")]
    web = unit_settings(render.web_unit(env))
    worker = unit_settings(render.process_units(env)[
        "/etc/systemd/system/shop-production-worker@.service"])
    for key, value in render.SANDBOX:
        assert f"{key}={value}" in properties
        assert value in web[key] and value in worker[key], key
    assert "ReadWritePaths=/srv/shop-production/shared/static /srv/shop-production/shared/media" \
        in properties
    assert web["UMask"] == ["0007"] and worker["UMask"] == ["0027"]
    assert "UMask=0027" in properties
    assert argv.index("--") > max(argv.index(f"--property={k}={v}") for k, v in render.SANDBOX)


def test_security_memory_max_is_the_inventorys(tmp_path):
    env = dataclasses.replace(make_env(), processes=(CELERY,))
    assert "MemoryMax" not in render.web_unit(env)
    env = dataclasses.replace(env, app=dataclasses.replace(env.app, memory_max="512M"))
    for text in (render.web_unit(env), *render.process_units(env).values()):
        assert unit_settings(text)["MemoryMax"] == ["512M"]
    systemd_verify(tmp_path, render.unit_files(env), [render.web_unit_name(env, RELEASE),
                                                      "shop-production-worker@1.service"])


def load_inventory(tmp_path: Path, app: str = "", nginx: str = "") -> Environment:
    path = tmp_path / "inventory.yml"
    path.write_text(INVENTORY.format(app=app, nginx=nginx))
    return inventory.load(path, "production", environ={})


def test_security_keys_load_and_default_to_nothing(tmp_path):
    env = load_inventory(tmp_path)
    assert env.app.memory_max == "" and env.nginx.trusted_proxies == ()
    env = load_inventory(tmp_path, app=", memory_max: 2G",
                         nginx=", trusted_proxies: [10.0.0.0/8, 203.0.113.7, '2001:db8::/32']")
    assert env.app.memory_max == "2G"
    assert env.nginx.trusted_proxies == ("10.0.0.0/8", "203.0.113.7", "2001:db8::/32")
    assert load_inventory(tmp_path, app=", memory_max: 50%").app.memory_max == "50%"


@pytest.mark.parametrize(("app", "nginx", "message"), [
    (", memory_max: 512m", "", "inventory.yml:1: app.memory_max: '512m': expected a size"),
    (", memory_max: '512M\\nUser=root'", "", "app.memory_max"),
    (", memory_max: 0", "", "app.memory_max: '0'"),
    ("", ", trusted_proxies: [10.0.0.1/8]",
     "inventory.yml:2: nginx.trusted_proxies.0: '10.0.0.1/8': expected an IP address or a net"),
    ("", ", trusted_proxies: [lb.example.com]", "nginx.trusted_proxies.0: 'lb.example.com'"),
    ("", ", trusted_proxies: [10.0.0.1, 'fe80::1%eth0']", "nginx.trusted_proxies.1"),
    ("", ", trusted_proxies: 10.0.0.0/8", "nginx.trusted_proxies: expected a list"),
])
def test_security_keys_are_validated_at_load(tmp_path, app, nginx, message):
    with pytest.raises(InventoryError, match=re.escape(message)):
        load_inventory(tmp_path, app=app, nginx=nginx)
