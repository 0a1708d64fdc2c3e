"""Three test VPSes as one environment: `lb+web+worker`, `web` and `db`. Provision runs on all
at once; the lb terminates TLS (Pebble) and alone reaches the web hosts' backend port (TLS);
Postgres/Redis answer the app hosts only; deploys roll across the web hosts under load, each
out of the lb's rotation while it switches; a release failing on the second host leaves every
host on the old one."""

from __future__ import annotations

import re
import shlex
import socket
import urllib.request
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from harness.devtasks import sandbox
from harness.devtasks.load import Load
from tests.helpers import machines
from tests.helpers.site import SECRET_KEY, Site
from vpskit import envfile, session
from vpskit.config import Environment
from vpskit.provision import hostca

pytestmark = pytest.mark.vps

INDEX = machines.INDEX + 7  # three VPSes: INDEX, INDEX+1, INDEX+2
DOMAIN = f"multi{INDEX}.test"
VIEWS = "catalog/views.py"
HEALTHY = '    result = {"status": "ok"}\n    failing = []\n'
MARKER = "/srv/shop-production/shared/fail-health"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[dict]:
    names = [f"vpskit-m{INDEX + i}" for i in range(3)]
    with machines.booted(names[0], INDEX, (DOMAIN,)) as web1, \
            machines.booted(names[1], INDEX + 1, ()) as web2, \
            machines.booted(names[2], INDEX + 2, ()) as db, machines.pebble_for(web1) as pebble:
        base = tmp_path_factory.mktemp("multi")
        sandbox.create(base, web1, pebble, secret_key=SECRET_KEY, domains=[DOMAIN],
                       roles=[(web1, ["lb", "web", "worker"]), (web2, ["web"]), (db, ["db"])])
        yield {"site": Site(base, (DOMAIN,), base / "pebble-root.pem"),
               "web": [web1, web2], "db": db}


def sh(site: Site, address: str, script: str, check: bool = True,
       env: Environment | None = None) -> str:
    """Run ``script`` as root on the host at ``address`` of ``env`` (default: the inventory's)."""
    env = env or site.env()
    remote = session.open_remote(env, next(h for h in env.hosts if h.address == address))
    try:
        return remote.script(script, check=check).stdout
    finally:
        remote.conn.close()


def version(site: Site, address: str) -> str:
    """The version a web host serves, asked on its backend port from the host itself."""
    body = sh(site, address, f"curl -sfk -H 'Host: {DOMAIN}' -H 'X-Forwarded-Proto: https' "
                             f"https://127.0.0.1:8080/")
    return re.search(r"VERSION=(\S+)", body).group(1)


def versions(site: Site, web: list) -> list[str]:
    return [version(site, v.address) for v in web]


def served(site: Site) -> str:
    """The version the world gets: HTTPS through the lb, verified against Pebble's root."""
    status, body, _ = site.get("/")
    assert status == 200, body
    return re.search(r"VERSION=(\S+)", body).group(1)


def live(site: Site, address: str) -> str:
    return sh(site, address, "readlink /srv/shop-production/current").strip().rsplit("/", 1)[-1]


@pytest.fixture(scope="module")
def provisioned(cluster) -> dict:
    site = cluster["site"]
    return {"first": site.fab("provision"), "second": site.fab("provision")}


@pytest.fixture
def deployed(cluster, provisioned) -> str:
    """The version served through the lb; deployed first when no web host has a release, so
    a test that needs one also runs alone (``pytest -k backup``)."""
    site = cluster["site"]
    if not all(sh(site, v.address, "readlink /srv/shop-production/current", check=False).strip()
               for v in cluster["web"]):
        site.fab("deploy")
    return served(site)


