"""``fab init``'s logic: detect an app from its files, write an inventory that loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vpskit import init, inventory, render
from vpskit.errors import InventoryError, ToolkitError
from vpskit.init.dependencies import admits_from

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


PROCESSES = {"django": {"worker": "celery -A shop worker --concurrency 2 --loglevel INFO"},
             "flask": {}, "channels": {}}


@pytest.mark.parametrize("example", sorted(EXPECTED))
def test_examples_give_a_loadable_inventory(example, tmp_path):
    env, text = load(EXAMPLES / example, tmp_path, name=example)
    app = env.app
    got = {key: getattr(app, key) for key in EXPECTED[example]}
    assert got == EXPECTED[example]
    assert {p.name: p.command for p in env.processes} == PROCESSES[example]
    assert len(render.process_units(env)) == len(PROCESSES[example])
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
    assert "worker: celery -A main worker -l info # from Procfile worker:" in text
    assert [(p.name, p.command, p.count) for p in env.processes] == [
        ("worker", "celery -A main worker -l info", 1), ("beat", "celery -A main beat", 1)]
    assert len(render.process_units(env)) == 2  # commands their units can run
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


def test_procfile_processes_vpskit_cannot_run_as_written_are_notes(tmp_path):
    detected = init.detect(write(tmp_path, {"Procfile": (
        "web: gunicorn app:app\n"
        "celery_beat: celery -A app beat\n"
        "worker: celery -A app worker --concurrency=${CONCURRENCY:-2}\n"
        "clock: ./bin/clock --every 5m\n"
        "Web: celery -A app flower\n")}))
    assert detected.processes == {"celerybeat": "celery -A app beat"}
    assert detected.sources["processes.celerybeat"] == "Procfile celery_beat:"
    notes = "\n".join(detected.notes)
    assert "Procfile celery_beat: is the process celerybeat" in notes
    assert "Procfile worker: `celery -A app worker --concurrency=${CONCURRENCY:-2}` needs a shell" \
        in notes
    assert "Procfile clock: `./bin/clock --every 5m` needs a shell" in notes
    assert "Procfile Web: `celery -A app flower`: 'Web' makes no process name" in notes


# ---- Django settings: the production module, DEBUG ---------------------------------------------
def django_site(root: Path, settings: dict[str, str], manage: str = "mysite.settings.dev",
                wsgi: str = "mysite.settings.dev") -> Path:
    """A Django project whose settings package holds ``settings`` (file name -> text)."""
    return write(root, {
        "manage.py": f'os.environ.setdefault("DJANGO_SETTINGS_MODULE", "{manage}")\n',
        "mysite/__init__.py": "",
        "mysite/wsgi.py": (f'os.environ.setdefault("DJANGO_SETTINGS_MODULE", "{wsgi}")\n'
                           "application = get_wsgi_application()\n"),
        "mysite/settings/__init__.py": "",
        "mysite/settings/base.py": 'WSGI_APPLICATION = "mysite.wsgi.application"\n',
        "mysite/settings/dev.py": "from .base import *\nDEBUG = True\n",
        **{f"mysite/settings/{name}": text for name, text in settings.items()},
        "requirements.txt": "Django\ngunicorn\n",
    })


@pytest.mark.parametrize(("settings", "chosen"), [
    ({"production.py": "from .base import *\n"}, "mysite.settings.production"),
    ({"prod.py": "from .base import *\n"}, "mysite.settings.prod"),
    ({"prod.py": "", "production.py": ""}, "mysite.settings.production"),
    ({"staging.py": "from .base import *\n"}, "mysite.settings.dev"),  # no production module
])
def test_settings_package_production_module_chosen_over_the_dev_default(tmp_path, settings,
                                                                        chosen):
    detected = init.detect(django_site(tmp_path / "site", settings))
    env, text = load(tmp_path / "site", tmp_path, environ={})
    assert detected.django_settings == env.app.django_settings == chosen
    notes = "\n".join(detected.notes)
    if chosen.endswith("dev"):
        assert "production module" not in notes
        assert detected.sources["django_settings"] == "manage.py"
    else:
        assert (f"the inventory uses {chosen}, not mysite.settings.dev that manage.py "
                f"defaults to: the settings package has a production module") in notes
        assert f"from mysite/settings/{chosen.rpartition('.')[2]}.py" in text


def test_settings_package_itself_named_gets_its_production_module(tmp_path):
    app_dir = django_site(tmp_path, {"production.py": ""}, manage="mysite.settings",
                          wsgi="mysite.settings")
    detected = init.detect(app_dir)
    assert detected.django_settings == "mysite.settings.production"
    assert any("not mysite.settings that manage.py defaults to" in n for n in detected.notes)


def test_production_settings_named_by_wsgi_py_stay(tmp_path):
    app_dir = django_site(tmp_path, {"production.py": "", "prod.py": ""},
                          wsgi="mysite.settings.prod")
    detected = init.detect(app_dir)
    assert detected.django_settings == "mysite.settings.prod"
    assert not any("production module" in note for note in detected.notes)


@pytest.mark.parametrize(("settings", "warning"), [
    ({"production.py": "from .base import *\nDEBUG = True\n"},
     "WARNING: mysite.settings.production sets DEBUG = True: "),
    ({"base.py": 'WSGI_APPLICATION = "mysite.wsgi.application"\nDEBUG = True\n',
      "production.py": "from .base import *\n"},
     "WARNING: mysite.settings.production sets DEBUG = True (in mysite/settings/base.py): "),
    ({"base.py": "DEBUG = True\n", "production.py": "from mysite.settings.base import *\n"},
     "(in mysite/settings/base.py)"),
    ({"base.py": "DEBUG = True\n", "production.py": "from .base import *\nDEBUG = False\n"},
     None),
    ({"production.py": 'from .base import *\nDEBUG = os.environ.get("DEBUG") == "1"\n'}, None),
    ({"base.py": 'DEBUG = env.bool("DEBUG", False)\n', "production.py": "from .base import *\n"},
     None),
    ({"production.py": "from .base import *\nif LOCAL:\n    DEBUG = True\n"}, None),
    ({"staging.py": ""}, "WARNING: mysite.settings.dev sets DEBUG = True: "),  # no production
])
def test_debug_true_in_the_chosen_settings_is_a_warning(tmp_path, settings, warning):
    detected = init.detect(django_site(tmp_path, settings))
    warnings = [note for note in detected.notes if note.startswith("WARNING:")]
    assert [warning in note for note in warnings] == ([True] if warning else [])


def test_debug_true_in_a_lone_settings_module_is_a_warning(tmp_path):
    detected = init.detect(write(tmp_path, {
        "manage.py": 'os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")\n',
        "shop/__init__.py": "", "shop/production.py": "",  # not a settings package
        "shop/settings.py": 'WSGI_APPLICATION = "shop.wsgi.application"\nDEBUG = True\n'}))
    assert detected.django_settings == "shop.settings"
    assert any(note.startswith("WARNING: shop.settings sets DEBUG = True: ")
               for note in detected.notes)


# ---- gunicorn 26 has no eventlet worker ---------------------------------------------------------
@pytest.mark.parametrize(("spec", "admits"), [
    ("", True),
    (">=21", True),
    (">21,!=26.0.0", True),
    ("==27.0.1", True),
    ("~=26.0", True),
    ("==26.*", True),
    ("<26.0.1", True),
    ("<=26", True),
    ("@ https://example.com/gunicorn.whl", True),  # unparseable: admits
    ("^21.2", True),  # Poetry's caret is not read
    ("==21.2.0", False),
    ("<26", False),
    ("< 26", False),
    (">=21,<26", False),
    ("<=25.9", False),
    ("~=23.0", False),
    ("~=25.1.0", False),
    ("==25.*", False),
])
def test_admits_from_gunicorn_26(spec, admits):
    assert admits_from(spec, (26,)) is admits


@pytest.mark.parametrize(("files", "noted"), [
    ({"requirements.txt": "gunicorn\neventlet\n"}, "(`gunicorn`)"),
    ({"requirements.txt": "gunicorn>=21\neventlet\n"}, "(`gunicorn>=21`)"),
    ({"requirements.txt": "gunicorn[eventlet]==27.0.1\n"}, "(`gunicorn==27.0.1`)"),
    ({"requirements.txt": "eventlet\n"}, "nothing in requirements.txt pins gunicorn below 26"),
    ({}, "nothing in the requirements pins gunicorn below 26"),
    ({"requirements.txt": "gunicorn==21.2.0\neventlet\n"}, None),
    ({"requirements.txt": "gunicorn<26\neventlet\n"}, None),
    ({"requirements.txt": "gunicorn~=23.0\neventlet\n"}, None),
    ({"requirements.txt": "-r base.txt\ngunicorn>=21\n", "base.txt": "gunicorn<26\n"}, None),
])
def test_eventlet_worker_needs_gunicorn_below_26(tmp_path, files, noted):
    app_dir = write(tmp_path, {"Procfile": "web: gunicorn -k eventlet app:app\n", **files})
    notes = [n for n in init.detect(app_dir).notes if "removed the eventlet worker" in n]
    assert [noted in note for note in notes] == ([True] if noted else [])
    if noted:
        assert notes[0].startswith("worker class eventlet: gunicorn 26 removed the eventlet")
        assert "the server will fail to start; pin `gunicorn<26`" in notes[0]
        assert "or move to gevent" in notes[0]


@pytest.mark.parametrize(("conf", "noted"), [
    ('worker_class = "eventlet"\n', True),
    ('worker_class = "gunicorn.workers.geventlet.EventletWorker"\n', True),
    ('worker_class = "gevent"\n', False),
])
def test_eventlet_worker_from_gunicorn_conf(tmp_path, conf, noted):
    detected = init.detect(write(tmp_path, {
        "gunicorn.conf.py": conf, "app.py": "from flask import Flask\napp = Flask(__name__)\n",
        "requirements.txt": "flask\ngunicorn>=22\neventlet\ngevent\n"}))
    assert any("removed the eventlet worker" in note for note in detected.notes) is noted


def test_railway_cron_service_and_dokku_cron_become_scheduled_jobs(tmp_path):
    app_dir = write(tmp_path / "site", {
        "app.py": "from flask import Flask\napp = Flask(__name__)\n",
        "requirements.txt": "flask==3.0.0\ngunicorn==23.0.0\n",
        "Procfile": "web: gunicorn app:app\n",
        "railway.toml": ('[deploy]\nstartCommand = "python tasks.py --nightly"\n'
                         'cronSchedule = "*/30 2-4 * * mon-fri"\n'),
        "app.json": json.dumps({"cron": [
            {"command": "python report.py", "schedule": "@daily"},
            {"command": "python a.py && python b.py", "schedule": "0 1 * * *"},
            {"command": "python c.py", "schedule": "0 0 L * *"}]}),
    })
    detected = init.detect(app_dir)
    env, text = load(app_dir, tmp_path / "site", environ={})
    assert env.app.entry == "app:app"  # the cron service's start command is no web command
    assert [(j.name, j.command, j.calendars) for j in env.schedule] == [
        ("cron", "python tasks.py --nightly", ("Mon..Fri *-*-* 02..04:00,30:00 UTC",)),
        ("cron-2", "python report.py", ("*-*-* 00:00:00 UTC",))]
    assert 'cron: "*/30 2-4 * * mon-fri"' in text and "from railway.toml cronSchedule" in text
    notes = " ".join(detected.notes)
    assert "app.json cron #2 `0 1 * * *` runs `python a.py && python b.py`" in notes
    assert "app.json cron #3: day of month 'L'" in notes
