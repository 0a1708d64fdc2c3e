"""Least privilege on a real VPS of its own: unknown ``Host``/SNI get no site, the app hears
the client's address from Nginx only, and the units, release commands and ``fab manage`` run
sandboxed (``systemd-analyze security`` "OK") under the inventory's memory limit, with the
Django example (gunicorn, a Celery worker) and the Flask example (gevent workers) still serving.
"""

from __future__ import annotations

import json
import re
import subprocess
from urllib.parse import SplitResult, urlsplit

import pytest
import yaml

from harness.devtasks import sandbox
from tests.helpers import machines
from tests.helpers.site import SECRET_KEY, Site
from vpskit import envfile, render
from vpskit.provision import cache

pytestmark = pytest.mark.vps

INDEX = machines.INDEX + 6
DOMAINS = {"django": f"sec{INDEX}.test", "flask": f"secdepot{INDEX}.test"}
MEMORY_MAX = "512M"
SPOOFED = "6.6.6.6"
# What the tests add to the Django example: a view echoing the client address the app sees.
ECHO = {
    "catalog/echo.py": '''from django.http import JsonResponse


def echo(request):
    return JsonResponse({key: request.META.get(key, "") for key in
                         ("REMOTE_ADDR", "HTTP_X_FORWARDED_FOR", "HTTP_X_REAL_IP")})
''',
    "catalog/urls.py": '''from django.urls import path

from . import echo, views

urlpatterns = [
    path("", views.index, name="index"),
    path("health/", views.health, name="health"),
    path("items/", views.items, name="items"),
    path("echo/", echo.echo),
]
''',
}


@pytest.fixture(scope="module")
def machine():
    with machines.booted(f"vpskit-x{INDEX}", INDEX, tuple(DOMAINS.values())) as vps, \
            machines.pebble_for(vps) as pebble:
        yield vps, pebble


def edit_inventory(site: Site, change) -> None:
    path = site.dir / "inventory.yml"
    doc = yaml.safe_load(path.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def example_site(machine, tmp_path_factory, example: str, files: dict[str, str]) -> Site:
    """``example`` on its own domain with ``app.memory_max`` set and ``files`` committed,
    provisioned and deployed."""
    vps, pebble = machine
    domain = DOMAINS[example]
    base = sandbox.create(tmp_path_factory.mktemp(example), vps, pebble, secret_key=SECRET_KEY,
                          example=example, domains=(domain,))
    site = Site(base, (domain,), base / "pebble-root.pem")
    edit_inventory(site, lambda doc: doc["app"].update(memory_max=MEMORY_MAX))
    if files:
        site.commit("test additions", files)
    site.fab("provision")
    site.fab("deploy")
    return site


@pytest.fixture(scope="module")
def shop(machine, tmp_path_factory) -> Site:
    """The Django example (migrate and collectstatic as release commands, a Celery worker),
    with the echo view."""
    return example_site(machine, tmp_path_factory, "django", ECHO)


@pytest.fixture(scope="module")
def depot(machine, tmp_path_factory) -> Site:
    """The Flask example on gevent workers (its release command: ``python migrate.py``)."""
    return example_site(machine, tmp_path_factory, "flask", {})


def curl(*args: str) -> subprocess.CompletedProcess:
    """curl from the operator's machine, past any proxy of its environment."""
    return subprocess.run(["curl", "-sS", "--noproxy", "*", "--max-time", "10", *args],
                          capture_output=True, text=True, timeout=30)


def live(site: Site) -> str:
    status, body, _ = site.get("/health/")
    assert status == 200, body
    return json.loads(body)["release"]


def echo(site: Site, *headers: str) -> dict[str, str]:
    args = [a for h in headers for a in ("-H", h)]
    result = curl("--cacert", str(site.ca_file), *args, f"https://{site.domain}/echo/")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def exposure(site: Site, unit: str) -> float:
    out = site.sh(f"systemd-analyze security --no-pager {unit} 2>&1 | tail -n 1")
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out)
    assert found, out
    return float(found.group(1))


