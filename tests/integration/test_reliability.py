"""A server that restarts by itself brings every site back with no operator command: after
``systemctl reboot`` and after a power cut (every process of the VPS killed at once), both
sites on the VPS answer 200 within 30 s of sshd answering, the worker runs, and each site's
live release is the one enabled at boot."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import socket
import ssl
import subprocess
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest

from harness import testvps
from harness.devtasks.load import Load
from tests.helpers import netcut
from tests.helpers.site import Site
from vpskit import serverop
from vpskit.backups import STAMP
from vpskit.deploy.lock import deploy_lock
from vpskit.errors import RemoteError

pytestmark = pytest.mark.vps

BACK_WITHIN = 30  # seconds after sshd answers again


@pytest.fixture(scope="module")
def two_sites(site, deployed, vps) -> Site:
    """Production (with its Celery worker) and staging deployed side by side on the VPS."""
    site.fab("provision", env="staging")
    site.fab("deploy", env="staging")
    return site


def assert_everything_back(site: Site, vps) -> None:
    """Both sites 200 within BACK_WITHIN s, the worker active, the live units enabled."""
    deadline = time.monotonic() + BACK_WITHIN
    domains = {"production": site.domain, "staging": vps.domains[2]}
    waiting = dict(domains)
    while waiting and time.monotonic() < deadline:
        waiting = {env: d for env, d in waiting.items() if _status(site, d) != 200}
        time.sleep(0.5)
    assert not waiting, f"no 200 within {BACK_WITHIN} s from {sorted(waiting)}"
    for env in domains:
        unit = f"shop-{env}-web@{site.live_release(env)}.service"
        assert site.sh(f"systemctl is-enabled {unit}").strip() == "enabled"
        enabled = site.sh("ls /etc/systemd/system/multi-user.target.wants/").split()
        assert [u for u in enabled if u.startswith(f"shop-{env}-web@")] == [unit]
    assert site.sh("systemctl is-active shop-production-worker@1").strip() == "active"


def _status(site: Site, domain: str) -> int:
    try:
        return site.get("/health/", domain=domain, timeout=3)[0]
    except OSError:
        return 0


def test_reboot_brings_both_sites_and_the_worker_back(two_sites, vps):
    """Staging is in maintenance mode across the reboot: it still is after it."""
    marker = "/run/vpskit-test-before-reboot"  # /run is a fresh tmpfs after a reboot
    two_sites.fab("maintenance", "on", env="staging")
    try:
        two_sites.sh(f"touch {marker} && systemd-run --on-active=1 --quiet systemctl reboot")
        deadline = time.monotonic() + 120
        while not _rebooted(two_sites, marker):
            assert time.monotonic() < deadline, "the VPS did not reboot and come back within 120 s"
            time.sleep(0.5)
        assert_everything_back(two_sites, vps)  # the health path is let through
        assert two_sites.get("/", domain=vps.domains[2])[0] == 503
    finally:
        two_sites.fab("maintenance", "off", env="staging")
    assert two_sites.get("/", domain=vps.domains[2])[0] == 200


def _rebooted(site: Site, marker: str) -> bool:
    """Whether sshd answers again on a boot without the marker."""
    try:
        return site.sh(f"test -e {marker} || echo rebooted", check=False).strip() == "rebooted"
    except Exception:  # refused or reset while it reboots
        return False


def test_power_cut_brings_both_sites_and_the_worker_back(two_sites, vps):
    testvps.power_cut(vps)
    assert_everything_back(two_sites, vps)


def test_disk_too_full_for_the_dump_fails_the_deploy_before_it(site, deployed):
    """A 64 KiB filesystem over the site's backup directory: the deploy stops at the dump with
    one line naming what it needs and what is free; the live release keeps serving."""
    backup_dir = "/var/backups/shop-production"
    live = site.live_release()
    site.commit("a release that never ships", {"VERSION": "disk-full\n"})
    site.sh(f"mount -t tmpfs -o size=64k,mode=700 tmpfs {backup_dir}")
    try:
        result = site.fab("deploy", check=False)
    finally:
        site.sh(f"umount {backup_dir}")
    assert result.returncode == 1
    error = result.stderr.strip().splitlines()
    assert len(error) == 1 and "not enough free space for a dump" in error[0], result.stderr
    assert "MB are free" in error[0]
    assert re.search(r"^\s+backup\s+failed", result.stdout, re.M), result.stdout
    assert not re.search(r"^\s+release\s", result.stdout, re.M)  # no migration ran
    assert site.live_release() == live
    assert site.get("/health/")[0] == 200


def test_disk_predeploy_dumps_are_pruned_on_every_deploy(site, deployed):
    """Dumps taken before deploys and restores beyond the newest three go on the next deploy;
    nightly and pre-remove dumps stay."""
    backup_dir = "/var/backups/shop-production"
    old = [f"shop-production-2020010{d}T000000Z-predeploy-old{d}.dump" for d in range(1, 6)]
    kept = "shop-production-20200101T000000Z.dump"
    site.sh(f"cd {backup_dir} && touch {' '.join([*old, kept])} && chmod 600 *.dump")
    site.commit("a release after old dumps", {"VERSION": "prune\n"})
    out = site.fab("deploy").stdout
    assert "pruned" in out
    names = site.sh(f"ls {backup_dir}").split()
    automatic = [n for n in names if "-predeploy-" in n or n.endswith("-prerestore.dump")]
    assert len(automatic) == 3 and kept in names
    assert not set(old[:4]) & set(names)  # at least two newer ones exist: this deploy's, the first's


def test_a_backup_during_a_deploy_waits_for_its_lock(site, deployed):
    """``fab backup`` started while a deploy runs waits for the site's lock: its dump is stamped
    after the deploy ended. A deploy started while a backup holds the lock is refused, naming
    the backup."""
    site.commit("a release to back up beside", {"VERSION": "beside-a-backup\n"})
    argv = site.fab_argv(["deploy"])
    with subprocess.Popen(argv, cwd=site.dir, stdout=subprocess.PIPE, text=True,
                          stdin=subprocess.DEVNULL) as deploy:
        assert "deploy shop-production" in deploy.stdout.readline()  # it holds the lock
        backup = site.fab("backup", "--verbose")
        deployed_out = deploy.stdout.read()
        assert deploy.wait(timeout=60) == 0
    release = site.live_release()  # <UTC start>-<sha>
    took = float(re.search(r"^deployed .* in ([\d.]+)s", deployed_out, re.M)[1])
    ended = datetime.strptime(release.split("-")[0], STAMP) + timedelta(seconds=took - 1)
    dumped = re.search(r"shop-production-(\d{8}T\d{6}Z)\.dump", backup.stdout)[1]
    assert datetime.strptime(dumped, STAMP) >= ended, (dumped, release, took)
    with contextlib.closing(site.remote()) as remote, deploy_lock(remote, "shop-production", "backup"):
        refused = site.fab("deploy", check=False)
    assert refused.returncode == 1, refused.stdout
    assert "locked by" in refused.stderr and "backup" in refused.stderr


DEPLOY_STEPS = ("inspect", "upload", "virtualenv", "backup", "release", "start", "health",
                "switch", "public", "stop old", "processes", "prune")


def deploy_killed_after(site: Site, step: str, sig: signal.Signals) -> tuple[int, str]:
    """``fab deploy`` of a new commit, sent ``sig`` as soon as it prints ``step``'s line; its
    exit code and output."""
    site.commit(f"{sig.name} after {step}",
                {"VERSION": f"killed-{sig.name}-{step.replace(' ', '-')}\n"})
    return killed_after(site, ["deploy"], step, sig)


def killed_after(site: Site, task: list[str], step: str, sig: signal.Signals
                 ) -> tuple[int, str]:
    """``fab TASK`` sent ``sig`` as soon as it prints ``step``'s line; its exit code and
    output."""
    with site.fab_until(*task, seen=step_line(step)) as (running, seen):
        running.send_signal(sig)
        seen += running.stdout.readlines()
        return running.wait(timeout=120), "".join(seen)


def step_line(step: str) -> Callable[[str], bool]:
    return lambda line: line.startswith(f"  {step} ")


@contextmanager
def link_dead_after(site: Site, vps: testvps.Vps, task: list[str], step: str) -> Iterator[None]:
    """``fab TASK`` run until it prints ``step``'s line, then its SSH link cut (every packet
    dropped both ways) and the process killed, as a closed laptop; the block runs with the
    link still cut."""
    with site.fab_until(*task, seen=step_line(step)) as (running, _), \
            netcut.cut(running.pid, vps.address):
        time.sleep(2)
        running.kill()
        running.wait()
        yield


# SIGTERM and SIGHUP take SIGINT's path (tests/unit/test_interrupts.py): a few points suffice.
CHAOS = {signal.SIGINT: DEPLOY_STEPS, signal.SIGKILL: DEPLOY_STEPS,
         signal.SIGTERM: ("upload", "release", "switch", "stop old")}


@pytest.mark.parametrize("sig", list(CHAOS), ids=[s.name for s in CHAOS])
def test_chaos_operator_killed_after_each_deploy_step_never_drops_a_request(site, deployed,
                                                                             vps, sig):
    """The operator's ``fab deploy`` killed after every step line, under load: no request
    fails; after SIGINT/SIGTERM the deploy stops at the next step boundary, undoes itself and
    says so; the next deploy works."""
    tried = 0
    with Load(vps.address, site.domain, str(site.ca_file), clients=8) as load:
        for step in CHAOS[sig]:
            code, out = deploy_killed_after(site, step, sig)
            tried += 1
            if sig != signal.SIGKILL and code != 0:
                assert "interrupted" in out and ("serving:" in out or "is live" in out), out
            assert site.get("/health/")[0] == 200, out
        site.commit("after the chaos", {"VERSION": "after-chaos\n"})
        site.fab("deploy")
    assert load.result.failures == 0, load.result.summary()
    assert tried == len(CHAOS[sig])
    status, body, _ = site.get("/")
    assert status == 200 and "after-chaos" in body


def test_chaos_operator_killed_while_pip_builds_the_virtualenv(site, deployed, vps):
    """The operator's ``fab deploy`` SIGKILLed while pip builds a new virtualenv on the server
    (pip goes on there by itself): the site keeps answering, and the next deploy waits for
    that build instead of building over it, then goes live."""
    requirements = (site.app / "requirements.txt").read_text()
    site.commit("a new virtualenv", {"requirements.txt": f"{requirements}# {uuid.uuid4()}\n",
                                     "VERSION": "killed-in-pip\n"})
    building = "pgrep -f 'bin/pip install' >/dev/null"
    with Load(vps.address, site.domain, str(site.ca_file), clients=8) as load:
        with site.fab_until("deploy", seen=step_line("upload")) as (running, _):
            seen = site.sh(f"for i in $(seq 300); do {building} && {{ echo pip; break; }}; "
                           f"sleep 0.1; done")
            running.kill()
            running.wait()
        assert seen.strip() == "pip"
        assert site.sh(f"{building} && echo on", check=False).strip() == "on"  # by itself
        site.commit("after pip", {"VERSION": "after-pip\n"})
        out = site.fab("deploy").stdout
    assert re.search(r"^\s+virtualenv\s.*reused venvs/", out, re.M), out  # it waited for it
    assert load.result.failures == 0, load.result.summary()
    status, body, _ = site.get("/")
    assert status == 200 and "after-pip" in body
    site.commit("requirements back", {"requirements.txt": requirements})


SLOW_MIGRATION = """from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("catalog", "{leaf}")]
    operations = [migrations.RunSQL("SELECT pg_sleep(12)", migrations.RunSQL.noop)]
