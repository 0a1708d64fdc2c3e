"""Alerts without a server: which host checks what, the watchdog's hold-then-tell rule, its
checks on real files (a certificate made by openssl, backups, a filesystem), its units, and
the inventory's checks of the receivers' secrets."""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
import time

import pytest

from tests.unit.test_render import systemd_verify
from vpskit import alerts, inventory, render
from vpskit.config import Alerts, App, Environment, Host
from vpskit.errors import InventoryError
from vpskit.provision.app import desired_env
from vpskit.secret import Secret
from vpskit.sh import watchdog

URL = "https://hooks.example.com/T000/B000/XXXX"
ONE_HOST = (Host("192.0.2.1"),)


def env(hosts=ONE_HOST, **alert_settings) -> Environment:
    return Environment("production", hosts, ("shop.test",),
                       App(name="shop", repo="/tmp/x", entry="shop.wsgi:application"),
                       alerts=Alerts(**{"webhook": "ALERT_WEBHOOK_URL", **alert_settings}),
                       secrets={"ALERT_WEBHOOK_URL": Secret(URL), "SECRET_KEY": Secret("k")})


def test_each_problem_is_checked_by_one_host():
    web1, web2 = Host("192.0.2.1", roles=("web",)), Host("192.0.2.2", roles=("web", "worker"))
    lb, db = Host("192.0.2.3", roles=("lb",)), Host("192.0.2.4", roles=("db",))
    e = env(hosts=(web1, web2, lb, db))
    configs = {h.address: alerts.server_config(e, h) for h in e.hosts}
    assert [a for a, c in configs.items() if c["health"]] == [lb.address]
    assert [a for a, c in configs.items() if c["cert"]] == [lb.address]
    assert [a for a, c in configs.items() if c["backups"]] == [db.address]
    assert not any(c["offsite"] for c in configs.values())  # no offsite: section
    assert configs[db.address]["units"] == ["shop-production-*",
                                            "redis-server@shop-production.service"]
    assert all(c["webhook"] == URL and c["host"] == a for a, c in configs.items())
    assert configs[lb.address]["health"]["url"] == "https://shop.test/health/"


def test_the_watchdog_files_keep_the_url_root_only_and_the_app_never_gets_it():
    e = env()
    specs = {s.path: s for s in alerts.specs(e, e.hosts[0], "program")}
    config = specs[render.watchdog_config(e)]
    assert config.mode == 0o600 and config.secret and URL in config.content
    assert "ALERT_WEBHOOK_URL" not in desired_env(e, {}, {})
    assert desired_env(e, {}, {})["SECRET_KEY"] == "k"
    assert alerts.specs(env(webhook=""), e.hosts[0], "program") == []
    assert URL not in "\n".join(alerts.describe(e))


def test_watchdog_units_pass_systemd_analyze_verify(tmp_path):
    e = env(every=3)
    units = render.watchdog_units(e)
    assert "OnUnitActiveSec=3min" in units[f"{render.SYSTEMD_DIR}/shop-production-watchdog.timer"]
    systemd_verify(tmp_path, units, ["shop-production-watchdog.service",
                                     "shop-production-watchdog.timer"])


def test_a_problem_is_told_after_two_checks_and_its_end_once():
    to = ["webhook"]
    state, due = watchdog.advance({}, {"health": "down"}, to)
    assert due == []
    state, due = watchdog.advance(state, {"health": "down"}, to)
    assert due == [("problem", "health", "down", "webhook")]
    watchdog.told(state, "problem", "health", "webhook")
    state, due = watchdog.advance(state, {"health": "still down"}, to)
    assert due == []
    state, due = watchdog.advance(state, {}, to)
    assert due == [("recovered", "health", "still down", "webhook")]
    watchdog.told(state, "recovered", "health", "webhook")
    assert state == {}
    state, due = watchdog.advance({}, {"disk /": "full"}, to)  # one check, then gone: never told
    state, due = watchdog.advance(state, {}, to)
    assert due == [] and state == {}


def test_each_channel_is_told_once_and_an_unsent_notice_is_due_again():
    to = ["webhook", "email"]
    state, _ = watchdog.advance({}, {"health": "down"}, to)
    state, due = watchdog.advance(state, {"health": "down"}, to)
    assert [d[3] for d in due] == ["webhook", "email"]
    watchdog.told(state, "problem", "health", "email")  # the webhook did not answer
    state, due = watchdog.advance(state, {"health": "down"}, to)
    assert due == [("problem", "health", "down", "webhook")]
    state, due = watchdog.advance(state, {}, to)
    assert due == [("recovered", "health", "down", "email")]  # only who was told of it


