"""The example Flask app ``depot``: ``gunicorn app:app --worker-class gevent``.

Everything comes from environment variables (on the server: the site's systemd
``EnvironmentFile``); see README.md for the list. The schema is made by ``python migrate.py``.
"""

from __future__ import annotations

import logging
import os
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import redis
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from db import BASE_DIR, Database
from flask import Flask, g, jsonify, request
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.utils import secure_filename

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}
NAME_MAX = 200
NO_CACHE = "max-age=0, no-cache, no-store, must-revalidate, private"


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the app refuses to start."""


def env_bool(name: str) -> bool:
    raw = os.environ.get(name, "")
    if raw.strip().lower() in TRUE:
        return True
    if raw.strip().lower() in FALSE:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean: use 1 or 0")


def env_list(name: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


DEBUG = env_bool("DEBUG")
RELEASE = os.environ.get("RELEASE", "").strip() or "-"
APP_ENV = os.environ.get("APP_ENV", "").strip()
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT") or BASE_DIR / "media")
REDIS_URL = os.environ.get("REDIS_URL", "").strip()

logging.basicConfig(stream=sys.stdout, format="%(levelname)s %(name)s: %(message)s",
                    level=(os.environ.get("LOG_LEVEL") or "INFO").upper())
log = logging.getLogger("depot")


def _secret(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value and not DEBUG:
        raise ConfigError(
            f"{name} is not set: put it in the environment (DEBUG=1 allows a dev key)")
    return value


def _fernet() -> MultiFernet:
    """FERNET_KEY: one key, or several comma separated (the first encrypts, all decrypt)."""
    keys = env_list("FERNET_KEY") if _secret("FERNET_KEY") else [Fernet.generate_key().decode()]
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except ValueError:
        raise ConfigError("FERNET_KEY: each key must be 32 url-safe base64-encoded bytes "
                          "(make one with Fernet.generate_key())") from None


app = Flask(__name__)
app.config.update(
    SECRET_KEY=_secret("SECRET_KEY") or "dev-only-key-do-not-use-in-production",
    TRUSTED_HOSTS=env_list("ALLOWED_HOSTS") or None,  # every request's Host must be one of these
    SESSION_COOKIE_SECURE=not DEBUG,
)
# TLS ends at Nginx, which sets X-Forwarded-For, -Proto and -Host.
app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)
fernet = _fernet()
cache = (redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
         if REDIS_URL else None)

SENTRY_DSN = os.environ.get("SENTRY_DSN", "").strip()
if SENTRY_DSN:
    try:
        import sentry_sdk
    except ImportError:
        print("SENTRY_DSN is set but sentry_sdk is not installed; errors are not reported",
              file=sys.stderr)
    else:
        sentry_sdk.init(dsn=SENTRY_DSN, release=RELEASE if RELEASE != "-" else None,
                        environment=APP_ENV or None, send_default_pii=False)


def app_version() -> str:
    """The VERSION file at the app root, read on each call (a deploy may replace it)."""
    try:
        return (BASE_DIR / "VERSION").read_text().strip() or "unknown"
    except OSError:
        return "unknown"


def database() -> Database:
    """This request's connection, opened on first use and closed when the request ends."""
    if "db" not in g:
        g.db = Database()
    return g.db


@app.teardown_appcontext
def _close_database(exc: BaseException | None) -> None:
    db = g.pop("db", None)
    if db is not None:
        db.close()


def _error(exc: Exception) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def _check_database() -> None:
    if database().execute("SELECT 1") != [(1,)]:
        raise RuntimeError("SELECT 1 returned something else")


def _check_redis() -> None:
    key, value = f"depot:health:{uuid.uuid4().hex}", uuid.uuid4().hex.encode()
    cache.set(key, value, ex=30)
    if cache.get(key) != value:
        raise RuntimeError("value written to Redis did not come back")
    cache.delete(key)


@app.get("/")
def index():
    body = f"depot VERSION={app_version()} release={RELEASE}\n"
    return body, 200, {"Content-Type": "text/plain; charset=utf-8"}


@app.get("/health/")
def health():
    """200 when the database and Redis both answer, else 503 naming what failed.

    Without REDIS_URL (local runs only) Redis is reported as ``"off"`` and not checked.
    """
    result: dict[str, object] = {"status": "ok"}
    checks = [("database", _check_database)]
    if cache is None:
        result["redis"] = "off"
    else:
        checks.append(("redis", _check_redis))
    failing = []
    for part, check in checks:
        try:
            check()
        except Exception as exc:  # any failure of a dependency is a failed check
            log.error("health: %s check failed: %s", part, _error(exc))
            result[part] = f"error: {_error(exc)}"
            failing.append(part)
        else:
            result[part] = "ok"
    result.update(version=app_version(), release=RELEASE)
    if failing:
        result.update(status="error", failing=failing)
    return jsonify(result), 503 if failing else 200, {"Cache-Control": NO_CACHE}


@app.get("/secret-roundtrip/")
def secret_roundtrip():
    """Encrypt and decrypt with FERNET_KEY; ``?token=`` decrypts a token made earlier.

    A token made by one release and decrypted by the next proves the key survived the deploy.
    """
    token = request.args.get("token")
    if token is None:
        plaintext = f"depot-{uuid.uuid4().hex}"
        token = fernet.encrypt(plaintext.encode()).decode()
        if fernet.decrypt(token.encode()).decode() != plaintext:
            return jsonify(status="error", error="decrypted value differs"), 500
        return jsonify(status="ok", plaintext=plaintext, token=token), 200, {
            "Cache-Control": NO_CACHE}
    try:
        plaintext = fernet.decrypt(token.encode()).decode()
    except InvalidToken:
        return jsonify(status="error", error="not a token of this FERNET_KEY"), 400
    return jsonify(status="ok", plaintext=plaintext), 200, {"Cache-Control": NO_CACHE}


def _item_json(row: tuple) -> dict:
    item_id, name, image, created = row
    return {
        "id": item_id,
        "name": name,
        "created": created if isinstance(created, str) else created.isoformat(),
        "image": f"/media/{image}" if image else None,
    }


@app.route("/items/", methods=["GET", "POST"])
def items():
    """GET: the newest 100 items. POST (multipart): ``name`` and an optional file ``image``,
    saved under MEDIA_ROOT/items/ (Nginx serves it at /media/items/...)."""
    if request.method == "GET":
        rows = database().execute(
            "SELECT id, name, image, created FROM items ORDER BY created DESC, id LIMIT 100")
        return jsonify(items=[_item_json(row) for row in rows]), 200, {"Cache-Control": NO_CACHE}
    name = request.form.get("name", "").strip()
    if not name:
        return jsonify(error="name is required"), 400
    if len(name) > NAME_MAX:
        return jsonify(error=f"name is longer than {NAME_MAX}"), 400
    item_id = uuid.uuid4().hex
    image = None
    upload = request.files.get("image")
    if upload is not None and upload.filename:
        image = f"items/{item_id[:8]}-{secure_filename(upload.filename) or 'upload'}"
        target = MEDIA_ROOT / image
        target.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
        upload.save(target)
        target.chmod(0o640)
    row = (item_id, name, image, datetime.now(UTC).isoformat())
    database().execute("INSERT INTO items (id, name, image, created) VALUES (%s, %s, %s, %s)",
                       row)
    log.info("created item %s (image %s)", item_id, image or "none")
    return jsonify(_item_json(row)), 201
