"""Every app shape on one VPS, each its own site and domain: the Flask example on gevent workers,
the Channels example on Daphne (websockets through Nginx over TLS) and the Django example with
the inventory ``fab init`` wrote (media, upload limit); then the proxy settings of every kind.
Tests run in file order and build on each other."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shlex
import shutil
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml

from harness.devtasks import sandbox
from harness.devtasks.load import Load
from tests.helpers import machines
from tests.helpers.site import FAB, SECRET_KEY, NoRedirect, Site
from vpskit import envfile, init, inventory, pgadmin, render

pytestmark = pytest.mark.vps

INDEX = machines.INDEX + 4
DOMAINS = {"flask": f"depot{INDEX}.test", "channels": f"chat{INDEX}.test",
           "django": f"shop{INDEX}.test"}
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455


@pytest.fixture(scope="module")
def machine():
    with machines.booted(f"vpskit-s{INDEX}", INDEX, tuple(DOMAINS.values())) as vps, \
            machines.pebble_for(vps) as pebble:
        yield vps, pebble


def example_site(machine, tmp_path_factory, example: str) -> Site:
    """``example`` with the sandbox's inventory for its own domain, provisioned and deployed."""
    vps, pebble = machine
    domain = DOMAINS[example]
    base = sandbox.create(tmp_path_factory.mktemp(example), vps, pebble, secret_key=SECRET_KEY,
                          example=example, domains=(domain,))
    site = Site(base, (domain,), base / "pebble-root.pem")
    site.fab("provision")
    site.fab("deploy")
    return site


@pytest.fixture(scope="module")
def depot(machine, tmp_path_factory) -> Site:
    return example_site(machine, tmp_path_factory, "flask")


@pytest.fixture(scope="module")
def chat(machine, tmp_path_factory) -> Site:
    return example_site(machine, tmp_path_factory, "channels")


@pytest.fixture(scope="module")
def shop(machine, tmp_path_factory, installed_vpskit) -> Site:
    """The Django example driven as a user drives it: vpskit installed from a wheel into a
    virtualenv outside this checkout, ``vpskit init`` in the app's repository, the placeholders
    filled in, its files committed, then ``fab provision`` and ``fab deploy`` from there. The
    site's directory is the repository itself (so commit there, not with ``Site.commit``)."""
    vps, pebble = machine
    base = sandbox.create(tmp_path_factory.mktemp("django"), vps, pebble, secret_key=SECRET_KEY,
                          domains=(DOMAINS["django"],))
    app = base / "app"
    fill_placeholders(vpskit_init(installed_vpskit, app, "shop"), vps, pebble,
                      DOMAINS["django"])
    shutil.move(base / ".env.production", app / ".env.production")
    sandbox.git(app, "add", "-A")
    sandbox.git(app, "commit", "-qm", "vpskit init")
    site = Site(app, (DOMAINS["django"],), base / "pebble-root.pem",
                fab_command=installed_vpskit.bin / "fab")
    site.fab("provision")
    site.fab("deploy")
    return site


