"""The release's venv is built by the app user, never root, then made root's and read-only for
the app; the upload and the build check free space first. The scripts run here for real, as
root, with a fake ``python3`` (and ``df``) first on PATH and ``nobody`` as the app user."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.unit.test_failure_summaries import DJANGO6
from vpskit import readers
from vpskit.config import App, Environment, Host
from vpskit.deploy import pipeline, releases
from vpskit.deploy.pipfail import summarize_pip_failure
from vpskit.errors import RemoteError, ToolkitError
from vpskit.remote import Remote, Result
from vpskit.steps import Reporter

PIP = Path(__file__).parent / "data" / "pip"
USER, GROUP = "nobody", "nogroup"
# python3 -m venv DIR: a venv whose pip says what it ran and where, records its uid in the venv,
# links BASE/victim into it when BASE/pip-link exists, prints BASE/pip-output on stderr and
# exits with the number in BASE/pip-exit.
FAKE_PYTHON3 = """#!/bin/sh
mkdir -p "$3/bin" "$3/lib"
cat > "$3/bin/pip" <<'PIP'
#!/bin/sh
venv=$(dirname "$(dirname "$0")")
echo "pip $*"; echo "cwd $(pwd)"; echo "home $HOME"
id -u > "$venv/lib/built-by"
if [ -f ./probe/setup.py ]; then echo "found ./probe"; fi
if [ -f BASE/pip-link ]; then ln BASE/victim "$venv/lib/stolen"; fi
cat BASE/pip-output >&2; exit "$(cat BASE/pip-exit)"
PIP
chmod 755 "$3/bin/pip"
"""

as_root = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                             reason="runs the scripts as root, with setpriv")


@pytest.fixture
def base() -> Iterator[Path]:
    """A directory the app user may traverse: bin/ (fakes), venvs/, release/ (root:nogroup
    0750 with requirements.txt and a local package ./probe, as UNPACK_SCRIPT leaves it)."""
    path = Path(tempfile.mkdtemp(dir="/tmp"))
    path.chmod(0o755)
    (path / "bin").mkdir(mode=0o755)
    (path / "bin" / "python3").write_text(FAKE_PYTHON3.replace("BASE", str(path)))
    (path / "bin" / "python3").chmod(0o755)
    release = path / "release"
    (release / "probe").mkdir(parents=True)
    (release / "requirements.txt").write_text("Django>=6.0\n./probe\n")
    (release / "probe" / "setup.py").write_text("")
    subprocess.run(["chown", "-R", f"root:{GROUP}", str(release)], check=True)
    subprocess.run(["chmod", "-R", "g+rX,g-w,o-rwx", str(release)], check=True)
    (path / "pip-output").write_text("")
    (path / "pip-exit").write_text("0")
    yield path
    shutil.rmtree(path)


def venv_script(base: Path, df_free: int | None = None) -> subprocess.CompletedProcess:
    if df_free is not None:
        fake_df(base, df_free)
    env = {**os.environ, "PATH": f"{base / 'bin'}:{os.environ['PATH']}"}
    return subprocess.run(["bash", "-c", releases.VENV_SCRIPT, "venv", str(base / "venvs"), "k",
                           str(base / "release"), "requirements.txt",
                           str(base / "release" / releases.PIP_LOG), USER],
                          capture_output=True, text=True, env=env, timeout=60)


def fake_df(base: Path, free: int) -> None:
    (base / "bin" / "df").write_text(f"#!/bin/sh\necho Avail; echo {free}\n")
    (base / "bin" / "df").chmod(0o755)


@as_root
def test_security_venv_is_built_by_the_app_user_then_root_owned_and_read_only(base):
    built = venv_script(base)
    assert (built.returncode, built.stdout, built.stderr) == (0, "built\n", "")
    venv = base / "venvs" / "k"
    assert (venv / "lib" / "built-by").read_text().strip() == str(pwd.getpwnam(USER).pw_uid)
    for path in [venv, *venv.rglob("*")]:
        info = path.lstat()
        assert info.st_uid == 0 and not stat.S_IMODE(info.st_mode) & 0o022, path
    assert venv.stat().st_gid == pwd.getpwnam(USER).pw_gid  # the app reads it through its group
    assert stat.S_IMODE(venv.stat().st_mode) == 0o750
    assert sorted(p.name for p in venv.iterdir()) == [".vpskit-complete", "bin", "lib"]
    log = base / "release" / releases.PIP_LOG
    assert stat.S_IMODE(log.stat().st_mode) == 0o600 and log.stat().st_uid == 0
    assert log.read_text() == (
        f"pip install --disable-pip-version-check --no-input --progress-bar off -r "
        f"{base}/release/requirements.txt\ncwd {venv}/.vpskit-build/src\n"
        f"home {venv}/.vpskit-build/home\nfound ./probe\n")
    assert (base / "release" / ".venv").resolve() == venv
    assert venv_script(base).stdout == ""  # the same requirements: reused


@as_root
def test_security_venv_pip_failure_keeps_its_output_in_a_private_log(base):
    (base / "pip-output").write_text((PIP / "django-6.log").read_text())
    (base / "pip-exit").write_text("1")
    failed = venv_script(base)
    log = base / "release" / releases.PIP_LOG
    assert failed.returncode == readers.PIP_FAILED and failed.stdout == log.read_text()
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert summarize_pip_failure(failed.stdout, (3, 11)) == DJANGO6


@as_root
def test_security_venv_with_a_hard_link_from_the_build_is_refused(base):
    victim = base / "victim"
    victim.write_text("the app user's file\n")
    os.chown(victim, pwd.getpwnam(USER).pw_uid, pwd.getpwnam(USER).pw_gid)
    (base / "pip-link").write_text("")
    refused = venv_script(base)
    assert refused.returncode == 1
    assert refused.stderr == f"the build left a hard link in {base}/venvs/k; refusing it\n"
    assert victim.stat().st_uid == pwd.getpwnam(USER).pw_uid
    assert not (base / "venvs" / "k" / ".vpskit-complete").exists()


def release_size(base: Path) -> int:
    return int(subprocess.run(["du", "-s", "-B1", str(base / "release")], capture_output=True,
                              text=True, check=True).stdout.split()[0])


@as_root
def test_security_venv_build_needs_300_mb_or_the_largest_venv_and_a_fifth(base):
    short = venv_script(base, df_free=1000)
    assert short.returncode == 28
    assert short.stdout == f"NOSPACE {300_000_000 + release_size(base)} 1000\n"
    assert not (base / "venvs" / "k").exists()
    old = base / "venvs" / "old"
    old.mkdir()
    (old / "big").write_bytes(b"x" * 1_000_000)
    largest = int(subprocess.run(["du", "-s", "-B1", str(old)], capture_output=True, text=True,
                                 check=True).stdout.split()[0])
    short = venv_script(base, df_free=1000)
    assert short.stdout == f"NOSPACE {largest * 12 // 10 + release_size(base)} 1000\n"
    assert venv_script(base, df_free=10**12).stdout == "built\n"


@as_root
def test_security_unpack_needs_the_archive_and_a_fifth_and_50_mb(tmp_path):
    (tmp_path / "bin").mkdir()
    fake_df(tmp_path, 1000)
    where = tmp_path / "releases"
    where.mkdir()
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}
    short = subprocess.run(["bash", "-c", releases.UNPACK_SCRIPT, "unpack",
                            str(where / "r1"), "root", "abc", "1000000"],
                           input=b"x" * 5_000_000, capture_output=True, env=env, timeout=60)
    assert (short.returncode, short.stdout) == (28, b"NOSPACE 51200000 1000\n")
    assert not (where / "r1").exists()


# ---- the Python side -----------------------------------------------------------------------------
RID = "20260101T120000Z-1a2b3c4"
ENV = Environment("production", (Host("192.0.2.1"),), ("shop.test",),
                  App(name="shop", repo="/tmp/x", entry="shop.wsgi:application"))


class ScriptedRemote(Remote):
    """Answers every command with ``result``; keeps the command lines."""

    def __init__(self, result: Result) -> None:
        super().__init__(SimpleNamespace(host="192.0.2.1", user="root"))
        self.result, self.lines = result, []

    def _exec(self, line, stdin, timeout, on_stdout) -> Result:
        self.lines.append(line)
        return self.result


def deploy(remote: Remote) -> pipeline.Deploy:
    source = SimpleNamespace(read=lambda name: b"Django\n", archive=lambda: b"t" * 4096,
                             sha="1a2b3c4" * 5, ref="main", short="1a2b3c4")
    return pipeline.Deploy(ENV, ENV.hosts[0], remote, source, RID, Reporter(quiet=True))


@pytest.mark.parametrize(("step", "what", "path"), [
    ("upload", "the release", "/srv/shop-production/releases"),
    ("virtualenv", "a virtualenv", "/srv/shop-production/venvs"),
])
def test_security_no_space_is_the_one_line_backups_use(step, what, path):
    remote = ScriptedRemote(Result("NOSPACE 361000000 12000000\n", "", 28))
    with pytest.raises(ToolkitError) as caught:
        getattr(deploy(remote), step)()
    assert str(caught.value) == (
        f"192.0.2.1: not enough free space for {what} in {path}: it needs about 361.0 MB, "
        f"12.0 MB are free; free some space (old backups, releases) or grow the disk, then "
        f"try again")
    assert len(remote.lines) == 1


def test_security_steps_pass_the_app_user_and_the_archive_size():
    remote = ScriptedRemote(Result("built\n", "", 0))
    d = deploy(remote)
    assert d.virtualenv()[0].startswith("built venvs/")
    assert remote.lines[0].endswith(f"{RID}/.vpskit-pip.log shop-production")
    with pytest.raises(RemoteError, match=r"`unpack .* 4096` exited 2: tar: bad"):
        deploy(ScriptedRemote(Result("", "tar: bad\n", 2))).upload()
