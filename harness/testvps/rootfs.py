"""Root filesystems: a cached Debian tarball "as a fresh cloud image", and per-VPS copies of it.

The tarball holds only debootstrap's ``--include`` set; provisioning installs everything else.
Each copy gets its own identity (hostname, machine-id, SSH host keys, the operator's key) like a
cloud image on first boot, plus the facts of this test environment (CAs, pip and apt caches).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import uuid
from pathlib import Path

from harness.testvps.shell import HarnessError, chroot, run
from harness.testvps.state import CACHE_DIR

INCLUDE = "systemd,systemd-sysv,dbus,openssh-server,python3,sudo,ca-certificates"
HOST_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
HOST_CAS = Path("/usr/local/share/ca-certificates")
TAR_FLAGS = ("--numeric-owner", "--xattrs", "--xattrs-include=*")


def stanzas(text: str) -> list[dict[str, str]]:
    """Parse a deb822 file (``debian.sources``) into one dict per stanza; comments dropped."""
    result: list[dict[str, str]] = []
    current: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if not line.strip():
            if current:
                result.append(current)
            current = {}
        elif line.startswith("#"):
            continue
        elif line[0] in " \t" and key:
            current[key] += " " + line.strip()
        else:
            key, _, value = line.partition(":")
            current[key.strip()] = value.strip()
    if current:
        result.append(current)
    return result


def host_release(text: str) -> tuple[str, str]:
    """``(codename, mirror URI)`` of the stanza whose Suites has a bare codename (no ``-x``)."""
    for stanza in stanzas(text):
        bare = [s for s in stanza.get("Suites", "").split() if "-" not in s]
        if bare and stanza.get("URIs"):
            return bare[0], stanza["URIs"].split()[0]
    raise HarnessError(f"{HOST_SOURCES}: no stanza with a plain suite (e.g. 'Suites: bookworm')")


def sources_for(text: str, suite: str) -> str:
    """The host's ``debian.sources`` with its codename renamed to ``suite`` in every Suites line."""
    codename, _ = host_release(text)
    lines = []
    for line in text.splitlines(keepends=True):
        if line.startswith("Suites:"):
            names = line.split(":", 1)[1].split()
            line = "Suites: " + " ".join(
                suite + n[len(codename):] if n == codename or n.startswith(codename + "-") else n
                for n in names
            ) + "\n"
        lines.append(line)
    return "".join(lines)


def tarball(suite: str) -> Path:
    return CACHE_DIR / f"rootfs-{suite}.tar"


def base(suite: str) -> Path:
    """The tarball unpacked once: the read-only lower layer of every VPS's root."""
    return CACHE_DIR / f"base-{suite}"


def ensure_base(suite: str) -> Path:
    """The unpacked rootfs of ``suite``; builds the tarball with debootstrap first if missing
    (~1-2 min). Delete the tarball to rebuild both (with no VPS running)."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / f"rootfs-{suite}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # one build per suite; other VPSes may start meanwhile
        if not tarball(suite).exists():
            shutil.rmtree(base(suite), ignore_errors=True)
            _build(suite, tarball(suite))
        if not base(suite).exists():
            partial = CACHE_DIR / f"base-{suite}.part"
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(mode=0o755)
            run("tar", *TAR_FLAGS, "-C", partial, "-xf", tarball(suite))
            partial.rename(base(suite))
    return base(suite)


def _build(suite: str, path: Path) -> None:
    if not HOST_SOURCES.exists():
        raise HarnessError(f"{HOST_SOURCES} not found: the harness needs a Debian host")
    sources = HOST_SOURCES.read_text()
    _, mirror = host_release(sources)
    build = CACHE_DIR / f"build-{suite}"
    shutil.rmtree(build, ignore_errors=True)
    run("debootstrap", f"--include={INCLUDE}", suite, build, mirror, timeout=1800)
    apt = build / "etc/apt"
    (apt / "sources.list.d/debian.sources").write_text(sources_for(sources, suite))
    (apt / "sources.list").unlink(missing_ok=True)
    chroot(build, "apt-get", "clean")
    for entry in (build / "var/lib/apt/lists").iterdir():
        if entry.is_file():
            entry.unlink()
    for key in (build / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (build / "etc/machine-id").write_text("")
    chroot(build, "systemctl", "enable", "systemd-networkd")
    partial = path.with_suffix(".tar.part")
    run("tar", *TAR_FLAGS, "-C", build, "-cf", partial, ".")
    os.replace(partial, path)
    shutil.rmtree(build)


def mount_copy(suite: str, folder: Path) -> Path:
    """A fresh copy of the ``suite`` rootfs at ``folder/rootfs``: an overlay whose writes go to
    ``folder/upper`` (writing 270 MB per VPS took 1-10 s here; this takes milliseconds)."""
    root, upper, work = folder / "rootfs", folder / "upper", folder / "work"
    for path in (root, upper, work):
        path.mkdir(mode=0o755)
    layers = f"lowerdir={base(suite)},upperdir={upper},workdir={work}"
    run("mount", "-t", "overlay", "overlay", "-o", layers, root)
    return root


def unmount_copy(folder: Path) -> None:
    """Unmount the VPS's overlay root, if mounted."""
    if os.path.ismount(folder / "rootfs"):
        run("umount", folder / "rootfs")


def give_identity(
    root: Path, name: str, address: str, gateway: str, operator_pub: str
) -> list[str]:
    """First-boot identity of the copy at ``root``; returns its new SSH host public keys."""
    (root / "etc/hostname").write_text(f"{name}\n")
    (root / "etc/hosts").write_text(
        f"127.0.0.1\tlocalhost\n127.0.1.1\t{name}\n"
        "::1\t\tlocalhost ip6-localhost ip6-loopback\nff02::1\t\tip6-allnodes\n"
        "ff02::2\t\tip6-allrouters\n"
    )
    (root / "etc/machine-id").write_text(uuid.uuid4().hex + "\n")
    # 10- sorts before systemd's own 80-container-host0.network (DHCP). Without IPv6AcceptRA=no,
    # waiting for a router advertisement holds network-online.target ~14 s per boot.
    (root / "etc/systemd/network/10-host0.network").write_text(
        f"[Match]\nName=host0\n\n[Network]\nAddress={address}/24\nGateway={gateway}\n"
        "IPv6AcceptRA=no\n"
    )
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    ssh_dir.chmod(0o700)
    authorized = ssh_dir / "authorized_keys"
    authorized.write_text(operator_pub)
    authorized.chmod(0o600)
    chroot(root, "ssh-keygen", "-A")
    return [
        " ".join(pub.read_text().split()[:2])
        for pub in sorted((root / "etc/ssh").glob("ssh_host_*_key.pub"))
    ]


def add_test_environment(root: Path, extra_cas: list[Path]) -> None:
    """Facts of this test machine, not of real servers: trusted CAs, pip's CA bundle and cache,
    and apt keeping downloaded .deb files (its archive directory is a cache bound from the host)."""
    ca_dir = root / "usr/local/share/ca-certificates"
    for cert in [*sorted(HOST_CAS.glob("*.crt")), *extra_cas]:
        shutil.copyfile(cert, ca_dir / cert.name)
    chroot(root, "update-ca-certificates")
    (root / "etc/pip.conf").write_text(
        "[global]\ncert = /etc/ssl/certs/ca-certificates.crt\ncache-dir = /var/cache/pip\n"
    )
    (root / "etc/apt/apt.conf.d/90vpskit-keep-debs").write_text(
        'APT::Keep-Downloaded-Packages "true";\n'
        'Binary::apt::APT::Keep-Downloaded-Packages "true";\n'
    )