# ---- helpers ------------------------------------------------------------------------------------
def fab_init(app: Path, name: str) -> Path:
    """The real ``fab init`` in the app's repository; the inventory it wrote."""
    subprocess.run([str(FAB), "init", "--path", str(app), "--name", name],
                   check=True, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    return app / "inventory.yml"


def vpskit_init(tool, app: Path, name: str) -> Path:
    """The installed ``vpskit init`` run in the app's repository; the inventory it wrote."""
    subprocess.run([str(tool.bin / "vpskit"), "init", "--name", name], cwd=app, check=True,
                   capture_output=True, text=True, stdin=subprocess.DEVNULL)
    return app / "inventory.yml"


def edit_inventory(path: Path, change: Callable[[dict], None]) -> None:
    doc = yaml.safe_load(path.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def fill_placeholders(path: Path, vps, pebble, domain: str) -> None:
    """What the operator fills in after ``fab init``: host, key, domain and ACME account (here
    Pebble's, as no real CA reaches a test VPS)."""
    assert path.read_text().count("FILL ME") >= 3

    def fill(doc: dict) -> None:
        production = doc["environments"]["production"]
        assert production["hosts"][0]["address"] == init.PLACEHOLDER_ADDRESS
        production["hosts"][0].update(address=vps.address, key=vps.key_path,
                                      known_hosts=vps.known_hosts_path)
        production["domains"] = [domain]
        doc["tls"].update(email=f"ops@{domain}", acme_url=pebble.directory_url)

    edit_inventory(path, fill)


def health(site: Site) -> dict:
    status, body, _ = site.get("/health/")
    assert status == 200, body
    return json.loads(body)


def wait_healthy(site: Site, timeout: float = 30) -> None:
    """Return once the app answers its health check through Nginx again (after a restart)."""
    deadline = time.monotonic() + timeout
    while site.get("/health/")[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.2)


def on_socket(site: Site, path: str, host: str, *headers: str) -> tuple[str, str]:
    """(status, Location) of a request straight to the live release's socket, past Nginx."""
    env = site.env()
    release = site.sh(f"readlink {env.current_link}").strip().rsplit("/", 1)[-1]
    args = " ".join(f"-H {shlex.quote(h)}" for h in (f"Host: {host}", *headers))
    out = site.sh(f"curl -s -o /dev/null -w '%{{http_code}} %{{redirect_url}}' {args} "
                  f"--unix-socket {render.web_socket(env, release)} http://{host}{path}")
    status, _, location = out.partition(" ")
    return status, location.strip()


def post_file(site: Site, path: str, name: str, filename: str, content: bytes
              ) -> tuple[int, str]:
    """A multipart POST (``name`` and the file ``image``) through Nginx; (status, body)."""
    boundary = os.urandom(12).hex()
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n{name}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; "
            f"filename=\"{filename}\"\r\nContent-Type: text/plain\r\n\r\n").encode() \
        + content + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(
        f"https://{site.domain}{path}", data=body, method="POST",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    opener = urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=site.ca_file)),
        urllib.request.ProxyHandler({}), NoRedirect())
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def websocket_echo(site: Site, path: str, text: str) -> tuple[int, str]:
    """A websocket round trip over TLS (stdlib only): handshake, one masked text frame out,
    one frame back; (opcode, text) of the reply."""
    key = base64.b64encode(os.urandom(16)).decode()
    context = ssl.create_default_context(cafile=site.ca_file)
    with socket.create_connection((site.domain, 443), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=site.domain) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {site.domain}\r\nUpgrade: websocket\r\n"
                     f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                     f"Sec-WebSocket-Version: 13\r\nOrigin: https://{site.domain}\r\n\r\n"
                     .encode())
        stream = sock.makefile("rb")
        status = stream.readline().decode()
        headers = {}
        while (line := stream.readline().decode().strip()):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        assert status.split()[1] == "101", (status, headers)
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        assert headers["sec-websocket-accept"] == accept
        payload, mask = text.encode(), os.urandom(4)
        assert len(payload) < 126
        sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask
                     + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
        first, second = stream.read(2)
        assert second < 126  # an unmasked short frame from the server
        reply = stream.read(second).decode()
        sock.sendall(bytes([0x88, 0x80]) + mask)  # close, empty masked payload
    return first & 0x0F, reply


def redeploy_under_load(site: Site, vps, files: dict[str, str]) -> None:
    """Commit ``files`` (a new VERSION among them) and deploy it under 20 clients: none fails."""
    site.commit("next release", files)
    before = health(site)["release"]
    with Load(vps.address, site.domain, str(site.ca_file), clients=20) as load:
        time.sleep(1)
        site.fab("deploy")
        time.sleep(1)
    assert load.result.failures == 0, load.result.summary()
    assert load.result.requests > 100, load.result.summary()
    after = health(site)
    assert after["release"] != before and after["version"] == files["VERSION"].strip()


