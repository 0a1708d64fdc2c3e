"""`fab provision` against the real test VPS: a hardened app server, idempotent, clear errors."""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import paramiko
import psycopg
import pytest

from tests.helpers.site import SECRET_KEY, step_changes, step_states
from vpskit import envfile, ssh
from vpskit.config import Host
from vpskit.errors import ConnectError

pytestmark = pytest.mark.vps


def test_first_provision_changes_every_step_and_reports_it(provisioned):
    out = provisioned["first"].stdout
    states = step_states(out)
    for step in ("packages", "users", "ssh", "firewall", "postgres", "redis", "app", "nginx",
                 "tls"):
        assert states[step] == "changed", out
    assert re.search(r"\d+ changed, \d+ unchanged in [\d.]+s \(\d+ round trips?\)", out)


def test_second_provision_changes_nothing_and_restarts_nothing(provisioned):
    out = provisioned["second"].stdout
    assert set(step_states(out).values()) == {"unchanged"}, out
    assert re.search(r": 0 changed, \d+ unchanged in [\d.]+s", out), out
    assert provisioned["pids_before"] == provisioned["pids_after"]
    assert all(pid != "0" for pid in provisioned["pids_after"].values())


def test_only_ssh_http_https_accept_connections_from_outside(site, provisioned, vps):
    def accepts(port: int) -> bool:
        try:
            socket.create_connection((vps.address, port), timeout=2).close()
            return True
        except OSError:
            return False
    redis = urlsplit(envfile.parse(site.sh("cat /srv/shop-production/shared/.env"))["REDIS_URL"])
    assert {p: accepts(p) for p in (22, 80, 443, 5432, redis.port)} == {
        22: True, 80: True, 443: True, 5432: False, redis.port: False}
    status = site.sh("ufw status verbose")
    assert "Default: deny (incoming)" in status and "Status: active" in status


def test_root_and_password_logins_refused_deploy_user_gets_in(site, provisioned, vps):
    with pytest.raises(ConnectError, match="authentication failed"):
        ssh.connect(vps.host(user="root"))
    transport = paramiko.Transport((vps.address, 22))
    try:
        transport.start_client(timeout=10)
        with pytest.raises(paramiko.AuthenticationException):
            transport.auth_password("deploy", "any-password")
    finally:
        transport.close()
    conn = ssh.connect(Host(vps.address, user="deploy", key=vps.key_path,
                            known_hosts=vps.known_hosts_path))
    assert conn.run("sudo -n id -u", hide=True, in_stream=False).stdout.strip() == "0"
    conn.close()


def test_app_role_reaches_its_database_over_a_tunnel(site, provisioned):
    remote = site.remote()
    try:
        values = envfile.parse(remote.run(["cat", "/srv/shop-production/shared/.env"]).stdout)
        url = values["DATABASE_URL"]
        assert values["SECRET_KEY"] == SECRET_KEY
        assert remote.run(["stat", "-c", "%a %U", "/srv/shop-production/shared/.env"]
                          ).stdout.split() == ["600", "shop-production"]
        with tunnel(remote.conn, 5432) as port, \
                psycopg.connect(url.replace("127.0.0.1:5432", f"127.0.0.1:{port}")) as conn:
            row = conn.execute("select current_user, current_database()").fetchone()
        assert row == ("shop_production", "shop_production")
    finally:
        remote.conn.close()


