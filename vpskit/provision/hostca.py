"""The db host's own CA, for app hosts on other machines to verify its services by.

When the app runs on other hosts, Postgres and Redis are reached over the network (a private
one, or none: hosts with public addresses only). The db host then makes a CA of its own in
:data:`TLS_DIR` (its key root-only, never copied off the host) and from it a certificate per
service for its private address; each app host keeps the CA's certificate at
:func:`trusted_path` and the app's URLs name it, so the app verifies the server it talks to.
Postgres takes TLS on its own port; Redis on its port + :data:`REDIS_TLS_OFFSET`.
"""

from __future__ import annotations

import ipaddress

from vpskit import facts, sh
from vpskit.config import Environment
from vpskit.endpoints import is_ip
from vpskit.files import FileSpec, differences, file_probe
from vpskit.provision.context import Context

TLS_DIR = "/etc/ssl/vpskit"  # ca.key/ca.crt, <service>.key/.crt, and the CAs an app host trusts
SERVICES = {"postgres": "postgres:postgres", "redis": "redis:redis"}  # certificate: key's owner
ISSUE_CERT = sh.script("issue-cert")
REDIS_TLS_OFFSET = 1000


def redis_tls_port(port: int) -> int:
    """The TLS port of the Redis instance on ``port``, the one other hosts reach."""
    return port + REDIS_TLS_OFFSET


def cert_path(service: str) -> str:
    return f"{TLS_DIR}/{service}.crt"


def key_path(service: str) -> str:
    return f"{TLS_DIR}/{service}.key"


CA_CERT = cert_path("ca")


def trusted_path(env: Environment) -> str:
    """Where an app host keeps the CA certificate of its site's db host."""
    return f"{TLS_DIR}/{env.site}-db-ca.crt"


def probes(env: Environment) -> list[facts.Probe]:
    """``<service>_cert``: the subjectAltName of each service's certificate ("" unless the CA
    signed it and it matches its key); ``host_ca``: the CA's certificate (None: no CA);
    ``trusted_ca``: the state of the db host's CA certificate kept here."""
    return [*(_cert_probe(service) for service in SERVICES), facts.text(CA_CERT, "host_ca"),
            file_probe([trusted_path(env)], "trusted_ca")]


def _cert_probe(service: str) -> facts.Probe:
    crt, key = f"{service}.crt", f"{service}.key"
    return facts.Probe(
        f"{service}_cert",
        f"cd {TLS_DIR} && openssl verify -CAfile ca.crt {crt} >/dev/null && "
        f"[ \"$(openssl x509 -noout -pubkey -in {crt})\" = \"$(openssl pkey -pubout -in {key})\" ]"
        f" && openssl x509 -noout -ext subjectAltName -in {crt}",
        lambda out, rc: cert_san(out) if rc == 0 else "")


def subject_alt_name(address: str) -> str:
    """``IP:<address>`` (normalised) or ``DNS:<name>`` (pure)."""
    return f"IP:{ipaddress.ip_address(address)}" if is_ip(address) else f"DNS:{address}"


def cert_san(out: str) -> str:
    """The one subjectAltName ``openssl x509 -ext subjectAltName`` printed, as
    :func:`subject_alt_name` writes it (pure)."""
    value = out.strip().splitlines()[-1].strip() if out.strip() else ""
    if value.startswith("IP Address:"):
        return subject_alt_name(value.removeprefix("IP Address:"))
    return value


def ensure_certificate(ctx: Context, service: str) -> list[str]:
    """``service``'s certificate for the host's private address, issued by the host's CA
    (made first when missing) unless the one there is for that address; the fact
    ``host_ca`` then holds the CA's certificate."""
    wanted = subject_alt_name(ctx.host.private)
    if ctx.facts[f"{service}_cert"] == wanted:
        return []
    if not ctx.dry_run:
        ctx.facts["host_ca"] = ctx.remote.run(["bash", "-c", ISSUE_CERT, "issue-cert", TLS_DIR,
                                               service, wanted, SERVICES[service]]).stdout
        ctx.facts[f"{service}_cert"] = wanted
    return [f"{cert_path(service)} issued for {wanted}"]


def trust(ctx: Context, ca: str) -> list[str]:
    """On an app host other than the db host: the db host's CA certificate ``ca`` at
    :func:`trusted_path` (readable by all: it is public). Its state is the fact
    ``trusted_ca``."""
    spec = FileSpec(trusted_path(ctx.env), ca.strip() + "\n", mode=0o644)
    if not differences(spec, ctx.facts["trusted_ca"].get(spec.path)):
        return []
    ctx.act(["install", "-d", "-m", "755", TLS_DIR])
    return ctx.apply_files([spec], ctx.facts["trusted_ca"])
