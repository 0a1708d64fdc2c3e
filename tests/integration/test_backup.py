"""`fab backup` / `fab restore` on the real VPS: verified dumps, byte-identical local copies,
retention, failures that change nothing, cron without a terminal, the server-side timer, and
encrypted copies in an S3 bucket restored back."""

from __future__ import annotations

import hashlib
import json
import os
import pty
import re
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from harness import testvps
from tests.helpers import machines, s3
from tests.helpers.receiver import Receiver
from tests.helpers.site import FAB, Site
from vpskit import backup_script, backups, pgadmin, ssh
from vpskit.config import Host
from vpskit.remote import Remote, Result
from vpskit.sh import offsite as offsite_s3

pytestmark = pytest.mark.vps

SERVER_DIR = "/var/backups/shop-production"
MEDIA_DIR = "/srv/shop-production/shared/media"
TIMER_OFF = "  timer: off\n"  # as the sandbox writes it
SETTINGS = "  keep_days: 7\n  media: true\n  timer: off\n"
REGULAR = re.compile(r"^shop-production-(\d{8}T\d{6}Z)\.dump$")
CHECKSUM = ("select count(*), md5(coalesce(string_agg(t::text, ',' order by t.id), '')) "
            "from catalog_item t")
FAKE_PG_DUMP = "/usr/local/bin/pg_dump"


@pytest.fixture(scope="module", autouse=True)
def settings(site, deployed) -> Iterator[None]:
    """Keep 7 days, archive media; the inventory is put back afterwards."""
    with inventory_changed(site, TIMER_OFF, SETTINGS):
        yield


def inventory_changed(site: Site, old: str, new: str) -> AbstractContextManager[None]:
    """The inventory with ``old`` (which it holds) replaced by ``new`` for the block."""
    def edit(text: str) -> str:
        assert old in text, (old, text)
        return text.replace(old, new)
    return inventory_edited(site, edit)


def inventory_plus(site: Site, text: str) -> AbstractContextManager[None]:
    return inventory_edited(site, lambda original: original + text)


@contextmanager
def inventory_edited(site: Site, edit: Callable[[str], str]) -> Iterator[None]:
    inventory = site.dir / "inventory.yml"
    original = inventory.read_text()
    inventory.write_text(edit(original))
    try:
        yield
    finally:
        inventory.write_text(original)


def sql(site: Site, *statements: str) -> list[tuple]:
    """Run statements in the app database as the superuser; the last one's rows."""
    remote = site.remote()
    try:
        with pgadmin.admin_connection(remote, "shop_production") as conn:
            for statement in statements[:-1]:
                conn.execute(statement)
            cursor = conn.execute(statements[-1])
            return cursor.fetchall() if cursor.description else []
    finally:
        remote.conn.close()


def checksum(site: Site) -> tuple:
    return sql(site, CHECKSUM)[0]


def server_files(site: Site) -> dict[str, tuple[str, str, int]]:
    """``{name: (mode, owner, size)}`` of everything in the backup directory, hidden included."""
    out = site.sh(f"find {SERVER_DIR} -mindepth 1 -maxdepth 1 -printf '%f %m %u %s\\n'")
    return {n: (m, u, int(s)) for n, m, u, s in (line.split() for line in out.splitlines())}


def local_dir(site: Site) -> Path:
    return site.dir / "backups"


def local_files(site: Site) -> dict[str, int]:
    folder = local_dir(site)
    return {p.name: p.stat().st_size for p in folder.iterdir()} if folder.exists() else {}


def old_name(days: float, suffix: str = backups.DUMP, site_name: str = "shop-production") -> str:
    stamp = (datetime.now(UTC) - timedelta(days=days)).strftime(backups.STAMP)
    return backups.backup_name(site_name, stamp, suffix=suffix)


