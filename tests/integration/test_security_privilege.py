"""Least privilege on the test VPS: the venv is built by the app user and left read-only to it,
Postgres administration opens no TCP port on the operator's machine, and ``fab restore`` replays
a dump as the site's role, so a crafted dump cannot act as the superuser."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.helpers.site import Site
from vpskit import backups, pgadmin

pytestmark = pytest.mark.vps

ROOT = "/srv/shop-production"
BACKUPS = "/var/backups/shop-production"
CHECKSUM = ("select count(*), md5(coalesce(string_agg(t::text, ',' order by t.id), '')) "
            "from catalog_item t")
PROBE_SETUP = '''import os

from setuptools import setup

with open("buildprobe_uid.py", "w") as f:  # the uid the build ran as, installed as a module
    f.write(f"UID = {os.getuid()}\\n")
setup(name="buildprobe", version="1.0", py_modules=["buildprobe_uid"])
'''
# Runs the real fab CLI with psycopg.connect held until the test deletes $HOLD: the admin
# listener stays open (as with a slow client) while the test looks at it from outside.
HELD_FAB = '''import json, os, sys, time
import psycopg
from fabric.main import program

real = psycopg.connect


def held(*args, **kwargs):
    hold = os.environ["HOLD"]
    with open(hold + ".tmp", "w") as f:
        json.dump({"pid": os.getpid(), "host": kwargs["host"], "port": kwargs["port"]}, f)
    os.rename(hold + ".tmp", hold)
    while os.path.exists(hold):
        time.sleep(0.05)
    return real(*args, **kwargs)


psycopg.connect = held
sys.argv = ["fab", *sys.argv[1:]]
sys.exit(program.run())
'''
# Appends argv[3] to the CREATE TABLE of catalog_item in a tar-format dump's TOC (argv[1]),
# writing argv[2]: pg_restore prints a TOC entry's text as it is, so psql runs the addition.
CRAFT = r'''import io, struct, sys, tarfile
src, dst, extra = sys.argv[1], sys.argv[2], sys.argv[3].encode()
marker = b"CREATE TABLE public.catalog_item ("
with tarfile.open(src) as tar:
    members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
with tarfile.open(dst, "w", format=tarfile.USTAR_FORMAT) as out:
    for member, data in members:
        if member.name == "toc.dat":
            at = data.index(marker)
            size = struct.unpack("<I", data[at - 4:at])[0]
            assert data[at - 5] == 0, "not a length-prefixed string"
            text = data[at:at + size] + b"\n" + extra + b"\n"
            data = data[:at - 5] + b"\0" + struct.pack("<I", len(text)) + text + data[at + size:]
            member.size = len(data)
        out.addfile(member, io.BytesIO(data))
'''
PWNED = "/var/lib/postgresql/vpskit-pwned"  # writable by the postgres user only


def sql(site: Site, statement: str, db: str = "shop_production") -> list[tuple]:
    remote = site.remote()
    try:
        with pgadmin.admin_connection(remote, db) as conn:
            cursor = conn.execute(statement)
            return cursor.fetchall() if cursor.description else []
    finally:
        remote.conn.close()


# ---- the virtualenv ----------------------------------------------------------------------------
def test_security_venv_is_built_by_the_app_user_and_left_read_only(site, deployed):
    requirements = (site.app / "requirements.txt").read_text()
    fresh = f"# built {time.time_ns()}\n"  # new requirements: a venv of their own, built now
    site.commit("build probe", {"requirements.txt": requirements + fresh + "./buildprobe\n",
                                "buildprobe/setup.py": PROBE_SETUP})
    try:
        out = site.fab("deploy").stdout
        assert "built venvs/" in out, out
        release = f"{ROOT}/releases/{site.live_release()}"
        venv = site.sh(f"readlink {release}/.venv").strip()
        built_by = site.sh(f"{venv}/bin/python -c 'import buildprobe_uid as b; print(b.UID)'")
        assert built_by.strip() == site.sh("id -u shop-production").strip() != "0"
        assert site.sh(f"find {venv} ! -user root | head -3") == ""
        assert site.sh(f"find {venv} ! -type l -perm /022 | head -3") == ""
        assert site.sh(f"ls -A {venv}").split().count(".vpskit-complete") == 1
        assert ".vpskit-build" not in site.sh(f"ls -A {venv}")
        tries = site.sh(f"for f in {venv}/bin/python-probe {venv}/pyvenv.cfg; do setpriv "
                        f"--reuid=shop-production --regid=shop-production --init-groups -- "
                        f"sh -c ': >> \"$1\"' - \"$f\" 2>&1 || echo refused; done", check=False)
        assert tries.count("refused") == 2, tries
        assert site.sh(f"stat -c '%a %U' {release}/.vpskit-pip.log").split() == ["600", "root"]
    finally:
        shutil.rmtree(site.app / "buildprobe")
        site.commit("no build probe", {"requirements.txt": requirements})


# ---- Postgres administration -------------------------------------------------------------------
def test_security_postgres_admin_opens_no_tcp_port_and_a_private_socket(site, provisioned):
    """A real ``fab provision`` that must create a role (staging, new), held just before psycopg
    connects: its listener is then open, and only root can reach it."""
    site.fab("remove", "--yes", env="staging")  # another module may have left staging there
    tmp = tempfile.mkdtemp(prefix="vpskit-sec-")
    os.chmod(tmp, 0o755)  # any user may look in: only the listener's own directory protects it
    hold = Path(tmp) / "hold"
    env = {**os.environ, "HOLD": str(hold), "TMPDIR": tmp}
    fab = subprocess.Popen([sys.executable, "-c", HELD_FAB, "provision", "--env", "staging"],
                           cwd=site.dir, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + 600
        while not hold.exists():
            assert fab.poll() is None, fab.stdout.read()
            assert time.monotonic() < deadline, "provision never opened an admin connection"
            time.sleep(0.1)
        held = json.loads(hold.read_text())
        listening = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
        tcp = [line for line in listening.splitlines() if f"pid={held['pid']}," in line]
        assert tcp == [], f"the fab process listens on TCP: {tcp}"
        directory = Path(held["host"])
        mode = directory.stat()
        assert stat.S_IMODE(mode.st_mode) == 0o700 and mode.st_uid == os.getuid() == 0
        sock = directory / f".s.PGSQL.{held['port']}"
        assert stat.S_ISSOCK(sock.stat().st_mode)
        other = subprocess.run(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable,
             "-c", "import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])",
             str(sock)], capture_output=True, text=True)
        assert other.returncode == 1 and "PermissionError" in other.stderr, other.stderr
        hold.unlink()
        out, _ = fab.communicate(timeout=900)
        assert fab.returncode == 0 and "role shop_staging created" in out, out
        assert not directory.exists()
    finally:
        if fab.poll() is None:
            fab.kill()
            fab.wait()
        shutil.rmtree(tmp)
        site.fab("remove", "--yes", env="staging")


# ---- restore ---------------------------------------------------------------------------------
@pytest.mark.parametrize("added", [  # RESET ROLE undoes pg_restore's SET ROLE --role gives
    "RESET ROLE; ALTER ROLE postgres SET work_mem = '7MB';",
    f"RESET ROLE; COPY (SELECT 1) TO PROGRAM 'touch {PWNED}';",
    f"\\! touch {PWNED}",  # a psql meta-command, run by the OS user running psql
], ids=["alter-role", "copy-to-program", "psql-shell"])
def test_security_a_crafted_dump_cannot_act_as_the_superuser(site, deployed, added):
    stamp = datetime.now(UTC).strftime(backups.STAMP)
    name = backups.backup_name("shop-production", stamp, "crafted")
    site.sh(f"set -e; d=$(mktemp -d); chown postgres \"$d\"\n"
            f"runuser -u postgres -- pg_dump -Ft -f \"$d/x.tar\" shop_production\n"
            f"python3 -c {shlex.quote(CRAFT)} \"$d/x.tar\" {BACKUPS}/{name} "
            f"{shlex.quote(added)}\nchmod 600 {BACKUPS}/{name}; rm -rf \"$d\"")
    before = sql(site, CHECKSUM)
    try:
        result = site.fab("restore", "--yes", "--file", name, check=False)
        if not added.startswith("\\"):  # SQL the site's role may not run: nothing restored
            assert result.returncode == 1, result.stdout + result.stderr
            assert "database unchanged" in result.stderr, result.stderr
        assert sql(site, "select count(*) from pg_db_role_setting where setrole = "
                         "'postgres'::regrole") == [(0,)]
        assert site.sh(f"ls {PWNED} 2>&1 || true").strip().endswith("No such file or directory")
        assert sql(site, CHECKSUM) == before
        status, body, _ = site.get("/health/")
        assert status == 200 and json.loads(body)["database"] == "ok"
    finally:
        site.sh(f"rm -f {BACKUPS}/{name} {PWNED}")
        sql(site, "ALTER ROLE postgres RESET ALL", "postgres")