def test_provision_runs_on_all_hosts_at_once_and_twice_changes_nothing(cluster, provisioned):
    first, second = provisioned["first"].stdout, provisioned["second"].stdout
    addresses = [v.address for v in (*cluster["web"], cluster["db"])]
    for address in addresses:
        assert f"[{address}]   packages" in first
        assert re.search(rf"^{re.escape(address)}: \d+ changed", first, re.M), first
        assert re.search(rf"^{re.escape(address)}: 0 changed", second, re.M), second
    # parallel: the hosts installed their packages at the same time
    times = [float(m) for m in re.findall(r"\] +packages +changed +([\d.]+)s", first)]
    total = float(re.search(r"^provisioned 3 host\(s\) in ([\d.]+)s", first, re.M)[1])
    assert len(times) == 3 and sum(times) > total, first


def test_scheduled_jobs_are_on_the_worker_host_alone(cluster, provisioned):
    """A job's timer is on the first worker host only, so it never runs twice; its unit
    is skipped, not failed, while nothing is deployed there."""
    site, (web1, web2) = cluster["site"], cluster["web"]
    inventory = site.dir / "inventory.yml"
    text = inventory.read_text()
    units = "ls /etc/systemd/system | grep -c '^shop-production-job-' || true"
    inventory.write_text(text + "schedule:\n  tick: {command: python manage.py create_item "
                                "multi, calendar: '*:*:00/20'}\n")
    try:
        out = site.fab("provision").stdout
        on_worker, on_web = sh(site, web1.address, units), sh(site, web2.address, units)
        timer = sh(site, web1.address, "systemctl is-enabled shop-production-job-tick.timer; "
                                       "systemctl is-active shop-production-job-tick.timer")
    finally:
        inventory.write_text(text)
    assert re.search(rf"^\[{re.escape(web1.address)}\]\s+jobs\s+changed", out, re.M), out
    assert (on_worker.strip(), on_web.strip()) == ("2", "0")
    assert timer.split() == ["enabled", "active"]
    site.fab("provision")
    assert sh(site, web1.address, units).strip() == "0"


def test_db_answers_the_app_hosts_only(cluster, provisioned):
    """From the app hosts: Postgres's port and Redis's TLS port, never its plain one."""
    site, db = cluster["site"], cluster["db"]
    redis = urlsplit(envfile.parse(sh(site, db.address, "cat /etc/vpskit/credentials/"
                                                        "shop-production.env"))["REDIS_URL"])
    redis_tls = hostca.redis_tls_port(redis.port)
    for vps in cluster["web"]:
        out = sh(site, vps.address, f"for p in 5432 {redis.port} {redis_tls}; do timeout 3 bash "
                                    f"-c \"</dev/tcp/{db.address}/$p\" && echo open $p; done",
                 False)
        assert out.split() == ["open", "5432", "open", str(redis_tls)], out
        env_file = sh(site, vps.address, "cat /srv/shop-production/shared/.env")
        assert f"@{db.address}:5432/" in env_file and f"@{db.address}:{redis_tls}/" in env_file
    for port in (5432, redis.port, redis_tls):  # from outside (this machine) none answers
        with pytest.raises(OSError):
            socket.create_connection((db.address, port), timeout=3).close()
    assert "nginx" not in sh(site, db.address, "dpkg-query -W -f '${Package}\\n' nginx", False)


# Run by the app's Python on a web host with the env file's path and two queries: the app's
# DATABASE_URL and REDIS_URL, each with its own query replaced by the next argument (kept when
# that is empty); prints what each answered (the session's ssl flag, the PING) or its error.
CLIENTS = """import sys, psycopg, redis
urls = dict(line.strip().replace('"', "").split("=", 1) for line in open(sys.argv[1])
            if line.startswith(("DATABASE_URL=", "REDIS_URL=")))
def given(url, query):
    return url.split("?")[0] + "?" + query if query else url
try:
    with psycopg.connect(given(urls["DATABASE_URL"], sys.argv[2]), connect_timeout=5) as conn:
        print(conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone())
except psycopg.OperationalError as error:
    print(" ".join(str(error).split()))
try:
    print(redis.from_url(given(urls["REDIS_URL"], sys.argv[3]), socket_timeout=5).ping())
except redis.RedisError as error:
    print(" ".join(str(error).split()))
"""


