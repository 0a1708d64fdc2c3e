"""The CI login (``hosts[].ci_user``), offline: how the inventory names it, what provision plans
for it, ``fab backup``'s steps through it, and what ``vpskit-site`` refuses before it acts
(run as a program here, with a registry of its own)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.planned import hatches, runs
from tests.unit.test_inventory import GOOD, write
from vpskit import backup_script, ci_login, inventory, readers, sh
from vpskit.config import App, Backups, Environment, Host
from vpskit.errors import InventoryError, ToolkitError
from vpskit.files import FileState
from vpskit.plan import writes
from vpskit.provision import backup_timer, ci
from vpskit.provision.backup_timer import BackupTimerFacts
from vpskit.remote import Result

SITE = "shop-production"
STALE = FileState("x", "root", "root", 0o644)
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBx ci@example"


def env(host: Host) -> Environment:
    return Environment("production", (host,), ("shop.test",),
                       App(name="shop", repo="/tmp/x", entry="shop.wsgi:application"))


def with_host(extra: str) -> str:
    return GOOD.replace("      - address: 198.51.100.7\n",
                        "      - address: 198.51.100.7\n" + extra)


@pytest.mark.parametrize("extra, where, says", [
    ("        ci_user: ci\n", "ci_user", "ci_user needs ci_key"),
    ("        ci_user: deploy\n        ci_key: ci_key\n", "ci_user", "a login with full sudo"),
    ("        ci_user: root\n        ci_key: ci_key\n", "ci_user", "a login with full sudo"),
    ("        ci_key: ci_key\n", "ci_key", "ci_key without ci_user"),
    ('        ci_user: "ci\\n"\n        ci_key: ci_key\n', "ci_user", "expected a Linux user"),
])
def test_security_ci_login_is_checked_at_load(tmp_path, extra, where, says):
    with pytest.raises(InventoryError) as caught:
        inventory.load(write(tmp_path, with_host(extra)), "staging", environ={"SECRET_KEY": "k"})
    line = str(caught.value)
    assert "\n" not in line and f"environments.staging.hosts.0.{where}" in line, line
    assert says in line


def test_security_ci_login_loads_with_its_key_as_key_does(tmp_path):
    text = with_host("        ci_user: ci\n        ci_key: ~/keys/ci\n")
    env_ = inventory.load(write(tmp_path, text), "staging", environ={"SECRET_KEY": "k"})
    (host,) = env_.hosts
    assert (host.ci_user, host.ci_key) == ("ci", str(Path.home() / "keys/ci"))
    assert (host.ci.user, host.ci.key, host.ci.address) == ("ci", host.ci_key, host.address)


def states(specs) -> dict[str, FileState]:
    return {s.path: FileState(s.sha256, s.owner, s.group, s.mode) for s in specs}


def test_security_ci_login_plan_names_only_the_helper_in_sudoers():
    host = Host("192.0.2.1", ci_user="ci", ci_key="/k/ci")
    found = ci.CiFacts(ci_files={}, ci_users={}, ci_public_key=KEY)
    planned = ci.ci_access(env(host), host, found)
    assert runs(planned)[0] == ["useradd", "--create-home", "--shell", "/bin/bash", "ci"]
    (write_keys, write_files) = [a for a in planned.actions if hasattr(a, "specs")]
    specs = {s.path: s for s in write_keys.specs + write_files.specs}
    assert write_keys.validate == ("visudo", "-c", "-q")
    assert specs["/etc/sudoers.d/vpskit-ci"].content == (
        "ci ALL=(root) NOPASSWD: /usr/local/sbin/vpskit-site\n")
    assert specs["/home/ci/.ssh/authorized_keys"].content == KEY + "\n"
    helper = specs[ci_login.HELPER]
    assert (helper.owner, helper.mode) == ("root", 0o755)
    registry = specs[f"/etc/vpskit/ci/{SITE}.json"]
    assert (registry.owner, registry.mode) == ("root", 0o600)
    assert json.loads(registry.content) == {
        "site": SITE, "users": ["ci"],
        "units": [f"{SITE}-web@.service", f"{SITE}-*@*.service", f"{SITE}-job-*.service"],
        "backup_dir": f"/var/backups/{SITE}", "backup_unit": f"{SITE}-backup.service",
        "env": "production", "config": f"/etc/vpskit/ci/{SITE}.d"}  # one host: it deploys
    again = ci.CiFacts(ci_files=states(specs.values()), ci_users={"ci": ["ci"]},
                       ci_public_key=KEY)
    assert ci.ci_access(env(host), host, again).actions == ()


def test_security_without_a_ci_user_the_sites_entry_goes():
    host = Host("192.0.2.1")
    entry = f"/etc/vpskit/ci/{SITE}.json"
    gone = ci.ci_access(env(host), host, ci.CiFacts(
        ci_files={entry: FileState("x", "root", "root", 0o600)}, ci_public_key=None))
    assert runs(gone) == [["rm", "-f", entry]] and not writes(gone)
    assert ci.ci_access(env(host), host, ci.CiFacts(ci_files={}, ci_public_key=None)).actions == ()


def test_backup_through_the_ci_login_runs_the_service_then_fetches_by_the_helper():
    host = Host("192.0.2.1", ci_user="ci", ci_key="/k/ci")
    steps = dict(backup_script.service_backup_steps(env(host), "/home/op/backups"))
    assert list(steps) == ["backup", "copy", "prune"]
    (run,) = steps["backup"].actions
    assert list(run.argv) == [ci_login.HELPER, "backup", SITE]
    assert run.read == ("made", f"/var/backups/{SITE}", f"{SITE}-backup.service")
    assert run.timeout is None  # sudo allows the helper only, not `timeout` before it
    assert hatches(steps["copy"]) == [("fetch_backups", "/home/op/backups",
                                       (ci_login.HELPER, "fetch", SITE))]
    assert hatches(steps["prune"]) == [("prune_copies", "/home/op/backups")]


def test_reading_the_services_backup_gives_each_file_or_its_last_line():
    out = "made shop-production-20261202T010000Z.dump 2000000 ab12\n"
    made = readers.made("h", Result(out, "", 0), "/b", "u.service")
    path = "/b/shop-production-20261202T010000Z.dump"
    assert made.changes == (f"{path} (2.0 MB)",)
    assert made.outputs == {path: backup_script.Artifact(path, 2_000_000, "ab12")}
    with pytest.raises(ToolkitError, match=r"^h: pg_dump: error: connection failed "
                                           r"\(journalctl -u u.service\)$"):
        readers.made("h", Result("", "dumping\npg_dump: error: connection failed\n", 1), "/b",
                     "u.service")
    with pytest.raises(ToolkitError, match="made no new backup"):
        readers.made("h", Result("", "", 0), "/b", "u.service")


# ---- vpskit-site, run as a program with a registry of its own ----------------------------------
@pytest.fixture
def helper(tmp_path):
    """Run ``vpskit-site ARGS`` as ``user`` against a registry in ``tmp_path``: (code, out,
    err)."""
    program = (sh.program("site_helper")
               .replace(f'"{ci_login.REGISTRY}"', repr(str(tmp_path / "ci")))
               .replace(f'"{ci.LIBRARY}"', repr(str(tmp_path))))
    (tmp_path / "site_helper.py").write_text(program)
    (tmp_path / "prune_backups.py").write_text(sh.program("prune_backups"))
    (tmp_path / "ci").mkdir()
    backups = tmp_path / "backups"
    backups.mkdir()
    (backups / f"{SITE}-20261202T010000Z.dump").write_bytes(b"dump bytes")
    (backups / "other-production-20261202T010000Z.dump").write_bytes(b"not ours")
    (tmp_path / "ci" / f"{SITE}.json").write_text(json.dumps(
        {"site": SITE, "users": ["ci"], "units": ["u"], "backup_dir": str(backups),
         "backup_unit": "b.service"}))

    def run(*args: str, user: str = "ci") -> tuple[int, bytes, str]:
        done = subprocess.run([sys.executable, "-I", str(tmp_path / "site_helper.py"), *args],
                              capture_output=True, timeout=30,
                              env={**os.environ, "SUDO_USER": user})
        return done.returncode, done.stdout, done.stderr.decode()
    run.backups = backups
    return run


def test_security_site_helper_lists_and_fetches_only_the_sites_backups(helper):
    assert helper("backups", SITE)[:2] == (0, f"10 {SITE}-20261202T010000Z.dump\n".encode())
    ours = str(helper.backups / f"{SITE}-20261202T010000Z.dump")
    assert helper("fetch", SITE, ours)[:2] == (0, b"dump bytes")
    for path in (str(helper.backups / "other-production-20261202T010000Z.dump"), "/etc/shadow",
                 f"{helper.backups}/../backups/{SITE}-20261202T010000Z.dump"):
        code, out, err = helper("fetch", SITE, path)
        assert (code, out) == (2, b"") and "is not a backup of shop-production" in err, err


@pytest.mark.parametrize("args, user, says", [
    (("backups", SITE), "mallory", "user mallory may not act on shop-production"),
    (("backups", "other-production"), "ci", "no site other-production"),
    (("backups", "../ci/shop-production"), "ci", "is not a site name"),
    (("logs", SITE, "10; id"), "ci", "usage: vpskit-site logs"),
    (("logs", SITE, "10", "--since=yesterday"), "ci", "usage: vpskit-site logs"),
    (("shell", SITE), "ci", "usage: vpskit-site {logs,backups,backup,fetch,deploy,rollback,"),
    (("backup", SITE, "extra"), "ci", "wrong number of arguments"),
])
def test_security_site_helper_refuses_before_acting(helper, args, user, says):
    code, out, err = helper(*args, user=user)
    assert (code, out) == (2, b"")
    assert err == f"vpskit-site: refused: {err.split('refused: ', 1)[1]}" and says in err, err


def test_with_the_timer_off_the_ci_login_still_gets_the_backup_service():
    host = Host("192.0.2.1", ci_user="ci", ci_key="/k/ci")
    e = dataclasses.replace(env(host), backups=Backups(timer=""))
    script, service, timer = backup_timer.paths(e)
    todo = backup_timer.backup_timer(e, host, BackupTimerFacts({timer: STALE}, ("active", "")))
    assert runs(todo)[:2] == [["systemctl", "disable", "--now", f"{SITE}-backup.timer"],
                              ["rm", "-f", timer]]
    assert writes(todo) == [script, service] and runs(todo)[-1] == ["systemctl", "daemon-reload"]
    installed = {s.path: FileState(s.sha256, s.owner, s.group, s.mode)
                 for s in backup_timer.specs(e)}
    assert backup_timer.backup_timer(e, host, BackupTimerFacts(installed, ("inactive", ""))
                                     ).actions == ()
    plain = dataclasses.replace(e, hosts=(Host("192.0.2.1"),))
    assert backup_timer.specs(plain) == []


@pytest.mark.parametrize("extra, loads", [
    ("        ci_user: ci\n        ci_key: ci_key\n", True), ("", False)])
def test_security_fab_backup_through_the_ci_login_needs_none_of_the_apps_secrets(
        tmp_path, monkeypatch, extra, loads):
    """What cron holds for ``fab backup`` through a CI login: the inventory and that key, no
    secrets file; the deploy user's backup loads the inventory as a deploy does."""
    from invoke import Exit

    from vpskit import backups, tasks
    monkeypatch.delenv("SECRET_KEY", raising=False)
    path = write(tmp_path, with_host(extra))
    seen: list[Environment] = []
    monkeypatch.setattr(backups, "backup", lambda env_, local, out: seen.append(env_))
    if loads:
        tasks.backup.body(None, env="staging", inventory=str(path))
        assert seen[0].hosts[0].ci_user == "ci" and not seen[0].secrets
    else:
        with pytest.raises(Exit, match="secret 'SECRET_KEY' of environment 'staging' is not set"):
            tasks.backup.body(None, env="staging", inventory=str(path))