"""
OP_RUNNING = "systemctl list-units --plain --no-legend 'shop-production-op-{what}-*' | grep -q ."


def wait_for_unit(site: Site, what: str) -> None:
    """Until a server-side unit (``serverop``) doing ``what`` runs on the VPS."""
    running = OP_RUNNING.format(what=what)
    seen = site.sh(f"for i in $(seq 300); do {running} && {{ echo on; break; }}; sleep 0.1; done")
    assert seen.strip() == "on", f"no {what} unit within 30 s"


def killed_while_unit_runs(site: Site, task: list[str], after: str, what: str) -> None:
    """``fab TASK`` SIGKILLed once it printed ``after``'s line and its server-side unit doing
    ``what`` runs; then, its SSH session over, the lock is still held and the unit runs on."""
    with site.fab_until(*task, seen=step_line(after)) as (running, _):
        wait_for_unit(site, what)
        running.kill()
        running.wait()
    time.sleep(2)
    assert lock_and_unit(site, what) == "held running"


def wait_until_over(site: Site, what: str) -> None:
    """Until the ``what`` unit has ended and then the site's lock is free."""
    site.sh(f"timeout 40 bash -c \"while {OP_RUNNING.format(what=what)}; do sleep 0.5; done\"")
    site.sh(f"timeout 10 bash -c 'until {LOCK_FREE} | grep -q free; do sleep 0.2; done'")


