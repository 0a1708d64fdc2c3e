"""Pure parts of deploy: release bookkeeping, python check, release commands, lock holder."""

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from vpskit import backups, render
from vpskit.config import App, Environment, Host, Postgres
from vpskit.deploy import appcmd, lock, releases, source, switch
from vpskit.deploy.pipeline import check_python
from vpskit.errors import ToolkitError
from vpskit.plan import Plan, Write

from .planned import runs


def env(**app) -> Environment:
    return Environment("production", (Host("192.0.2.1"),), ("shop.test",),
                       App(name="shop", repo="/tmp/x", entry="shop.wsgi:application", **app))


def probe_output(*rows, current=""):
    lines = [f"{rid} {json.dumps({'sha': 'a' * 40, 'state': state})}" for rid, state in rows]
    return "\n".join([*lines, f"current {current}"])


def test_releases_parse_prune_and_rollback_target():
    out = probe_output(("20260101T000000Z-aaaaaaa", "ok"), ("20260102T000000Z-bbbbbbb", "bad"),
                       ("20260103T000000Z-ccccccc", "ok"), ("20260104T000000Z-ddddddd", "failed"),
                       ("20260105T000000Z-eeeeeee", "ok"),
                       current="releases/20260105T000000Z-eeeeeee")
    found = releases.parse(out)
    assert found.current == "20260105T000000Z-eeeeeee"
    assert found.previous_good().id == "20260103T000000Z-ccccccc"
    failed_or_bad = ["20260102T000000Z-bbbbbbb", "20260104T000000Z-ddddddd"]
    assert found.to_prune(3) == failed_or_bad
    assert found.to_prune(2) == ["20260101T000000Z-aaaaaaa", *failed_or_bad]


def test_prune_never_removes_the_live_release():
    out = probe_output(("20260101T000000Z-aaaaaaa", "ok"), ("20260102T000000Z-bbbbbbb", "ok"),
                       ("20260103T000000Z-ccccccc", "failed"),
                       current="/srv/x/releases/20260101T000000Z-aaaaaaa")
    assert releases.parse(out).to_prune(2) == ["20260103T000000Z-ccccccc"]


def test_release_without_metadata_is_unknown_and_never_a_rollback_target():
    found = releases.parse("20260101T000000Z-aaaaaaa \n20260102T000000Z-bbbbbbb {}\n"
                           "current 20260102T000000Z-bbbbbbb")
    assert found.items[0].state == "unknown" and found.previous_good() is None


def test_release_id_sorts_by_time():
    src = source.Source(repo=None, sha="0123456789abcdef", ref="main")
    rid = releases.new_id(src.short, datetime(2026, 11, 26, 18, 45, tzinfo=UTC))
    assert rid == "20261126T184500Z-0123456"


@pytest.fixture
def repo(tmp_path):
    def commit(files: dict[str, str]) -> source.Source:
        for name, text in files.items():
            (tmp_path / name).write_text(text)
        subprocess.run(["git", "init", "-q", "-b", "main"], cwd=tmp_path, check=True)
        subprocess.run(["git", "add", "."], cwd=tmp_path, check=True)
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm",
                        "c"], cwd=tmp_path, check=True)
        return source.resolve(str(tmp_path), "main")
    return commit


@pytest.mark.parametrize("files,server,ok", [
    ({"pyproject.toml": '[project]\nname="x"\nrequires-python=">=3.12"\n'}, (3, 11), False),
    ({"pyproject.toml": '[project]\nname="x"\nrequires-python=">=3.11"\n'}, (3, 11), True),
    ({".python-version": "3.13.1\n"}, (3, 11), False),
    ({"runtime.txt": "python-3.10.4\n"}, (3, 11), True),
    ({"README": "no constraint"}, (3, 11), True),
])
def test_python_requirement_checked_against_the_server(repo, files, server, ok):
    src = repo(files)
    if ok:
        check_python(src, server)
    else:
        with pytest.raises(ToolkitError, match=r"needs Python >= 3\.1[23] .* server has 3\.11"):
            check_python(src, server)


def test_unknown_ref_is_a_clear_error(repo):
    src = repo({"a": "b"})
    with pytest.raises(ToolkitError, match="ref 'nope' not found"):
        source.resolve(str(src.repo), "nope")


