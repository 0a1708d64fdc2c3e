"""The reach check runs as root: every address and port is an argument, never shell text, and a
managed service's host must be an IP literal or a DNS name before anything runs."""

from __future__ import annotations

import subprocess

import pytest

from vpskit import endpoints
from vpskit.config import App, Environment, Host
from vpskit.errors import ToolkitError
from vpskit.provision import database
from vpskit.secret import Secret

WEB = Host("203.0.113.2", roles=("web", "worker", "db"))


@pytest.mark.parametrize(("value", "ok"), [
    ("db.provider.example", True), ("10.0.0.3", True), ("2001:db8::5", True),
    ("localhost", True), ("x$(touch /tmp/pwned)", False), ("a b", False), ("-oProxy", False),
    ("fe80::1%eth0", False), ("999.1.1.1", False), ("a..b", False), ("", False),
    ("a" * 64 + ".example", False),
])
def test_security_valid_host_is_an_ip_literal_or_a_dns_name(value, ok):
    assert endpoints.valid_host(value) is ok


@pytest.mark.parametrize(("url", "found"), [
    ("postgres://u:pw@db.example:25060/d", ("db.example", 25060)),
    ("rediss://:pw@[2001:db8::5]/0", ("2001:db8::5", 5432)),
    ("postgres:///d?host=/run/postgresql", None),
])
def test_security_service_endpoint_reads_host_and_port(url, found):
    assert endpoints.service_endpoint(url, 5432) == found


@pytest.mark.parametrize(("url", "error"), [
    ("postgres://u:pw@x$(reboot):5432/d",
     "its host 'x$(reboot)' is neither an IP address nor a DNS name"),
    ("postgres://u:pw@x$(touch /tmp/pwned)/d",  # the URL's path starts at the '/'
     "its host 'x$(touch ' is neither an IP address nor a DNS name"),
    ("postgres://u:pw@db.example:5x/d", "its port is not a number from 1 to 65535"),
    ("postgres://u:pw@db.example:70000/d", "its port is not a number from 1 to 65535"),
    ("postgres://u:pw@db.example:0/d", "its port is not a number from 1 to 65535"),
])
def test_security_service_endpoint_refuses_a_crafted_host_or_port(url, error):
    with pytest.raises(ValueError) as caught:
        endpoints.service_endpoint(url, 5432)
    assert str(caught.value) == error


def test_security_a_crafted_managed_host_is_one_line_and_runs_nothing():
    env = Environment("production", (WEB,), ("shop.test",), App("shop", "repo"), secrets={
        "DATABASE_URL": Secret("postgres://u:hunter2@x$(reboot):5432/d")})
    with pytest.raises(ToolkitError) as caught:  # planning it raises: nothing to run
        database.reach(env, WEB, database.ReachFacts({}))
    assert str(caught.value) == (
        "secret DATABASE_URL: its host 'x$(reboot)' is neither an IP address nor a "
        "DNS name; fix the URL in the environment's secrets")


@pytest.mark.parametrize(("address", "port"), [
    ("x$(touch {out})", "1"), ("127.0.0.1", "1$(touch {out})"), ("`touch {out}`", "1"),
])
def test_security_reach_script_never_runs_a_value(tmp_path, address, port):
    out = tmp_path / "pwned"
    address, port = address.format(out=out), port.format(out=out)
    result = subprocess.run(["bash", "-c", database.REACH, "reach", address, port],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and result.stdout == f"{address}:{port}\n"
    assert not out.exists()


def test_security_a_crafted_database_url_host_is_rejected_at_load(tmp_path):
    from vpskit import inventory
    from vpskit.errors import InventoryError

    (tmp_path / "inventory.yml").write_text(
        "app: {name: shop, repo: ., entry: 'shop.wsgi:application'}\n"
        "secrets: [DATABASE_URL]\n"
        "environments:\n  production:\n    hosts: [{address: 203.0.113.10, roles: [web]}]\n"
        "    domains: [shop.example.com]\n    tls: {enabled: false}\n")
    crafted = "postgres://u:pw@x$(reboot):5432/shop"
    with pytest.raises(InventoryError) as caught:
        inventory.load(tmp_path / "inventory.yml", "production", environ={"DATABASE_URL": crafted})
    message = str(caught.value)
    assert message.startswith("inventory.yml:2: secret 'DATABASE_URL'") and "\n" not in message
    assert "neither an IP address nor a DNS name" in message and "pw" not in message
