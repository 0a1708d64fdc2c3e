"""The bundled example Django app (examples/django) in a venv of its own pinned requirements.

The venv lives in /var/cache/vpskit/example-venv (VPSKIT_EXAMPLE_VENV overrides) and is rebuilt
only when requirements.txt or the Python running the tests changes; when pip cannot install the
requirements (no index reachable, say) these tests skip and say why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers.example_venv import CACHE, example_venv, tail

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "django"
VENV = Path(os.environ.get("VPSKIT_EXAMPLE_VENV", CACHE / "example-venv"))
SECRET = "test-only-0c6f9a5e2b7d4f1a8e3c9b0d5a7f2e4c6b8d0a1f3e5c7b9d-long-enough"
ACCEPTED_DEPLOY_WARNINGS = {"security.W004", "security.W008"}  # HSTS and redirect: Nginx's job


@pytest.fixture(scope="module")
def python() -> Path:
    """The venv's python, with requirements.txt installed (built once, then reused)."""
    return example_venv(EXAMPLE / "requirements.txt", VENV)


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> Path:
    """A copy of the example, as a deploy gets it (no local db, media or bytecode)."""
    target = tmp_path_factory.mktemp("example") / "django"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns(
        "__pycache__", "*.pyc", "db.sqlite3", "media", "static-collected"))
    return target


def manage(python: Path, app: Path, *args: str, env: dict[str, str] | None = None,
           check: bool = True) -> subprocess.CompletedProcess:
    """Run ``manage.py ARGS`` in a clean environment (only what the test gives)."""
    full_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "DATABASE_URL": f"sqlite:///{app.parent / 'db.sqlite3'}",
        **(env if env is not None else {"DEBUG": "1"}),
    }
    done = subprocess.run([str(python), "manage.py", *args], cwd=app, env=full_env,
                          capture_output=True, text=True, timeout=60)
    if check and done.returncode != 0:
        pytest.fail(f"manage.py {' '.join(args)} exited {done.returncode}:\n"
                    f"{tail(done.stdout)}\n{tail(done.stderr, 30)}")
    return done


PRODUCTION = {
    "SECRET_KEY": SECRET,
    "ALLOWED_HOSTS": "shop.example.com,www.shop.example.com",
    "DATABASE_URL": "postgres://shop:p%40ss%2Fw%3Ard@127.0.0.1:5432/shop_production",
    "REDIS_URL": "redis://:s3cret@127.0.0.1:6379/0",
    "RELEASE": "20240101-120000",
}


def test_system_check_passes(python, app):
    assert "no issues" in manage(python, app, "check").stdout


def test_migrations_match_models(python, app):
    manage(python, app, "makemigrations", "--check", "--dry-run")


def test_deploy_check_leaves_only_warnings_nginx_handles(python, app):
    done = manage(python, app, "check", "--deploy", "--fail-level", "ERROR", env=PRODUCTION)
    ids = {word.strip("():") for word in (done.stdout + done.stderr).split()
           if word.startswith("(security.")}
    assert ids <= ACCEPTED_DEPLOY_WARNINGS, done.stderr


def test_production_without_secret_key_refuses_to_start(python, app):
    env = {k: v for k, v in PRODUCTION.items() if k != "SECRET_KEY"}
    done = manage(python, app, "check", env=env, check=False)
    assert done.returncode != 0
    assert "SECRET_KEY is not set" in done.stderr


SHOW_SETTINGS = """
import json
from django.conf import settings as s
db = s.DATABASES["default"]
print(json.dumps({
    "db": {k: str(db[k]) for k in ("ENGINE", "NAME", "USER", "PASSWORD", "HOST", "PORT")},
    "cache": s.CACHES["default"],
    "csrf": s.CSRF_TRUSTED_ORIGINS, "hosts": s.ALLOWED_HOSTS, "debug": s.DEBUG,
    "secure_cookies": [s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE],
    "proxy": list(s.SECURE_PROXY_SSL_HEADER), "static": str(s.STATIC_ROOT),
    "media": str(s.MEDIA_ROOT),
}))
"""


