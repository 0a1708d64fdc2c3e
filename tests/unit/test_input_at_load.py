"""Every input is checked at load: what rendering, TLS, units and release commands would reject
fails in ``inventory.load`` with file, line, key path and fix, and no input gives a traceback."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import vpskit
from tests.unit.test_inventory import GOOD, write
from vpskit import inventory, render
from vpskit.deploy import appcmd
from vpskit.errors import InventoryError
from vpskit.provision import tls

ENVIRON = {"SECRET_KEY": "k"}


def swap(old: str, new: str) -> str:
    assert old in GOOD, old
    return GOOD.replace(old, new)


def app(line: str) -> str:
    """GOOD with ``line`` added to the top-level app section (at line 3)."""
    return swap("  name: shop\n", f"  name: shop\n  {line}\n")


def host(line: str) -> str:
    """GOOD with ``line`` added to production's first host (at line 17)."""
    return swap("        port: 2222\n", f"        port: 2222\n        {line}\n")


def address(value: str) -> str:
    return swap("      - address: 198.51.100.8\n", f"      - address: {value}\n")


def section(name: str, line: str) -> str:
    return GOOD + f"{name}:\n  {line}\n"


def entry(lines: str) -> str:
    return swap("  entry: shop.wsgi:application\n", lines)


# name -> (inventory text, a text on the line the error names, the key path it names)
BAD = {
    # what render.process_units refused after the packages step had run
    "process command, unbalanced quote": (
        GOOD + "processes:\n  worker: \"celery -A 'shop worker\"\n", "  worker:",
        "processes.worker.command"),
    "process command, line break in a word": (
        GOOD + "processes:\n  worker: \"celery '-A x\\nUser=root'\"\n", "  worker:",
        "processes.worker.command"),
    "process command, $ in a word": (
        GOOD + "processes:\n  worker:\n    command: celery -A $APP worker\n", "command:",
        "processes.worker.command"),
    "process command, blank": (GOOD + "processes:\n  worker: ' '\n", "  worker:",
                               "processes.worker.command"),
    # what appcmd.release_commands refused after upload, venv and dump
    "release command, unbalanced quote": (
        app("release_commands: [\"python manage.py 'migrate\"]"), "release_commands",
        "app.release_commands.0"),
    "release command, empty": (app("release_commands:\n    - ''"), "    - ''",
                               "app.release_commands.0"),
    # what render.exec_start / web_unit refused
    "entry with an argument": (entry("  entry: 'x:app --reload'\n"), "entry:", "app.entry"),
    "entry with a trailing newline": (entry("  entry: \"shop.wsgi:application\\n\"\n"),
                                      "entry:", "app.entry"),
    "worker_class with a unit line": (app("worker_class: \"gthread\\nUser=root\""),
                                      "worker_class", "app.worker_class"),
    "django_settings with a unit line": (app("django_settings: \"x.settings\\nUser=root\""),
                                         "django_settings", "app.django_settings"),
    "daphne with a factory": (entry("  entry: shop.asgi:make()\n  kind: asgi\n  server: daphne\n"),
                              "entry:", "app.entry"),
    "unknown server": (entry("  entry: shop.asgi:app\n  kind: asgi\n  server: hypercorn\n"),
                       "server:", "app.server"),
    "unknown kind, trailing newline": (app("kind: \"django\\n\""), "kind:", "app.kind"),
    "backups.timer with a unit line": (section("backups", "timer: \"daily\\nOnCalendar=hourly\""),
                                       "timer:", "backups.timer"),
    "backups.timer blank": (section("backups", "timer: ' '"), "timer:", "backups.timer"),
    # what provision.tls.ca_env refused
    **{f"tls.ca_bundle {bundle!r}": (
        swap("  email: ops@example.com\n", f"  email: ops@example.com\n  ca_bundle: {bundle}\n"),
        "ca_bundle", "tls.ca_bundle")
       for bundle in ["relative/ca.pem", "'/x\"\\nExecStartPre=/bin/evil'", "/a b",
                      "/ca.pem SECRET_KEY=x"]},
    # values written into config files on the server
    **{f"redis.maxmemory {value}": (section("redis", f"maxmemory: {value}"), "maxmemory",
                                    "redis.maxmemory")
       for value in ["lots", "'64 mb'", "\"64mb\\n\"", "-1"]},
    "redis.policy": (section("redis", "policy: lru"), "policy", "redis.policy"),
    **{f"system.timezone {value}": (section("system", f"timezone: {value}"), "timezone",
                                    "system.timezone")
       for value in ["'Europe/Berlin; rm -rf /'", "../etc/passwd", "/etc/passwd",
                     "\"UTC\\n\""]},
    **{f"postgres.{key} {value}": (section("postgres", f"{key}: {value}"), f"{key}:",
                                   f"postgres.{key}")
       for key, value in [("db", "Shop"), ("db", "all"), ("db", "shop-db"), ("db", "a" * 64),
                          ("db", "1shop"), ("user", "postgres"), ("user", "replication"),
                          ("user", "samerole")]},
    **{f"host user {value}": (host(f"user: {value}"), "user:",
                              "environments.production.hosts.0.user")
       for value in ["Deploy", "'deploy user'", "-deploy", "a" * 33]},
    "bootstrap_user with a newline": (host("bootstrap_user: \"root\\n\""), "bootstrap_user",
                                      "environments.production.hosts.0.bootstrap_user"),
    **{f"host address {value}": (address(value), f"address: {value}",
                                 "environments.production.hosts.0.address")
       for value in ["'203.0.113.10; rm -rf /'", "999.1.1.1", "-oProxyCommand=x",
                     "web_1.example.com", "'2001:db8::1 x'"]},
    "host written as a bad address": (
        swap("      - address: 198.51.100.7\n", "      - 198.51.100.7 x\n"), "198.51.100.7 x",
        "environments.staging.hosts.0.address"),
    **{f"private_address {value}": (host(f"private_address: {value}"), "private_address",
                                    "environments.production.hosts.0.private_address")
       for value in ["db.internal", "10.0.0.256", "fe80::1%eth0"]},
    "host key under an unknown user's home": (
        host("key: ~no-such-user-vpskit/id_ed25519"), "key:",
        "environments.production.hosts.0.key"),
    "env value with a line break": (section("env", "GREETING: \"hello\\nworld\""), "GREETING",
                                    "env.GREETING"),
    **{f"app.memory_max {value}": (app(f"memory_max: {value}"), "memory_max", "app.memory_max")
       for value in ["lots", "512 M", "\"512M\\nUser=root\""]},
    **{f"nginx.trusted_proxies {value}": (section("nginx", f"trusted_proxies: [{value}]"),
                                          "trusted_proxies", "nginx.trusted_proxies.0")
       for value in ["cdn.example.com", "10.0.0.0/33", "'10.0.0.1; deny all'"]},
    "backups.keep_predeploy -1": (section("backups", "keep_predeploy: -1"), "keep_predeploy",
                                  "backups.keep_predeploy"),
    "nginx.rate_burst 0": (section("nginx", "rate_burst: 0"), "rate_burst", "nginx.rate_burst"),
    "nginx.rate_limit 0r/s": (section("nginx", "rate_limit: 0r/s"), "rate_limit",
                              "nginx.rate_limit"),
    "nginx.client_max_body_size with a newline": (
        section("nginx", "client_max_body_size: \"20m\\n\""), "client_max_body_size",
        "nginx.client_max_body_size"),
    # fullmatch: a trailing newline no longer passes a name check
    "app name with a trailing newline": (swap("  name: shop\n", "  name: \"shop\\n\"\n"),
                                         "name:", "app.name"),
    "domain with a trailing newline": (
        swap("[staging.shop.test]", "[\"staging.shop.test\\n\"]"), "staging.shop.test",
        "environments.staging.domains.0"),
    "environment name with a trailing newline": (swap("  staging:\n", "  \"staging\\n\":\n"),
                                                 "staging", "environments.staging\\n"),
    "secret name with a trailing newline": (swap("[SECRET_KEY]", "[\"SECRET_KEY\\n\"]"),
                                            "secrets:", "secrets.0"),
    # YAML that used to give a traceback
    "recursive alias in a list": (GOOD + "loop: &a [*a]\n", "loop:", "loop.0"),
    "recursive alias in a mapping": (GOOD + "loop: &a {self: *a}\n", "loop:", "loop.self"),
    "a list as a key": (GOOD + "? [a, b]\n: 1\n", "? [a, b]", "(top level)"),
    "an int tag on a word": (swap("workers: 4", "workers: !!int four"), "workers",
                             "environments.production.app.workers"),
    "an impossible date": (app("ref: 2024-13-45"), "ref:", "app.ref"),
    "an unknown tag": (app("ref: !vault abc"), "ref:", "app.ref"),
    "a NUL character": (swap("repo: https://example.com/shop.git", "repo: \"shop\\0\""),
                        "repo:", "app.repo"),
}


