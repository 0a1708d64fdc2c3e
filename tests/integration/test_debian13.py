"""Debian 13 (trixie, Python 3.13): a provision cut off in the middle of installing packages
converges on the next run, a third run changes nothing, and the example app deploys."""

from __future__ import annotations

import re
import subprocess
import time

import pytest

from tests.helpers import machines
from tests.helpers.site import FAB, Site
from vpskit import ssh

pytestmark = pytest.mark.vps

INDEX = machines.INDEX + 3


@pytest.fixture(scope="module")
def trixie(tmp_path_factory):
    domains = (f"trixie{INDEX}.test",)
    with machines.booted(f"vpskit-d{INDEX}", INDEX, domains, suite="trixie") as vps, \
            machines.pebble_for(vps) as pebble:
        yield vps, Site.create(tmp_path_factory.mktemp("trixie"), vps, pebble)


def wait_for_dpkg(vps, timeout: float = 120) -> None:
    """Return once dpkg is unpacking packages on the VPS (the worst moment to be cut off)."""
    conn = ssh.connect(vps.host(user="root"))
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if conn.run("pgrep -x dpkg", hide=True, warn=True, in_stream=False).ok:
                return
            time.sleep(0.2)
        raise AssertionError("dpkg never started")
    finally:
        conn.close()


def test_provision_cut_off_mid_install_converges(trixie):
    vps, site = trixie
    proc = subprocess.Popen([str(FAB), "provision", "--env", "production"],
                            cwd=site.dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, text=True)
    try:
        wait_for_dpkg(vps)
    finally:
        proc.kill()  # the SSH connection dies with it
        proc.wait()
    second = site.fab("provision")
    assert re.search(r"^  packages\s+changed", second.stdout, re.M), second.stdout
    third = site.fab("provision")
    assert re.search(r": 0 changed, \d+ unchanged", third.stdout), third.stdout
    assert "Debian GNU/Linux 13" in site.sh("cat /etc/os-release")


def test_example_app_deploys_on_python_313(trixie):
    _, site = trixie
    site.fab("provision")  # a no-op after the test above; run alone, the provision it needs
    site.fab("deploy")
    status, body, _ = site.get("/health/")
    assert status == 200, body
    python = site.sh("readlink -f /srv/shop-production/current/.venv/bin/python")
    assert "python3.13" in python


def test_ci_login_backs_up_reads_logs_and_deploys_on_debian_13(trixie):
    """``vpskit-site`` (the CI login's one sudo command) and the resident vpskit it deploys
    with run on the server's Python 3.13. The backup checks a restore of the dump: it passes
    before the first deploy too (no table in the database, none in the dump)."""
    _, site = trixie
    site.fab("provision")
    with site.ci_login() as ci_inventory:
        backed_up = site.fab("backup", "--verbose", "--inventory", ci_inventory).stdout
        assert "as ci" in backed_up and "sha256 verified" in backed_up, backed_up
        site.fab("logs", "--inventory", ci_inventory)
        deployed = site.fab("deploy", "--ci", "--inventory", ci_inventory).stdout
        assert "deployed shop-production" in deployed, deployed
        assert site.get("/health/")[0] == 200
        assert "python3.13" in site.sh("readlink -f /usr/local/lib/vpskit-site/resident/venv/"
                                       "bin/python")
    site.fab("provision")  # the login's rights on the site taken away again
