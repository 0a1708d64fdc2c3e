"""Shared fixtures. ``vps``/``pebble`` start a real test VPS (root, systemd-nspawn) once per
session; tests that use them are marked ``vps`` (``pytest -m "not vps"`` runs in seconds).
``VPSKIT_KEEP_VPS=1`` leaves the VPS (and Pebble) running after the session and reuses it."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from vpskit import testvps
from vpskit.config import Host

VPS_NAME = "vpskit-test1"
VPS_INDEX = 10  # 10.77.10.2; far from the 10.77.0.x a developer's own `inv vps.up` uses
VPS_DOMAINS = ("app.test", "www.app.test")
KEEP = os.environ.get("VPSKIT_KEEP_VPS") == "1"


@pytest.fixture(scope="session")
def vps() -> Iterator[testvps.Vps]:
    """A fresh Debian 12 VPS, root login with the operator key, domains resolving to it."""
    kept = [v for v in testvps.status() if v.name == VPS_NAME and testvps.is_running(v)]
    if KEEP and kept:
        yield kept[0]
        return
    started = testvps.up(name=VPS_NAME, index=VPS_INDEX, domains=VPS_DOMAINS)
    try:
        yield started
    finally:
        if not KEEP:
            testvps.down(VPS_NAME)


@pytest.fixture(scope="session")
def pebble(vps) -> Iterator[testvps.Pebble]:
    """Pebble (ACME test server) on the host, with URLs as the VPS sees them."""
    server = testvps.pebble_up(vps.host_address)
    try:
        yield server
    finally:
        if not KEEP:
            testvps.pebble_down()


@pytest.fixture
def vps_host(vps) -> Host:
    """The VPS as an inventory host, logged into as root with the operator key."""
    return vps.host(user="root")
