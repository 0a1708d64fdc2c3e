"""vpskit.ssh.connect against the real test VPS: success, each failure as one fast line, reboot."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import time
from pathlib import Path

import pytest

from harness import testvps
from harness.testvps import cgroup
from harness.testvps.state import vps_dir
from tests.helpers import machines
from vpskit.errors import ConnectError, RemoteError
from vpskit.remote import Remote
from vpskit.ssh import connect

pytestmark = pytest.mark.vps
FAIL_WITHIN = 15  # seconds
INDEX = machines.INDEX + 5


@pytest.fixture(scope="module")
def vps():
    """A VPS of its own: the session's gets provisioned (root login off, firewall on)."""
    with machines.booted(f"vpskit-c{INDEX}", INDEX, ()) as server:
        yield server


def run(vps, command: str) -> str:
    with connect(vps.host()) as conn:
        return conn.run(command, hide=True, warn=True, in_stream=False).stdout.strip()


def test_root_runs_commands_over_ssh(vps):
    quiet = {"hide": True, "in_stream": False}
    with connect(vps.host()) as conn:
        state = conn.run("systemctl is-system-running --wait", warn=True, **quiet)
        release = conn.run("cat /etc/os-release", **quiet)
        whoami = conn.run("id -un", **quiet)
        sock = conn.client.get_transport().sock
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)  # no 40 ms stalls
    assert state.stdout.strip() in ("running", "degraded")
    assert "VERSION_CODENAME=bookworm" in release.stdout
    assert whoami.stdout.strip() == "root"


def test_a_command_over_its_timeout_is_stopped_on_the_server(vps):
    """The client's timeout is the server's too: nothing runs on behind the error."""
    with connect(vps.host()) as conn:
        remote = Remote(conn)
        started = time.monotonic()
        with pytest.raises(RemoteError, match=r"timed out after 2s and was stopped"):
            remote.run(["bash", "-c", "echo $$ > /run/timeout-test.pid; sleep 60"],
                       check=False, timeout=2)
        assert time.monotonic() - started < 10
        gone = remote.run(["bash", "-c", "kill -0 $(cat /run/timeout-test.pid)"], check=False)
        assert gone.exited == 1  # the server stopped it


def test_vps_is_a_fresh_image_trusting_this_machine(vps):
    """Only the debootstrap set is installed; CAs, pip and apt caches are the harness's doing."""
    listing = run(vps, "dpkg-query -W -f='${Package}\\n' nginx postgresql certbot 2>&1")
    assert "no packages found matching nginx" in listing
    assert "vpskit-pebble-ca" in run(vps, "ls /usr/local/share/ca-certificates")
    assert "cache-dir = /var/cache/pip" in run(vps, "cat /etc/pip.conf")
    assert run(vps, "stat -c %U /var/cache/apt/archives/partial") == "_apt"
    with machines.pebble_for(vps) as pebble:
        assert pebble.directory_url == f"https://{vps.host_address}:14000/dir"
        url = pebble.directory_url
        code = f"import urllib.request; print(urllib.request.urlopen({url!r}).status)"
        assert run(vps, f'python3 -c "{code}"') == "200"  # the VPS trusts Pebble's listener


def assert_fails_fast(host, expected: str, **kwargs) -> str:
    started = time.monotonic()
    with pytest.raises(ConnectError) as caught:  # AuthError is one too
        connect(host, **kwargs)
    elapsed = time.monotonic() - started
    message = str(caught.value)
    assert elapsed < FAIL_WITHIN, f"took {elapsed:.1f} s: {message}"
    assert "\n" not in message
    assert f"{host.address}:{host.port}" in message
    assert expected in message
    return message


def test_unreachable_host_fails_fast(vps):
    unused = vps.address.rsplit(".", 1)[0] + ".99"  # inside the VPS's own /24, nobody there
    host = dataclasses.replace(vps.host(), address=unused)
    message = assert_fails_fast(host, "check the address")
    assert "unreachable" in message or "no answer" in message


def test_refused_port_fails_fast(vps):
    host = dataclasses.replace(vps.host(), port=2222)
    assert_fails_fast(host, "connection refused")


def test_wrong_key_fails_fast(vps, tmp_path):
    key = tmp_path / "stranger"
    testvps.generate_key(key)
    host = dataclasses.replace(vps.host(), key=str(key))
    message = assert_fails_fast(host, "authentication failed")
    assert str(key) in message


def test_unknown_host_key_is_refused(vps, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    assert_fails_fast(vps.host(), "host key unknown", known_hosts=str(empty))


def test_changed_host_key_is_refused(vps, tmp_path):
    other = tmp_path / "other"
    public = testvps.generate_key(other).split()
    forged = tmp_path / "known_hosts"
    forged.write_text(f"{vps.address} {public[0]} {public[1]}\n")
    assert_fails_fast(vps.host(), "host key CHANGED", known_hosts=str(forged))


def test_first_contact_accepts_and_records_the_key(vps, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("HOME", str(tmp_path))
    host = dataclasses.replace(vps.host(), known_hosts=None)
    with connect(host) as conn:
        assert conn.run("hostname", hide=True, in_stream=False).stdout.strip() == vps.name
    recorded = (tmp_path / ".ssh" / "known_hosts").read_text()
    assert recorded.startswith(f"{vps.address} ")
    assert "added" in caplog.text
    with connect(host):  # known now: no second line
        pass
    assert (tmp_path / ".ssh" / "known_hosts").read_text() == recorded


def test_reboot_comes_back(vps):
    """``systemctl reboot`` ends systemd-nspawn with 133; the supervisor starts it again."""
    boot_id = run(vps, "cat /proc/sys/kernel/random/boot_id")
    with connect(vps.host()) as conn:
        conn.run("systemctl reboot", hide=True, warn=True, in_stream=False)
    started = time.monotonic()
    while True:
        try:
            new_id = run(vps, "cat /proc/sys/kernel/random/boot_id")
        except ConnectError:
            new_id = boot_id
        if new_id != boot_id:
            break
        assert time.monotonic() - started < 60, "VPS did not come back within 60 s"
        time.sleep(0.5)
    assert testvps.is_running(vps)
    assert run(vps, "systemctl is-system-running --wait") in ("running", "degraded")


def killed_like_a_reboot(vps) -> None:
    """What a SIGKILL of the test run, then a reboot of this machine, leaves of ``vps``: its
    record, folder, rootfs and network lines, but no supervisor and no process."""
    os.kill(vps.pid, signal.SIGKILL)
    saved = vps_dir(vps.name) / "cgroups.json"
    cgroup.kill_and_remove([Path(d) for d in json.loads(saved.read_text())])
    assert not testvps.is_running(vps)


def test_a_vps_left_by_a_killed_run_is_reclaimed_by_the_next_one():
    """A run killed before its teardown (a CI job cancelled, the machine rebooted) leaves a
    VPS record behind; the next ``up`` of that name, or of another name on its index, tears it
    down and boots, instead of refusing a VPS that no longer runs."""
    index = machines.INDEX + 1  # free while this module runs (test_backup's, in a test)
    names = (f"vpskit-k{index}", f"vpskit-j{index}")
    try:
        for name in (names[0], names[0], names[1]):
            vps = testvps.up(name=name, index=index)
            assert run(vps, "hostname") == name
            killed_like_a_reboot(vps)
        assert [v.name for v in testvps.status() if v.index == index] == [names[1]]
    finally:
        for name in names:
            testvps.down(name)