def lock_and_unit(site: Site, what: str) -> str:
    """``held running``, ``free gone``, ...: the site's lock and the ``what`` unit, now."""
    return site.sh(f"{LOCK_FREE}; {OP_RUNNING.format(what=what)} && echo running || echo gone",
                   check=False).replace("\n", " ").strip()


def test_chaos_operator_killed_while_migrate_runs_keeps_the_lock_until_it_ends(site, deployed,
                                                                               vps):
    """The operator's ``fab deploy`` SIGKILLed while its migration runs on the server: the
    migration is a unit of its own and goes on to its end, the site's lock stays held until it
    has (a deploy meanwhile is refused, naming the dead holder), then it is free and the next
    deploy goes live; the site answers throughout."""
    migrations = site.app / "catalog/migrations"
    leaf = max(path.stem for path in migrations.glob("0*.py"))
    slow = "catalog/migrations/0099_chaos_slow.py"
    site.commit("a slow migration", {slow: SLOW_MIGRATION.format(leaf=leaf),
                                     "VERSION": "killed-in-migrate\n"})
    with Load(vps.address, site.domain, str(site.ca_file), clients=8) as load:
        killed_while_unit_runs(site, ["deploy"], "backup", "release")
        refused = site.fab("deploy", check=False)
        assert refused.returncode == 1 and "locked by" in refused.stderr, refused.stderr
        shown = site.fab("status").stdout
        assert "  lock      held by " in shown, shown
        assert "  working   shop-production-op-release-" in shown, shown
        wait_until_over(site, "release")
        assert site.sh("ls -A /run/vpskit-ops").split() == []  # its output and script: gone
        applied = site.sh("runuser -u postgres -- psql -qAt -d shop_production -c \"SELECT count(*) "
                          "FROM django_migrations WHERE name = '0099_chaos_slow'\"")
        assert applied.strip() == "1"  # it ran to its end
        shown = site.fab("status").stdout
        assert re.search(r"^  recovered .* the server waited for shop-production-op-release-",
                         shown, re.M), shown
        (site.app / slow).unlink()
        site.commit("after the slow migration", {"VERSION": "after-migrate\n"})
        told = site.fab("deploy").stderr  # the next holder is told what the server did
    assert re.search(r"deploy \w+\) since .* ended before its work on the server; at \S+ the "
                     r"server waited for shop-production-op-release-\w+\.service to end", told), told
    assert load.result.failures == 0, load.result.summary()
    status, body, _ = site.get("/")
    assert status == 200 and "after-migrate" in body