# ---- unknown Host / SNI -------------------------------------------------------------------------
def test_security_unknown_host_and_sni_get_no_site(shop, machine):
    vps = machine[0]
    plain = curl("-H", "Host: evil.test", f"http://{vps.address}/")
    assert plain.returncode == 52 and plain.stdout == "", plain  # empty reply: 444
    by_ip = curl(f"http://{vps.address}/")
    assert by_ip.returncode == 52, by_ip
    for target in ("https://evil.test/", f"https://{vps.address}/"):
        handshake = curl("-k", "--resolve", f"evil.test:443:{vps.address}", target)
        assert handshake.returncode == 35, handshake  # TLS handshake refused: no certificate
        assert "unrecognized name" in handshake.stderr or "alert" in handshake.stderr
    assert shop.get("/")[0] == 200
    assert shop.get("/", scheme="http")[0] == 301
    assert curl("-o", "/dev/null", "-w", "%{http_code}", "-H", f"Host: {shop.domain}",
                f"http://{vps.address}/").stdout == "301"


# ---- the client's address -----------------------------------------------------------------------
def test_security_a_forged_forwarded_for_never_reaches_the_app(shop, machine):
    seen = echo(shop, f"X-Forwarded-For: {SPOOFED}", f"X-Real-IP: {SPOOFED}")
    assert SPOOFED not in json.dumps(seen), seen
    assert seen["HTTP_X_FORWARDED_FOR"] == seen["HTTP_X_REAL_IP"] == machine[0].host_address
    assert seen["REMOTE_ADDR"] == ""  # gunicorn on a Unix socket has no peer address
    assert "--forwarded-allow-ips" not in shop.sh(
        f"systemctl show -p ExecStart --value {render.web_unit_name(shop.env(), live(shop))}")


def test_security_trusted_proxies_tell_nginx_the_client(shop, machine):
    """With the operator's machine as a trusted proxy (a cloud load balancer's place), Nginx
    takes the client from its X-Forwarded-For; from anyone else it never does."""
    proxy = machine[0].host_address
    edit_inventory(shop, lambda doc: doc["nginx"].update(trusted_proxies=[f"{proxy}/32"]))
    try:
        shop.fab("provision")
        assert f"set_real_ip_from {proxy}/32;" in shop.sh(f"cat {render.site_path(shop.env())}")
        seen = echo(shop, f"X-Forwarded-For: 198.51.100.9, {SPOOFED}")
        assert seen["HTTP_X_FORWARDED_FOR"] == seen["HTTP_X_REAL_IP"] == SPOOFED
        assert echo(shop)["HTTP_X_FORWARDED_FOR"] == proxy
    finally:
        edit_inventory(shop, lambda doc: doc["nginx"].pop("trusted_proxies"))
        shop.fab("provision")
    assert echo(shop, f"X-Forwarded-For: {SPOOFED}")["HTTP_X_FORWARDED_FOR"] == proxy


# ---- the sandbox --------------------------------------------------------------------------------
def test_security_units_are_rated_ok_and_capped_and_still_serve(shop, depot):
    for site in (shop, depot):
        env = site.env()
        units = [render.web_unit_name(env, live(site))]
        units += [render.process_unit_name(env, p.name, 1) for p in env.processes]
        for unit in units:
            score = exposure(site, unit)
            assert score <= 4.0, f"{unit}: exposure {score}"
            shown = site.sh(f"systemctl show -p ActiveState -p MemoryMax {unit}")
            state = dict(line.split("=", 1) for line in shown.split())
            assert state == {"ActiveState": "active", "MemoryMax": str(512 * 1024 * 1024)}, unit
        status, body, _ = site.get("/health/")
        assert status == 200, body
    assert "Using worker: gevent" in depot.sh(
        f"journalctl -u {render.web_unit_name(depot.env(), live(depot))} -o cat --no-pager")
    assert depot.get("/items/")[0] == 200