def test_archive_holds_the_committed_tree(repo):
    src = repo({"VERSION": "1.0\n"})
    assert src.read("VERSION") == b"1.0\n" and b"VERSION" in src.archive()


def test_release_commands_are_data_per_kind():
    assert appcmd.release_commands(env().app) == [
        ["python", "manage.py", "migrate", "--noinput"],
        ["python", "manage.py", "collectstatic", "--noinput"]]
    assert appcmd.release_commands(env(kind="flask").app) == []
    custom = env(kind="flask", release_commands=("python migrate.py",))
    assert appcmd.release_commands(custom.app) == [["python", "migrate.py"]]


def test_systemd_run_line_uses_the_env_file_and_app_user():
    argv = appcmd.systemd_run_argv(env(), "20260101T000000Z-aaaaaaa", ["python", "manage.py"])
    assert "--property=EnvironmentFile=/srv/shop-production/shared/.env" in argv
    assert "--property=User=shop-production" in argv
    assert argv[-2:] == ["/srv/shop-production/releases/20260101T000000Z-aaaaaaa/.venv/bin/python",
                         "manage.py"]


def test_release_commands_wait_at_most_the_lock_timeout_for_a_table_lock():
    settings = appcmd.lock_timeout_env(env())
    assert settings == ["PGOPTIONS=-c lock_timeout=5s"]
    argv = appcmd.release_command_argv(env(), "r1", ["python", "manage.py"], timeout=60)
    assert "--setenv=PGOPTIONS=-c lock_timeout=5s" in argv
    assert argv.index("--setenv=PGOPTIONS=-c lock_timeout=5s") < argv.index("--")
    unlimited = Environment("production", (Host("192.0.2.1"),), ("shop.test",),
                            env().app, postgres=Postgres(lock_timeout=0))
    assert appcmd.lock_timeout_env(unlimited) == []
    hint = appcmd.lock_timeout_hint(env(), "ERROR:  canceling statement due to lock timeout")
    assert "5 s" in hint and "postgres.lock_timeout" in hint
    assert appcmd.lock_timeout_hint(env(), "ERROR: relation does not exist") == ""


def test_lock_holder_is_described():
    info = lock.holder_info("deploy abc1234")
    assert "deploy abc1234" in lock.describe_holder(info)
    assert lock.describe_holder("garbage") == "another deploy"


def test_dump_name_is_timestamped():
    now = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
    assert backups.dump_name("shop-production", "", now) == "shop-production-20261126T030000Z.dump"
    assert backups.dump_name("shop-production", "predeploy-x/y", now).endswith("-predeploy-x-y.dump")


@pytest.mark.parametrize("path, refused", [
    (".env", True), (".env.production", True), ("config/.env.staging", True),
    (".env.local", True), (".env.example", False), (".env.sample", False),
    (".envrc", False), (".flaskenv", False), ("shop-production-20261130T000000Z.dump", True),
    ("media/shop-production-20261130T000000Z-media.tar.gz", True), ("backups/notes.txt", True),
    ("migrations/0001_items.sql", False), ("docs/backups.md", False),
])
def test_a_release_never_carries_secrets_files_or_backups(path, refused):
    assert source.unsafe_files([path], "backups") == ([path] if refused else [])


def test_an_absolute_backup_dir_is_never_inside_the_commit():
    assert source.unsafe_files(["srv/backups/x.txt", "backups/x.txt"], "/srv/backups") == []


def test_a_commit_tracking_a_secrets_file_is_refused_in_one_line(tmp_path):
    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path,
                       check=True, capture_output=True)
    git("init", "-q", "-b", "main")
    (tmp_path / "app.py").write_text("app = None\n")
    (tmp_path / ".env.production").write_text("SECRET_KEY=do-not-ship\n")
    git("add", "-A")
    git("commit", "-qm", "oops")
    with pytest.raises(ToolkitError) as caught:
        source.refuse_unsafe_files(source.resolve(str(tmp_path), "main"), "backups")
    assert "tracks .env.production" in str(caught.value) and "\n" not in str(caught.value)
    assert "do-not-ship" not in str(caught.value)


def test_the_release_nginx_serves_is_read_from_its_upstream_file():
    rid = "20261130T120000Z-abc1234"
    assert switch.upstream_release(render.nginx_upstream(env(), rid)) == rid
    assert switch.upstream_release(render.nginx_upstream(env(), None)) is None
    assert switch.upstream_release("") is None