def test_security_postgres_and_redis_between_hosts_are_tls_verified_against_the_db_hosts_ca(
        cluster, deployed):
    """Hosts without private addresses: the app on a web host reaches Postgres and Redis over
    TLS, verifying the server against the CA the db host made; a Postgres login without TLS is
    refused, and a server certificate checked against any other CA fails; the worker's Celery
    is connected through the same TLS URL."""
    site, (web1, web2) = cluster["site"], cluster["web"]
    env_file, ca = "/srv/shop-production/shared/.env", "/etc/ssl/vpskit/shop-production-db-ca.crt"
    urls = envfile.parse(sh(site, web2.address, f"cat {env_file}"))
    assert urls["DATABASE_URL"].endswith(f"?sslmode=verify-full&sslrootcert={ca}")
    assert urls["REDIS_URL"].startswith("rediss://")
    assert urls["REDIS_URL"].endswith(f"?ssl_cert_reqs=required&ssl_ca_certs={ca}")
    assert sh(site, web2.address, f"stat -c '%U %a' {ca}").strip() == "root 644"

    def clients(pg_query: str = "", redis_query: str = "") -> list[str]:
        return sh(site, web2.address, f"/srv/shop-production/current/.venv/bin/python -c "
                                      f"{shlex.quote(CLIENTS)} {env_file} "
                                      f"{shlex.quote(pg_query)} {shlex.quote(redis_query)}"
                  ).splitlines()

    assert clients() == ["(True,)", "True"]
    assert "no encryption" in clients("sslmode=disable")[0]
    other_ca = "/etc/ssl/certs/ca-certificates.crt"
    wrong = clients(f"sslmode=verify-full&sslrootcert={other_ca}",
                    f"ssl_cert_reqs=required&ssl_ca_certs={other_ca}")
    assert len(wrong) == 2 and all("certificate verify failed" in x for x in wrong), wrong
    worker = sh(site, web1.address, "journalctl -o cat -u 'shop-production-worker@*'")
    assert f"Connected to rediss://:**@{cluster['db'].address}:" in worker, worker[-2000:]


def test_security_the_lb_terminates_tls_and_alone_reaches_the_backends_over_tls(cluster,
                                                                                provisioned):
    """The lb reaches each web host's backend port over TLS, verified: the web host's
    certificate names vpskit-backend.internal and comes from its own CA, which the lb keeps;
    plain HTTP gets nothing there."""
    site, (web1, web2) = cluster["site"], cluster["web"]
    site.fab("deploy")
    assert served(site) == "1.0.0"
    assert site.get("/", scheme="http")[0] == 301
    for port in (80, 443, 8080):  # web2 is reached through the lb only
        with pytest.raises(OSError):
            socket.create_connection((web2.address, port), timeout=3).close()
    verified = (f"curl -s -o /dev/null -w '%{{http_code}}' -H 'Host: {DOMAIN}' "
                f"--cacert /etc/ssl/vpskit/shop-production-web-cas.crt "
                f"--resolve vpskit-backend.internal:8080:{web2.address} "
                f"https://vpskit-backend.internal:8080/health/")
    assert sh(site, web1.address, verified) == "200"
    plain = (f"curl -s -o /dev/null -w '%{{http_code}}' -H 'Host: {DOMAIN}' "
             f"http://{web2.address}:8080/health/")
    assert sh(site, web1.address, plain, check=False) == "400"  # plain HTTP to a TLS port
    upstream = sh(site, web1.address, "cat /etc/nginx/vpskit/shop-production/lb-upstream.conf")
    assert f"server {web1.address}:8080" in upstream and f"server {web2.address}:8080" in upstream
    assert "down" not in upstream.split("upstream")[-1]