# ---- fab init -----------------------------------------------------------------------------------
def test_fab_init_gives_the_flask_and_channels_inventories_deployed_here(machine,
                                                                         tmp_path_factory):
    vps, pebble = machine
    for example, same in (("flask", ("kind", "entry", "server", "workers", "worker_class",
                                     "timeout", "graceful_timeout", "release_commands")),
                          ("channels", ("kind", "entry", "server", "django_settings"))):
        base = sandbox.create(tmp_path_factory.mktemp(f"init-{example}"), vps, pebble,
                              example=example, domains=(DOMAINS[example],))
        written = fab_init(base / "app", "app")
        fill_placeholders(written, vps, pebble, DOMAINS[example])
        deployed = inventory.load(base / "inventory.yml", "production")
        secrets = envfile.parse((base / ".env.production").read_text())
        generated = inventory.load(written, "production", environ=secrets)
        assert {k: getattr(generated.app, k) for k in same} == \
            {k: getattr(deployed.app, k) for k in same}
        assert set(generated.secrets) == set(deployed.secrets) == set(secrets)


# ---- Flask: gunicorn with gevent workers, plain-SQL migrations, a Fernet key --------------------
def migrations_applied(site: Site) -> set[str]:
    remote = site.remote()
    try:
        with pgadmin.admin_connection(remote, site.env().db_name) as conn:
            return {row[0] for row in conn.execute("select name from schema_migrations")}
    finally:
        remote.conn.close()


def test_flask_serves_on_gevent_workers_after_its_sql_migrations(depot):
    result = health(depot)
    assert result["database"] == "ok" and result["redis"] == "ok"
    unit = render.web_unit_name(depot.env(), result["release"])
    start = depot.sh(f"systemctl show -p ExecStart --value {unit}")
    assert "--worker-class=gevent --timeout=300 --graceful-timeout=30" in start
    assert "Using worker: gevent" in depot.sh(f"journalctl -u {unit} -o cat --no-pager")
    assert {"0001_items.sql", "0002_items_created_index.sql"} <= migrations_applied(depot)


def test_flask_redeploy_under_load_keeps_the_fernet_key_and_migrates(depot, machine):
    status, body, _ = depot.get("/secret-roundtrip/")
    assert status == 200, body
    made = json.loads(body)
    seed = os.urandom(8).hex()
    migration = f"0003_seed_{seed}.sql"
    redeploy_under_load(depot, machine[0], {
        "VERSION": "2.0.0\n",
        f"migrations/{migration}": "INSERT INTO items (id, name, created) "
                                   f"VALUES ('{seed}', 'seeded-{seed}', CURRENT_TIMESTAMP);\n"})
    status, body, _ = depot.get(f"/secret-roundtrip/?token={quote(made['token'])}")
    assert status == 200 and json.loads(body)["plaintext"] == made["plaintext"], body
    assert migration in migrations_applied(depot)
    assert f"seeded-{seed}" in depot.get("/items/")[1]


# ---- Django through fab init: media, upload limit -----------------------------------------------
UPLOAD = b"x" * 1_500_000 + b"\n"  # above the 1m limit set below, below Nginx's default 20m


def test_installed_vpskit_runs_every_task_from_the_app_repository(shop, installed_vpskit):
    """The wheel's vpskit, from the app's own repository: HTTPS 200 (the fixture deployed it),
    management commands through fab, the vpskit command beside it, and nothing secret left
    for git to add."""
    assert shop.get("/")[0] == 200
    code = ("import vpskit, vpskit.templates; print(vpskit.__file__)")
    where = subprocess.run([str(installed_vpskit.bin / "python"), "-c", code], cwd=shop.dir,
                           capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(installed_vpskit.bin.parent)), where  # not this checkout
    assert "System check identified no issues" in shop.fab("manage", "--", "check").stdout
    status = subprocess.run([str(installed_vpskit.bin / "vpskit"), "status", "--env",
                             "production"], cwd=shop.dir, capture_output=True, text=True)
    assert status.returncode == 0 and "active" in status.stdout, status.stderr
    shop.fab("backup")
    assert list((shop.dir / "backups").glob("shop-production-*.dump"))
    untracked = sandbox.git(shop.dir, "status", "--porcelain", "--untracked-files=all")
    assert untracked == "", untracked  # .env.production and backups/ are ignored
    assert ".env.production" not in sandbox.git(shop.dir, "ls-files")