def test_settings_come_from_the_environment(python, app):
    env = {**PRODUCTION, "STATIC_ROOT": "/srv/shop/static", "MEDIA_ROOT": "/srv/shop/media"}
    done = manage(python, app, "shell", "--no-imports", "-c", SHOW_SETTINGS, env=env)
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["db"] == {
        "ENGINE": "django.db.backends.postgresql", "NAME": "shop_production", "USER": "shop",
        "PASSWORD": "p@ss/w:rd", "HOST": "127.0.0.1", "PORT": "5432"}
    assert got["cache"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    assert got["cache"]["LOCATION"] == PRODUCTION["REDIS_URL"]
    assert got["hosts"] == ["shop.example.com", "www.shop.example.com"]
    assert got["csrf"] == ["https://shop.example.com", "https://www.shop.example.com"]
    assert got["debug"] is False and got["secure_cookies"] == [True, True]
    assert got["proxy"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert (got["static"], got["media"]) == ("/srv/shop/static", "/srv/shop/media")


EXERCISE_VIEWS = """
import json
from pathlib import Path
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

c = Client()
out = {"index": c.get("/").content.decode()}
health = c.get("/health/")
out["health"] = [health.status_code, health.json(), health.headers.get("Cache-Control", "")]
png = SimpleUploadedFile("dot.png", b"not really a png", content_type="image/png")
created = c.post("/items/", {"name": "Widget", "image": png})
out["created"] = [created.status_code, created.json()]
out["stored"] = (Path(settings.MEDIA_ROOT) / created.json()["image"].removeprefix("/media/")
                 ).read_bytes().decode()
out["listed"] = [item["name"] for item in c.get("/items/").json()["items"]]
out["no_name"] = c.post("/items/", {}).status_code
print(json.dumps(out))
"""


def test_views_answer_and_uploads_land_in_media_root(python, app, tmp_path):
    (app / "VERSION").write_text("9.9.9\n")
    env = {"SECRET_KEY": SECRET, "ALLOWED_HOSTS": "testserver", "RELEASE": "r42",
           "DATABASE_URL": f"sqlite:///{tmp_path / 'views.sqlite3'}",
           "MEDIA_ROOT": str(tmp_path / "media")}
    manage(python, app, "migrate", "--noinput", env=env)
    done = manage(python, app, "shell", "--no-imports", "-c", EXERCISE_VIEWS, env=env)
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["index"] == "shop VERSION=9.9.9 release=r42\n"
    status, body, cache_control = got["health"]
    assert status == 200
    assert body == {"status": "ok", "database": "ok", "cache": "ok", "version": "9.9.9",
                    "release": "r42"}
    assert "no-cache" in cache_control
    status, item = got["created"]
    assert status == 201 and item["name"] == "Widget"
    assert item["image"].startswith("/media/items/dot") and item["image"].endswith(".png")
    assert got["stored"] == "not really a png"
    assert got["listed"] == ["Widget"]
    assert got["no_name"] == 400


HEALTH_ONLY = """
import json
from django.test import Client
r = Client().get("/health/")
print(json.dumps([r.status_code, r.json()]))
"""


def test_health_names_the_failing_part(python, app, tmp_path):
    env = {"SECRET_KEY": SECRET, "ALLOWED_HOSTS": "testserver",
           "DATABASE_URL": f"sqlite:///{tmp_path / 'missing-dir' / 'db.sqlite3'}",
           "REDIS_URL": "redis://127.0.0.1:9/0"}  # discard port: nothing listens there
    done = manage(python, app, "shell", "--no-imports", "-c", HEALTH_ONLY, env=env)
    status, body = json.loads(done.stdout.strip().splitlines()[-1])
    assert status == 503
    assert body["status"] == "error" and body["failing"] == ["database", "cache"]
    assert body["database"].startswith("error: OperationalError")
    assert body["cache"].startswith("error: ConnectionError")
