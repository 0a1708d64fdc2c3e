"""Database connections from ``DATABASE_URL``: PostgreSQL (psycopg 3) on servers, SQLite locally.

``postgres://user:pass@host:port/name?sslmode=...`` goes to libpq as it is (percent-encoded user,
password and socket-directory host included); ``connect_timeout`` defaults to 5 s so a dead
database fails the health check quickly. ``sqlite:///relative.db`` or ``sqlite:////abs/path.db``
(the default: ``db.sqlite3`` beside this file) is for local runs and tests only.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from urllib.parse import unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent


class Database:
    """One connection in autocommit mode; SQL uses ``%s`` placeholders for both engines."""

    def __init__(self, url: str | None = None) -> None:
        url = url or os.environ.get("DATABASE_URL", "").strip() or f"sqlite:///{BASE_DIR}/db.sqlite3"
        scheme = urlsplit(url).scheme.lower()
        if scheme == "sqlite":
            self.sqlite = True
            self.conn = sqlite3.connect(unquote(urlsplit(url).path[1:]), timeout=5,
                                        isolation_level=None)
        elif scheme in {"postgres", "postgresql"}:
            import psycopg

            self.sqlite = False
            timeout = {} if "connect_timeout=" in url else {"connect_timeout": 5}
            self.conn = psycopg.connect(url, autocommit=True, **timeout)
        else:
            raise ValueError(f"DATABASE_URL: unsupported scheme {scheme!r}; expected postgres://")

    def execute(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Run one statement; the rows it returns (an empty list for none)."""
        cursor = self.conn.execute(sql.replace("%s", "?") if self.sqlite else sql, params)
        return cursor.fetchall() if cursor.description else []

    def execute_script(self, sql: str) -> None:
        """Run a file of statements (no parameters) in the current transaction."""
        if not self.sqlite:
            self.conn.execute(sql)
            return
        statement = ""
        for piece in sql.split(";"):  # complete_statement knows quotes, comments and triggers
            statement += piece + ";"
            if sqlite3.complete_statement(statement):
                self.conn.execute(statement)
                statement = ""

    def begin_exclusive(self, table: str) -> None:
        """Start a transaction that holds ``table`` against concurrent writers until it ends."""
        if self.sqlite:
            self.conn.execute("BEGIN IMMEDIATE")
        else:
            self.conn.execute("BEGIN")
            self.conn.execute(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")

    def rollback(self) -> None:
        """End a failed transaction, unless the engine has ended it already."""
        if not self.sqlite or self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
