"""Sites on one server never share Redis or Postgres: each gets its own Redis instance (port,
password, data file, dangerous commands disabled), and a database or role another site has is
refused in one line, at load within an inventory and against the server's claims."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from vpskit import facts, inventory
from vpskit.config import App, Environment, Host, Postgres
from vpskit.errors import InventoryError, ToolkitError
from vpskit.provision import cache, database, firewall

UNIT = "redis-server@shop-staging.service"


# ---- Redis: one instance per site ---------------------------------------------------------------
def test_security_redis_ports_are_recorded_and_never_shared():
    parse = facts.registry(cache.REGISTRY, "redis_ports", cache.ports).parse
    registry = parse("/etc/vpskit/redis/shop-production:6380\n"
                     "/etc/vpskit/redis/depot-production:6382\n", 0)
    assert registry == {"shop-production": 6380, "depot-production": 6382}
    assert cache.redis_port("shop-production", registry) == 6380  # a second provision keeps it
    assert cache.redis_port("shop-staging", registry) == 6381  # the lowest free one
    assert cache.redis_port("shop-staging", {}) == cache.FIRST_PORT
    assert cache.redis_port("a-b", {"x-y": 6380, "x-z": 6381}) == 6382


@pytest.mark.parametrize(("state", "conf_changed", "cmds"), [
    (("enabled", "active"), False, []),
    (("enabled", "active"), True, [["systemctl", "restart", UNIT]]),
    (("disabled", "inactive"), True, [["systemctl", "enable", "--quiet", UNIT],
                                      ["systemctl", "restart", UNIT]]),
    (("enabled", "failed"), False, [["systemctl", "start", UNIT]]),
    ((), False, [["systemctl", "enable", "--quiet", UNIT], ["systemctl", "start", UNIT]]),
])
def test_security_redis_instance_started_enabled_and_restarted_only_on_change(
        state, conf_changed, cmds):
    assert cache.unit_plan("shop-staging", state, conf_changed) == cmds


def test_security_redis_conf_is_the_sites_own():
    conf = cache.redis_conf("shop-staging", 6381, "pw", "64mb", "allkeys-lru", ("10.0.0.3",))
    for line in ("bind 127.0.0.1 -::1 10.0.0.3", "port 6381", "requirepass pw",
                 "dbfilename shop-staging.rdb", "pidfile /run/redis-shop-staging/redis-server.pid",
                 'rename-command CONFIG ""', "maxmemory-policy allkeys-lru"):
        assert line in conf.splitlines(), line
    assert cache.current_password(conf) == "pw"


def test_security_the_rendered_redis_conf_runs_and_refuses_config_and_strangers(tmp_path):
    """The real redis-server reads the config; without the password nothing answers, and the
    commands that could move its data file over a neighbour's are gone."""
    if not shutil.which("redis-server") or not shutil.which("redis-cli"):
        pytest.skip("redis-server is not installed")
    conf = tmp_path / "redis.conf"
    conf.write_text(cache.redis_conf("shop-staging", 6381, "pw-1", "16mb", "allkeys-lru"))
    sock = tmp_path / "redis.sock"
    server = subprocess.Popen(["redis-server", str(conf), "--port", "0", "--unixsocket", str(sock),
                               "--dir", str(tmp_path), "--pidfile", str(tmp_path / "pid"),
                               "--bind", "127.0.0.1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert server.poll() is None, "redis-server refused the rendered config"
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

        def cli(*args: str, password: str = "") -> str:
            env = {**os.environ, "REDISCLI_AUTH": password} if password else {
                k: v for k, v in os.environ.items() if k != "REDISCLI_AUTH"}
            return subprocess.run(["redis-cli", "-s", str(sock), *args], env=env,
                                  capture_output=True, text=True, timeout=10).stdout.strip()
        assert "NOAUTH" in cli("get", "k")
        assert "NOAUTH" in cli("get", "k", password="pw-2")  # AUTH failed first
        assert cli("set", "k", "v", password="pw-1") == "OK"
        for command in (["config", "set", "dir", "/tmp"], ["debug", "sleep", "0"],
                        ["module", "list"]):
            assert "unknown command" in cli(*command, password="pw-1"), command
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_security_the_db_host_admits_app_hosts_to_the_sites_own_redis_tls_port_only():
    web = Host("203.0.113.2", roles=("web",), private_address="10.0.0.2")
    db = Host("203.0.113.3", roles=("db",), private_address="10.0.0.3")
    env = Environment("staging", (web, db), ("shop.test",), App("shop", "repo"))
    assert firewall.admitted(env, db, 6381) == ((5432, "10.0.0.2"), (7381, "10.0.0.2"))
    assert firewall.admitted(env, web, 6381) == ()


# ---- Postgres: one database and role per site ---------------------------------------------------
CLAIMED = {"shop-production": {"database": "shop_production", "role": "shop_production"}}
OWNERS = {"postgres": "postgres", "shop_production": "shop_production"}


@pytest.mark.parametrize(("site", "db", "role", "owners", "conflict"), [
    ("shop-staging", "shop_staging", "shop_staging", OWNERS, None),
    ("shop-production", "shop_production", "shop_production", OWNERS, None),  # its own
    ("shop-staging", "shop_production", "shop_staging", OWNERS,
     "database shop_production with site shop-production"),
    ("shop-staging", "shop_staging", "shop_production", OWNERS,
     "role shop_production with site shop-production"),
    # a server from before the claims: the owner decides
    ("depot-production", "legacy", "depot", {"legacy": "legacy_owner"},
     "database legacy with role legacy_owner, its owner"),
    ("depot-production", "depot", "legacy_owner", {"legacy": "legacy_owner"},
     "role legacy_owner with database legacy, which it owns"),
    ("depot-production", "postgres", "depot", OWNERS, "database postgres with role postgres, "
                                                      "its owner"),
])
def test_security_a_database_or_role_of_another_site_is_a_conflict(site, db, role, owners,
                                                                    conflict):
    assert database.claim_conflict(site, db, role, CLAIMED, owners) == conflict


def test_security_a_site_renaming_its_database_keeps_its_role():
    claimed = {"shop-staging": {"database": "old", "role": "shop_staging"}}
    assert database.claim_conflict("shop-staging", "new", "shop_staging", claimed,
                                   {"old": "shop_staging"}) is None


def test_security_shared_database_on_the_server_is_one_line_naming_both_sites():
    db = Host("203.0.113.3")
    env = Environment("staging", (db,), ("shop.test",), App("shop", "repo"),
                      postgres=Postgres(db="shop_production", user="shop_production"))
    parse = facts.registry(database.CLAIMS, "pg_claims", database.claims).parse
    claimed = parse("/etc/vpskit/postgres/shop-production:database shop_production\n"
                    "/etc/vpskit/postgres/shop-production:role shop_production\n", 0)
    assert claimed == CLAIMED
    with pytest.raises(ToolkitError) as raised:
        database.check_claims(env, db, {"pg_claims": claimed, "pg_owners": OWNERS})
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("203.0.113.3: shop-staging would share database shop_production "
                              "with site shop-production;"), message
    assert "give shop-staging its own postgres.db and postgres.user" in message
    assert database.claim_text(env) == "database shop_production\nrole shop_production\n"
    other = Host("203.0.113.4")  # not its db host: nothing to check there
    database.check_claims(env, other, {})


INVENTORY = """\
app:
  name: shop
  repo: https://example.com/shop.git
  entry: shop.wsgi:application
tls:
  enabled: false
secrets: [SECRET_KEY]
environments:
  production:
    hosts:
      - address: 198.51.100.7
    domains: [shop.test]
  staging:
    hosts:
      - address: {staging_host}
    domains: [staging.shop.test]
{postgres}"""


def write(tmp_path: Path, staging_host: str, postgres: str) -> Path:
    path = tmp_path / "inventory.yml"
    path.write_text(INVENTORY.format(staging_host=staging_host, postgres=postgres))
    return path


@pytest.mark.parametrize(("postgres", "line", "where", "what"), [
    ("    postgres:\n      db: shop_production\n", 18, "environments.staging.postgres.db",
     "database 'shop_production'"),
    ("    postgres:\n      user: shop_production\n", 18, "environments.staging.postgres.user",
     "role 'shop_production'"),
    ("postgres:\n  db: shop\n", 18, "postgres.db", "database 'shop'"),  # a shared default
])
def test_security_two_environments_sharing_a_database_fail_at_load(tmp_path, postgres, line,
                                                                   where, what):
    path = write(tmp_path, "198.51.100.7", postgres)
    for env in ("production", "staging"):  # either one: before any connection
        with pytest.raises(InventoryError) as raised:
            inventory.load(path, env, environ={"SECRET_KEY": "k"})
        message = str(raised.value)
        assert message.startswith(f"inventory.yml:{line}: {where}: {what} on 198.51.100.7 is "
                                  f"also environment 'production''s;"), message
        assert "\n" not in message and "its own postgres." in message


def test_security_same_database_name_on_another_host_or_managed_is_fine(tmp_path):
    postgres = "postgres:\n  db: shop\n"
    env = inventory.load(write(tmp_path, "198.51.100.8", postgres), "staging",
                         environ={"SECRET_KEY": "k"})
    assert env.db_name == "shop"
    managed = write(tmp_path, "198.51.100.7", postgres).read_text().replace(
        "  staging:\n", "  staging:\n    secrets: [SECRET_KEY, DATABASE_URL]\n")
    (tmp_path / "inventory.yml").write_text(managed)
    env = inventory.load(tmp_path / "inventory.yml", "staging",
                         environ={"SECRET_KEY": "k", "DATABASE_URL": "postgres://u:p@db:5432/d"})
    assert not env.own_postgres


@pytest.mark.parametrize(("site", "shared", "on", "scripts"), [
    ("shop-staging", set(), False, []),  # nothing left of the shared instance
    ("shop-staging", set(), True, ["redis-retire-shared"]),  # a new server: the package's
    ("shop-staging", {"shop-staging"}, True, ["redis-leave-shared", "redis-retire-shared"]),
    ("shop-staging", {"shop-staging", "shop-production"}, True, ["redis-leave-shared"]),
    ("shop-staging", {"shop-production"}, True, []),  # production moves at its provision
])
def test_security_sites_leave_the_shared_redis_of_earlier_versions(site, shared, on, scripts):
    cmds = cache.shared_plan(site, shared, on)
    assert [cmd[3] for cmd in cmds] == scripts
    if "redis-leave-shared" in scripts:
        assert cmds[0][4:] == [site, cache.SHARED_REGISTRY, cache.SHARED_CONF]


def test_security_leaving_the_shared_redis_flushes_only_the_sites_database(tmp_path):
    """The script, with systemctl and redis-cli standing in: the site's number is flushed
    with the password from the environment (never argv) and its record goes; another's stays."""
    registry, bin_dir = tmp_path / "redis-db", tmp_path / "bin"
    registry.mkdir()
    bin_dir.mkdir()
    (registry / "shop-staging").write_text("1\n")
    (registry / "shop-production").write_text("0\n")
    conf = tmp_path / "vpskit.conf"
    conf.write_text("requirepass s3cret\n")
    log = tmp_path / "log"
    (bin_dir / "systemctl").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "redis-cli").write_text(f'#!/bin/sh\necho "$REDISCLI_AUTH $*" >> {log}\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    result = subprocess.run(["bash", "-c", cache.LEAVE_SHARED, "redis-leave-shared",
                             "shop-staging", str(registry), str(conf)],
                            env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
                            capture_output=True, text=True, timeout=30)
    assert result.stdout == "shared redis database 1\n", result.stderr
    assert log.read_text() == "s3cret -n 1 flushdb\n"
    assert sorted(p.name for p in registry.iterdir()) == ["shop-production"]


def test_security_retiring_the_shared_redis_drops_our_include_and_files(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text(f'#!/bin/sh\necho "$*" > {tmp_path / "called"}\n')
    (bin_dir / "systemctl").chmod(0o755)
    conf, shared = tmp_path / "redis.conf", tmp_path / "vpskit.conf"
    conf.write_text(f"port 6379\n\n{cache.SHARED_INCLUDE}\n")
    conf.chmod(0o640)
    shared.write_text("requirepass x\n")
    subprocess.run(["bash", "-c", cache.RETIRE_SHARED, "redis-retire-shared", str(conf),
                    cache.SHARED_INCLUDE, str(shared), str(tmp_path / "redis-db")],
                   env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
                   check=True, timeout=30)
    assert (tmp_path / "called").read_text() == "disable --now --quiet redis-server\n"
    assert conf.read_text() == "port 6379\n\n" and oct(conf.stat().st_mode)[-3:] == "640"
    assert not shared.exists()