def test_security_release_commands_and_manage_run_in_the_sandbox(shop):
    """The deploy's migrate and collectstatic ran (static files are served); ``fab manage``
    works, with no privilege, a syscall filter and a read-only system."""
    status, _, headers = shop.get("/static/catalog/style.css")
    assert status == 200 and "immutable" in headers["Cache-Control"]
    assert "System check identified no issues" in shop.fab("manage", "--", "check").stdout
    probe = ("import pathlib; s = pathlib.Path('/proc/self/status').read_text(); "
             "print([l for l in s.splitlines() if l.split(':')[0] in "
             "('NoNewPrivs', 'Seccomp', 'CapBnd', 'CapEff')]); "
             "open('/srv/shop-production/shared/media/.sandbox-probe', 'w').close(); "
             "open('/run/shop-production/escape', 'w')")
    result = shop.fab("manage", "--", "python", "-c", probe, check=False)
    out = result.stdout + result.stderr
    assert "Read-only file system: '/run/shop-production/escape'" in out, out
    for line in ("NoNewPrivs:\\t1", "Seccomp:\\t2", "CapBnd:\\t0000000000000000",
                 "CapEff:\\t0000000000000000"):
        assert line in out, out
    assert shop.sh("stat -c %U /srv/shop-production/shared/media/.sandbox-probe").strip() \
        == "shop-production"


def test_security_installed_unit_is_the_one_rated_offline(shop):
    """The server's unit file is the text the unit tests rate with ``--offline``."""
    env = shop.env()
    path = f"{render.SYSTEMD_DIR}/{render.web_unit_name(env, '')}"
    assert shop.sh(f"cat {path}") == render.web_unit(env)


# ---- nothing shared between sites: Redis, Postgres ----------------------------------------------
def redis_url(site: Site) -> SplitResult:
    return urlsplit(envfile.parse(site.sh(f"cat {site.env().env_file}"))["REDIS_URL"])


def test_security_a_site_cannot_read_or_flush_anothers_redis(shop, depot):
    """shop and depot share the VPS as production and staging would: each has its own Redis
    instance. depot's password opens nothing of shop's, depot's instance has none of shop's
    keys, and FLUSHALL there leaves shop's key; CONFIG is gone; and depot's user cannot read
    shop's password anywhere."""
    prod, neighbour = redis_url(shop), redis_url(depot)
    assert prod.port != neighbour.port and prod.password != neighbour.password

    def cli(url: SplitResult, port: int, command: str) -> str:  # the password never in argv
        return depot.sh(f"REDISCLI_AUTH='{url.password}' redis-cli -p {port} {command} "
                        f"2>/dev/null").strip()
    assert cli(prod, prod.port, "set vpskit:secret prod") == "OK"
    assert cli(neighbour, neighbour.port, "get vpskit:secret") == ""  # nil: not there
    assert "vpskit:secret" not in cli(neighbour, neighbour.port, "--scan")
    assert cli(neighbour, prod.port, "get vpskit:secret") == "NOAUTH Authentication required."
    assert cli(neighbour, neighbour.port, "flushall") == "OK"  # its own instance only
    assert "unknown command" in cli(neighbour, neighbour.port, "config set dir /var/lib/redis")
    assert cli(prod, prod.port, "get vpskit:secret") == "prod"
    assert cli(prod, prod.port, "del vpskit:secret") == "1"
    sites = [shop.env().site, depot.env().site]
    assert shop.sh(f"systemctl is-active {' '.join(cache.unit(s) for s in sites)}").split() == [
        "active", "active"]
    stolen = depot.sh(f"runuser -u {sites[1]} -- cat {cache.conf_path(sites[0])} "
                      f"{shop.env().env_file} /etc/vpskit/credentials/* 2>&1", check=False)
    assert prod.password not in stolen and stolen.count("Permission denied") >= 2, stolen