def plant(site: Site, names: list[str]) -> None:
    """Put small files with these names on both sides."""
    site.sh(f"cd {SERVER_DIR} && for n in {' '.join(names)}; do head -c 64 /dev/urandom > $n; "
            f"chmod 600 $n; done")
    local_dir(site).mkdir(mode=0o700, exist_ok=True)
    for name in names:
        (local_dir(site) / name).write_bytes(os.urandom(64))


def new_regular_dump(before: dict, after: dict) -> str:
    (name,) = [n for n in set(after) - set(before) if REGULAR.match(n)]
    return name


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_backup_is_quiet_verified_private_and_copied_byte_for_byte(site):
    site.sh(f"echo 'an upload' > {MEDIA_DIR}/hello.txt; chown shop-production: "
            f"{MEDIA_DIR}/hello.txt")
    before = server_files(site)
    result = site.fab("backup")
    assert (result.stdout, result.stderr) == ("", "")
    after = server_files(site)
    dump = new_regular_dump(before, after)
    media = dump.replace(".dump", "-media.tar.gz")
    assert set(after) - set(before) == {dump, media}
    assert site.sh(f"stat -c '%a %U' {SERVER_DIR}").split() == ["700", "root"]
    for name in (dump, media):
        assert after[name][:2] == ("600", "root")
        server_sha = site.sh(f"sha256sum {SERVER_DIR}/{name}").split()[0]
        local = local_dir(site) / name
        assert hashlib.sha256(local.read_bytes()).hexdigest() == server_sha
        assert oct(local.stat().st_mode & 0o777) == "0o600"
    assert oct(local_dir(site).stat().st_mode & 0o777) == "0o700"
    assert "catalog_item" in site.sh(f"pg_restore --list {SERVER_DIR}/{dump}")
    assert "media/hello.txt" in site.sh(f"tar -tzf {SERVER_DIR}/{media}").split()
    assert not [n for n in {*after, *local_files(site)} if n.startswith(".")]


def test_verbose_backup_reports_each_step(site):
    out = site.fab("backup", "--verbose").stdout
    for step in ("dump", "media", "copy", "prune"):
        assert re.search(rf"^  {step}\s+(changed|unchanged)\s+[\d.]+s", out, re.M), out
    assert "sha256 verified" in out and re.search(r"backed up shop-production in [\d.]+s", out)


def test_restore_brings_back_exactly_the_backed_up_data(site):
    sql(site, "insert into catalog_item (name, created, image) select 'known ' || g, "
              "now() - g * interval '1 minute', '' from generate_series(1, 500) g")
    expected = checksum(site)
    before = server_files(site)
    site.fab("backup")
    dump = new_regular_dump(before, server_files(site))
    sql(site, "delete from catalog_item where id % 3 = 0",
        "update catalog_item set name = upper(name)",
        "set role shop_production", "create table catalog_later (x int)", "select 1")
    assert checksum(site) != expected
    before = server_files(site)
    result = site.fab("restore", "--yes")
    assert checksum(site) == expected
    assert sql(site, "select to_regclass('public.catalog_later')") == [(None,)]
    assert sql(site, "select tableowner from pg_tables where tablename = 'catalog_item'") == [
        ("shop_production",)]
    (safety,) = set(server_files(site)) - set(before)
    assert safety.endswith("-prerestore.dump") and f"{SERVER_DIR}/{safety}" in result.stdout
    assert f"restored shop-production from {dump}" in result.stdout
    assert re.search(r"^  start app\s+changed .* healthy", result.stdout, re.M), result.stdout
    assert site.sh("systemctl is-active shop-production-worker@1.service").strip() == "active"
    status, body, _ = site.get("/health/")
    assert status == 200 and json.loads(body)["database"] == "ok"