@pytest.mark.parametrize(("text", "marker", "key"), BAD.values(), ids=BAD.keys())
def test_bad_input_fails_at_load_with_file_line_and_key(tmp_path, text, marker, key):
    line = next(i for i, t in enumerate(text.splitlines(), 1) if marker in t)
    with pytest.raises(InventoryError) as err:
        inventory.load(write(tmp_path, text), "production", environ=ENVIRON)
    message = str(err.value)
    assert message.startswith(f"inventory.yml:{line}: {key}: "), message
    assert "\n" not in message


GOOD_VALUES = [
    app("release_commands: ['python manage.py migrate --noinput', \"python -c 'print(1)'\"]"),
    entry("  entry: shop.asgi:make()\n  kind: asgi\n  server: uvicorn\n"),
    section("redis", "maxmemory: 1GB\n  policy: volatile-ttl"),
    section("system", "timezone: America/Argentina/Buenos_Aires"),
    section("system", "timezone: Etc/GMT+5"),
    section("postgres", "db: shop_db\n  user: shop"),
    section("backups", "timer: '*-*-* 03:00:00'"),
    section("nginx", "client_max_body_size: 25M\n  rate_limit: 30r/m\n  rate_burst: 1\n"
                     "  trusted_proxies: [203.0.113.0/24, '2001:db8::/32', 198.51.100.1]"),
    app("memory_max: 512M"),
    swap("  email: ops@example.com\n",
         "  email: ops@example.com\n  ca_bundle: /usr/local/share/ca-certificates/pebble.crt\n"),
    host("user: deploy-1\n        bootstrap_user: ubuntu\n        private_address: fd00::8"),
    address("web1.example.com"),
    address("'2001:db8::8'"),
    GOOD.replace("roles: [db]", "roles: [db, worker]")
    + "processes:\n  worker: celery -A shop worker --loglevel=info\n",
]