def test_maintenance_is_served_by_the_lb_by_the_clients_real_address(cluster, provisioned):
    """maintenance.allow names web2: through the lb it gets the app, the operator's machine
    the 503; the backends themselves stay out of it."""
    site, (web1, web2) = cluster["site"], cluster["web"]
    inventory = site.dir / "inventory.yml"
    inventory.write_text(inventory.read_text().replace(
        "releases_keep:", f"maintenance:\n  allow: [{web2.address}]\nreleases_keep:", 1))
    site.fab("provision")
    assert "maintenance on: shop-production answers 503" in site.fab("maintenance", "on").stdout
    try:
        status, _, headers = site.get("/")
        assert status == 503 and "Retry-After" in headers
        assert site.get("/health/")[0] == 200
        through_lb = (f"curl -sk -o /dev/null -w '%{{http_code}}' --resolve {DOMAIN}:443:"
                      f"{web1.address} https://{DOMAIN}/")
        assert sh(site, web2.address, through_lb) == "200"  # allowed, by its address
        backend = (f"curl -sk -o /dev/null -w '%{{http_code}}' -H 'Host: {DOMAIN}' "
                   f"https://127.0.0.1:8080/")
        assert sh(site, web1.address, backend) == "200"  # the 503 is the lb's alone
        assert "maintenance ON" in site.fab("status").stdout
    finally:
        site.fab("maintenance", "off")
    assert served(site) == "1.0.0"


def test_rolling_deploy_under_load_ends_with_every_host_on_the_new_sha(cluster, deployed):
    site, web = cluster["site"], cluster["web"]
    assert versions(site, web) == ["1.0.0", "1.0.0"]
    sha = site.commit("2.0.0", {"VERSION": "2.0.0\n"})
    with Load(web[0].address, DOMAIN, str(site.ca_file), clients=16) as load:
        out = site.fab("deploy").stdout
    assert load.result.failures == 0 and load.result.requests > 200, load.result.summary()
    assert versions(site, web) == ["2.0.0", "2.0.0"] and served(site) == "2.0.0"
    for vps in web:
        assert sh(site, vps.address, "cat /srv/shop-production/current/REVISION").strip() == sha
    sh(site, web[0].address, "for i in $(seq 120); do [ -z \"$(systemctl list-jobs --no-legend "
                             "'shop-production-*')\" ] && systemctl is-active -q "
                             "shop-production-worker@1 && break; sleep 0.5; done")  # restarting
    status = site.fab("status").stdout  # every app host, each line prefixed by its host
    for vps, units in zip(web, (["web@", "worker@1", "nginx"], ["web@", "nginx"]), strict=True):
        mine = [line for line in status.splitlines() if line.startswith(f"[{vps.address}] ")]
        assert all(any(u in line and " active" in line for line in mine) for u in units), status
    assert "worker@" not in "".join(line for line in status.splitlines()
                                    if line.startswith(f"[{web[1].address}] "))
    counted = {m[1]: int(m[3]) for m in re.finditer(
        r"^\[(\S+)\]   (requests|lb)\s+last 5 min\s+(\d+) ", status, re.M) if m[2] == "lb"}
    assert counted.get(web[0].address, 0) >= load.result.requests, status  # all through the lb
    assert all(re.search(rf"^\[{re.escape(v.address)}\]   requests\s+last 5 min\s+[1-9]", status,
                         re.M) for v in web), status  # and each backend served its share
    assert out.count("  release ") == 1  # migrations ran once
    switches = [out.index(f"[{v.address}]   switch") for v in web]
    publics = [out.index(f"[{v.address}]   public") for v in web]
    assert publics[0] < switches[1], out  # one host at a time, each health-gated
    lb = f"lb {web[0].address}: "
    for vps, switched in zip(web, switches, strict=True):  # each out of rotation meanwhile
        assert out.index(f"{lb}{vps.address} out of rotation") < switched < out.index(
            f"{lb}{vps.address} back in rotation"), out


