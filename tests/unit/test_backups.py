"""Pure parts of backups: names, the retention plan (also as the program shipped to the server),
restore's choice of file, the timer script and the timer's provision step."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.unit.planned import hatches, runs
from vpskit import backup_script, backups, readers, render, restore
from vpskit.config import App, Backups, Environment, Host
from vpskit.errors import ToolkitError
from vpskit.files import FileState
from vpskit.plan import Plan, writes
from vpskit.provision import backup_timer
from vpskit.provision.backup_timer import BackupTimerFacts
from vpskit.remote import Result
from vpskit.sh import prune_backups
from vpskit.steps import Reporter

SITE = "shop-production"
NOW = datetime(2026, 3, 31, 12, 0, 0, tzinfo=UTC)


def env(**settings) -> Environment:
    return Environment("production", (Host("192.0.2.1"),), ("shop.test",),
                       App(name="shop", repo="/tmp/x", entry="shop.wsgi:application"),
                       backups=Backups(**settings))


def named(days_ago: float, label: str = "", suffix: str = backups.DUMP, site: str = SITE,
          now: datetime = NOW) -> str:
    stamp = (now - timedelta(days=days_ago)).strftime(backups.STAMP)
    return backups.backup_name(site, stamp, label, suffix)


def cutoff(keep_days: int) -> str:
    return (NOW - timedelta(days=keep_days)).strftime(backups.STAMP)


def test_names_round_trip():
    assert named(0) == "shop-production-20260331T120000Z.dump"
    assert backups.parse_name(SITE, named(0)) == ("20260331T120000Z", "", ".dump")
    assert backups.parse_name(SITE, named(0, "predeploy-20260331T115959Z-abc1234")) == (
        "20260331T120000Z", "predeploy-20260331T115959Z-abc1234", ".dump")
    assert backups.parse_name(SITE, named(0, suffix=backup_script.MEDIA)) == (
        "20260331T120000Z", "", "-media.tar.gz")
    assert backups.backup_name(SITE, "20260331T120000Z", "a b/c") == (
        "shop-production-20260331T120000Z-a-b-c.dump")
    for other in (f".{named(0)}.partial", "notes.txt", named(0, site="shop-production-eu"),
                  named(0, site="shop-staging"), named(0) + ".bak"):
        assert backups.parse_name(SITE, other) is None, other


def test_prune_plan_keeps_the_last_days_and_the_newest_of_each_kind():
    names = [named(40), named(40, suffix=backup_script.MEDIA), named(31), named(29),
             named(10, "predeploy-x"), named(1), named(0.5, suffix=backup_script.MEDIA),
             named(90, site="shop-staging"), "notes.txt", f".{named(60)}.partial"]
    assert prune_backups.prune_plan(SITE, names, cutoff(30)) == [
        named(40, suffix=backup_script.MEDIA), named(40), named(31)]
    assert prune_backups.prune_plan(SITE, names, cutoff(2)) == [
        named(40, suffix=backup_script.MEDIA), named(40), named(31), named(29),
        named(10, "predeploy-x")]


def test_prune_plan_never_removes_the_newest_backup_whatever_its_age():
    names = [named(400), named(300), named(200), named(250, suffix=backup_script.MEDIA)]
    assert prune_backups.prune_plan(SITE, names, cutoff(30)) == [named(400), named(300)]
    assert prune_backups.prune_plan(SITE, [named(365)], cutoff(1)) == []
    assert prune_backups.prune_plan(SITE, [], cutoff(1)) == []


def test_prune_dir_deletes_only_the_plan(tmp_path):
    names = [named(40), named(31), named(29), "notes.txt"]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    gone = prune_backups.prune_dir(str(tmp_path), SITE, 30, now=NOW.timestamp())
    assert gone == [named(40), named(31)]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([named(29), "notes.txt"])


def test_the_program_shipped_to_the_server_prunes_like_the_plan(tmp_path):
    now = datetime.now(UTC)
    names = [named(400, now=now), named(40, now=now), named(40, suffix=backup_script.MEDIA, now=now),
             named(0, now=now), "notes.txt"]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    python = shutil.which("python3") or sys.executable
    result = subprocess.run([python, *backup_script.prune_argv(env(keep_days=30))[1:3],
                             str(tmp_path), SITE, "30"], capture_output=True, text=True,
                            check=True)
    assert result.stdout.split() == names[:2]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[2:])


def test_latest_skips_safety_dumps_and_media():
    names = [named(3), named(2, "predeploy-x"), named(1, backups.SAFETY_LABEL),
             named(0, suffix=backup_script.MEDIA)]
    assert backups.latest(SITE, names) == named(2, "predeploy-x")
    assert backups.latest(SITE, [named(0, backups.SAFETY_LABEL)]) is None


def test_resolve_restore_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    on_server = [named(2), named(1)]
    assert restore.resolve(env(), "latest", on_server) == (named(1), None)
    assert restore.resolve(env(), named(2), on_server) == (named(2), None)
    local = tmp_path / "copies" / named(5)
    local.parent.mkdir()
    local.write_bytes(b"x")
    assert restore.resolve(env(), f"copies/{named(5)}", on_server) == (
        named(5), Path(f"copies/{named(5)}"))
    (tmp_path / "my dump.dump").write_bytes(b"x")
    with pytest.raises(ToolkitError, match="rename the file"):
        restore.resolve(env(), "my dump.dump", on_server)
    with pytest.raises(ToolkitError, match="no backup 'nope.dump'"):
        restore.resolve(env(), "nope.dump", on_server)
    with pytest.raises(ToolkitError, match="no backup of shop-production on the server"):
        restore.resolve(env(), "latest", [])


def test_age():
    now = NOW.timestamp()
    assert [backups.age(named(d), now) for d in (0, 30 / 86400, 0.5 / 24, 5.05 / 24, 12.2)] == [
        "0s", "30s", "30m", "5h 03m", "12d 4h"]


def test_local_dir_is_relative_to_the_inventory(tmp_path):
    inventory = tmp_path / "ops" / "inventory.yml"
    assert backups.local_dir(env(), inventory) == tmp_path / "ops" / "backups"
    assert backups.local_dir(env(local_dir="/srv/copies"), inventory) == Path("/srv/copies")


def test_confirmation_wants_the_environment_name():
    host = Host("192.0.2.1")
    restore.confirm(env(), host, named(1), None, lambda prompt: "production\n",
                    Reporter(quiet=True))
    for answer in ("y", "yes", "", "staging"):
        with pytest.raises(ToolkitError, match="cancelled; nothing changed"):
            restore.confirm(env(), host, named(1), None, lambda prompt, a=answer: a,
                            Reporter(quiet=True))


def test_restore_refuses_without_a_terminal_before_connecting(monkeypatch):
    monkeypatch.setattr(sys, "stdin", open("/dev/null"))  # noqa: SIM115 - closed by pytest
    with pytest.raises(ToolkitError, match="pass --yes"):
        restore.restore(env(), "latest", False, Reporter(quiet=True))


def test_server_script_runs_the_same_commands_as_fab_backup(tmp_path):
    script = backup_script.server_script(env(keep_days=7, media=True, timer="daily"))
    assert script.startswith("#!/bin/bash\n")
    assert "stamp=$(date -u +%Y%m%dT%H%M%SZ)\n" in script
    assert '"shop-production-${stamp}.dump"' in script
    assert '"shop-production-${stamp}-media.tar.gz"' in script
    assert script.rstrip().endswith("/var/backups/shop-production shop-production 7")
    (tmp_path / "backup").write_text(script)
    subprocess.run(["bash", "-n", str(tmp_path / "backup")], check=True)
    assert "-media.tar.gz\"" not in backup_script.server_script(env(timer="daily"))


def timer_plan(settings: dict, present: list[str], state=("active", "enabled")) -> Plan:
    e = env(**settings)
    files = {p: FileState("0", "root", "root", 0o644) for p in present}
    return backup_timer.backup_timer(e, e.hosts[0], BackupTimerFacts(files, state))


def test_timer_step_installs_enables_and_removes():
    paths = backup_timer.paths(env())
    todo = timer_plan({}, [], ("inactive", ""))  # nightly by default
    assert writes(todo) == paths
    assert ["systemctl", "enable", "shop-production-backup.timer"] in runs(todo)
    assert todo.changes[-1] == "shop-production-backup.timer enabled (*-*-* 03:00:00)"
    script = next(s for s in backup_timer.specs(env()) if s.path == paths[0])
    assert script.mode == 0o700 and script.path == render.backup_script(env())

    todo = timer_plan({"timer": ""}, paths[1:])
    assert todo.changes == (f"removed {' '.join(paths[1:])}",)
    assert runs(todo) == [["systemctl", "disable", "--now", "shop-production-backup.timer"],
                          ["rm", "-f", *paths[1:]], ["systemctl", "daemon-reload"]]
    assert timer_plan({"timer": ""}, []) == Plan()


def test_timer_step_changes_nothing_when_all_is_in_place():
    e = env(timer="*-*-* 03:00:00")
    installed = {s.path: FileState(s.sha256, "root", "root", s.mode)
                 for s in backup_timer.specs(e)}
    assert backup_timer.backup_timer(e, e.hosts[0], BackupTimerFacts(
        installed, ("active", "enabled"))) == Plan()


def test_automatic_dumps_beyond_the_newest_n_are_pruned_others_never():
    names = [f"shop-production-2026113{d}T000000Z-predeploy-r{d}.dump" for d in range(5)]
    names += ["shop-production-20261129T000000Z-prerestore.dump",
              "shop-production-20261101T000000Z.dump",            # a nightly backup: kept
              "shop-production-20261101T000000Z-preremove.dump",  # fab remove's last dump: kept
              "shop-staging-20261101T000000Z-predeploy-x.dump"]   # another site's
    assert backups.automatic_prune_plan("shop-production", names, 3) == [
        "shop-production-20261129T000000Z-prerestore.dump", names[0], names[1]]
    assert backups.automatic_prune_plan("shop-production", names, 10) == []


def test_too_little_space_is_one_line_in_megabytes():
    line = readers.no_space("10.0.0.2", "a dump", "/var/backups/shop", 12_500_000, 65_536)
    assert line == ("10.0.0.2: not enough free space for a dump in /var/backups/shop: it needs "
                    "about 12.5 MB, 0.1 MB are free; free some space (old backups, releases) or "
                    "grow the disk, then try again")


# ---- fab backup as plans -------------------------------------------------------------------------
def test_backup_steps_dump_copy_then_prune_and_nothing_after_a_failed_step():
    steps = dict(backup_script.backup_steps(env(), "20260331T120000Z", "/home/op/backups"))
    assert list(steps) == ["dump", "copy", "prune"]
    dump = f"/var/backups/{SITE}/{SITE}-20260331T120000Z.dump"
    (run,) = steps["dump"].actions
    assert run.read == ("archived", dump, ("pg_dump", "shop_production"))
    assert run.argv[3:] == ("archive", f"/var/backups/{SITE}", f"{SITE}-20260331T120000Z.dump",
                            "dump", "shop_production")
    assert hatches(steps["copy"]) == [("fetch_backups", "/home/op/backups", ("cat", "--"))]
    assert runs(steps["prune"])[0][:2] == ["python3", "-c"]
    assert hatches(steps["prune"]) == [("prune_copies", "/home/op/backups")]
    with_media = dict(backup_script.backup_steps(env(media=True), "20260331T120000Z", "/b"))
    assert list(with_media) == ["dump", "media", "copy", "prune"]
    assert with_media["media"].actions[0].read[1].endswith("-20260331T120000Z-media.tar.gz")


def test_reading_an_archive_gives_its_line_and_fact_or_the_dumps_own_error():
    made = readers.archived("h", Result("writing\n3000000 ab12\n", "", 0), "/b/x.dump",
                            ("pg_dump", "shop"))
    artifact = backup_script.Artifact("/b/x.dump", 3_000_000, "ab12")
    assert made.changes == ("/b/x.dump (3.0 MB)",) and made.outputs == {"/b/x.dump": artifact}
    with pytest.raises(readers.FailedAs) as caught:
        readers.archived("h", Result("", "pg_dump: error", 1), "/b/x.dump", ("pg_dump", "shop"))
    assert caught.value.argv == ["pg_dump", "shop"]
    with pytest.raises(ToolkitError, match=r"^h: not enough free space for a dump in /b: "):
        readers.archived("h", Result("NOSPACE 2000000 1000\n", "", 28), "/b/x.dump", ("x",))


def test_pruning_and_the_offsite_copy_read_as_lines():
    assert readers.pruned("h", Result("a.dump b.dump\n", "", 0), "/b").changes == \
        ("server: removed a.dump, b.dump",)
    assert readers.pruned("h", Result("", "", 0), "/b").changes == ()
    assert readers.offsite("h", Result("off-site sent x (1 MB)\n", "", 0)).changes == \
        ("sent x (1 MB)",)
    with pytest.raises(ToolkitError, match=r"^h: bucket gone$"):
        readers.offsite("h", Result("", "bucket gone\n", 1))
