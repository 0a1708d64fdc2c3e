"""Inventory validation: good files load into typed config, bad ones fail with file:line, key, fix."""

import os
import textwrap
from pathlib import Path

import pytest

from vpskit import inventory
from vpskit.errors import InventoryError

GOOD = """\
app:
  name: shop
  repo: https://example.com/shop.git
  entry: shop.wsgi:application
tls:
  email: ops@example.com
secrets: [SECRET_KEY]
environments:
  staging:
    hosts:
      - address: 198.51.100.7
    domains: [staging.shop.test]
  production:
    hosts:
      - address: 198.51.100.8
        port: 2222
        roles: [web]
      - address: 198.51.100.9
        roles: [db]
    domains: [shop.test, www.shop.test]
    app:
      workers: 4
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "inventory.yml"
    path.write_text(textwrap.dedent(text))
    return path


def test_repo_example_inventory_loads():
    env = inventory.load(Path(__file__).parents[2] / "inventory.yml", "production",
                         environ={"SECRET_KEY": "s3cret"})
    assert env.site == "shop-production"
    assert env.secrets["SECRET_KEY"].reveal() == "s3cret"
    assert inventory.environment_names(Path(__file__).parents[2] / "inventory.yml") == [
        "staging", "production"]


def test_good_inventory_defaults_and_overrides(tmp_path):
    env = inventory.load(write(tmp_path, GOOD), "production", environ={"SECRET_KEY": "k"})
    assert env.app.workers == 4 and env.app.kind == "django" and env.app.timeout == 30
    assert [h.port for h in env.hosts] == [2222, 22]
    assert env.hosts_with("db")[0].address == "198.51.100.9"
    assert env.db_name == "shop_production" and env.health.path == "/health/"
    assert str(env.secrets["SECRET_KEY"]) == "***"


@pytest.mark.parametrize("line, timer", [("", "*-*-* 03:00:00"), ("timer: off", ""),
                                         ("timer: false", ""), ("timer: ''", ""),
                                         ("timer: daily", "daily")])
def test_nightly_backup_timer_by_default_and_off_turns_it_off(tmp_path, line, timer):
    text = GOOD + f"backups:\n  keep_days: 7\n  {line}\n"
    env = inventory.load(write(tmp_path, text), "production", environ={"SECRET_KEY": "k"})
    assert env.backups.timer == timer


def test_secret_from_env_file_and_environ_wins(tmp_path):
    path = write(tmp_path, GOOD)
    env_file = tmp_path / ".env.staging"
    env_file.write_text("# comment\nexport SECRET_KEY='from-file'\n")
    env_file.chmod(0o600)
    assert inventory.load(path, "staging", environ={}).secrets["SECRET_KEY"].reveal() == "from-file"
    env = inventory.load(path, "staging", environ={"SECRET_KEY": "from-env"})
    assert env.secrets["SECRET_KEY"].reveal() == "from-env"


def test_processes_default_and_override(tmp_path):
    text = GOOD + ("processes:\n  worker: celery -A shop worker\n"
                   "  beat: {command: celery -A shop beat, stop_timeout: 10}\n")
    text = text.replace("      workers: 4\n", "      workers: 4\n    processes:\n"
                        "      worker: {command: celery -A shop worker, count: 3}\n")
    text = text.replace("roles: [db]", "roles: [db, worker]")
    env = inventory.load(write(tmp_path, text), "production", environ={"SECRET_KEY": "k"})
    assert [(p.name, p.count, p.stop_timeout) for p in env.processes] == [
        ("worker", 3, 60), ("beat", 1, 10)]


def test_asgi_defaults_to_uvicorn(tmp_path):
    text = GOOD.replace("entry: shop.wsgi:application", "entry: shop.asgi:application\n  kind: asgi")
    env = inventory.load(write(tmp_path, text), "staging", environ={"SECRET_KEY": "k"})
    assert env.app.server == "uvicorn"


BAD = {
    "malformed yaml": (GOOD.replace("  name: shop", "  name: [shop"), "malformed YAML"),
    "unknown top key": (GOOD + "appp: {}\n", "did you mean 'app'?"),
    "unknown nested key": (GOOD.replace("      workers: 4", "      wrokers: 4"),
                           "production.app.wrokers: unknown key; did you mean 'workers'?"),
    "wrong type int": (GOOD.replace("workers: 4", "workers: four"),
                       "production.app.workers: expected an integer, got 'four'"),
    "wrong type bool": (GOOD + "redis:\n  enabled: maybe\n", "redis.enabled: expected true or false"),
    "missing required app key": (GOOD.replace("  entry: shop.wsgi:application\n", ""),
                                 "app.entry: missing required key"),
    "missing hosts": (GOOD.replace("    hosts:\n      - address: 198.51.100.7\n", ""),
                      "staging.hosts: missing required key"),
    "duplicate host": (GOOD.replace("198.51.100.9", "198.51.100.8").replace("port: 2222", "port: 22"),
                       "duplicate host 198.51.100.8:22"),
    "invalid domain": (GOOD.replace("[staging.shop.test]", "[Staging_Shop]"),
                       "'Staging_Shop' is not a valid domain name"),
    "bad kind": (GOOD.replace("  name: shop\n", "  name: shop\n  kind: rails\n"),
                 "'rails' is not one of: django, flask, asgi"),
    "bad role": (GOOD.replace("roles: [web]", "roles: [webserver]"), "unknown role 'webserver'"),
    "bad port": (GOOD.replace("port: 2222", "port: 70000"), "70000 is not a TCP port"),
    "duplicate key": (GOOD.replace("  name: shop\n", "  name: shop\n  name: shop2\n"),
                      "app.name: duplicate key"),
    "domain in two envs": (GOOD.replace("[staging.shop.test]", "[shop.test]"),
                           "'shop.test' is already claimed by environment 'staging'"),
    "bad app name": (GOOD.replace("name: shop", "name: My-Shop"), "lowercase letters and digits"),
    "bad entry": (GOOD.replace("shop.wsgi:application", "shop.wsgi"), "expected 'module:callable'"),
    "missing tls email": (GOOD.replace("tls:\n  email: ops@example.com\n", ""),
                          "tls.email: missing required key"),
    "env var also secret": (GOOD + "env:\n  SECRET_KEY: oops\n", "also listed as a secret"),
    "gunicorn-only kind with uvicorn": (GOOD.replace("  name: shop\n", "  name: shop\n  server: uvicorn\n"),
                                        "serves ASGI apps only"),
    "releases_keep too low": (GOOD + "releases_keep: 1\n", "keep at least 2 releases"),
    "process named web": (GOOD + "processes:\n  web: gunicorn x\n", "processes.web: process names"),
    "process without command": (GOOD + "processes:\n  worker: {count: 2}\n", "expected a command"),
    "process count": (GOOD + "processes:\n  worker: {command: x, count: 99}\n", "0 to 32"),
    "two db hosts": (GOOD.replace("roles: [web]", "roles: [web, db]"),
                     "a second host with role 'db' (198.51.100.9; the first is 198.51.100.8)"),
    "two web hosts, TLS, no lb": (GOOD.replace("roles: [db]", "roles: [web, db]"),
                                  "2 web hosts (198.51.100.8, 198.51.100.9) and TLS, but no host"),
    "no web host": (GOOD.replace("roles: [web]", "roles: [worker]"), "no host has role 'web'"),
    "no db host": (GOOD.replace("roles: [db]", "roles: [worker]"),
                   "no host has role 'db': Postgres/Redis run on the host with role 'db'; or list"),
    "processes without a worker host": (GOOD + "processes:\n  worker: celery -A shop worker\n",
                                        "no host has role 'worker'"),
    "hosts not a list": (GOOD.replace("    hosts:\n      - address: 198.51.100.7\n",
                                      "    hosts: 198.51.100.7\n"), "expected a list of hosts"),
}


@pytest.mark.parametrize("text,expected", BAD.values(), ids=BAD.keys())
def test_bad_inventory_names_file_line_key_and_fix(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(InventoryError) as err:
        inventory.load(path, "production", environ={"SECRET_KEY": "k"})
    message = str(err.value)
    assert message.startswith("inventory.yml:"), message
    assert expected in message, message
    assert "\n" not in message


def test_managed_database_and_redis_need_no_db_host(tmp_path):
    text = GOOD.replace("secrets: [SECRET_KEY]", "secrets: [SECRET_KEY, DATABASE_URL, REDIS_URL]")
    text = text.replace("      - address: 198.51.100.9\n        roles: [db]\n", "")
    env = inventory.load(write(tmp_path, text), "production",
                         environ={"SECRET_KEY": "k", "DATABASE_URL": "postgres://u:p@db/x",
                                  "REDIS_URL": "redis://:p@cache:6379/0"})
    assert env.db_host is None and not env.own_postgres and not env.own_redis
    assert [h.address for h in env.app_hosts] == ["198.51.100.8"]


def test_private_address_defaults_to_address(tmp_path):
    text = GOOD.replace("roles: [db]", "roles: [db]\n        private_address: 10.0.0.9")
    env = inventory.load(write(tmp_path, text), "production", environ={"SECRET_KEY": "k"})
    assert [h.private for h in env.hosts] == ["198.51.100.8", "10.0.0.9"]


def test_ssh_address_is_where_ssh_connects_and_is_checked(tmp_path):
    text = GOOD.replace("roles: [db]", "roles: [db]\n        ssh_address: 10.0.0.9")
    env = inventory.load(write(tmp_path, text), "production", environ={"SECRET_KEY": "k"})
    assert [h.ssh_target for h in env.hosts] == ["198.51.100.8", "10.0.0.9"]
    assert env.hosts[1].address == env.hosts[1].private == "198.51.100.9"
    bad = write(tmp_path, GOOD.replace("roles: [db]", "roles: [db]\n        ssh_address: 'a b'"))
    with pytest.raises(InventoryError, match=r"ssh_address: .*expected the IP address or DNS name"):
        inventory.load(bad, "production", environ={"SECRET_KEY": "k"})


def test_error_line_number_points_at_the_key(tmp_path):
    path = write(tmp_path, GOOD.replace("workers: 4", "workers: four"))
    with pytest.raises(InventoryError, match=r"^inventory.yml:22: environments.production.app.workers"):
        inventory.load(path, "production", environ={"SECRET_KEY": "k"})


def test_unknown_environment(tmp_path):
    with pytest.raises(InventoryError, match="unknown environment 'prod' .known: staging, production"):
        inventory.load(write(tmp_path, GOOD), "prod", environ={"SECRET_KEY": "k"})


def test_missing_secret_names_fix(tmp_path):
    with pytest.raises(InventoryError,
                       match=r"secret 'SECRET_KEY' of environment 'staging' is not set; export"):
        inventory.load(write(tmp_path, GOOD), "staging", environ={})


def test_env_file_readable_by_others_is_refused(tmp_path):
    path = write(tmp_path, GOOD)
    env_file = tmp_path / ".env.staging"
    env_file.write_text("SECRET_KEY=x\n")
    env_file.chmod(0o644)
    with pytest.raises(InventoryError, match="chmod 600"):
        inventory.load(path, "staging", environ={})


def test_missing_file():
    with pytest.raises(InventoryError, match="no such inventory file"):
        inventory.load("/nonexistent/inventory.yml", "production", environ={})


def test_secret_value_never_in_repr(tmp_path):
    env = inventory.load(write(tmp_path, GOOD), "staging", environ={"SECRET_KEY": "hunter2"})
    assert "hunter2" not in repr(env)
    assert os.environ.get("SECRET_KEY") != "hunter2"