def test_release_failing_on_the_second_host_leaves_all_on_the_old_one(cluster, provisioned):
    site, web = cluster["site"], cluster["web"]
    before = [live(site, v.address) for v in web]
    text = (sandbox.ROOT / "examples" / "django" / VIEWS).read_text()
    site.commit("fails behind nginx where the marker is", {VIEWS: text.replace(HEALTHY, (
        '    result = {"status": "ok"}\n    import os\n'
        f'    failing = ["marker"] if os.path.exists("{MARKER}") and '
        'request.META.get("HTTP_X_REAL_IP") else []\n'))})
    sh(site, web[1].address, f"touch {MARKER}")
    try:
        result = site.fab("deploy", check=False)
    finally:
        sh(site, web[1].address, f"rm -f {MARKER}")
    assert result.returncode == 1
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith(f"error: deploy failed on {web[1].address}: public: health check"
                              ), result.stderr
    assert f"{web[0].address}: rolled back to {before[0]}" in message
    assert [live(site, v.address) for v in web] == before
    assert versions(site, web) == ["2.0.0", "2.0.0"] and served(site) == "2.0.0"
    upstream = sh(site, web[0].address, "cat /etc/nginx/vpskit/shop-production/lb-upstream.conf")
    assert "down" not in upstream.split("upstream")[-1]  # both back in rotation


def test_chaos_deploy_killed_with_a_host_out_of_rotation_puts_it_back(cluster, deployed):
    """``fab deploy`` SIGKILLed as soon as a web host is out of the lb's rotation: the lb's
    lock holder puts it back in rotation by itself (the undo the deploy armed), the site
    answers, and the next deploy goes ahead."""
    site, web = cluster["site"], cluster["web"]
    site.commit("killed out of rotation", {"VERSION": "killed\n"})
    with site.fab_until("deploy", seen=lambda line: "out of rotation" in line) as (running,
                                                                                  seen):
        running.kill()
        running.wait(timeout=60)
    assert any("out of rotation" in line for line in seen), "".join(seen)
    upstream = "/etc/nginx/vpskit/shop-production/lb-upstream.conf"
    back = sh(site, web[0].address, f"for i in $(seq 60); do grep -q ' down' {upstream} || "
                                    f"{{ echo back; break; }}; sleep 0.5; done")
    assert back.strip() == "back", sh(site, web[0].address, f"cat {upstream}")
    assert served(site) == deployed  # the killed deploy never switched
    site.commit("after the kill", {"VERSION": "2.0.0\n"})  # as the later tests expect
    site.fab("deploy")
    assert versions(site, web) == ["2.0.0", "2.0.0"] and served(site) == "2.0.0"


def test_an_app_host_that_cannot_reach_the_db_is_named(cluster, provisioned):
    site, web2, db = cluster["site"], cluster["web"][1], cluster["db"]
    sh(site, db.address, f"ufw insert 1 deny from {web2.address}")
    try:
        result = site.fab("provision", check=False)
    finally:
        sh(site, db.address, f"ufw delete deny from {web2.address}")
    assert result.returncode == 1
    assert (f"{web2.address} cannot reach the db host {db.address} at {db.address}:5432"
            in result.stderr), result.stderr
    assert re.search(rf"^{re.escape(db.address)}: \d+ changed", result.stdout, re.M)


def test_backup_and_restore_with_a_separate_db_host(cluster, deployed):
    site, web, db = cluster["site"], cluster["web"], cluster["db"]
    site.fab("backup")
    result = site.fab("restore", "--yes").stdout
    assert f"restore shop-production on {db.address}" in result
    assert re.search(rf"stop app\s+changed .*{web[0].address}, {web[1].address}", result), result
    for vps in web:
        assert f"{vps.address}: " in result.split("start app", 1)[1]
    assert served(site) == deployed


