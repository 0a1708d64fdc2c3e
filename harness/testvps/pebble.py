"""Pebble, Let's Encrypt's ACME server for tests, on the host where every VPS can reach it.

Pebble validates http-01 challenges by resolving the domain through the host's /etc/hosts (which
:func:`harness.testvps.up` fills in) and fetching ``http://<domain>/.well-known/...`` from the VPS.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from harness.testvps import state
from harness.testvps.shell import (
    HarnessError,
    alive,
    answers,
    ensure_packages,
    find_pids,
    last_line,
    run,
    spawn,
    terminate,
)

PEBBLE_DIR = state.STATE_DIR / "pebble"
LISTENER_CA = PEBBLE_DIR / "vpskit-pebble-ca.crt"  # .crt: update-ca-certificates needs it
CONFIG = PEBBLE_DIR / "config.json"
LEASES = PEBBLE_DIR / "leases"  # one file per holder: <pid>-<random>
ACME_PORT, MANAGEMENT_PORT = 14000, 15000
OPENSSL_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = vpskit test Pebble listener CA
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = @alt
[alt]
DNS.1 = localhost
IP.1 = 127.0.0.1
"""


@dataclass(frozen=True)
class Pebble:
    """A running Pebble, with URLs as seen from the VPS whose host address was asked for."""

    directory_url: str  # ACME directory: certbot --server
    roots_url: str  # Pebble's (per-run) root CA, to verify the certificates it issued
    listener_ca_path: str  # host path of the CA of Pebble's HTTPS listener (trusted by every VPS)
    pid: int
    lease: str  # this holder's lease file: give it back with release()


def ensure_listener_ca() -> Path:
    """The CA of Pebble's listener certificate (for 10.77.0-255.1), made once; hold the lock."""
    cert = PEBBLE_DIR / "cert.pem"
    if cert.exists():
        return LISTENER_CA
    PEBBLE_DIR.mkdir(parents=True, exist_ok=True)
    cnf = PEBBLE_DIR / "openssl.cnf"
    ips = "".join(f"IP.{i + 2} = 10.77.{i}.1\n" for i in range(256))
    cnf.write_text(OPENSSL_CONFIG + ips)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    run("openssl", "req", "-x509", "-new", "-config", cnf, "-extensions", "ca", *ec,
        "-keyout", PEBBLE_DIR / "ca.key", "-out", LISTENER_CA, "-days", "3650")
    run("openssl", "req", "-new", "-config", cnf, "-subj", "/CN=pebble", *ec,
        "-keyout", PEBBLE_DIR / "key.pem", "-out", PEBBLE_DIR / "cert.csr")
    run("openssl", "x509", "-req", "-in", PEBBLE_DIR / "cert.csr", "-CA", LISTENER_CA,
        "-CAkey", PEBBLE_DIR / "ca.key", "-set_serial", f"0x{secrets.token_hex(8)}",
        "-days", "3650", "-extfile", cnf, "-extensions", "leaf", "-out", f"{cert}.part")
    os.replace(f"{cert}.part", cert)  # its existence marks the set complete
    return LISTENER_CA


def _running() -> list[int]:
    return find_pids(str(CONFIG))


def up(host_address: str = "10.77.0.1") -> Pebble:
    """Start Pebble on 0.0.0.0:14000 (ACME) and :15000 (management) unless it already runs.

    ``host_address`` is the host as a VPS sees it (``Vps.host_address``); it only shapes the URLs.
    """
    with state.lock():
        held = _lease()
        ensure_packages("pebble", "openssl")
        ca = ensure_listener_ca()
        pids = _running()
        if not pids:
            CONFIG.write_text(json.dumps({"pebble": {
                "listenAddress": f"0.0.0.0:{ACME_PORT}",
                "managementListenAddress": f"0.0.0.0:{MANAGEMENT_PORT}",
                "certificate": "cert.pem", "privateKey": "key.pem",
                "httpPort": 80, "tlsPort": 443,
                "ocspResponderURL": "", "externalAccountBindingRequired": False,
            }}, indent=1))
            # No sleep before validations; no random "badNonce" rejections (5 % by default).
            env = dict(os.environ, PEBBLE_VA_NOSLEEP="1", PEBBLE_WFE_NONCEREJECT="0")
            log = PEBBLE_DIR / "pebble.log"
            pids = [spawn(["pebble", "-config", str(CONFIG)], log, cwd=PEBBLE_DIR, env=env)]
            _wait_listening(log, pids[0])
    return Pebble(
        directory_url=f"https://{host_address}:{ACME_PORT}/dir",
        roots_url=f"https://{host_address}:{MANAGEMENT_PORT}/roots/0",
        listener_ca_path=str(ca),
        pid=pids[0],
        lease=held,
    )


def _wait_listening(log: Path, pid: int, timeout: float = 30) -> None:
    """Until both ports answer; ``pid`` (not yet exec'd into pebble at first) must stay alive."""
    deadline = time.monotonic() + timeout
    while not (answers("127.0.0.1", ACME_PORT) and answers("127.0.0.1", MANAGEMENT_PORT)):
        if not alive(pid) or time.monotonic() > deadline:
            terminate([pid, *_running()], 5)
            raise HarnessError(f"Pebble did not start: {last_line(log.read_text())!r} (log: {log})")
        time.sleep(0.05)


def down() -> None:
    """Stop Pebble if it runs, whoever uses it; its listener CA stays (every VPS trusts it)."""
    terminate(_running(), 10)


def _lease() -> str:
    """A new lease of this process on Pebble (see :func:`release`); its file's path. Leases
    of processes that have ended (killed runs) are dropped."""
    LEASES.mkdir(parents=True, exist_ok=True)
    for stale in LEASES.glob("*"):
        if not _holder_alive(stale):
            stale.unlink(missing_ok=True)
    path = LEASES / f"{os.getpid()}-{secrets.token_hex(4)}"
    path.touch()
    return str(path)


def release(server: Pebble) -> None:
    """Give back ``server``'s lease; stop Pebble once no live process holds one, so a test
    run (or a fixture of the same run) never stops the Pebble someone still uses."""
    with state.lock():
        Path(server.lease).unlink(missing_ok=True)
        if not any(_holder_alive(lease) for lease in LEASES.glob("*")):
            down()


def _holder_alive(lease: Path) -> bool:
    pid = lease.name.split("-")[0]
    return pid.isdigit() and alive(int(pid))
