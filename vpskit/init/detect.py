""":func:`detect`: every detector over an app directory, then what follows from what they found."""

from __future__ import annotations

import re
from pathlib import Path

from vpskit.errors import ToolkitError
from vpskit.init import dependencies, framework, paas, scan, webserver
from vpskit.init.detected import Detected
from vpskit.init.repo import Repo

POSTGRES_DRIVERS = frozenset({"psycopg", "psycopg-binary", "psycopg2", "psycopg2-binary",
                              "asyncpg", "pg8000"})


def detect(app_dir: Path) -> Detected:
    """Everything ``fab init`` can learn about the app in ``app_dir`` from its files."""
    app_dir = Path(app_dir)
    if not app_dir.is_dir():
        raise ToolkitError(f"{app_dir}: no such directory; pass the app's repository")
    d = Detected()
    repo = Repo(app_dir, d)
    deps = dependencies.requirements(repo, d)
    dependencies.python_version(repo, d)
    framework.code(repo, d)
    webserver.gunicorn_conf(repo, d)  # lower priority than the web command's flags
    procfile_web, railway_web = paas.procfile(repo, d), paas.railway(repo, d)
    paas.app_json(repo, d)
    if procfile_web and railway_web:
        d.notes.append(f"{railway_web[1]} overrides the Procfile web: line (as on Railway)")
    web = railway_web or procfile_web
    if web:
        webserver.web_command(repo, d, *web)
    framework.settings_choice(repo, d)
    scan.scan_sources(repo, d)
    _git(app_dir, d)
    _defaults(repo, d, deps)
    _eventlet(d, deps)
    return d


def _git(app_dir: Path, d: Detected) -> None:
    git = app_dir / ".git"
    d.git = git.exists()
    if not git.is_dir():
        return
    head = (git / "HEAD").read_text() if (git / "HEAD").is_file() else ""
    branch = re.match(r"ref: refs/heads/(\S+)", head)
    if branch:
        d.found("ref", branch[1], ".git/HEAD")
    cfg = (git / "config").read_text() if (git / "config").is_file() else ""
    remote = re.search(r'\[remote "origin"\][^\[]*?\burl\s*=\s*(\S+)', cfg)
    if remote:
        d.remote = remote[1]


def _defaults(repo: Repo, d: Detected, deps: dict[str, str]) -> None:
    """Fill in what follows from the rest; note what the requirements lack."""
    names = {dep.split("[")[0] for dep in deps}
    if deps:
        d.postgres = bool(POSTGRES_DRIVERS & names)
        d.redis = any("redis" in dep for dep in deps)
    if d.kind and not d.server:
        asgi_server = "daphne" if "daphne" in names else "uvicorn"
        server = asgi_server if d.kind == "asgi" else "gunicorn"
        d.server = server  # no source: the renderer says it is the kind's usual server
    if deps and d.server and d.server not in names:
        d.notes.append(f"{d.server} is not in {d.requirements or 'the requirements'}: the "
                       f"release venv needs it (vpskit starts .venv/bin/{d.server})")
    for dist in ("gevent", "eventlet", "uvicorn"):
        if deps and dist in (d.worker_class or "").lower() and not any(
                name.startswith(dist) for name in names):
            d.notes.append(f"worker class {d.worker_class} needs {dist} in the requirements")
    if d.django_settings:
        settings = framework.settings_text(repo, d.django_settings)
        static = settings is not None and "django.contrib.staticfiles" in settings[1]
        if d.release_commands is not None and static and not any(
                "collectstatic" in line for line in d.release_commands):
            d.release_commands.append("python manage.py collectstatic --noinput")
            d.notes.append("added `python manage.py collectstatic --noinput` to release_commands: "
                           "PaaS buildpacks run it during the build, vpskit before the switch")


def _eventlet(d: Detected, deps: dict[str, str]) -> None:
    """Note that gunicorn 26 and later lack the eventlet worker, unless the requirements keep
    gunicorn below 26."""
    if d.server not in (None, "gunicorn") or "eventlet" not in (d.worker_class or "").lower():
        return
    spec = next((spec for dist, spec in deps.items() if dist.split("[")[0] == "gunicorn"), None)
    if spec is not None and not dependencies.admits_from(spec, (26,)):
        return
    requirements = d.requirements or "the requirements"
    lets = (f"{requirements} lets pip install gunicorn 26 or later (`gunicorn{spec}`)"
            if spec is not None else f"nothing in {requirements} pins gunicorn below 26")
    d.notes.append(f"worker class {d.worker_class}: gunicorn 26 removed the eventlet worker and "
                   f"{lets}, so the server will fail to start; pin `gunicorn<26` in "
                   f"{requirements}, or move to gevent (worker_class: gevent, with gevent in "
                   f"the requirements)")