def test_current_is_repaired_to_what_nginx_serves_and_left_alone_when_they_agree():
    assert switch.repair_current(env(), "r1", "r1") == Plan()
    assert switch.repair_current(env(), "r1", None) == Plan()
    repair = switch.repair_current(env(), "r1", "r2")
    assert repair.changes == ("repaired: current -> r2, the release nginx serves (was r1)",)
    assert runs(repair)[0][-4:] == ["releases/r2", f"{env().current_link}.vpskit-new",
                                    str(env().current_link), "shop-production-web@r2.service"]


def test_a_release_note_survives_its_metadata_and_empty_fields_are_left_out():
    made = releases.Release("20261201T000000Z-abc1234", sha="abc1234def", state="new",
                            note="env: FEATURE_FLAG")
    text = releases.meta_json(made)
    assert json.loads(text) == {"sha": "abc1234def", "state": "new", "note": "env: FEATURE_FLAG"}
    assert releases.parse(f"{made.id} {text}").items == (made,)


def hold(path: Path, told: list[str] | None = None, what: str = "deploy abc1234"
         ) -> subprocess.Popen:
    """The lock's server-side holder as lock.deploy_lock runs it, here; once it says LOCKED,
    with what it told before in ``told``."""
    holder = subprocess.Popen(["flock", str(path), "bash", "-c", lock.HOLD, "hold-lock",
                               str(path), lock.holder_info(what), "vpskit-test-none-*.service"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    while (line := holder.stdout.readline()).startswith("RECOVERED\t"):
        (told if told is not None else []).append(lock.recovered_note(line))
    assert line == "LOCKED\n"
    return holder


def test_the_lock_holder_runs_the_undo_left_when_its_operator_goes(tmp_path):
    path, undone = tmp_path / "site.lock", tmp_path / "undone"
    holder = hold(path)
    Path(f"{path}.undo").write_text(f"touch {undone}\n")  # armed, never disarmed
    holder.stdin.close()  # the operator's session ended
    assert holder.wait(timeout=10) == 0
    assert undone.exists() and not Path(f"{path}.undo").exists()
    assert not Path(f"{path}.holder").exists()
    undone.unlink()
    holder = hold(path)  # nothing armed: nothing run
    holder.stdin.close()
    assert holder.wait(timeout=10) == 0 and not undone.exists()


def test_an_undo_its_holder_never_ran_runs_before_the_next_holder_goes_on(tmp_path):
    path, undone, told = tmp_path / "site.lock", tmp_path / "undone", []
    Path(f"{path}.holder").write_text(lock.holder_info("restore x.dump") + "\n")
    Path(f"{path}.undo").write_text(f"touch {undone}\n")  # that holder was killed too
    holder = hold(path, told)
    assert undone.exists() and not Path(f"{path}.undo").exists()
    holder.stdin.close()
    holder.wait(timeout=10)
    assert len(told) == 1 and "restore x.dump) since" in told[0]
    assert "ended before its work on the server; at " in told[0]
    assert told[0].endswith(f"the server ran its undo: touch {undone};")


def test_what_the_lock_holder_did_for_a_dead_holder_is_told_to_the_next_one_once(tmp_path):
    path, undone, told = tmp_path / "site.lock", tmp_path / "undone", []
    holder = hold(path, what="restore y.dump")
    Path(f"{path}.undo").write_text(f"touch {undone}\n")
    holder.stdin.close()  # its operator died
    holder.wait(timeout=10)
    hold(path, told).stdin.close()
    assert len(told) == 1 and "restore y.dump) since" in told[0] and "ran its undo" in told[0]
    again = []
    hold(path, again).stdin.close()
    assert again == []


def test_an_undo_journal_is_root_only_and_holds_each_command_on_a_line():
    journal = lock.armed("shop-production", [["systemctl", "start", "a b.service"], ["true"]])
    (spec,) = [spec for action in journal.actions if isinstance(action, Write)
               for spec in action.specs]
    assert (spec.path, spec.mode) == (lock.undo_path("shop-production"), 0o600)
    assert spec.content == "systemctl start 'a b.service'\ntrue\n"
    assert runs(lock.disarmed("shop-production")) == [["rm", "-f", spec.path]]