def test_security_two_sites_sharing_a_database_is_a_one_line_error(shop, depot):
    """At load within an inventory; against the server's claims when the other site is in
    another app's inventory: refused before anything changes, naming both sites."""
    shop_env, depot_env = shop.env(), depot.env()
    state = (f"sha256sum {shop_env.env_file} {depot_env.env_file} {render.site_path(depot_env)}; "
             f"grep -r . /etc/vpskit/postgres")
    before = shop.sh(state)
    same = {"db": shop_env.db_name, "user": shop_env.db_user}
    edit_inventory(depot, lambda doc: doc["environments"]["production"].update(postgres=same))
    try:
        refused = [depot.fab(*task, check=False)
                   for task in (("provision",), ("restore", "--yes"), ("remove", "--yes"))]
    finally:
        edit_inventory(depot, lambda doc: doc["environments"]["production"].pop("postgres"))
    for result in refused:
        assert result.returncode == 1
        assert result.stderr.strip().splitlines() == [
            f"error: {depot_env.hosts[0].address}: {depot_env.site} would share database "
            f"{shop_env.db_name} with site {shop_env.site}; sites sharing a database or role "
            f"reset each other's password and destroy each other's data: give {depot_env.site} "
            f"its own postgres.db and postgres.user in its inventory (nothing was changed)"
        ], result.stderr
    assert "packages" not in refused[0].stdout, refused[0].stdout
    assert shop.sh(state) == before
    assert shop.get("/health/")[0] == 200 and depot.get("/health/")[0] == 200
    staging = {"hosts": [dict(h) for h in yaml.safe_load((shop.dir / "inventory.yml").read_text())[
        "environments"]["production"]["hosts"]], "domains": ["staging.invalid"],
        "postgres": {"db": shop_env.db_name}}
    edit_inventory(shop, lambda doc: doc["environments"].update(staging=staging))
    try:
        at_load = shop.fab("provision", check=False, env="staging")
    finally:
        edit_inventory(shop, lambda doc: doc["environments"].pop("staging"))
    message = at_load.stderr.strip().splitlines()
    assert at_load.returncode == 1 and len(message) == 1, at_load.stderr
    assert (f"environments.staging.postgres.db: database '{shop_env.db_name}' on "
            f"{shop_env.hosts[0].address} is also environment 'production''s" in message[0])
    assert "provision" not in at_load.stdout  # no connection made


# ---- the CI login: the key given to CI and cron is not root -------------------------------------
def test_security_ci_login_backs_up_and_reads_logs_but_sudo_refuses_the_rest(shop, depot):
    """With ``ci_user``/``ci_key`` on the host, ``fab backup`` (dump, verified copy here) and
    ``fab logs`` work from an inventory holding the CI key only, and the backup from a machine
    without the app's secrets file either (what cron needs); the CI user's sudo refuses a shell,
    ``cat /etc/shadow`` and another site; with ``ci_user`` gone, its rights on the site are
    gone too."""
    with shop.ci_login() as ci_inventory:
        assert "user ci created (sudo: /usr/local/sbin/vpskit-site only)" in shop.outputs[-1]
        secrets = shop.dir / ".env.production"
        hidden = secrets.rename(shop.dir / "secrets-kept-elsewhere")
        try:
            backed_up = shop.fab("backup", "--verbose", "--inventory", ci_inventory).stdout
            listed = shop.fab("backup", "--list", "--inventory", ci_inventory).stdout
        finally:
            hidden.rename(secrets)
        assert "as ci" in backed_up and "sha256 verified" in backed_up, backed_up
        made = re.search(r"/var/backups/shop-production/(shop-production-\S+\.dump)", backed_up)
        local = shop.dir / "backups" / made[1]
        server_sum = shop.sh(f"sha256sum /var/backups/shop-production/{made[1]}").split()[0]
        assert subprocess.run(["sha256sum", str(local)], capture_output=True, text=True,
                              check=True).stdout.split()[0] == server_sum
        assert made[1] in listed
        assert "Booting worker" in shop.fab("logs", "--lines", "400", "--inventory",
                                            ci_inventory).stdout

        def as_ci(command: str) -> str:
            return shop.sh(f"runuser -u ci -- {command} 2>&1; echo rc=$?", check=False)
        for command in ("sudo -n bash -c id", "sudo -n cat /etc/shadow",
                        "sudo -n -u postgres psql -c 'select 1'"):
            out = as_ci(command)
            assert "rc=1" in out and "root:" not in out and "uid=0" not in out, out
        assert "no site shop-staging" in as_ci("sudo -n /usr/local/sbin/vpskit-site backups "
                                               "shop-staging")
        other = depot.env().site
        assert f"no site {other}" in as_ci(f"sudo -n /usr/local/sbin/vpskit-site backups {other}")
    assert f"removed /etc/vpskit/ci/{shop.env().site}.json" in shop.fab("provision").stdout
    assert "no site shop-production" in shop.sh(
        "runuser -u ci -- sudo -n /usr/local/sbin/vpskit-site backups shop-production 2>&1",
        check=False)


