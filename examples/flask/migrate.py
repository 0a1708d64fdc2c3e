"""Apply ``migrations/*.sql`` in name order, each once and each in its own transaction.

``python migrate.py`` is the app's release command (Procfile ``release:``): it runs before a new
release takes traffic, against the same ``DATABASE_URL``. Applied files are recorded in the
``schema_migrations`` table, so running it again applies only the new ones; a failing file is
rolled back whole and stops the run (exit 1), leaving the earlier ones applied. Statements
that cannot run inside a transaction (``CREATE INDEX CONCURRENTLY``) are not supported.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from db import Database

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
TABLE = "schema_migrations"


def applied(db: Database) -> set[str]:
    return {row[0] for row in db.execute(f"SELECT name FROM {TABLE}")}


def migrate(db: Database, directory: Path = MIGRATIONS) -> list[str]:
    """Apply the files not applied yet; the names applied now."""
    db.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (name VARCHAR(255) PRIMARY KEY, "
               f"applied_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP)")
    done = []
    for path in sorted(directory.glob("*.sql")):
        if path.name in applied(db):
            continue
        db.begin_exclusive(TABLE)  # a concurrent run waits here, then sees this one's work
        try:
            if path.name not in applied(db):
                started = time.monotonic()
                db.execute_script(path.read_text())
                db.execute(f"INSERT INTO {TABLE} (name) VALUES (%s)", (path.name,))
                done.append(path.name)
                print(f"migrate: applied {path.name} ({time.monotonic() - started:.2f}s)")
            db.execute("COMMIT")
        except Exception:
            db.rollback()
            print(f"migrate: {path.name} failed and was rolled back", file=sys.stderr)
            raise
    return done


def main() -> int:
    try:
        with Database() as db:
            done = migrate(db)
            total = len(applied(db))
    except Exception as exc:  # one line for the deploy log
        print(f"migrate: {type(exc).__name__}: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    if not done:
        print(f"migrate: nothing to apply ({total} applied before)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