def test_deploy_refuses_a_commit_that_tracks_a_secrets_file(shop):
    live = health(shop)["release"]
    sandbox.git(shop.dir, "add", "-f", ".env.production")
    sandbox.git(shop.dir, "commit", "-qm", "oops: secrets committed")
    try:
        result = shop.fab("deploy", check=False)
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "tracks .env.production" in lines[0], result.stderr
        assert SECRET_KEY not in result.stdout + result.stderr
        assert result.stdout == ""  # refused before connecting
        assert health(shop)["release"] == live
    finally:
        sandbox.git(shop.dir, "rm", "-q", "--cached", ".env.production")
        sandbox.git(shop.dir, "commit", "-qm", "secrets out again")


def test_fab_init_inventory_provisions_and_deploys_the_django_example(shop):
    env = shop.env()
    assert (env.app.kind, env.app.entry) == ("django", "shop.wsgi:application")
    result = health(shop)
    assert result["database"] == "ok" and result["cache"] == "ok"
    status, _, headers = shop.get("/static/catalog/style.css")
    assert status == 200 and "immutable" in headers["Cache-Control"]  # collectstatic ran


def test_media_uploaded_before_a_deploy_is_served_by_nginx_after_it(shop):
    status, body = post_file(shop, "/items/", "before-deploy", "notes.txt", UPLOAD)
    assert status == 201, body
    url = json.loads(body)["image"]
    assert url.startswith("/media/items/notes")
    before = health(shop)["release"]
    (shop.dir / "VERSION").write_text("2.0.0\n")
    sandbox.git(shop.dir, "commit", "-qam", "2.0.0")
    shop.fab("deploy")
    assert health(shop)["release"] != before
    status, served, headers = shop.get(url)
    assert status == 200 and served.encode() == UPLOAD
    assert headers["Cache-Control"] == "public, max-age=86400"  # Nginx's /media/ location
    assert "before-deploy" in shop.get("/items/")[1]


def test_upload_size_limit_is_the_inventorys(shop):
    edit_inventory(shop.dir / "inventory.yml",
                   lambda doc: doc["nginx"].update(client_max_body_size="1m"))
    shop.fab("provision")
    assert "client_max_body_size 1m;" in shop.sh(f"cat {render.site_path(shop.env())}")
    assert post_file(shop, "/items/", "too-big", "big.txt", UPLOAD)[0] == 413
    assert post_file(shop, "/items/", "small", "small.txt", b"fits\n")[0] == 201


# ---- Channels on Daphne: websockets through Nginx over TLS --------------------------------------
def test_channels_websocket_round_trip_through_nginx_over_tls(chat):
    result = health(chat)
    assert result["channel_layer"] == "ok"
    unit = render.web_unit_name(chat.env(), result["release"])
    assert "daphne --unix-socket=" in chat.sh(f"systemctl show -p ExecStart --value {unit}")
    assert websocket_echo(chat, "/ws/echo/", "hello over wss") == (1, "hello over wss")


# ---- settings every kind gets from the domains and the proxy ------------------------------------
def test_hosts_origins_and_https_behind_nginx_for_every_kind(depot, shop, chat):
    for site in (depot, shop, chat):
        values = envfile.parse(site.sh(f"cat {site.env().env_file}"))
        assert values["ALLOWED_HOSTS"] == site.domain
        assert values["CSRF_TRUSTED_ORIGINS"] == f"https://{site.domain}"
        assert "SENTRY_DSN" not in values  # an optional secret, unset
        assert on_socket(site, "/", "evil.test")[0] == "400"
    # Flask (ProxyFix): the trailing-slash redirect names the scheme the app saw.
    assert depot.get("/items")[2]["Location"] == f"https://{depot.domain}/items/"
    assert on_socket(depot, "/items", depot.domain) == ("308", f"http://{depot.domain}/items/")
    # Django and Channels (SECURE_PROXY_SSL_HEADER): with Django's own HTTPS redirect on, a
    # request through Nginx is secure (200, no redirect loop); one without the header is not.
    for site in (shop, chat):
        site.fab("env", "--set", "SECURE_SSL_REDIRECT=1")
        wait_healthy(site)
        assert site.get("/")[0] == 200
        assert on_socket(site, "/", site.domain) == ("301", f"https://{site.domain}/")


def test_channels_redeploy_under_load_drops_no_request(chat, machine):
    redeploy_under_load(chat, machine[0], {"VERSION": "2.0.0\n"})  # every 200 was secure too
    assert websocket_echo(chat, "/ws/echo/", "after the deploy") == (1, "after the deploy")
