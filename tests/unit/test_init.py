"""``fab init``'s logic: detect an app from its files, write an inventory that loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from vpskit import init, inventory
from vpskit.errors import InventoryError, ToolkitError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SECRETS = {"SECRET_KEY": "s3cret", "FERNET_KEY": "k3y"}


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def load(app_dir: Path, tmp_path: Path, name: str = "app", environ: dict | None = None):
    """Detect + render ``app_dir``, write the inventory to tmp_path and load production."""
    text = init.render_inventory(init.detect(app_dir), name)
    path = tmp_path / "inventory.yml"
    path.write_text(text)
    return inventory.load(path, "production", environ=SECRETS if environ is None else environ), text


EXPECTED = {
    "django": dict(kind="django", entry="shop.wsgi:application", server="gunicorn", workers=2,
                   worker_class="sync", timeout=30, graceful_timeout=30,
                   django_settings="shop.settings",
                   release_commands=("python manage.py migrate",
                                     "python manage.py collectstatic --noinput")),
    "flask": dict(kind="flask", entry="app:app", server="gunicorn", workers=2,
                  worker_class="gevent", timeout=300, graceful_timeout=30, django_settings="",
                  release_commands=("python migrate.py",)),
    "channels": dict(kind="asgi", entry="chat.asgi:application", server="daphne", workers=1,
                     worker_class="sync", timeout=30, graceful_timeout=30,
                     django_settings="chat.settings",
                     release_commands=("python manage.py migrate",
                                       "python manage.py collectstatic --noinput")),
}


@pytest.mark.parametrize("example", sorted(EXPECTED))
def test_examples_give_a_loadable_inventory(example, tmp_path):
    env, text = load(EXAMPLES / example, tmp_path, name=example)
    app = env.app
    got = {key: getattr(app, key) for key in EXPECTED[example]}
    assert got == EXPECTED[example]
    assert app.requirements == "requirements.txt"
    assert env.health.path == "/health/"
    assert env.postgres.enabled and env.redis.enabled
    assert env.hosts[0].address == init.PLACEHOLDER_ADDRESS
    assert env.domains == (init.PLACEHOLDER_DOMAIN,)
    assert "SECRET_KEY" in env.secrets and "SENTRY_DSN" not in env.secrets  # optional, unset
    assert env.backups.media is (example != "channels")
    assert text.count("FILL ME") >= 3  # address, domains, ACME email


def test_flask_example_requires_its_encryption_key(tmp_path):
    with pytest.raises(InventoryError, match="secret 'FERNET_KEY' of environment 'production'"):
        load(EXAMPLES / "flask", tmp_path, environ={"SECRET_KEY": "s3cret"})


def test_procfile_only_repo(tmp_path):
    app_dir = write(tmp_path / "svc", {"Procfile": (
        "web: gunicorn -w 3 -k uvicorn.workers.UvicornWorker main:app --timeout 120 "
        "--bind 0.0.0.0:$PORT\n"
        "release: python -m alembic upgrade head && ./bin/seed --if-empty\n"
        "worker: celery -A main worker -l info\n"
        "beat: celery -A main beat\n")})
    detected = init.detect(app_dir)
    assert detected.processes == {"worker": "celery -A main worker -l info",
                                  "beat": "celery -A main beat"}
    env, text = load(app_dir, tmp_path / "svc", environ={})
    assert (env.app.kind, env.app.server, env.app.entry) == ("asgi", "gunicorn", "main:app")
    assert (env.app.workers, env.app.worker_class) == (3, "uvicorn.workers.UvicornWorker")
    assert (env.app.timeout, env.app.graceful_timeout) == (120, 30)
    # A program outside the venv, or shell syntax, goes through /bin/sh (PATH has the venv).
    assert env.app.release_commands == ("python -m alembic upgrade head",
                                        "/bin/sh -c './bin/seed --if-empty'")
    assert env.health.path == "/health/"
    assert "path: /health/                    # not detected:" in text
    assert "requirements: requirements.txt    # not detected: FILL ME" in text
    assert "#   worker: celery -A main worker -l info" in text
    assert env.secrets == {}


def test_railway_toml_with_healthcheck_path(tmp_path):
    app_dir = write(tmp_path / "site", {
        "manage.py": 'os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings.dev")\n',
        "mysite/settings/__init__.py": "",
        "mysite/settings/base.py": (
            'INSTALLED_APPS = ["django.contrib.staticfiles"]\n'
            'WSGI_APPLICATION = "mysite.wsgi.application"\n'
            'SECRET_KEY = env("DJANGO_SECRET_KEY")\nSTRIPE_API_KEY = os.environ["STRIPE_API_KEY"]\n'
            'SENTRY_DSN = os.getenv("SENTRY_DSN")\nDEBUG = env.bool("DEBUG", False)\n'),
        "mysite/wsgi.py": ('os.environ.setdefault("DJANGO_SETTINGS_MODULE", '
                           '"mysite.settings.production")\n'
                           "application = get_wsgi_application()\n"),
        "mysite/settings/production.py": "from .base import *\n",
        "requirements.txt": "Django==5.2.1\npsycopg2-binary==2.9.10\ngunicorn==23.0.0\n",
        "runtime.txt": "python-3.11.9\n",
        "Procfile": "web: gunicorn mysite.wsgi --log-file -\n",
        "railway.toml": (
            '[build]\nbuilder = "NIXPACKS"\n\n[deploy]\n'
            'startCommand = "python manage.py migrate && gunicorn mysite.wsgi '
            '--workers ${WEB_CONCURRENCY:-4} --timeout 60"\n'
            'healthcheckPath = "/healthz"\nhealthcheckTimeout = 100\n'),
    })
    detected = init.detect(app_dir)
    environ = {"DJANGO_SECRET_KEY": "x", "STRIPE_API_KEY": "y"}
    env, text = load(app_dir, tmp_path / "site", environ=environ)
    app = env.app
    assert (app.kind, app.entry, app.server) == ("django", "mysite.wsgi:application", "gunicorn")
    assert app.django_settings == "mysite.settings.production"  # what wsgi.py runs
    assert (app.workers, app.timeout) == (4, 60)
    assert env.health.path == "/healthz"
    assert app.release_commands == ("python manage.py migrate",
                                    "python manage.py collectstatic --noinput")
    assert env.postgres.enabled and not env.redis.enabled
    assert set(env.secrets) == {"DJANGO_SECRET_KEY", "STRIPE_API_KEY"}
    assert "optional_secrets:\n  - SENTRY_DSN" in text
    assert "  # DEBUG:" in text
    notes = " ".join(detected.notes)
    for words in ("healthcheckTimeout", "overrides the Procfile", "moved to release_commands",
                  "WEB_CONCURRENCY", "mysite.settings.dev"):
        assert words in notes


def test_pyproject_based_asgi_app(tmp_path):
    app_dir = write(tmp_path / "api", {
        "pyproject.toml": ('[project]\nname = "api"\nrequires-python = ">=3.11"\n'
                           'dependencies = ["fastapi>=0.110", "uvicorn[standard]", "asyncpg",'
                           ' "redis[hiredis]"]\n'),
        "uv.lock": "",
        ".python-version": "3.12\n",
        "main.py": ('from fastapi import FastAPI\n\napp = FastAPI()\n\n\n'
                    '@app.get("/healthz")\ndef healthz():\n    return {}\n'),
    })
    detected = init.detect(app_dir)
    env, text = load(app_dir, tmp_path / "api", environ={})
    assert (env.app.kind, env.app.entry, env.app.server) == ("asgi", "main:app", "uvicorn")
    assert env.app.release_commands == ()
    assert "# release_commands: []" in text
    assert env.health.path == "/healthz"
    assert env.postgres.enabled and env.redis.enabled
    assert detected.requirements is None
    notes = " ".join(detected.notes)
    assert "uv export --no-hashes --no-dev -o requirements.txt" in notes
    assert "Python 3.12, newer than the server's 3.11" in notes


@pytest.mark.parametrize(("web", "expected"), [
    ("daphne -b 0.0.0.0 -p $PORT chat.asgi:application",
     {"server": "daphne", "entry": "chat.asgi:application", "kind": "asgi"}),
    ("uvicorn main:app --host 0.0.0.0 --port $PORT --workers 4 --timeout-graceful-shutdown 20",
     {"server": "uvicorn", "workers": 4, "graceful_timeout": 20, "kind": "asgi"}),
    ("uvicorn --factory 'main:create_app'", {"entry": "main:create_app()"}),
    ("newrelic-admin run-program gunicorn app:app -w3", {"server": "gunicorn", "workers": 3}),
    ("exec python -m gunicorn --threads 8 app:app", {"worker_class": "gthread"}),
    ("gunicorn app:app --timeout=$TIMEOUT", {"timeout": None}),
    ("gunicorn app:app --timeout 0 -w 200", {"timeout": None, "workers": None}),  # vpskit: no
    ("python manage.py runserver 0.0.0.0:$PORT", {"server": None, "entry": None}),
])
def test_web_commands(tmp_path, web, expected):
    detected = init.detect(write(tmp_path, {"Procfile": f"web: {web}\n"}))
    assert {key: getattr(detected, key) for key in expected} == expected


def test_flask_factory_named_by_flaskenv(tmp_path):
    app_dir = write(tmp_path, {
        ".flaskenv": "FLASK_APP=depot:create_app()\n",
        "depot/__init__.py": "from flask import Flask\n\n\ndef create_app():\n"
                             "    return Flask(__name__)\n",
        "requirements.txt": "flask\ngunicorn\n"})
    env, _ = load(app_dir, tmp_path, environ={})
    assert (env.app.kind, env.app.entry) == ("flask", "depot:create_app()")
    assert not env.postgres.enabled and not env.redis.enabled


def test_web_command_notes(tmp_path):
    notes = init.detect(write(tmp_path, {"Procfile": (
        "web: newrelic-admin run-program gunicorn app:app --threads 4 --timeout=$T\n")})).notes
    assert any("newrelic-admin run-program" in note for note in notes)
    assert any("--threads 4" in note for note in notes)
    assert any("timeout `$T` is not a number" in note for note in notes)


def test_nothing_detected_still_loads(tmp_path):
    env, text = load(tmp_path, tmp_path, environ={})
    assert (env.app.kind, env.app.entry, env.app.server) == ("flask", "app:app", "gunicorn")
    assert "entry: app:app                    # not detected: FILL ME" in text
    assert "repo: .                           # FILL ME: not a git repository" in text


def test_git_branch_and_remote(tmp_path):
    write(tmp_path, {".git/HEAD": "ref: refs/heads/trunk\n", ".git/config": (
        '[core]\n\tbare = false\n[remote "origin"]\n\turl = git@example.com:me/app.git\n')})
    env, text = load(tmp_path, tmp_path, environ={})
    assert env.app.ref == "trunk"
    assert "this directory (a git repository); or its remote git@example.com:me/app.git" in text


def test_write_inventory_refuses_to_overwrite(tmp_path):
    write(tmp_path / "My-App_2", {"Procfile": "web: gunicorn app:app\n"})
    path = init.write_inventory(tmp_path / "My-App_2")
    assert path == tmp_path / "My-App_2" / "inventory.yml"
    assert inventory.load(path, "production", environ={}).app.name == "myapp2"
    path.write_text("# mine\n")
    with pytest.raises(ToolkitError) as caught:
        init.write_inventory(tmp_path / "My-App_2")
    assert "already exists; pass --force" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert path.read_text() == "# mine\n"
    init.write_inventory(tmp_path / "My-App_2", force=True, app_name="shop")
    assert inventory.load(path, "production", environ={}).app.name == "shop"


def test_bad_app_name_and_missing_directory(tmp_path):
    with pytest.raises(ToolkitError, match="app name 'My App'"):
        init.render_inventory(init.Detected(), "My App")
    with pytest.raises(ToolkitError, match="no such directory"):
        init.detect(tmp_path / "nope")
    assert init.default_app_name(tmp_path / "123") == "app"
