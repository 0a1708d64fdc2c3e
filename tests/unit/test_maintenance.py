"""Maintenance mode without a server: inventory keys checked at load, the site's map and
include rendered and passed by ``nginx -t``, the task's words and the deploy's window."""

from __future__ import annotations

import dataclasses

import pytest

from tests.unit.test_inventory import GOOD, write
from tests.unit.test_render import RELEASE, certificate, make_env, nginx_test  # noqa: F401
from vpskit import inventory, maintenance, render
from vpskit.config import Host, Maintenance
from vpskit.deploy import run as deploy
from vpskit.errors import InventoryError, ToolkitError

ALLOWED = Maintenance(allow=("203.0.113.7", "2001:db8::/32"), retry_after=120)
LB_HOSTS = (Host("203.0.113.20", roles=("lb",), private_address="10.0.0.20"),
            Host("203.0.113.21", roles=("web", "worker", "db"), private_address="10.0.0.21"),
            Host("203.0.113.22", roles=("web",), private_address="10.0.0.22"))


def test_maintenance_keys_load_with_defaults_and_overrides(tmp_path):
    text = GOOD + "    maintenance:\n      allow: [203.0.113.7, 10.1.0.0/16]\n"
    env = inventory.load(write(tmp_path, text), "production", environ={"SECRET_KEY": "k"})
    assert env.maintenance == Maintenance(allow=("203.0.113.7", "10.1.0.0/16"), retry_after=300)


@pytest.mark.parametrize(("section", "line", "key", "fix"), [
    ("maintenance:\n  allow: [10.0.0.1/8]\n", 9, "maintenance.allow.0", "host bits zero"),
    ("maintenance:\n  allow: [office]\n", 9, "maintenance.allow.0", "IP address"),
    ("maintenance:\n  allow: 10.0.0.1\n", 9, "maintenance.allow", "list of strings"),
    ("maintenance:\n  retry_after: 0\n", 9, "maintenance.retry_after", "1 to 86400"),
    ("maintenance:\n  hosts: []\n", 9, "maintenance", "hosts"),
    ('health:\n  path: "/health/\\";"\n', 9, "health.path", "starting with '/'"),
])
def test_bad_maintenance_input_is_one_line_at_load(tmp_path, section, line, key, fix):
    text = GOOD.replace("secrets: [SECRET_KEY]\n", f"secrets: [SECRET_KEY]\n{section}")
    with pytest.raises(InventoryError) as caught:
        inventory.load(write(tmp_path, text), "production", environ={"SECRET_KEY": "k"})
    message = str(caught.value)
    assert message.startswith(f"inventory.yml:{line}: {key}") or \
        message.startswith(f"inventory.yml:{line + 1}: {key}"), message
    assert fix in message and "\n" not in message


@pytest.mark.parametrize("mode", ["web", "lb", "backend"])
def test_only_the_site_facing_the_world_includes_maintenance(mode):
    env = dataclasses.replace(make_env(), maintenance=ALLOWED, hosts=LB_HOSTS)
    text = render.nginx_site(env, True, mode)
    include = "include /etc/nginx/vpskit/shop-production/maintenance.con[f];"
    ident = render.lb_ident(env) if mode == "lb" else render.ident(env)
    if mode == "backend":  # behind the lb, which serves the 503
        assert include not in text and "maintenance" not in text
        return
    assert text.count(include) == 1
    assert f"geo ${ident}_maintenance_allowed {{" in text
    assert "    203.0.113.7 1;\n    2001:db8::/32 1;\n" in text
    assert f'"0:{env.health.path}" 0;' in text and "volatile;" in text
    conf = render.nginx_maintenance(env, lb=mode == "lb")
    assert f"if (${ident}_maintenance_closed) {{" in conf
    assert "add_header Retry-After 120 always;" in conf
    assert f"alias {render.maintenance_page_path(env)};" in conf


def test_health_path_with_a_query_is_matched_by_its_path():
    env = make_env()
    env = dataclasses.replace(env, health=dataclasses.replace(env.health, path="/up?full=1"))
    assert '"0:/up" 0;' in render.nginx_site(env, True)