@contextmanager
def upload_in_flight(site: Site, vps: testvps.Vps) -> Iterator[None]:
    """A POST whose body trickles in two bytes a second for the block: the Nginx worker
    reading it stays until the block ends (a reload's old workers finish their requests)."""
    tls = ssl.create_default_context(cafile=str(site.ca_file))
    conn = tls.wrap_socket(socket.create_connection((vps.address, 443), timeout=10),
                           server_hostname=site.domain)
    conn.sendall(f"POST /items/ HTTP/1.1\r\nHost: {site.domain}\r\nContent-Length: 100000\r\n"
                 f"Content-Type: application/octet-stream\r\n\r\n".encode())
    stop = threading.Event()

    def trickle() -> None:
        while not stop.wait(0.5):
            conn.sendall(b"x")
    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        conn.close()


def test_chaos_operator_killed_while_nginx_switches_keeps_the_lock_until_it_is_done(site,
                                                                                  deployed, vps):
    """The operator's ``fab deploy`` SIGKILLed while the Nginx switch (a unit of its own) waits
    for an old worker still reading an upload: the lock stays held until that worker is gone,
    the new release is served, and the next deploy repairs ``current`` and is told what the
    server did; no request fails."""
    site.commit("killed in the switch", {"VERSION": "killed-in-switch\n"})
    with Load(vps.address, site.domain, str(site.ca_file), clients=8) as load:
        with upload_in_flight(site, vps):
            killed_while_unit_runs(site, ["deploy"], "health", "switch")
        wait_until_over(site, "switch")
        assert "killed-in-switch" in site.get("/")[1]
        site.commit("after the switch", {"VERSION": "after-switch\n"})
        done = site.fab("deploy")
    assert "repaired: current -> " in done.stdout, done.stdout
    assert "waited for shop-production-op-switch-" in done.stderr, done.stderr
    assert load.result.failures == 0, load.result.summary()
    assert "after-switch" in site.get("/")[1]


