"""Shared fixtures. ``vps``/``pebble`` start a real test VPS (root, systemd-nspawn) once per
session; tests that use them are marked ``vps`` (``pytest -m "not vps"`` runs in seconds).

``VPSKIT_KEEP_VPS=1`` leaves the VPS (and Pebble) running after the session and reuses it;
``VPSKIT_TEST_INDEX=N`` picks another VPS (10.77.N.2) so two sessions can run side by side.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import testvps
from tests.helpers import installed, machines
from tests.helpers.site import Site
from vpskit.config import Host

VPS_INDEX = machines.INDEX
VPS_NAME = f"vpskit-t{VPS_INDEX}"
VPS_DOMAINS = ("app.test", "www.app.test", "staging.app.test")


@pytest.fixture(scope="session")
def vps() -> Iterator[testvps.Vps]:
    """A fresh Debian 12 VPS, root login with the operator key, domains resolving to it."""
    domains = tuple(d if VPS_INDEX == 10 else f"t{VPS_INDEX}.{d}" for d in VPS_DOMAINS)
    with machines.booted(VPS_NAME, VPS_INDEX, domains) as server:
        yield server


@pytest.fixture(scope="session")
def pebble(vps) -> Iterator[testvps.Pebble]:
    """Pebble (ACME test server) on the host, with URLs as the VPS sees them."""
    with machines.pebble_for(vps) as server:
        yield server


@pytest.fixture
def vps_host(vps) -> Host:
    """The VPS as an inventory host, logged into as root with the operator key."""
    return vps.host(user="root")


@pytest.fixture(scope="session")
def site(vps, pebble, tmp_path_factory) -> Site:
    """The example Django app in a git repo plus an inventory for the VPS (not provisioned)."""
    return Site.create(tmp_path_factory.mktemp("site"), vps, pebble, staging_domain=vps.domains[2])


@pytest.fixture(scope="session")
def provisioned(site) -> dict:
    """``fab provision`` run twice on the fresh VPS: both outputs and the service PIDs."""
    first = site.fab("provision")
    pids = site.service_pids()
    second = site.fab("provision")
    return {"first": first, "second": second, "pids_before": pids,
            "pids_after": site.service_pids()}


@pytest.fixture(scope="session")
def deployed(site, provisioned) -> dict:
    """The example app deployed once (version 1.0.0)."""
    return {"first": site.fab("deploy")}


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """``pip wheel`` of this checkout."""
    return installed.build_wheel(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="session")
def installed_vpskit(wheel, tmp_path_factory) -> installed.Installed:
    """The wheel installed in a fresh virtualenv outside this checkout."""
    return installed.install(wheel, tmp_path_factory.mktemp("installed"))