@pytest.mark.parametrize("tls_ready", [True, False], ids=["tls", "http-only"])
def test_site_in_maintenance_passes_nginx_t(tmp_path, certificate, tls_ready):  # noqa: F811
    """Two sites side by side, one in maintenance: the include loads inside its server block."""
    production = dataclasses.replace(make_env(www_redirect="to_bare"), maintenance=ALLOWED)
    staging = make_env(name="staging", domains=("staging.shop.example.com",))
    nginx_test(tmp_path, [(production, tls_ready, RELEASE), (staging, tls_ready, None)],
               certificate,
               {render.maintenance_path(production): render.nginx_maintenance(production, False)})


def test_lb_in_maintenance_passes_nginx_t(tmp_path, certificate):  # noqa: F811
    env = dataclasses.replace(make_env(), maintenance=ALLOWED, hosts=LB_HOSTS)
    nginx_test(tmp_path, [], certificate, {
        render.lb_site_path(env): render.nginx_site(env, True, "lb"),
        render.lb_upstream_path(env): render.nginx_lb_upstream(env),
        render.maintenance_path(env): render.nginx_maintenance(env, lb=True),
        render.cert_path(env): certificate[0], render.key_path(env): certificate[1],
        render.web_cas_path(env): certificate[0]})


def test_the_page_is_the_apps_or_the_default():
    assert maintenance.page(b"<h1>back at 5</h1>\xff") == "<h1>back at 5</h1>\ufffd"
    assert maintenance.page("<p>soon</p>") == "<p>soon</p>"
    for missing in (None, b"", ""):
        assert "Down for maintenance" in maintenance.page(missing)


@pytest.mark.parametrize(("word", "on"), [("on", True), ("off", False)])
def test_the_task_takes_on_or_off(word, on):
    assert maintenance.check_state(word) is on


@pytest.mark.parametrize("word", ["ON", "yes", "--help", ""])
def test_any_other_state_is_one_line(word):
    with pytest.raises(ToolkitError, match="expected on or off") as caught:
        maintenance.check_state(word)
    assert "\n" not in str(caught.value)


def test_describe_names_what_still_gets_through():
    env = dataclasses.replace(make_env(), maintenance=ALLOWED)
    assert maintenance.describe(env, True) == (
        "shop-production answers 503 (Retry-After 120) but /health/ and 2 allowed address(es)")
    assert maintenance.describe(make_env(), False) == "shop-production serves the app"


def test_deploy_window_turns_off_only_what_it_turned_on(monkeypatch):
    """A host already in maintenance before the deploy stays in it; close is idempotent."""
    env = make_env()
    already, fresh = Host("203.0.113.20"), Host("203.0.113.21")
    calls = []
    monkeypatch.setattr(maintenance, "turn_on",
                        lambda remote, e, host, text: calls.append(("on", host)) or host is fresh)
    monkeypatch.setattr(maintenance, "turn_off",
                        lambda remote, e: calls.append(("off", remote)) or True)
    lines = []
    out = type("Out", (), {"line": lambda self, text: lines.append(text)})()
    window = maintenance.DeployWindow(env)
    window.close(out)  # never opened: nothing to do
    window.open([(already, "r1"), (fresh, "r2")], None, out)
    window.close(out)
    window.close(out)
    assert calls == [("on", already), ("on", fresh), ("off", "r2")]
    assert any("already in maintenance; it stays on" in line for line in lines)


class Undone:
    def recover(self) -> str:
        return "rolled back to 20260101T000000Z-abc"


@pytest.mark.parametrize(("fails", "note"), [
    (False, "rolled back to 20260101T000000Z-abc; maintenance off"),
    (True, "maintenance is still on (connection lost): fab maintenance --env production off"),
])
def test_an_undone_deploy_ends_its_maintenance(monkeypatch, fails, note):
    """The old release serves again, so the deploy's maintenance ends; if that fails too, the
    error says how to end it."""
    def turn_off(remote, env):
        if fails:
            raise ToolkitError("connection lost")
        return True
    monkeypatch.setattr(maintenance, "turn_off", turn_off)
    out = type("Out", (), {"line": lambda self, text: None})()
    window = maintenance.DeployWindow(make_env(), [(Host("203.0.113.20"), "r1")])
    error = deploy._undo(make_env(), [Undone()], None, window, ToolkitError("migrate failed"),
                         out)
    assert str(error).startswith("migrate failed; ") and str(error).endswith(note), error
