"""PostgreSQL from the OS packages: scram-sha-256, the app's role and database.

Localhost only, unless the app runs on other hosts: then Postgres also listens on the db host's
private address and ``pg_hba.conf`` admits the site's role from exactly those hosts, over TLS
only; they verify the server's certificate (``sslmode=verify-full``) against the db host's own
CA (:mod:`vpskit.provision.hostca`). The URLs the app gets are kept in a root-only credentials
file on the db host, for the other hosts.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from vpskit import envfile, facts, plan, render, sh
from vpskit.config import Environment, Host
from vpskit.endpoints import SERVICE_PORTS, service_endpoint
from vpskit.errors import ToolkitError
from vpskit.files import FileSpec, FileState, file_probe
from vpskit.plan import Plan
from vpskit.provision import hostca

VERSIONS = ("13", "14", "15", "16", "17")
LATEST = "$(ls /etc/postgresql | sort -n | tail -1)"
SERVICE_URLS = tuple(SERVICE_PORTS)
CLAIMS = "/etc/vpskit/postgres"  # <site>: the database and role it owns, a line each


def cluster_probes() -> list[facts.Probe]:
    """The installed cluster's version and its pg_hba.conf text."""
    return [
        facts.Probe("pg_version", "ls /etc/postgresql | sort -n | tail -1",
                    lambda out, rc: out.strip()),
        facts.Probe("pg_hba", f"cat /etc/postgresql/{LATEST}/main/pg_hba.conf",
                    lambda out, rc: out if rc == 0 else ""),
    ]


def claim_probes() -> list[facts.Probe]:
    """Which site claims which database and role, and who owns each database: gathered
    before anything changes (provision's first round trip, remove, restore)."""
    return [
        facts.registry(CLAIMS, "pg_claims", claims),
        psql_probe("pg_owners", "SELECT datname, pg_get_userbyid(datdba) FROM pg_database",
                   database_owners, {}),
    ]


def psql_probe(name: str, query: str, parse: Callable[[str], Any], none: Any) -> facts.Probe:
    """The rows of a fixed ``query`` (no values of ours in it), fields separated by a space,
    as the superuser; ``none`` when Postgres is not there. The newest version's psql binary
    itself, not Debian's wrapper script (a Perl start-up on every provision)."""
    return facts.Probe(name, "p=(/usr/lib/postgresql/*/bin/psql); runuser -u postgres -- "
                             f"\"${{p[-1]}}\" -XAt -F ' ' -c {shlex.quote(query)}",
                       lambda out, rc: parse(out) if rc == 0 else none)


def database_owners(out: str) -> dict[str, str]:
    """``{database: owner}`` from ``psql -At`` lines ``name owner`` (pure)."""
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def claims(found: dict[str, list[str]]) -> dict[str, dict[str, str]]:
    """``{site: {"database": name, "role": name}}`` from the registry's lines (pure)."""
    return {site: dict(line.split(" ", 1) for line in lines if " " in line)
            for site, lines in found.items()}


def claim_path(site: str) -> str:
    return f"{CLAIMS}/{site}"


def claim_text(env: Environment) -> str:
    return f"database {env.db_name}\nrole {env.db_user}\n"


def claim_conflict(site: str, db: str, role: str, claimed: dict[str, dict[str, str]],
                   owners: dict[str, str]) -> str | None:
    """What another site on the server already has of ``db``/``role``, or None (pure).

    Another site's claim decides; databases that no site claims (a server from before the
    registry) belong to whoever owns them."""
    for other, has in sorted(claimed.items()):
        for kind, name in (("database", db), ("role", role)):
            if other != site and has.get(kind) == name:
                return f"{kind} {name} with site {other}"
    if owners.get(db, role) != role:
        return f"database {db} with role {owners[db]}, its owner"
    mine = claimed.get(site, {}).get("database")
    owned = sorted(d for d, owner in owners.items() if owner == role and d not in (db, mine))
    return f"role {role} with database {owned[0]}, which it owns" if owned else None


def check_claims(env: Environment, host: Host, found: dict[str, Any]) -> None:
    """On the site's db host, refuse a database or role another site has: one line naming
    both and the fix. ``found`` holds the facts of :func:`claim_probes`."""
    if not env.own_postgres or host != env.db_host:
        return
    conflict = claim_conflict(env.site, env.db_name, env.db_user, found["pg_claims"],
                              found["pg_owners"])
    if conflict:
        raise ToolkitError(
            f"{host.address}: {env.site} would share {conflict}; sites sharing a database or "
            f"role reset each other's password and destroy each other's data: give {env.site} "
            f"its own postgres.db and postgres.user in its inventory (nothing was changed)")