def test_restore_from_a_local_copy_uploads_it(site):
    before = server_files(site)
    site.fab("backup")
    dump = new_regular_dump(before, server_files(site))
    expected = checksum(site)
    site.sh(f"rm {SERVER_DIR}/{dump}")
    sql(site, "delete from catalog_item")
    result = site.fab("restore", "--yes", "--file", f"backups/{dump}")
    assert re.search(rf"^  upload\s+changed .*backups/{dump} -> {SERVER_DIR}/{dump}",
                     result.stdout, re.M), result.stdout
    assert checksum(site) == expected
    server_sha = site.sh(f"sha256sum {SERVER_DIR}/{dump}").split()[0]
    assert server_sha == hashlib.sha256((local_dir(site) / dump).read_bytes()).hexdigest()


def test_damaged_local_copy_is_refused_before_the_app_stops(site, tmp_path):
    good = next(p for p in sorted(local_dir(site).iterdir()) if REGULAR.match(p.name))
    damaged = tmp_path / good.name.replace("Z.dump", "Z-damaged.dump")
    damaged.write_bytes(good.read_bytes()[:-200])
    before, data = server_files(site), checksum(site)
    pids = site.sh("systemctl show -p MainPID --value 'shop-production-*@*.service'")
    line = one_error_line(site.fab("restore", "--yes", "--file", str(damaged), check=False))
    assert line.startswith("error: upload: ") and line.endswith("; nothing changed"), line
    assert server_files(site) == before and checksum(site) == data
    assert site.sh("systemctl show -p MainPID --value 'shop-production-*@*.service'") == pids


def test_restore_without_a_terminal_needs_yes_and_changes_nothing(site):
    before = server_files(site)
    line = one_error_line(site.fab("restore", check=False))
    assert "confirm it on a terminal, or pass --yes" in line
    assert server_files(site) == before


def test_restore_on_a_terminal_asks_and_a_wrong_answer_changes_nothing(site):
    before, data = server_files(site), checksum(site)
    master, terminal = pty.openpty()
    try:
        os.write(master, b"staging\n")
        result = subprocess.run([str(FAB), "restore", "--env", "production"],
                                cwd=site.dir, stdin=terminal, capture_output=True, text=True,
                                timeout=120)
    finally:
        os.close(master)
        os.close(terminal)
    assert "Type the environment name (production) to go on:" in result.stdout
    assert "restore cancelled; nothing changed" in one_error_line(result)
    assert server_files(site) == before and checksum(site) == data


def test_list_shows_both_sides_with_sizes_and_ages(site):
    out = site.fab("backup", "--list").stdout
    server_name = next(n for n in server_files(site) if REGULAR.match(n))
    local_name = next(n for n in local_files(site) if REGULAR.match(n))
    assert re.search(rf"^10\.77\.\d+\.2:{SERVER_DIR}: \d+ backup\(s\), [\d.]+ MB \(keep 7 "
                     rf"days\)$", out, re.M), out
    assert re.search(rf"^{re.escape(str(local_dir(site)))}: \d+ backup\(s\)", out, re.M), out
    for name in (server_name, local_name):
        assert re.search(rf"^  {name}\s+[\d.]+ MB\s+\d+[smhd]", out, re.M), out


def test_retention_removes_only_what_is_older_than_keep_days(site):
    doomed = [old_name(30), old_name(10), old_name(10, backup_script.MEDIA)]
    kept = [old_name(3), old_name(3, backup_script.MEDIA), old_name(40, site_name="shop-staging")]
    plant(site, doomed + kept)
    site.sh(f"touch {SERVER_DIR}/notes.txt")
    site.fab("backup")
    server, local = server_files(site), local_files(site)
    for name in doomed:
        assert name not in server and name not in local
    for name in kept:
        assert name in server and name in local
    assert "notes.txt" in server


def test_retention_keeps_the_newest_backup_whatever_its_age(site):
    """The program the server runs, on the server's own Python, over only old backups."""
    names = [old_name(400), old_name(300), old_name(200), old_name(250, backup_script.MEDIA)]
    scratch = "/var/tmp/vpskit-prune-test"
    site.sh(f"rm -rf {scratch}; mkdir {scratch}; cd {scratch}; touch {' '.join(names)}")
    remote = site.remote()
    try:
        gone = remote.run(["python3", "-c", backup_script.PRUNE_PROGRAM, scratch, "shop-production",
                           "7"]).stdout.split()
    finally:
        remote.conn.close()
    left = site.sh(f"ls {scratch}; rm -rf {scratch}").split()
    assert gone == names[:2] and sorted(left) == sorted(names[2:])


