"""Download caches shared across VPSes and runs: apt's .deb files and pip's cache.

apt holds ``archives/lock`` for a whole install, so VPSes cannot share one archive directory:
each VPS binds its own, filled by hard links from the shared pool ``apt-<suite>/`` at start and
giving its new files back at teardown. pip's cache is shared as is (writable by every user).
"""

from __future__ import annotations

import os
from pathlib import Path

from harness.testvps.shell import HarnessError, run
from harness.testvps.state import CACHE_DIR

PIP_CACHE = CACHE_DIR / "pip"


def _link_missing(source: Path, target: Path) -> None:
    for deb in source.glob("*.deb"):
        if not (target / deb.name).exists():
            os.link(deb, target / deb.name)


def _apt_ids(root: Path) -> tuple[int, int]:
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == "_apt":
            return int(fields[2]), int(fields[3])
    raise HarnessError(f"{root}/etc/passwd has no _apt user")


def prepare(vps_dir: Path, suite: str, root: Path) -> list[str]:
    """Make the VPS's cache directories; return the systemd-nspawn ``--bind`` options for them."""
    pool = CACHE_DIR / f"apt-{suite}"
    own = vps_dir / pool.name
    partial = own / "partial"
    partial.mkdir(parents=True, exist_ok=True)
    pool.mkdir(parents=True, exist_ok=True)
    os.chown(partial, *_apt_ids(root))  # apt downloads as _apt into partial/, then renames
    partial.chmod(0o700)
    _link_missing(pool, own)
    PIP_CACHE.mkdir(parents=True, exist_ok=True)
    # Default ACLs keep whatever any user of any VPS creates in it writable by all the others.
    run("setfacl", "-m", "u::rwx,g::rwx,o::rwx,d:u::rwx,d:g::rwx,d:o::rwx", PIP_CACHE)
    return [f"--bind={own}:/var/cache/apt/archives", f"--bind={PIP_CACHE}:/var/cache/pip"]


def give_back(vps_dir: Path) -> None:
    """Hard-link the .deb files a VPS downloaded into the shared pool (before its dir goes)."""
    for own in vps_dir.glob("apt-*"):
        pool = CACHE_DIR / own.name
        if pool.is_dir():
            _link_missing(own, pool)