@pytest.mark.parametrize("text", GOOD_VALUES)
def test_what_load_accepts_renders(tmp_path, text):
    env = inventory.load(write(tmp_path, text), "production", environ=ENVIRON)
    render.exec_start(env)
    render.unit_files(env)
    tls.certbot_argv(env)
    for argv in appcmd.release_commands(env.app):
        appcmd.systemd_run_argv(env, "r1", argv)


def test_non_utf8_inventory(tmp_path):
    path = tmp_path / "inventory.yml"
    path.write_bytes(GOOD.replace("name: shop", "name: sh\udcffop").encode(errors="surrogateescape"))
    with pytest.raises(InventoryError, match=r"^inventory.yml:2: not UTF-8 text \(byte 0xff\); "
                                             r"save the file as UTF-8$"):
        inventory.load(path, "production", environ=ENVIRON)


def test_bad_character_names_its_line(tmp_path):
    with pytest.raises(InventoryError, match=r"^inventory.yml:4: malformed YAML: unacceptable"):
        inventory.load(write(tmp_path, GOOD.replace("shop.wsgi", "shop\x07wsgi")), "production",
                       environ=ENVIRON)


def test_inventory_path_is_a_directory(tmp_path):
    with pytest.raises(InventoryError, match=rf"^{re.escape(str(tmp_path))}: a directory, not the inventory "
                                             rf"file; copy the example"):
        inventory.load(tmp_path, "production", environ=ENVIRON)


def test_deep_nesting_and_alias_expansion_are_refused(tmp_path):
    with pytest.raises(InventoryError, match=r"^inventory.yml: malformed YAML: nested too deeply"):
        inventory.load(write(tmp_path, "x: " + "[" * 5000 + "]" * 5000), "production")
    laughs = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"] + [
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    with pytest.raises(InventoryError, match=r"^inventory.yml:1: a\S+: the file expands to over"):
        inventory.load(write(tmp_path, "\n".join(laughs)), "production")


@pytest.mark.parametrize(("content", "expected"), [
    (b"SECRET_KEY=ok\nOTHER=\xff\n", r"^\.env\.production:2: not UTF-8 text \(byte 0xff\)"),
    (b"SECRET_KEY\n", r"^\.env\.production:1: expected KEY=value; fix or remove the line$"),
    (None, r"/\.env\.production: a directory, not the secrets file; make it a file"),
])
def test_bad_env_file(tmp_path, content, expected):
    path = write(tmp_path, GOOD)
    env_file = tmp_path / ".env.production"
    if content is None:
        env_file.mkdir(mode=0o700)
    else:
        env_file.write_bytes(content)
        env_file.chmod(0o600)
    with pytest.raises(InventoryError, match=expected):
        inventory.load(path, "production", environ={})


def test_secret_with_a_line_break(tmp_path):
    with pytest.raises(InventoryError, match=r"^inventory.yml:7: secret 'SECRET_KEY' of "
                                             r"environment 'production' has a line break"):
        inventory.load(write(tmp_path, GOOD), "production",
                       environ={"SECRET_KEY": "-----BEGIN KEY-----\nabc\n"})


# Modules that run before any connection opens: only they may raise (or import) InventoryError.
BEFORE_CONNECT = {"inventory.py", "config.py", "envfile.py", "cli.py", "errors.py"}
AFTER_CONNECT = ("provision/", "deploy/", "render.py", "backups.py", "restore.py", "remove.py",
                 "operate.py")


def inventory_error_sites() -> dict[str, list[int]]:
    """Module (relative to the package) -> lines that raise or import InventoryError."""
    root = Path(vpskit.__file__).parent
    sites: dict[str, list[int]] = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Raise) and node.exc is not None:
                target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                name = getattr(target, "id", getattr(target, "attr", None))
            elif isinstance(node, ast.ImportFrom):
                name = next((a.name for a in node.names if a.name == "InventoryError"), None)
            else:
                continue
            if name == "InventoryError":
                sites.setdefault(path.relative_to(root).as_posix(), []).append(node.lineno)
    return sites


def test_no_inventory_error_after_a_connection_opened():
    sites = inventory_error_sites()
    assert len(sites.get("inventory.py", [])) > 5  # the walk finds the real ones
    late = {module: lines for module, lines in sites.items() if module not in BEFORE_CONNECT}
    assert not late, f"InventoryError raised after connecting, move the check to load: {late}"
    assert not [m for m in sites if m.startswith(AFTER_CONNECT)]
