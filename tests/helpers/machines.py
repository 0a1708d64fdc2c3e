"""Boot test VPSes (and Pebble) for a test session, honouring ``VPSKIT_KEEP_VPS``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from harness import testvps

KEEP = os.environ.get("VPSKIT_KEEP_VPS") == "1"
# 10.77.INDEX.2, far from 10.77.0.x; a session uses INDEX to INDEX + 9. Under pytest-xdist,
# worker N (PYTEST_XDIST_WORKER "gwN") takes INDEX + 100 N: its own VPSes, as a separate run.
WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
INDEX = int(os.environ.get("VPSKIT_TEST_INDEX", "10")) + 100 * WORKER


@contextmanager
def booted(name: str, index: int, domains: tuple[str, ...], suite: str = "bookworm"
           ) -> Iterator[testvps.Vps]:
    """A fresh VPS for the block, torn down after it (kept and reused with KEEP)."""
    kept = [v for v in testvps.status() if v.name == name and testvps.is_running(v)]
    if KEEP and kept:
        yield kept[0]
        return
    vps = testvps.up(name=name, index=index, suite=suite, domains=domains)
    try:
        yield vps
    finally:
        if not KEEP:
            testvps.down(name)


@contextmanager
def pebble_for(vps: testvps.Vps) -> Iterator[testvps.Pebble]:
    """Pebble with URLs as ``vps`` sees them; afterwards stopped unless another process (or
    ``VPSKIT_KEEP_VPS``) still uses it."""
    server = testvps.pebble_up(vps.host_address)
    try:
        yield server
    finally:
        if not KEEP:
            testvps.pebble_release(server)