def test_interrupt_of_a_server_side_unit_by_its_callers_timeout_stops_the_unit(site, deployed):
    """A caller whose time runs out (the server's ``timeout`` stops it) stops its server-side
    unit too, long before the unit's own limit: nothing goes on behind the error."""
    unit = serverop.unit_name("shop-production", "test")
    with contextlib.closing(site.remote()) as remote:
        argv = serverop.argv(unit, [], serverop.script_command(unit, []), timeout=300)
        with pytest.raises(RemoteError, match=r"timed out after 3s and was stopped"):
            remote.run(argv, stdin="sleep 300\n", timeout=3)
    assert site.sh(f"systemctl is-active {unit} || true").strip() in ("inactive", "unknown")


ROLLBACK_STEPS = ("start", "switch", "stop old", "processes")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_chaos_operator_killed_after_each_rollback_step_never_drops_a_request(site, deployed,
                                                                               vps, sig):
    """``fab rollback`` (between the two newest good releases, to and fro) killed after each of
    its step lines, under load: no request fails, the site answers, the next deploy works."""
    states = {rid: state for rid, state in site.release_states().items() if state == "ok"}
    pair = sorted(states)[-2:]
    assert len(pair) == 2, states
    with Load(vps.address, site.domain, str(site.ca_file), clients=8) as load:
        for step in ROLLBACK_STEPS:
            live = site.live_release()
            to = pair[0] if live == pair[1] else pair[1]
            code, out = killed_after(site, ["rollback", "--to", to], step, sig)
            assert f"  {step} " in out, out  # it got that far
            if sig != signal.SIGKILL and code != 0:
                assert "interrupted" in out, out
            assert site.get("/health/")[0] == 200, out
        site.commit(f"after the {sig.name} rollback chaos", {"VERSION": f"after-{sig.name}\n"})
        site.fab("deploy")
    assert load.result.failures == 0, load.result.summary()
    status, body, _ = site.get("/")
    assert status == 200 and f"after-{sig.name}" in body


RESTORE_STEPS = ("safety dump", "stop app", "restore")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_chaos_operator_killed_after_each_restore_step_leaves_the_app_serving(site, deployed,
                                                                              sig):
    """``fab restore`` killed after each of its step lines: the app serves again within
    seconds with no command run (SIGINT: the restore's own recovery; SIGKILL: the undo it left
    to the lock's holder on the server, which runs when the operator's session ends), the
    lock is free, and the next restore works."""
    site.fab("backup")
    lock = "/run/vpskit-shop-production.lock"
    for step in RESTORE_STEPS:
        code, out = killed_after(site, ["restore", "--yes"], step, sig)
        assert f"  {step} " in out, out  # it got that far
        if sig != signal.SIGKILL:
            assert code != 0 and "interrupted" in out, out
        deadline = time.monotonic() + 30
        while site.get("/health/")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert site.get("/health/")[0] == 200, (step, out)
        site.sh(f"timeout 30 bash -c 'while [ -e {lock}.holder ]; do sleep 0.2; done'")
        assert site.sh(f"ls {lock}.undo 2>/dev/null || true").strip() == ""
    assert "restored shop-production" in site.fab("restore", "--yes").stdout


