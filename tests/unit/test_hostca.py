"""The db host's own CA (vpskit/provision/hostca.py): the certificates issue-cert.sh makes are
kept while they name the host's address, and the real redis-server with the rendered TLS config
is reached by the example apps' own clients (redis-py, Celery's kombu, channels-redis) through
the URL an app host gets, verified against that CA and refused against any other."""

from __future__ import annotations

import getpass
import grp
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.helpers.example_venv import CACHE, example_venv
from vpskit import applier, sh
from vpskit.applier import Context
from vpskit.config import App, Environment, Host
from vpskit.provision import cache, database, hostca

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
VENV = Path(os.environ.get("VPSKIT_EXAMPLE_VENV", CACHE / "example-venv"))
CLIENTS = """import sys, redis, kombu
url = sys.argv[1]
try:
    client = redis.from_url(url)
    client.set("k", "v")
    print(client.get("k").decode())
    with kombu.Connection(url) as conn:
        conn.SimpleQueue("q").put("task")
        print(conn.SimpleQueue("q").get(timeout=5).payload)
except Exception as error:
    print(type(error).__name__, error)
"""
CHANNELS = """import asyncio, sys
from channels_redis.core import RedisChannelLayer
async def main():
    layer = RedisChannelLayer(hosts=[{"address": sys.argv[1], "socket_connect_timeout": 2}])
    await layer.send("room", {"type": "chat.message", "text": "hello"})
    print((await layer.receive("room"))["text"])
try:
    asyncio.run(main())
except Exception as error:
    print(type(error).__name__, error)
"""


@pytest.mark.parametrize("address, printed, san", [
    ("10.0.0.9", "X509v3 Subject Alternative Name: \n    IP Address:10.0.0.9\n", "IP:10.0.0.9"),
    ("fd00::9", "X509v3 Subject Alternative Name: \n    IP Address:FD00:0:0:0:0:0:0:9\n",
     "IP:fd00::9"),
    ("db.example", "X509v3 Subject Alternative Name: \n    DNS:db.example\n", "DNS:db.example"),
])
def test_a_certificate_is_kept_while_it_names_the_db_address(address, printed, san):
    assert hostca.subject_alt_name(address) == hostca.cert_san(printed) == san
    assert hostca.cert_san("") == ""


def test_the_redis_conf_takes_tls_on_its_tls_port_only_when_other_hosts_reach_it():
    alone = cache.redis_conf("shop", 6380, "pw", "64mb", "allkeys-lru")
    assert "tls-port" not in alone
    shared = cache.redis_conf("shop", 6380, "pw", "64mb", "allkeys-lru", ("10.0.0.3",))
    for line in ("tls-port 7380", "tls-cert-file /etc/ssl/vpskit/redis.crt",
                 "tls-key-file /etc/ssl/vpskit/redis.key",
                 "tls-ca-cert-file /etc/ssl/vpskit/ca.crt", "tls-auth-clients no"):
        assert line in shared.splitlines(), line


def free_port_pair() -> int:
    """A port p with p and its TLS port both free on 127.0.0.1."""
    for port in range(21000 + os.getpid() % 4000, 30000):
        try:
            for p in (port, hostca.redis_tls_port(port)):
                socket.create_server(("127.0.0.1", p)).close()
            return port
        except OSError:
            continue
    raise AssertionError("no free port pair")


def test_an_app_host_reaches_redis_over_tls_verified_against_the_host_ca(tmp_path):
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    django = example_venv(EXAMPLES / "django" / "requirements.txt", VENV)
    channels = example_venv(EXAMPLES / "channels" / "requirements.txt",
                            CACHE / "example-venv-channels")
    tls, user = tmp_path / "tls", getpass.getuser()
    subprocess.run(["bash", "-c", sh.script("issue-cert"), "issue-cert", str(tls), "redis",
                    "IP:127.0.0.1", f"{user}:{grp.getgrgid(os.getgid()).gr_name}"],
                   check=True, capture_output=True)
    port = free_port_pair()
    conf = tmp_path / "redis.conf"
    conf.write_text(cache.redis_conf("shop", port, "pw-1", "16mb", "allkeys-lru", ("127.0.0.1",)))
    server = subprocess.Popen(
        ["redis-server", str(conf), "--dir", str(tmp_path), "--pidfile", str(tmp_path / "pid"),
         "--bind", "127.0.0.1", "--tls-cert-file", str(tls / "redis.crt"),
         "--tls-key-file", str(tls / "redis.key"), "--tls-ca-cert-file", str(tls / "ca.crt")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            assert server.poll() is None, "redis-server refused the rendered config"
            try:
                socket.create_connection(("127.0.0.1", hostca.redis_tls_port(port))).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not listen for TLS"
                time.sleep(0.05)
        db, web = Host("127.0.0.1"), Host("192.0.2.8")

        def clients(ca: Path) -> list[str]:
            url = database.url_for(f"redis://:pw-1@127.0.0.1:{port}/0", db, web, str(ca))
            assert url.startswith("rediss://")
            return [line for python, program in ((django, CLIENTS), (channels, CHANNELS))
                    for line in subprocess.run([str(python), "-c", program, url],
                                               capture_output=True, text=True, timeout=60
                                               ).stdout.splitlines()]

        assert clients(tls / "ca.crt") == ["v", "task", "hello"]
        refused = clients(Path("/etc/ssl/certs/ca-certificates.crt"))
        assert len(refused) == 2, refused  # redis-py stops the script at its first error
        assert all("certificate verify failed" in line for line in refused), refused
    finally:
        server.terminate()
        server.wait(timeout=10)


class IssuingRemote:
    """Answers issue-cert.sh with the CA certificate ``ca``."""

    def __init__(self, ca: str) -> None:
        self.ca, self.issued = ca, []

    def run(self, argv: list[str]) -> SimpleNamespace:
        self.issued.append(argv[5])
        return SimpleNamespace(stdout=self.ca)


def context(remote: IssuingRemote, host_ca: str | None) -> Context:
    env = Environment("production", (Host("192.0.2.9", roles=("db",)),), ("shop.test",),
                      App("shop", "repo"))
    facts = {"host_ca": host_ca, "postgres_cert": "", "redis_cert": "IP:192.0.2.9",
             "backend_cert": "DNS:vpskit-backend.internal"}
    return Context(env=env, host=env.hosts[0], remote=remote, out=None, facts=facts)


@pytest.mark.parametrize("before, kept", [("CA-1\n", True), ("CA-1", True), (None, False),
                                          ("CA-0\n", False)])
def test_a_ca_made_anew_voids_the_other_certificates_it_did_not_sign(before, kept):
    """Issuing one certificate under the CA the host had keeps the others; under a CA made
    anew (none before, or another: its key was lost) the others are issued again."""
    remote = IssuingRemote("CA-1\n")
    ctx = context(remote, before)

    def issue(service: str) -> list[str]:
        return applier.apply(ctx, hostca.certificate(ctx.host, service,
                                                     ctx.facts[f"{service}_cert"],
                                                     ctx.facts["host_ca"]))
    assert issue("postgres") == ["/etc/ssl/vpskit/postgres.crt issued for IP:192.0.2.9"]
    assert ctx.facts["host_ca"] == "CA-1\n" and ctx.facts["postgres_cert"] == "IP:192.0.2.9"
    assert issue("redis") == ([] if kept else ["/etc/ssl/vpskit/redis.crt issued for IP:192.0.2.9"])
    assert remote.issued == (["postgres"] if kept else ["postgres", "redis"])
