"""Hosts and service URLs, checked the same way at load and before a reach check (pure)."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

SERVICE_PORTS = {"DATABASE_URL": 5432, "REDIS_URL": 6379}  # the default port of each URL
LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
DNS_NAME_RE = re.compile(rf"(?=.{{1,253}}\Z){LABEL}(\.{LABEL})*")


def is_ip(value: str) -> bool:
    """An IPv4 or IPv6 literal, without an IPv6 zone (``%eth0``)."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return "%" not in value


def known_hosts_name(address: str, port: int) -> str:
    """How known_hosts names ``address`` at ``port``: bare on 22, else ``[address]:port``."""
    return address if port == 22 else f"[{address}]:{port}"


def valid_host(value: str) -> bool:
    """An IP literal or a DNS name whose last label is not all digits (unlike a bad IPv4)."""
    return is_ip(value) or (bool(DNS_NAME_RE.fullmatch(value))
                            and not value.rsplit(".", 1)[-1].isdigit())


def service_endpoint(url: str, default_port: int) -> tuple[str, int] | None:
    """``(host, port)`` of a service URL, None when it names no host (a Unix socket).

    Raises ValueError saying what is wrong when the host is neither an IP literal nor a DNS
    name, or the port is not a number from 1 to 65535. Example: ``service_endpoint(
    "postgres://u:pw@db.example:25060/d", 5432) == ("db.example", 25060)``.
    """
    parts = urlsplit(url)
    if not parts.hostname:
        return None
    if not valid_host(parts.hostname):
        raise ValueError(f"its host {parts.hostname!r} is neither an IP address nor a DNS name")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError("its port is not a number from 1 to 65535")
    return parts.hostname, port or default_port