@pytest.mark.parametrize("breakage", ["postgres stopped", "pg_dump dies midway"])
def test_failed_dump_exits_nonzero_leaves_no_partial_and_prunes_nothing(site, breakage):
    old = [old_name(30), old_name(30, backup_script.MEDIA)]
    plant(site, old)
    if breakage == "postgres stopped":
        break_it, fix_it = "systemctl stop postgresql", "systemctl start postgresql"
    else:  # real output first, then a failure, like a dump cut off by a full disk
        break_it = (f"printf '#!/bin/sh\\n/usr/bin/pg_dump \"$@\" | head -c 3000\\nexit 1\\n' "
                    f"> {FAKE_PG_DUMP}; chmod 755 {FAKE_PG_DUMP}")
        fix_it = f"rm -f {FAKE_PG_DUMP}"
    before_server, before_local = server_files(site), local_files(site)
    site.sh(break_it)
    try:
        result = site.fab("backup", check=False)
    finally:
        site.sh(fix_it)
    line = one_error_line(result)
    assert line.startswith("error: dump: ") and "`pg_dump shop_production` exited 1" in line
    assert result.stdout == ""
    assert server_files(site) == before_server and local_files(site) == before_local
    assert all(name in before_server and name in before_local for name in old)


def test_failed_copy_prunes_nothing(site):
    old = [old_name(30)]
    plant(site, old)
    folder = local_dir(site)
    aside = folder.with_name("backups.aside")
    folder.rename(aside)
    folder.write_text("a file where the backup directory should be\n")
    try:
        result = site.fab("backup", check=False)
    finally:
        folder.unlink()
        aside.rename(folder)
    line = one_error_line(result)
    assert line.startswith(f"error: copy: cannot write {folder}/shop-production-"), line
    assert old[0] in server_files(site) and old[0] in local_files(site)