@contextmanager
def tunnel(conn, remote_port: int) -> Iterator[int]:
    """Forward a free local port to the server's loopback `remote_port`; yield it once it listens.

    Fabric binds the local listener in a background thread, so connecting straight away can be
    refused; wait for the bind instead.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with conn.forward_local(port, remote_port=remote_port, remote_host="127.0.0.1",
                            local_host="127.0.0.1"):
        deadline = time.monotonic() + 10
        while not listening(port):
            assert time.monotonic() < deadline, f"tunnel to port {remote_port} never listened"
            time.sleep(0.05)
        yield port


def listening(port: int) -> bool:
    """Whether something on this machine listens on the loopback `port` (per `ss`, no connect)."""
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True)
    return bool(out.stdout.strip())


def test_redis_demands_its_password(site, provisioned):
    """The site's own instance, on localhost only; the distribution's shared one is off."""
    values = envfile.parse(site.sh("cat /srv/shop-production/shared/.env"))
    url = urlsplit(values["REDIS_URL"])
    out = site.sh(f"redis-cli -p {url.port} ping 2>&1; "
                  f"REDISCLI_AUTH='{url.password}' redis-cli -p {url.port} ping 2>&1")
    assert out.split() == ["NOAUTH", "Authentication", "required.", "PONG"], out
    listening = [line.split()[3] for line in site.sh("ss -Hltn 'sport = :6379 or sport = :"
                                                     f"{url.port}'").splitlines()]
    assert sorted(listening) == [f"127.0.0.1:{url.port}", f"[::1]:{url.port}"]
    assert site.sh("systemctl is-enabled redis-server", check=False).strip() == "disabled"


def test_nginx_config_valid_and_default_site_gone(site, provisioned):
    site.sh("nginx -t -q")
    enabled = site.sh("ls /etc/nginx/sites-enabled").split()
    assert "shop-production.conf" in enabled and "default" not in enabled


def test_dry_run_shows_a_masked_diff_and_changes_nothing(site, provisioned):
    inventory = site.dir / "inventory.yml"
    original = inventory.read_text()
    inventory.write_text(original.replace("workers: 2", "workers: 3"))
    try:
        before = site.sh("sha256sum /etc/systemd/system/shop-production-web@.service")
        result = site.fab("provision", "--dry-run")
        assert "--workers=2" in result.stdout and "--workers=3" in result.stdout, result.stdout
        assert "+++ /etc/systemd/system/shop-production-web@.service" in result.stdout
        assert re.search(r"^  app\s+would change", result.stdout, re.M)
        assert SECRET_KEY not in result.stdout + result.stderr
        assert site.sh("sha256sum /etc/systemd/system/shop-production-web@.service") == before
    finally:
        inventory.write_text(original)


def test_dry_run_says_what_apply_then_does(site, provisioned):
    """The dry run's lines come from the plans alone; the run after it changes exactly that."""
    shared = "/srv/shop-production/shared"
    site.sh(f"chmod 755 {shared} && rm /etc/apt/apt.conf.d/20auto-upgrades && "
            "systemctl disable --now --quiet certbot.timer && "
            "echo '# drift' >> /etc/nginx/conf.d/vpskit.conf")
    planned = step_changes(site.fab("provision", "--dry-run").stdout)
    applied = step_changes(site.fab("provision").stdout)
    assert planned == applied, (planned, applied)
    assert planned == {
        "packages": "/etc/apt/apt.conf.d/20auto-upgrades (created)",
        "directories": f"directories: {shared}",
        "nginx": "/etc/nginx/conf.d/vpskit.conf (content)",
        "tls": "certbot.timer enabled"}, planned
    assert set(step_states(site.fab("provision").stdout).values()) == {"unchanged"}


def test_not_enough_disk_is_refused_before_any_change(site, provisioned):
    inventory = site.dir / "inventory.yml"
    original = inventory.read_text()
    inventory.write_text(original.replace("releases_keep: 3", "releases_keep: 3\nsystem:\n"
                                                              "  min_free_mb: 100000000"))
    try:
        result = site.fab("provision", check=False)
    finally:
        inventory.write_text(original)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "MiB free on /; need 100000000 MiB" in lines[0], result.stderr
    assert "changed" not in result.stdout


def test_sudo_with_password_is_a_clear_error(site, provisioned, vps, tmp_path):
    site.sh("id carol >/dev/null 2>&1 || useradd -m -s /bin/bash carol; "
            "install -d -o carol -g carol -m 700 /home/carol/.ssh; "
            "cp /home/deploy/.ssh/authorized_keys /home/carol/.ssh/; "
            "chown carol: /home/carol/.ssh/authorized_keys; "
            "echo 'carol ALL=(ALL) ALL' > /etc/sudoers.d/carol")
    inventory = site.dir / "inventory.yml"
    original = inventory.read_text()
    inventory.write_text(original.replace(f"- address: {vps.address}",
                                          f"- address: {vps.address}\n        user: carol"))
    try:
        result = site.fab("provision", check=False)
    finally:
        inventory.write_text(original)
        site.sh("rm -f /etc/sudoers.d/carol; userdel -r carol")
    assert result.returncode == 1
    assert "needs a password for sudo" in result.stderr and len(
        result.stderr.strip().splitlines()) == 1, result.stderr


def test_unreachable_host_fails_fast_with_one_line(site, vps):
    inventory = site.dir / "inventory.yml"
    original = inventory.read_text()
    unused = vps.address.rsplit(".", 1)[0] + ".99"
    inventory.write_text(original.replace(f"address: {vps.address}", f"address: {unused}"))
    try:
        start = time.monotonic()
        result = site.fab("provision", check=False)
        elapsed = time.monotonic() - start
    finally:
        inventory.write_text(original)
    assert result.returncode == 1 and elapsed < 20
    assert result.stderr.startswith(f"error: deploy@{unused}:22: ") and len(
        result.stderr.strip().splitlines()) == 1, result.stderr


def test_unknown_environment_touches_nothing(site):
    result = site.fab("provision", env="prod", check=False)
    assert result.returncode == 1 and result.stdout == ""
    assert "unknown environment 'prod' (known: production, staging)" in result.stderr