@dataclass(frozen=True)
class DatabaseFacts:
    pg_version: str
    pg_hba: str
    pg_files: dict[str, FileState]
    credentials: str | None  # the db host's file of service URLs
    pg_owners: dict[str, str]  # database: owner (probe: claim_probes, on the db host)
    postgres_cert: str  # probe: hostca
    host_ca: str | None  # probe: hostca
    app_env: dict[str, str]  # the server's env file as found (probe: app)


@dataclass(frozen=True)
class CredentialsFacts:
    credentials_files: dict[str, FileState]
    managed_env: dict[str, str]  # the URLs the postgres and redis steps made


@dataclass(frozen=True)
class ReachFacts:
    managed_env: dict[str, str]


def probes(env: Environment, host: Host) -> list[facts.Probe]:
    return [
        *cluster_probes(),
        file_probe([p for v in VERSIONS for p in (conf_path(v), hba_path(v))]
                   + [claim_path(env.site)], "pg_files"),
        facts.text(credentials_path(env), "credentials"),
        file_probe([credentials_path(env)], "credentials_files"),
    ]


def conf_path(version: str) -> str:
    return f"/etc/postgresql/{version}/main/conf.d/vpskit.conf"


def hba_path(version: str) -> str:
    return f"/etc/postgresql/{version}/main/pg_hba.conf"


def credentials_path(env: Environment) -> str:
    return f"/etc/vpskit/credentials/{env.site}.env"


def service_ports(env: Environment, redis_port: int) -> list[int]:
    """The ports other app hosts reach on the db host for the site: Postgres's, and the TLS
    port of the site's own Redis instance (pure)."""
    return [port for port, own in ((SERVICE_PORTS["DATABASE_URL"], env.own_postgres),
                                   (hostca.redis_tls_port(redis_port), env.own_redis)) if own]


def remote_clients(env: Environment) -> list[str]:
    """Private addresses of the app hosts other than the db host (pure)."""
    return [h.private for h in env.app_hosts if h != env.db_host]


def pg_conf(listen: list[str]) -> str:
    """vpskit's conf.d file: listening on ``listen`` besides localhost, and then with the
    certificate of the host's CA (pure)."""
    tls = (f"ssl = on\nssl_cert_file = '{render.host_cert_path('postgres')}'\n"
           f"ssl_key_file = '{render.host_key_path('postgres')}'\n") if listen else ""
    return (f"listen_addresses = '{', '.join(['localhost', *listen])}'\n"
            f"password_encryption = 'scram-sha-256'\n{tls}")


def hba_with(text: str, site: str, db: str, user: str, clients: list[str]) -> str:
    """``pg_hba.conf`` with the site's block admitting ``clients`` (none: no block) (pure)."""
    begin, end = f"# vpskit {site} begin\n", f"# vpskit {site} end\n"
    head, found, rest = text.partition(begin)
    tail = rest.partition(end)[2] if found else ""
    lines = "".join(f"hostssl {db} {user} {c}/32 scram-sha-256\n" for c in clients)
    block = begin + lines + end if clients else ""
    return head + block + tail


def known_url(env: Environment, found: DatabaseFacts, key: str) -> str:
    """The site's ``key`` as the server has it: its env file here, or the credentials file."""
    stored = envfile.parse(found.credentials or "", credentials_path(env))
    return found.app_env.get(key) or stored.get(key, "")


def url_for(url: str, db: Host, host: Host, ca_path: str) -> str:
    """A service URL (made for the db host itself) as ``host`` must use it: over TLS, the
    server verified against the CA certificate at ``ca_path`` (pure)."""
    if not url or host == db:
        return url
    parts = urlsplit(url)
    postgres = parts.scheme == "postgres"  # Postgres keeps its port; Redis has a TLS one
    port = parts.port if postgres else hostca.redis_tls_port(parts.port)
    netloc = parts.netloc.replace(f"@127.0.0.1:{parts.port}", f"@{db.private}:{port}")
    if postgres:
        return urlunsplit(parts._replace(
            netloc=netloc, query=f"sslmode=verify-full&sslrootcert={ca_path}"))
    return urlunsplit(parts._replace(scheme="rediss", netloc=netloc,
                                     query=f"ssl_cert_reqs=required&ssl_ca_certs={ca_path}"))