def test_notice_suits_slack_discord_and_generic_receivers():
    body = watchdog.notice({"site": "shop-production", "host": "192.0.2.1"}, "problem", "x")
    assert body["text"] == body["content"] == "[shop-production] PROBLEM on 192.0.2.1: x"
    assert body["state"] == "problem" and body["problem"] == "x"


@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl is not installed")
def test_certificate_expiring_within_the_limit(tmp_path):
    cert = tmp_path / "fullchain.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(tmp_path / "key.pem"),
                    "-subj", "/CN=shop.test", "-days", "10", "-out", str(cert)],
                   check=True, capture_output=True)
    now = time.time()
    assert watchdog.certificate(str(cert), "shop.test", 14, now).startswith(
        "certificate for shop.test expires in 10.0 days")
    assert watchdog.certificate(str(cert), "shop.test", 7, now) is None
    assert watchdog.certificate(str(cert), "shop.test", 14, now + 11 * 86400).startswith(
        "certificate for shop.test expired on ")
    assert watchdog.certificate(str(tmp_path / "none.pem"), "shop.test", 14, now) is None


def test_backups_older_than_the_limit_or_none_since_the_directory(tmp_path):
    check = {"dir": str(tmp_path), "prefix": "shop-production-", "hours": 26}
    now = time.time()
    assert watchdog.backups(check, now) is None  # a new directory
    assert watchdog.backups(check, now + 27 * 3600).startswith("no backup in 27 hours")
    dump = tmp_path / "shop-production-20261201T000000Z.dump"
    dump.write_bytes(b"x")
    os.utime(dump, (now - 30 * 3600, now - 30 * 3600))
    (tmp_path / "other-production-20261201T000000Z.dump").write_bytes(b"x")  # another site's
    assert watchdog.backups(check, now) == "newest backup is 30 hours old (limit 26)"


def test_offsite_copy_older_than_the_limit_by_its_stamp(tmp_path):
    config = tmp_path / "offsite.json"
    config.write_text("{}")
    check = {"stamp": str(tmp_path / "site.last"), "config": str(config), "hours": 26}
    now = time.time()
    assert watchdog.offsite(check, now) is None  # none sent yet, configured just now
    assert watchdog.offsite(check, now + 30 * 3600) == "no off-site copy in 30 hours (limit 26)"
    (tmp_path / "site.last").write_text("x\n")
    os.utime(tmp_path / "site.last", (now - 27 * 3600, now - 27 * 3600))
    assert watchdog.offsite(check, now) == "newest off-site copy is 27 hours old (limit 26)"


def test_disks_under_the_limit_once_per_filesystem(tmp_path):
    assert watchdog.disks([str(tmp_path), str(tmp_path), "/nonexistent"], 100) == {
        f"disk {tmp_path}": watchdog.disks([str(tmp_path)], 100)[f"disk {tmp_path}"]}
    assert watchdog.disks([str(tmp_path)], 0) == {}


INVENTORY = """\
app: {name: shop, repo: x, entry: "shop.wsgi:application"}
tls: {enabled: false}
secrets: [SECRET_KEY]
optional_secrets: [HOOK]
alerts:
  webhook: %s
environments:
  production:
    hosts: [{address: 192.0.2.1}]
    domains: [shop.test]
"""


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("NOPE", URL, "inventory.yml:6: alerts.webhook: 'NOPE' is not one of the environment's "
                  "secrets; list it under secrets and set its URL in .env.production"),
    ("HOOK", "hooks.example.com/x", "inventory.yml:6: alerts.webhook: secret 'HOOK' is not an "
                                    "http(s):// URL; set the receiver's URL"),
    ("hook url", URL, "inventory.yml:6: alerts.webhook: 'hook url': expected the name of a "
                      "secret holding the URL, e.g. ALERT_WEBHOOK_URL"),
])
def test_alert_receivers_are_checked_before_connecting(tmp_path, name, value, expected):
    path = tmp_path / "inventory.yml"
    path.write_text(textwrap.dedent(INVENTORY % f'"{name}"'))
    with pytest.raises(InventoryError) as error:
        inventory.load(path, "production", environ={"SECRET_KEY": "k", "HOOK": value})
    assert str(error.value) == expected


def test_alerts_load_with_their_secret(tmp_path):
    path = tmp_path / "inventory.yml"
    path.write_text(INVENTORY % "HOOK")
    e = inventory.load(path, "production", environ={"SECRET_KEY": "k", "HOOK": URL})
    assert e.alerts.enabled and e.alerts.every == 5 and e.alerts.secret_names == ("HOOK",)
