"""``inv vps.up|vps.down|vps.status``: the local test VPS (see :mod:`harness.testvps`)."""

from __future__ import annotations

from invoke import task

from harness import testvps
from vpskit.cli import exits


@task(
    iterable=["domain"],
    help={
        "name": "VPS name (1-12 of a-z 0-9 -)",
        "index": "the VPS gets 10.77.<index>.2",
        "suite": "bookworm or trixie",
        "domain": "a domain that resolves to the VPS on this host (repeatable)",
    },
)
@exits
def up(c, name="vps1", index=0, suite="bookworm", domain=None):
    """Boot a fresh test VPS and wait for its sshd."""
    print(testvps.describe(testvps.up(name, index, suite, tuple(domain or ()))))


@task
@exits
def down(c, name="vps1"):
    """Tear a test VPS down (idempotent)."""
    testvps.down(name)
    print(f"{name} down")


@task
@exits
def status(c):
    """List the test VPSes."""
    for vps in testvps.status():
        print(testvps.describe(vps))