def database_url(user: str, password: str, db: str) -> str:
    return f"postgres://{quote(user)}:{quote(password, safe='')}@127.0.0.1:5432/{quote(db)}"


def url_password(url: str | None) -> str | None:
    """The password in a DATABASE_URL, or None (pure)."""
    if not url:
        return None
    password = urlsplit(url).password
    return unquote(password) if password else None


def postgres(env: Environment, host: Host, found: DatabaseFacts) -> Plan:
    """Configure the cluster, then have the role and database (the hatch ``postgres_role``,
    psycopg over SSH) unless both are there with the password the server holds.

    Will not alter an existing role's password while the env file still holds a working one.
    """
    if not env.own_postgres:
        return Plan()
    version, clients = found.pg_version, remote_clients(env)
    unit = f"postgresql@{version}-main"
    issued = hostca.certificate(host, "postgres", found.postgres_cert, found.host_ca) \
        if clients else Plan()
    conf = plan.write([FileSpec(conf_path(version), pg_conf([host.private] if clients else []),
                                "postgres", "postgres", 0o644)], found.pg_files)
    result = issued + conf
    if conf.actions:
        result += plan.run("systemctl", "restart", unit)
    elif issued.actions:
        result += plan.run("systemctl", "reload", unit)
    hba = plan.write([FileSpec(hba_path(version), hba_with(found.pg_hba, env.site, env.db_name,
                                                           env.db_user, clients),
                               "postgres", "postgres", 0o640)], found.pg_files)
    result += hba + (plan.run("systemctl", "reload", unit) if hba.actions else Plan())
    result += plan.write([FileSpec(claim_path(env.site), claim_text(env))], found.pg_files)
    known = url_password(known_url(env, found, "DATABASE_URL"))
    if known and found.pg_owners.get(env.db_name) == env.db_user:  # no superuser session
        return result + plan.app_env(
            {"DATABASE_URL": database_url(env.db_user, known, env.db_name)}, [known])
    return (result + plan.app_env({"DATABASE_URL": found.app_env.get("DATABASE_URL", "")})
            + plan.hatch("postgres_role", known, would="" if known else
                         f"role {env.db_user} + database {env.db_name}"))


def credentials(env: Environment, host: Host, found: CredentialsFacts) -> Plan:
    """Keep the service URLs in a root-only file on the db host, for the other hosts."""
    urls = {k: found.managed_env[k] for k in SERVICE_URLS if found.managed_env.get(k)}
    if not urls:
        return Plan()
    spec = FileSpec(credentials_path(env), envfile.render(urls), mode=0o600, secret=True)
    return plan.write([spec], found.credentials_files)


REACH = sh.script("reach")
def managed_endpoints(env: Environment) -> list[tuple[str, int]]:
    """(address, port) of each managed service given as a secret URL; none for a Unix socket
    (pure). A URL whose host or port is not one raises a ToolkitError naming its secret."""
    found = []
    for key, default in SERVICE_PORTS.items():
        if key in env.secrets:
            try:
                endpoint = service_endpoint(env.secrets[key].reveal(), default)
            except ValueError as exc:
                raise ToolkitError(f"secret {key}: {exc}; fix the URL in the environment's "
                                   f"secrets") from None
            found += [endpoint] if endpoint else []
    return found


def reach(env: Environment, host: Host, found: ReachFacts) -> Plan:
    """An app host must reach the Postgres/Redis ports of a db host on another machine, and
    those of managed services (the hatch ``reach``)."""
    db = env.db_host
    own = [service_endpoint(found.managed_env[k], SERVICE_PORTS[k]) for k in SERVICE_URLS
           if found.managed_env.get(k)] if db and db != host else []  # the URLs it was given
    targets = own + managed_endpoints(env)
    return plan.hatch("reach", tuple(targets), bool(own)) if targets else Plan()


def unreached(env: Environment, host: Host, failed: str, own: bool) -> ToolkitError:
    """The error for the first endpoint ``host`` did not reach, ``address:port`` (pure)."""
    db = env.db_host
    if own and db and failed.startswith(f"{db.private}:"):
        return ToolkitError(
            f"{host.address} cannot reach the db host {db.address} at {failed}; let the app "
            f"hosts through any firewall or security group between them, or fix the db host's "
            f"private_address")
    return ToolkitError(f"{host.address} cannot reach the managed service at {failed}; check "
                        f"the host and port of DATABASE_URL/REDIS_URL in the secrets, and that "
                        f"the provider admits this host")