def live_sha(site: Site) -> str:
    """The commit of the release ``current`` points at."""
    return json.loads(site.sh("cat /srv/shop-production/current/.vpskit-release.json"))["sha"]


def test_security_ci_login_deploys_and_rolls_back_through_the_resident_vpskit(shop):
    """On a one-host environment, ``fab deploy --ci``, ``rollback --ci`` and ``restore --ci``
    work from a machine holding the CI key and the inventory only (no secrets file): the host's
    resident vpskit ships the commit sent as a git bundle, with the inventory and secrets of the
    last provision (which installs it once: a second changes nothing). What the CI user gives is a commit or a release id: anything else is refused
    before acting. Without ``ci_user``, the copy goes, and the resident with its last site."""
    before = shop.live_release()
    with shop.ci_login() as ci_inventory:
        assert "shop-production.d/.env.production (created)" in shop.outputs[-1]
        assert shop.sh("stat -c '%U %a' /usr/local/lib/vpskit-site/resident/venv "
                       "/etc/vpskit/self/id_ed25519").split() == ["root", "755", "root", "600"]
        sha = shop.commit("shipped by the CI login", {"VERSION": "7.0.0\n"})
        secrets = shop.dir / ".env.production"
        hidden = secrets.rename(shop.dir / "secrets-kept-elsewhere")
        try:
            deployed = shop.fab("deploy", "--ci", "--inventory", ci_inventory).stdout
            shipped = (shop.live_release(), live_sha(shop))
            rolled = shop.fab("rollback", "--ci", "--inventory", ci_inventory).stdout
            shop.fab("backup", "--inventory", ci_inventory)
            restored = shop.fab("restore", "--ci", "--yes", "--inventory", ci_inventory).stdout
        finally:
            hidden.rename(secrets)
        assert f"deploy shop-production {sha[:7]}" in deployed and "as ci" in deployed, deployed
        assert shipped[0] != before and shipped[1] == sha, (shipped, deployed)
        assert "rolled back shop-production" in rolled and shop.live_release() == before, rolled
        assert "restored shop-production from shop-production-" in restored, restored
        assert re.search(r"^  resident\s+unchanged", shop.fab("provision").stdout, re.M)

        def as_ci(args: str) -> str:
            return shop.sh(f"runuser -u ci -- sudo -n /usr/local/sbin/vpskit-site {args} "
                           f"</dev/null 2>&1; echo rc=$?", check=False)
        for args, says in ((f"deploy shop-production {'0' * 40}", "not a git bundle holding"),
                           ("deploy shop-production 'HEAD;id'", "not a full commit sha"),
                           ("rollback shop-production --to=x", "not a release id")):
            out = as_ci(args)
            assert "refused" in out and says in out and "rc=2" in out, out
    removed = shop.fab("provision").stdout
    assert "removed /etc/vpskit/ci/shop-production.d" in removed, removed
    assert "removed the resident vpskit and its key" in removed, removed  # the last site's
    assert shop.sh("for p in /usr/local/lib/vpskit-site/resident /etc/vpskit/self; do "
                   "test -e $p || echo gone; done; grep -c vpskit-self /etc/ssh/vpskit_self_keys"
                   " || true").split() == ["gone", "gone", "0"]


def test_ci_killed_mid_deploy_through_the_ci_login_leaves_the_site_serving_and_unlocked(shop):
    """CI dies (a cancelled job) while the resident vpskit deploys for it: the server side ends
    on its own, a release serves, and the next ``fab deploy --ci`` ships."""
    with shop.ci_login() as ci_inventory:
        shop.commit("cut off", {"VERSION": "7.1.0\n"})
        with shop.fab_until("deploy", "--ci", "--inventory", ci_inventory,
                            seen=lambda line: line.strip().startswith("upload")) as (running, _):
            running.kill()
        shop.sh("for i in $(seq 240); do pgrep -f 'vpskit-site deploy' > /dev/null || exit 0; "
                "sleep 0.5; done; exit 1")  # the run CI left ends by itself
        assert shop.get("/health/")[0] == 200
        sha = shop.commit("after the cut", {"VERSION": "7.2.0\n"})
        shop.fab("deploy", "--ci", "--inventory", ci_inventory)
        assert live_sha(shop) == sha and shop.get("/health/")[0] == 200
    shop.fab("provision")
