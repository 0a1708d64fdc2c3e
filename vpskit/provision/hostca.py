"""A host's own CA, for the other hosts of the site to verify the services it offers them.

Between hosts, traffic crosses a network (a private one, or none: hosts with public addresses
only), so it is TLS, verified. A host that serves others makes a CA of its own in
``/etc/ssl/vpskit`` (its key root-only, never copied off the host) and from it a certificate
per service; the hosts that use it keep the CA's certificate (paths in :mod:`vpskit.render`).
The db host's Postgres and Redis certificates name its private address; each app host keeps
its CA and the app's URLs name it (Postgres takes TLS on its own port, Redis on its port +
:data:`REDIS_TLS_OFFSET`). A web host behind an lb serves its backend port with a certificate
for ``render.BACKEND_NAME``; the lb keeps every web host's CA.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from vpskit import facts, plan, render, sh
from vpskit.config import Environment, Host
from vpskit.endpoints import is_ip
from vpskit.files import FileSpec, FileState, file_probe
from vpskit.plan import Plan

SERVICES = {"postgres": "postgres:postgres", "redis": "redis:redis",  # certificate: key's owner
            "backend": "root:root"}  # a web host's backend port (Nginx reads keys as root)
CA_CERT = render.host_cert_path("ca")
ISSUE_CERT = sh.script("issue-cert")
REDIS_TLS_OFFSET = 1000


def redis_tls_port(port: int) -> int:
    """The TLS port of the Redis instance on ``port``, the one other hosts reach."""
    return port + REDIS_TLS_OFFSET


def probes(env: Environment) -> list[facts.Probe]:
    """``<service>_cert``: the subjectAltName of each service's certificate ("" unless the CA
    signed it and it matches its key); ``host_ca``: the CA's certificate (None: no CA);
    ``trusted_ca``: the states of the other hosts' CA certificates kept here."""
    return [*(_cert_probe(service) for service in SERVICES), ca_probe(),
            file_probe([render.db_ca_path(env), render.web_cas_path(env)], "trusted_ca")]


def ca_probe() -> facts.Probe:
    """``host_ca``: the host's CA certificate (None: no CA)."""
    return facts.text(CA_CERT, "host_ca")


def _cert_probe(service: str) -> facts.Probe:
    crt, key = f"{service}.crt", f"{service}.key"
    return facts.Probe(
        f"{service}_cert",
        f"cd {render.HOST_TLS_DIR} && openssl verify -CAfile ca.crt {crt} >/dev/null && "
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


def certificate(host: Host, service: str, have: str, host_ca: str | None,
                name: str | None = None) -> Plan:
    """``service``'s certificate for ``name`` (default: the host's private address), issued
    by the host's CA (made first when missing) unless the one there (``have``) is for that
    name; the fact ``host_ca`` then holds the CA's certificate. A CA made anew voids the other
    services' certificates (the old CA signed them), so their steps issue them again (the
    hatch ``issue_certificate``)."""
    wanted = subject_alt_name(name or host.private)
    if have == wanted:
        return Plan()
    return (plan.hatch("issue_certificate", service, wanted, host_ca)
            + Plan(changes=(f"{render.host_cert_path(service)} issued for {wanted}",)))


def issue_argv(service: str, wanted: str) -> list[str]:
    """The command issuing ``service``'s certificate for ``wanted``; it prints the CA's
    certificate (pure)."""
    return ["bash", "-c", ISSUE_CERT, "issue-cert", render.HOST_TLS_DIR, service, wanted,
            SERVICES[service]]


def issued_facts(service: str, wanted: str, ca: str, old_ca: str | None) -> dict[str, str]:
    """The facts after ``service``'s certificate for ``wanted`` was issued by ``ca``: every
    other service's certificate void when the CA is not ``old_ca`` (pure)."""
    voided = {f"{other}_cert": "" for other in SERVICES} if ca.strip() != (old_ca or "").strip() \
        else {}
    return {**voided, "host_ca": ca, f"{service}_cert": wanted}


@dataclass(frozen=True)
class TrustFacts:
    trusted_ca: dict[str, FileState]


def trust(path: str, cas: list[str], env: Environment, host: Host, found: TrustFacts) -> Plan:
    """Other hosts' CA certificates ``cas`` kept at ``path`` (:func:`vpskit.render.db_ca_path` or
    :func:`vpskit.render.web_cas_path`; readable by all: they are public)."""
    spec = FileSpec(path, "".join(ca.strip() + "\n" for ca in cas), mode=0o644)
    write = plan.write([spec], found.trusted_ca)
    if not write.actions:
        return Plan()
    return plan.run("install", "-d", "-m", "755", render.HOST_TLS_DIR) + write
