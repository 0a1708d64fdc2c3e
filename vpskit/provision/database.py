"""PostgreSQL from the OS packages: localhost only, scram-sha-256, the app's role and database."""

from __future__ import annotations

import secrets
from urllib.parse import quote, unquote, urlsplit

from vpskit import facts, pgadmin
from vpskit.files import FileSpec, file_probe
from vpskit.provision.context import Context

PG_CONF = "listen_addresses = 'localhost'\npassword_encryption = 'scram-sha-256'\n"


def probes(ctx: Context) -> list[facts.Probe]:
    return [
        facts.Probe("pg_version", "ls /etc/postgresql | sort -n | tail -1",
                    lambda out, rc: out.strip()),
        file_probe([conf_path(v) for v in ("13", "14", "15", "16", "17")], "pg_files"),
    ]


def conf_path(version: str) -> str:
    return f"/etc/postgresql/{version}/main/conf.d/vpskit.conf"


def database_url(user: str, password: str, db: str) -> str:
    return f"postgres://{quote(user)}:{quote(password, safe='')}@127.0.0.1:5432/{quote(db)}"


def url_password(url: str | None) -> str | None:
    """The password in a DATABASE_URL, or None (pure)."""
    if not url:
        return None
    password = urlsplit(url).password
    return unquote(password) if password else None


def postgres(ctx: Context) -> list[str]:
    """Configure the cluster, then create the role and database through psycopg over SSH.

    Will not alter an existing role's password while the env file still holds a working one.
    """
    env = ctx.env
    if not env.postgres.enabled:
        return []
    version = ctx.facts["pg_version"]
    spec = FileSpec(conf_path(version), PG_CONF, "postgres", "postgres", 0o644)
    changes = ctx.apply_files([spec], ctx.facts["pg_files"])
    if changes:
        ctx.act(["systemctl", "restart", f"postgresql@{version}-main"])
    known = url_password(ctx.app_env.get("DATABASE_URL"))
    if ctx.dry_run:
        ctx.managed_env["DATABASE_URL"] = ctx.app_env.get("DATABASE_URL", "")
        return changes + ([] if known else [f"role {env.db_user} + database {env.db_name}"])
    with pgadmin.admin_connection(ctx.remote) as conn:
        password = known if known and pgadmin.role_exists(conn, env.db_user) else None
        new_password = None if password else secrets.token_urlsafe(24)
        ctx.remote.add_secret(new_password or password or "")
        changes += filter(None, [pgadmin.ensure_role(conn, env.db_user, new_password),
                                 pgadmin.ensure_database(conn, env.db_name, env.db_user)])
    ctx.managed_env["DATABASE_URL"] = database_url(env.db_user, password or new_password,
                                                   env.db_name)
    return changes