MANAGED = """\
  managed:                          # production's Postgres and Redis, as if a provider's
    hosts:
      - address: {address}
        key: {key}
        known_hosts: {known_hosts}
        roles: [web, worker]
    domains: [{domain}]
    secrets: [DATABASE_URL, REDIS_URL]
    tls:
      enabled: false
"""


def test_security_ci_login_deploys_every_host_through_the_first_hosts_resident_vpskit(
        cluster, deployed):
    """With a ``ci_user`` on the first host, ``fab deploy|rollback|restore --ci`` act on every
    host (``--maintenance`` passed on) from a machine holding the CI key and the inventory only: the first host's resident
    vpskit logs into the others with a key of its own, which they take from the first host's
    address alone. Without ``ci_user``, that key's lines on them go."""
    site, (web1, web2), db = cluster["site"], cluster["web"], cluster["db"]
    before = [live(site, v.address) for v in (web1, web2)]
    keys = "/etc/ssh/vpskit_self_keys"
    tag = "vpskit-resident:shop-production"
    with site.ci_login() as ci_inventory:
        allowed = [sh(site, v.address, f"cat {keys}") for v in (web2, db)]
        stolen = sh(site, web1.address, "cat /etc/vpskit/self/id_ed25519")
        elsewhere = sh(site, web2.address, f"umask 077; cat > /root/stolen <<'EOF'\n{stolen}EOF\n"
                                           f"ssh -i /root/stolen -o BatchMode=yes -o "
                                           f"StrictHostKeyChecking=no deploy@{db.address} true "
                                           f"2>&1; echo rc=$?; rm -f /root/stolen", check=False)
        site.fab("backup")
        sha = site.commit("shipped by the CI login", {"VERSION": "8.0.0\n"})
        secrets = site.dir / ".env.production"
        hidden = secrets.rename(site.dir / "secrets-kept-elsewhere")
        try:
            shipped = site.fab("deploy", "--ci", "--maintenance", "--inventory",
                               ci_inventory).stdout
            after = (versions(site, (web1, web2)), served(site),
                     [sh(site, v.address, "cat /srv/shop-production/current/REVISION").strip()
                      for v in (web1, web2)])
            rolled = site.fab("rollback", "--ci", "--inventory", ci_inventory).stdout
            restored = site.fab("restore", "--ci", "--yes", "--inventory", ci_inventory).stdout
        finally:
            hidden.rename(secrets)
        alone = site.fab("provision", "--hosts", web2.address).stdout  # web1's key read there
    for found in allowed:
        assert re.search(rf'^from="{re.escape(web1.address)}",restrict ssh-ed25519 \S+ {tag}$',
                         found, re.M), found
    assert "Permission denied" in elsewhere and "rc=255" in elsewhere, elsewhere
    assert f"deploy shop-production {sha[:7]}" in shipped and "as ci" in shipped, shipped
    assert "maintenance on" in shipped and "maintenance off" in shipped, shipped
    assert after == (["8.0.0", "8.0.0"], "8.0.0", [sha, sha]), shipped
    assert "rolled back" in rolled and [live(site, v.address) for v in (web1, web2)] == before
    assert versions(site, (web1, web2)) == [deployed, deployed] and served(site) == deployed
    assert "restored shop-production from shop-production-" in restored, restored
    assert re.search(r"^(\[\S+\] )?  resident\s+unchanged", alone, re.M), alone
    removed = site.fab("provision").stdout
    assert "removed /etc/vpskit/ci/shop-production.d" in removed, removed
    assert all(tag not in sh(site, v.address, f"cat {keys}") for v in (web2, db))