def test_cron_like_run_without_terminal_or_environment(site, tmp_path):
    """The vpskit command from any directory, as cron runs it: no terminal, no environment."""
    before = local_files(site)
    result = subprocess.run(
        ["env", "-i", "PATH=/usr/bin:/bin", f"HOME={tmp_path}", str(FAB.with_name("vpskit")),
         "backup", "--env", "production", "--inventory", str(site.dir / "inventory.yml")],
        cwd=tmp_path, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert new_regular_dump(before, local_files(site))
    assert not (tmp_path / "backups").exists()


def test_nightly_timer_by_default_runs_a_backup_and_is_removed(site):
    """Without ``backups.timer`` the db host backs up every night by itself; ``off`` removes
    the timer."""
    timer, service = "shop-production-backup.timer", "shop-production-backup.service"
    with inventory_changed(site, TIMER_OFF, ""):
        out = site.fab("provision").stdout
        assert re.search(r"^  backups\s+changed .*timer enabled \(\*-\*-\* 03:00:00\)", out,
                         re.M), out
        assert site.sh(f"systemctl is-enabled {timer}; systemctl is-active {timer}").split() == [
            "enabled", "active"]
        site.sh(f"systemd-analyze verify {service} {timer}")
        plant(site, [old_name(30)])
        before = server_files(site)
        site.sh(f"systemctl start {service}")
        after = server_files(site)
        dump = new_regular_dump(before, after)
        assert dump.replace(".dump", "-media.tar.gz") in after
        assert old_name(30) not in after
        assert "catalog_item" in site.sh(f"pg_restore --list {SERVER_DIR}/{dump}")
        journal = site.sh(f"journalctl -u {service} --no-pager -o cat")
        checked = re.search(rf"^restore check: {dump} restored (\d+) tables \(the dump holds "
                            rf"(\d+)\)$", journal, re.M)
        assert checked and int(checked[1]) == int(checked[2]) > 1, journal
        assert "restorecheck" not in site.sh("runuser -u postgres -- psql -XAtc 'SELECT datname "
                                             "FROM pg_database'")  # the scratch one is gone
        assert re.search(r"^  backups\s+unchanged", site.fab("provision").stdout, re.M)
        check_restore_failure_fails_the_unit(site, service)
    out = site.fab("provision").stdout
    assert re.search(r"^  backups\s+changed .*removed", out, re.M), out
    assert site.sh("ls /usr/local/lib/vpskit/ /etc/systemd/system/ | grep -c backup || true"
                   ).strip() == "0"
    assert site.sh(f"systemctl is-active {timer} || true").strip() == "inactive"


def check_restore_failure_fails_the_unit(site: Site, service: str) -> None:
    """The nightly unit's restore check with other dumps in place of the site's: a database
    with no table (a site never deployed) passes; a dump the site's role cannot restore (a
    publication of all tables, which needs a superuser) fails the unit, which the watchdog's
    failed-unit check tells of."""
    for source, ends, said in (("empty", "inactive", "restored 0 tables (the dump holds 0)"),
                               ("unrestorable", "failed", "did not restore")):
        site.sh(f"runuser -u postgres -- createdb vpskit_{source}")
        if source == "unrestorable":
            site.sh("runuser -u postgres -- psql -Xq -d vpskit_unrestorable -c 'CREATE TABLE t "
                    "(x int); CREATE PUBLICATION everything FOR ALL TABLES' 2>&1")
        site.sh(f"printf '#!/bin/sh\\nexec /usr/bin/pg_dump --format=custom vpskit_{source}\\n' "
                f"> {FAKE_PG_DUMP}; chmod 755 {FAKE_PG_DUMP}")
        before = server_files(site)
        try:
            site.sh(f"systemctl start {service}", check=False)
        finally:
            site.sh(f"rm -f {FAKE_PG_DUMP}; runuser -u postgres -- dropdb vpskit_{source}")
        dump = new_regular_dump(before, server_files(site))
        site.sh(f"rm -f {SERVER_DIR}/{dump} {SERVER_DIR}/{dump.replace('.dump', '-media.tar.gz')}"
                )  # not a backup of the site
        assert site.sh(f"systemctl show -P ActiveState {service}").strip() == ends
        run = site.sh(f"systemctl show -P InvocationID {service}").strip()
        told = site.sh(f"journalctl _SYSTEMD_INVOCATION_ID={run} --no-pager -o cat")
        assert f"restore check: {dump} {said}" in told, told
    site.sh(f"systemctl reset-failed {service}")


@dataclass(frozen=True)
class Bucket:
    """The S3 server, and what an inventory and its secrets file need to use it."""

    server: s3.S3
    inventory: str  # the ``offsite:`` block (and its secrets' names)
    secrets: str  # lines for ``.env.production``


def age_keys(tmp_path: Path) -> tuple[str, str]:
    """A new age identity (the operator's, to restore) and its public key."""
    subprocess.run(["age-keygen", "-o", str(tmp_path / "age.key")], check=True,
                   capture_output=True)
    identity = (tmp_path / "age.key").read_text().split("\n")[-2]
    recipient = subprocess.run(["age-keygen", "-y", str(tmp_path / "age.key")], check=True,
                               capture_output=True, text=True).stdout.strip()
    return identity, recipient


@pytest.fixture
def bucket(site, vps, tmp_path) -> Iterator[Bucket]:
    """Off-site copies to an IAM-enforcing S3 server on the test host: the server gets the
    writer's credentials (PutObject alone), the operator the admin's and the age identity."""
    identity, recipient = age_keys(tmp_path)
    secrets = site.dir / ".env.production"
    saved = secrets.read_text()
    with s3.server(vps.host_address) as server:
        found = Bucket(server, textwrap.dedent(f"""\
            optional_secrets: [OFFSITE_WRITE_KEY, OFFSITE_ADMIN_KEY, OFFSITE_IDENTITY]
            offsite:
              endpoint: {server.endpoint}
              bucket: {s3.BUCKET}
              recipient: {recipient}
              write_key: OFFSITE_WRITE_KEY
              admin_key: OFFSITE_ADMIN_KEY
              identity: OFFSITE_IDENTITY
            """), f"OFFSITE_WRITE_KEY={':'.join(server.writer)}\n"
                  f"OFFSITE_ADMIN_KEY={':'.join(server.admin)}\n"
                  f"OFFSITE_IDENTITY={identity}\n")
        with inventory_plus(site, found.inventory):
            secrets.write_text(saved + found.secrets)
            try:
                yield found
            finally:
                secrets.write_text(saved)
    out = site.fab("provision").stdout
    assert re.search(r"^  offsite\s+changed\s.*removed /etc/vpskit/offsite/", out, re.M), out


def stored(server: s3.S3) -> dict[str, bytes]:
    """Every object in the bucket, read with the admin's credentials."""
    listing = offsite_s3.request(server.bucket, *server.admin, "GET", query="list-type=2")
    keys = re.findall(rb"<Key>([^<]+)</Key>", listing)
    return {k.decode(): offsite_s3.request(server.bucket, *server.admin, "GET", k.decode())
            for k in keys}


def test_offsite_copies_are_encrypted_write_only_and_restore_onto_lost_data(site, bucket):
    """Each backup (dump and media) leaves the server encrypted, sent with credentials that
    may only write; the operator lists and prunes the copies and restores one after the
    data is gone, table checksums equal; then onto a fresh VPS, as after losing the server."""
    server = bucket.server
    out = site.fab("provision").stdout
    assert re.search(r"^  offsite\s+changed\s+\S+\s+/etc/vpskit/offsite/shop-production.json "
                     r"\(created\)", out, re.M), out
    config = site.sh("stat -c '%U %a' /etc/vpskit/offsite/shop-production.json; "
                     "cat /etc/vpskit/offsite/shop-production.json")
    assert config.startswith("root 600\n") and server.writer[1] in config
    assert server.admin[1] not in config and "AGE-SECRET-KEY" not in config
    assert server.writer[1] not in site.sh("cat /srv/shop-production/shared/.env")
    old = old_name(200)
    offsite_s3.request(server.bucket, *server.admin, "PUT", f"shop-production/{old}.age",
                       body=b"an old copy")
    sql(site, "insert into catalog_item (name, created, image) select 'offsite ' || g, now(), "
              "'' from generate_series(1, 50) g")
    before = checksum(site)
    site.fab("backup")
    assert site.sh("cat /var/lib/vpskit/offsite/shop-production.last").startswith(
        f"{SERVER_DIR}/shop-production-")  # the watchdog's measure of the newest copy
    copies = stored(server)
    names = sorted(k.removeprefix("shop-production/") for k in copies)
    assert len(names) == 2 and f"{old}.age" not in names, names  # pruned: 200 > 90 days
    dump = names[1].removesuffix(".age")  # the media archive sorts first
    assert dump.endswith(".dump") and names[0] == dump.replace(".dump", "-media.tar.gz.age")
    for body in copies.values():
        assert body.startswith(b"age-encryption.org/v1\n")
        assert b"PGDMP" not in body and b"catalog_item" not in body  # no dump, no SQL
    for method, key, query in (("GET", next(iter(copies)), ""), ("DELETE", next(iter(copies)),
                                                                  ""), ("GET", "", "list-type=2")):
        with pytest.raises(OSError, match="HTTP 403 AccessDenied"):  # what the server holds
            offsite_s3.request(server.bucket, *server.writer, method, key, query=query)
    listing = site.fab("backup", "--list").stdout
    assert re.search(r"^off-site offsite/shop-production/: 2 backup\(s\).*keep 90 days", listing,
                     re.M), listing
    sql(site, "delete from catalog_item")  # the data is lost
    assert checksum(site) != before
    result = site.fab("restore", "--from", "offsite", "--yes")
    assert f"fetched {dump} from offsite/shop-production/ (decrypted here)" in result.stdout
    assert f"restored shop-production from {dump}" in result.stdout
    assert checksum(site) == before
    restore_onto_a_fresh_vps(site, bucket, dump, before)


def restore_onto_a_fresh_vps(site: Site, bucket: Bucket, dump: str, expected: tuple) -> None:
    """The server is gone: a fresh VPS, provisioned from the same inventory (its address
    changed) and secrets, gets the data back from the off-site copy alone. Its watchdog's
    timer pings a heartbeat receiver every minute, which hears nothing once the VPS stops."""
    index = machines.INDEX + 1
    receiver = None
    with machines.booted(f"vpskit-f{index}", index, (f"fresh{index}.test",)) as fresh, \
            machines.pebble_for(fresh) as pebble:
        receiver = Receiver(fresh.host_address)
        new = Site.create(site.dir.parent / f"fresh{index}", fresh, pebble)
        with (new.dir / "inventory.yml").open("a") as inventory:
            inventory.write(bucket.inventory.replace("optional_secrets: [",
                                                     "optional_secrets: [HEARTBEAT_URL, ")
                            + "alerts:\n  heartbeat: HEARTBEAT_URL\n  every: 1\n")
        with (new.dir / ".env.production").open("a") as secrets:
            secrets.write(bucket.secrets + f"HEARTBEAT_URL={receiver.url}/ping\n")
        new.fab("provision")
        pinged_by = time.monotonic() + 90  # the timer's first run: a minute after provision
        result = new.fab("restore", "--from", "offsite", "--yes")
        assert f"restored shop-production from {dump}" in result.stdout
        assert checksum(new) == expected
        while not receiver.heartbeats and time.monotonic() < pinged_by:
            time.sleep(1)
        assert receiver.heartbeats >= 1  # from the timer: nothing else started the watchdog
    try:
        beats = receiver.heartbeats
        time.sleep(75)  # the VPS is gone: a minute's ping (AccuracySec 15 s) would have come
        assert receiver.heartbeats == beats
    finally:
        receiver.close()


SFTP_DIR = "/srv/offsite/"


def as_root(vps: testvps.Vps, script: str, check: bool = True) -> Result:
    """Run ``script`` as root on a VPS outside the inventory."""
    remote = Remote(ssh.connect(Host(vps.address, user="root", key=vps.key_path,
                                     known_hosts=vps.known_hosts_path)))
    try:
        return remote.script(script, check=check)
    finally:
        remote.close()


@pytest.fixture
def sftp_target(site) -> Iterator[testvps.Vps]:
    """A second VPS as the SFTP target: a user ``keeper`` the operator logs in to with its key
    (as a storage host's owner sets it up), and a directory of its for the copies."""
    index = machines.INDEX + 2
    with machines.booted(f"vpskit-s{index}", index, ()) as target:
        as_root(target, f"useradd --create-home --shell /bin/bash keeper && "
                        f"install -d -o keeper -g keeper -m 700 /home/keeper/.ssh {SFTP_DIR} && "
                        f"install -o keeper -g keeper -m 600 /root/.ssh/authorized_keys "
                        f"/home/keeper/.ssh/authorized_keys")
        yield target


def test_offsite_copies_on_an_sftp_target_are_write_only_and_restore(site, sftp_target,
                                                                      tmp_path):
    """Provision makes the db host a key of its own and authorizes it on the target to write
    new files only; each backup lands there encrypted, under a name the server cannot guess
    back; its key can neither list, read nor delete; the operator lists, prunes and restores
    over its own login."""
    identity, recipient = age_keys(tmp_path)
    endpoint = f"sftp://keeper@{sftp_target.address}{SFTP_DIR}"
    secrets = site.dir / ".env.production"
    saved = secrets.read_text()
    with inventory_plus(site, textwrap.dedent(f"""\
            optional_secrets: [OFFSITE_IDENTITY]
            offsite:
              endpoint: {endpoint}
              key: {sftp_target.key_path}
              known_hosts: {sftp_target.known_hosts_path}
              recipient: {recipient}
              identity: OFFSITE_IDENTITY
            """)):
        secrets.write_text(saved + f"OFFSITE_IDENTITY={identity}\n")
        try:
            out = site.fab("provision").stdout
            assert f"keeper@{sftp_target.address}: the db host's key may write new copies " \
                   f"(only)" in out, out
            assert re.search(r"^  offsite\s+unchanged", site.fab("provision").stdout, re.M)
            sql(site, "insert into catalog_item (name, created, image) select 'sftp ' || g, "
                      "now(), '' from generate_series(1, 30) g")
            before = checksum(site)
            old = f"{SFTP_DIR}shop-production/{old_name(200)}.0123456789abcdef.age"
            as_root(sftp_target, f"install -d -o keeper -g keeper {SFTP_DIR}shop-production && "
                                 f"install -o keeper -g keeper /dev/null {old}")
            site.fab("backup")  # sends two copies, prunes the one past keep_days (90)
            stored = as_root(sftp_target, f"cd {SFTP_DIR}shop-production && ls").stdout.split()
            assert len(stored) == 2 and all(re.fullmatch(
                r"shop-production-\d{8}T\d{6}Z(-media\.tar\.gz|\.dump)\.[0-9a-f]{16}\.age", n)
                for n in stored), stored
            for name in stored:  # no dump, no SQL in the stored bytes
                found = as_root(sftp_target, f"cd {SFTP_DIR}shop-production && head -c 22 {name}; "
                                             f"grep -Eac 'PGDMP|catalog_item' {name} || true")
                assert found.stdout == "age-encryption.org/v1\n0\n", found.stdout
            check_the_servers_key_only_writes(site, sftp_target, stored[0])
            listing = site.fab("backup", "--list").stdout
            assert f"off-site keeper@{sftp_target.address}:{SFTP_DIR}shop-production/: " \
                   f"2 backup(s)" in listing, listing
            sql(site, "delete from catalog_item")
            result = site.fab("restore", "--from", "offsite", "--yes")
            assert f"restored shop-production from {stored[1].rsplit('.', 2)[0]}" in result.stdout
            assert checksum(site) == before
        finally:
            secrets.write_text(saved)
    out = site.fab("provision").stdout
    assert re.search(r"^  offsite\s+changed\s.*removed /etc/vpskit/offsite/", out, re.M), out


def check_the_servers_key_only_writes(site: Site, target: testvps.Vps, stored: str) -> None:
    """What a server broken into can do on the target with its key: write a new file, and
    nothing else (no listing, reading, removing or renaming one)."""
    def sftp(command: str) -> str:
        return site.sh(f"printf '%s\\n' '{command}' | sftp -b - -i "
                       f"/etc/vpskit/offsite/shop-production.sftp-key -o BatchMode=yes -o "
                       f"UserKnownHostsFile=/etc/vpskit/offsite/shop-production.known_hosts "
                       f"keeper@{target.address} 2>&1; echo rc=$?")
    path = f"{SFTP_DIR}shop-production/{stored}"
    for command in (f"ls {SFTP_DIR}shop-production", f"get {path} /tmp/stolen", f"rm {path}",
                    f"rename {path} {path}.x", f"chmod 600 {path}"):
        assert sftp(command).endswith("rc=1\n"), command
    assert sftp(f"put /etc/hostname {SFTP_DIR}shop-production/new").endswith("rc=0\n")
    names = as_root(target, f"ls {SFTP_DIR}shop-production").stdout.split()
    assert stored in names and "new" in names
    as_root(target, f"rm {SFTP_DIR}shop-production/new")