def test_chaos_operator_killed_while_pg_restore_runs_keeps_the_lock_until_it_ends(site,
                                                                                  deployed):
    """The operator's ``fab restore`` SIGKILLed while the dump is replayed (held up by a
    transaction's table lock): the replay is a unit of its own on the server and commits, the
    lock stays held until it has, then the lock's holder starts the app again; a row written
    after the backup is gone."""
    site.fab("backup")
    site.fab("manage", "--", "create_item", "made-after-the-backup")
    blocker = ("runuser -u postgres -- psql -d shop_production -c 'BEGIN; LOCK TABLE catalog_item "
               "IN ACCESS SHARE MODE; SELECT pg_sleep(15)' >/dev/null 2>&1 </dev/null &")
    site.sh(blocker)  # the safety dump reads beside it; the replay waits for it
    killed_while_unit_runs(site, ["restore", "--yes"], "stop app", "restore")
    assert site.get("/health/")[0] != 200  # the app waits for the restore
    wait_until_over(site, "restore")
    deadline = time.monotonic() + 30
    while site.get("/health/")[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert site.get("/health/")[0] == 200
    assert "made-after-the-backup" not in site.get("/items/")[1]
    told = site.fab("backup").stderr
    assert "waited for shop-production-op-restore-" in told, told
    assert re.search(r"ran its undo: systemctl start shop-production-web@\S+", told), told


def test_chaos_link_cut_after_a_restore_stopped_the_app_starts_it_again(site, deployed, vps):
    """The operator's link goes dead right after ``fab restore`` stopped the app (then the
    process is killed, as a closed laptop): once sshd drops the silent session, the lock's
    holder starts the app again, with no command run, and frees the lock."""
    site.fab("backup")
    with link_dead_after(site, vps, ["restore", "--yes"], "stop app"):
        start = time.monotonic()
        while site.get("/health/")[0] != 200:
            assert time.monotonic() - start < 90, "the app was never started again"
            time.sleep(1)
        back = time.monotonic() - start
    assert back < 45, back  # sshd's ClientAlive window, then the undo
    site.sh(f"timeout 30 bash -c 'until {LOCK_FREE} | grep -q free; do sleep 0.5; done'")
    assert "restored shop-production" in site.fab("restore", "--yes").stdout


CUT_AT = ("virtualenv", "backup", "switch")  # pip, then migrate running; Nginx moved, current not


def test_chaos_link_cut_mid_deploy_frees_the_lock_and_the_next_deploy_converges(site, deployed,
                                                                                 vps):
    """The operator's link goes dead mid-deploy (its packets dropped both ways, then the
    process killed, as a closed laptop): the site answers throughout, the server drops the
    silent session within sshd's ClientAlive window, which frees the site lock, and the next
    deploy works with no manual step."""
    freed = []
    with Load(vps.address, site.domain, str(site.ca_file), clients=8) as load:
        for step in CUT_AT:
            site.commit(f"cut after {step}", {"VERSION": f"cut-{step}\n"})
            with link_dead_after(site, vps, ["deploy"], step):
                start = time.monotonic()
                while site.sh(LOCK_FREE, check=False).strip() != "free":
                    assert time.monotonic() - start < 90, "the lock was never freed"
                    time.sleep(2)
                freed.append(time.monotonic() - start)
            assert site.get("/health/")[0] == 200
        site.commit("after the cuts", {"VERSION": "after-cuts\n"})
        site.fab("deploy")
    assert load.result.failures == 0, load.result.summary()
    assert all(seconds < 45 for seconds in freed), freed
    status, body, _ = site.get("/")
    assert status == 200 and "after-cuts" in body


LOCK_FREE = "flock -n /run/vpskit-shop-production.lock echo free || echo held"


def test_interrupt_between_nginx_and_current_is_repaired_by_the_next_deploy(site, deployed):
    """A cut after Nginx moved to a release but before ``current`` did: the next deploy finds
    them disagreeing, points ``current`` at what Nginx serves, and deploys from there."""
    site.commit("serving before the cut", {"VERSION": "before-cut\n"})
    site.fab("deploy")
    serving = site.live_release()
    older = site.sh("ls /srv/shop-production/releases | sort | tail -2 | head -1").strip()
    assert older != serving
    site.sh(f"ln -sfn releases/{older} /srv/shop-production/current")  # the cut
    site.commit("after the cut", {"VERSION": "after-cut\n"})
    out = site.fab("deploy").stdout
    assert f"repaired: current -> {serving}" in out, out
    status, body, _ = site.get("/")
    assert status == 200 and "after-cut" in body


# ---- scheduled jobs ------------------------------------------------------------------------------
@contextlib.contextmanager
def scheduled(site: Site, jobs: str) -> Iterator[None]:
    """``jobs`` (the body of a ``schedule:`` mapping) added to the inventory; on the way out the
    inventory as it was, provisioned again so the server has no job left."""
    path = site.dir / "inventory.yml"
    before = path.read_text()
    path.write_text(before + "schedule:\n" + textwrap.indent(textwrap.dedent(jobs), "  "))
    try:
        yield
    finally:
        path.write_text(before)
        site.fab("provision")


def item_names(site: Site) -> list[str]:
    status, body, _ = site.get("/items/")
    assert status == 200, body
    return [item["name"] for item in json.loads(body)["items"]]


def wait_for_items(site: Site, name: str, count: int, within: float) -> list[str]:
    """The item names once ``count`` are called ``name`` (or ``within`` s have passed), the
    app given time to come back too."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, AssertionError):
            if item_names(site).count(name) >= count:
                break
        time.sleep(2)
    return item_names(site)


def job_units(site: Site) -> list[str]:
    return site.sh("ls /etc/systemd/system | grep -- '^shop-production-job-' || true").split()


def test_jobs_run_on_their_calendar_show_in_jobs_and_status_and_go_with_the_inventory(
        site, deployed):
    """A job every 20 s writes a row (as the app user, with its env file: Django into Postgres)
    and ``fab jobs`` lists its runs; a failing job run by ``fab jobs --run`` streams its output
    and shows failed in ``fab status``; a deploy without them removes their units."""
    tick = f"tick-{uuid.uuid4().hex[:8]}"
    with scheduled(site, f"""\
            tick:
              command: python manage.py create_item {tick}
              calendar: "*:*:00/20"
            broken:
              command: python manage.py nosuchcommand
              cron: "0 0 1 1 *"
              timeout: 60
            """):
        out = site.fab("provision").stdout
        assert "shop-production-job-tick.timer on (*:*:00/20 UTC)" in out, out
        assert wait_for_items(site, tick, 3, within=180).count(tick) >= 3
        listing = site.fab("jobs").stdout
        runs = listing.split("  tick  (")[1].split("  broken  (")[0]
        assert runs.count("  ok  ") >= 3 and "FAILED" not in runs, listing
        assert "next  " in runs and "    run   none yet" in listing.split("  broken  (")[1]

        ran = site.fab("jobs", "--run", "broken", check=False)
        assert ran.returncode == 1, ran.stdout + ran.stderr
        assert "Unknown command: 'nosuchcommand'" in ran.stdout, ran.stdout
        assert "broken: FAILED (exit-code)" in ran.stdout, ran.stdout
        status = site.fab("status").stdout
        assert re.search(r"shop-production-job-broken\.service\s+failed", status), status
        assert re.search(r"shop-production-job-tick\.service\s+(inactive|activating)", status)
        assert "FAILED" in site.fab("jobs").stdout.split("  broken  (")[1]
        assert sorted(job_units(site)) == [
            f"shop-production-job-{name}.{kind}" for name in ("broken", "tick")
            for kind in ("service", "timer")]
        path = site.dir / "inventory.yml"
        path.write_text(path.read_text().split("schedule:\n")[0])
        out = site.fab("deploy").stdout
        assert "removed /etc/systemd/system/shop-production-job-broken.service" in out, out
        assert job_units(site) == []
        assert "shop-production-job" not in site.sh("systemctl list-timers --all --no-pager")
        assert "shop-production-job" not in site.fab("status").stdout


def test_a_job_missed_while_the_server_was_down_runs_once_after_it_boots(site, deployed, vps):
    """A one-shot calendar that passed while the server was off: ``Persistent=`` runs it once
    at boot. The timer's stamp is set back before the calendar (as if the timer last ran then
    and the power went at the due time), then the power is cut."""
    missed = f"missed-{uuid.uuid4().hex[:8]}"
    due = datetime.now(UTC) - timedelta(minutes=5)
    with scheduled(site, f"""\
            missed:
              command: python manage.py create_item {missed}
              calendar: "{due:%Y-%m-%d %H:%M:%S}"
            """):
        assert re.search(r"^  jobs\s+changed", site.fab("provision").stdout, re.M)
        again = site.fab("provision").stdout  # an elapsed one-shot timer is left as it is
        assert re.search(r"^  jobs\s+unchanged", again, re.M), again
        stamp = "/var/lib/systemd/timers/stamp-shop-production-job-missed.timer"
        site.sh(f"touch -d @{int((due - timedelta(minutes=5)).timestamp())} {stamp}")
        assert missed not in item_names(site)  # it was due before the timer existed
        testvps.power_cut(vps)
        assert wait_for_items(site, missed, 1, within=90).count(missed) == 1
        time.sleep(3)
        assert item_names(site).count(missed) == 1