def test_managed_services_need_no_db_host(cluster, provisioned):
    """DATABASE_URL and REDIS_URL given as secrets (a managed service; here production's, on
    the db host) need no db host: the environment is provisioned and deployed on web2 alone,
    its env file gets the URLs as given, nothing of it lands on the db host, and fab backup
    says to use the provider's tools. Removing it closes the ports it alone opened on web2."""
    site, web2, db = cluster["site"], cluster["web"][1], cluster["db"]
    domain = f"managed{INDEX}.test"
    production = envfile.parse(sh(site, web2.address, "cat /srv/shop-production/shared/.env"))
    urls = {"DATABASE_URL": production["DATABASE_URL"],
            "REDIS_URL": re.sub(r"/\d+$", "/9", production["REDIS_URL"])}
    env_file = site.dir / ".env.managed"
    env_file.touch(mode=0o600)
    env_file.write_text("".join(f"{k}={v}\n" for k, v in {"SECRET_KEY": SECRET_KEY, **urls
                                                          }.items()))
    inventory = site.dir / "inventory.yml"
    text = inventory.read_text()
    inventory.write_text(text + MANAGED.format(address=web2.address, domain=domain,
                                               key=web2.key_path,
                                               known_hosts=web2.known_hosts_path))
    try:
        provision = site.fab("provision", env="managed").stdout
        site.fab("deploy", env="managed")
        given = envfile.parse(sh(site, web2.address, "cat /srv/shop-managed/shared/.env"))
        request = urllib.request.Request(f"http://{web2.address}/", headers={"Host": domain})
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                request, timeout=10) as response:
            status, body = response.status, response.read().decode()
        backup = site.fab("backup", env="managed", check=False)
        on_db = sh(site, db.address, "ls /etc/vpskit/credentials /etc/vpskit/redis "
                                     "/etc/vpskit/firewall /var/backups")
        site.fab("remove", "--yes", env="managed")
    finally:
        inventory.write_text(text)
    assert db.address not in provision, provision  # the db host was not touched
    assert {k: given[k] for k in urls} == urls
    assert status == 200 and "VERSION=" in body, body
    assert backup.returncode == 1 and "provider" in backup.stderr, backup.stderr
    assert "shop-managed" not in on_db, on_db
    for port in (80, 443):  # only managed opened them on web2; production is behind the lb
        with pytest.raises(OSError):
            socket.create_connection((web2.address, port), timeout=3).close()
    assert served(site) == "2.0.0"

def test_a_web_host_leaving_the_inventory_loses_its_way_in(cluster, provisioned):
    """Scaling down is an inventory change too: after the next provision the db host neither
    admits nor trusts the host that left, and the lb no longer sends it requests. The one web
    host left behind the lb deploys in place under load: zero failed requests."""
    site, (web1, web2), db = cluster["site"], cluster["web"], cluster["db"]
    before = site.env()
    inventory = site.dir / "inventory.yml"
    text = inventory.read_text()
    inventory.write_text(re.sub(rf"      - address: {re.escape(web2.address)}\n(?:        .*\n)*",
                                "", text))
    try:
        out = site.fab("provision").stdout
        site.commit("2.1.0", {"VERSION": "2.1.0\n"})
        with Load(web1.address, DOMAIN, str(site.ca_file), clients=8) as load:
            deployed = site.fab("deploy").stdout  # one web host behind the lb: never out
        ufw = sh(site, db.address, "ufw status")
        hba = sh(site, db.address, "cat /etc/postgresql/*/main/pg_hba.conf")
        upstream = sh(site, web1.address,
                      "cat /etc/nginx/vpskit/shop-production/lb-upstream.conf")
        blocked = sh(site, web2.address, f"timeout 3 bash -c '</dev/tcp/{db.address}/5432' "
                                         f"&& echo open", check=False, env=before)
    finally:
        inventory.write_text(text)
    assert f"ufw delete allow proto tcp from {web2.address} to any port 5432" in out, out
    assert web2.address not in ufw and f"{web1.address}" in ufw, ufw
    assert web2.address not in hba and web1.address in hba, hba
    assert web2.address not in upstream and web1.address in upstream, upstream
    assert "open" not in blocked
    assert load.result.failures == 0 and load.result.requests > 100, load.result.summary()
    assert "switching in place" in deployed and "out of rotation" not in deployed, deployed
    assert served(site) == "2.1.0"
