"""``fab init``: read an app's repository and write a first ``inventory.yml`` for it.

:func:`detect` reads what a PaaS app already has: its code (Django, Flask, ASGI), ``Procfile``,
``railway.toml``/``railway.json``, ``gunicorn.conf.py``, requirements or ``pyproject.toml``,
``runtime.txt``/``.python-version`` and ``.git``. :func:`render_inventory` turns that into a
complete, commented inventory whose only placeholders are valid values marked ``FILL ME``, and
:func:`write_inventory` writes it beside the app. Pure and local: nothing here runs the app's
code or touches a server.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import shlex
import textwrap
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import yaml

from vpskit import config
from vpskit.errors import ToolkitError
from vpskit.inventory import ENTRY_RE, NAME_RE

SERVERS = ("gunicorn", "uvicorn", "daphne")
SERVER_PYTHON = (3, 11)  # Debian 12's python3, what release venvs are built with
# Set for every app by vpskit (provision.app.base_env, DATABASE_URL, REDIS_URL, the unit's
# RELEASE) or by the process environment: never inventory settings.
PROVIDED_ENV = frozenset({
    "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS", "STATIC_ROOT", "MEDIA_ROOT", "APP_ENV",
    "DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "RELEASE", "PORT", "WEB_CONCURRENCY",
    "PATH", "HOME", "PYTHONPATH", "PYTHONUNBUFFERED",
})
SECRET_WORDS = frozenset({"SECRET", "KEY", "KEYS", "TOKEN", "PASSWORD", "PASSWD", "PASS", "DSN",
                          "PASSPHRASE", "CREDENTIALS", "APIKEY"})
NOT_SECRET_ENDINGS = frozenset({"PREFIX", "ID", "FILE", "PATH", "NAME", "URL", "HOST", "PORT",
                                "USER", "TIMEOUT", "LENGTH", "SIZE", "ALGORITHM", "SECONDS", "AGE"})
POSTGRES_DRIVERS = frozenset({"psycopg", "psycopg-binary", "psycopg2", "psycopg2-binary",
                              "asyncpg", "pg8000"})
HEALTH_NAMES = ("health", "healthz", "health-check", "healthcheck", "ping", "up", "status")
SKIP_DIRS = frozenset({".git", ".venv", "venv", "env", ".tox", ".nox", "node_modules",
                       "site-packages", "__pycache__", "migrations", "tests", "test", "docs"})
MAX_FILES = 400
MAX_BYTES = 256_000
PLACEHOLDER_ADDRESS = "203.0.113.10"  # TEST-NET-3: valid, and never a real server
PLACEHOLDER_DOMAIN = "app.example.com"
PLACEHOLDER_EMAIL = "ops@example.com"

_ENV_CALL = re.compile(r"\b([\w.]+)\(\s*[\"']([A-Z][A-Z0-9_]+)[\"']")
_ENV_ITEM = re.compile(r"\benviron\[\s*[\"']([A-Z][A-Z0-9_]+)[\"']\s*\](?!\s*=[^=])")
_ENV_FUNC = re.compile(r"env|secret|setting|config", re.IGNORECASE)  # getenv, env_bool...
_ENV_OBJECT = re.compile(r"\benv(?:iron)?\.")  # os.environ.get, django-environ's env.bool
_ROUTE = re.compile(r"\b(?:path|re_path|route|get|api_route)\(\s*r?[\"']\^?/?((?:api/)?(?:"
                    + "|".join(map(re.escape, HEALTH_NAMES)) + r")/?)\$?[\"']")
_SETTINGS_DEFAULT = re.compile(r"DJANGO_SETTINGS_MODULE[\"']\s*,\s*[\"']([\w.]+)[\"']")
_APP_OBJECT = re.compile(r"^(\w+)\s*(?::[^=\n]+)?=\s*(Flask|FastAPI|Starlette|Quart|Litestar)\(",
                         re.MULTILINE)
_FACTORY = re.compile(r"^def (create_app|make_app)\(", re.MULTILINE)
_SPLIT = re.compile(r"\s*(?:&&|;)\s*")
_SHELL_CHARS = re.compile(r"[$`|<>*?]")


@dataclass
class Detected:
    """What :func:`detect` found; ``None`` = could not be determined (the renderer says so).

    ``sources`` names where each field came from; ``notes`` are what the operator should know
    (a flag vpskit cannot honour, a command moved, a Python version the server lacks).
    """

    kind: str | None = None
    entry: str | None = None
    django_settings: str | None = None
    server: str | None = None
    workers: int | None = None
    worker_class: str | None = None
    timeout: int | None = None
    graceful_timeout: int | None = None
    release_commands: list[str] | None = None
    requirements: str | None = None
    python: str | None = None
    health_path: str | None = None
    postgres: bool | None = None
    redis: bool | None = None
    media: bool = False
    git: bool = False
    ref: str | None = None
    remote: str | None = None
    processes: dict[str, str] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)
    optional_secrets: list[str] = field(default_factory=list)
    env_vars: list[str] = field(default_factory=list)
    read: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def found(self, name: str, value: object, source: str) -> None:
        setattr(self, name, value)
        self.sources[name] = source


class _Repo:
    """Read-only view of the app directory: text of small files, the Python files to scan."""

    def __init__(self, root: Path, detected: Detected) -> None:
        self.root = root
        self.detected = detected

    def text(self, rel: str) -> str | None:
        path = self.root / rel
        if not path.is_file() or path.stat().st_size > MAX_BYTES:
            return None
        if rel not in self.detected.read:
            self.detected.read.append(rel)
        return path.read_text(errors="replace")

    def module_text(self, module: str) -> tuple[str, str] | None:
        """(relative path, text) of a dotted module, or of every file of a package."""
        base = module.replace(".", "/")
        for rel in (f"{base}.py", f"{base}/__init__.py"):
            text = self.text(rel)
            if text is not None:
                if rel.endswith("__init__.py"):
                    text += "".join(self.text(p.relative_to(self.root).as_posix()) or ""
                                    for p in sorted((self.root / base).glob("*.py")))
                    rel = f"{base}/"
                return rel, text
        return None

    def python_files(self) -> list[Path]:
        found: list[Path] = []
        stack = [self.root]
        while stack and len(found) < MAX_FILES:
            directory = stack.pop()
            for path in sorted(directory.iterdir()):
                if path.is_dir() and path.name not in SKIP_DIRS and not path.name.startswith("."):
                    stack.append(path)
                elif path.suffix == ".py" and path.is_file() and path.stat().st_size <= MAX_BYTES:
                    found.append(path)
        return found[:MAX_FILES]


# ---- detection ---------------------------------------------------------------------------------
def detect(app_dir: Path) -> Detected:
    """Everything ``fab init`` can learn about the app in ``app_dir`` from its files."""
    app_dir = Path(app_dir)
    if not app_dir.is_dir():
        raise ToolkitError(f"{app_dir}: no such directory; pass the app's repository")
    d = Detected()
    repo = _Repo(app_dir, d)
    deps = _requirements(repo, d)
    _python_version(repo, d)
    _code(repo, d)
    _gunicorn_conf(repo, d)  # lower priority than the web command's flags
    procfile_web, railway_web = _procfile(repo, d), _railway(repo, d)
    if procfile_web and railway_web:
        d.notes.append(f"{railway_web[1]} overrides the Procfile web: line (as on Railway)")
    web = railway_web or procfile_web
    if web:
        _web_command(repo, d, *web)
    _scan_sources(repo, d)
    _git(app_dir, d)
    _defaults(repo, d, deps)
    return d


def _requirements(repo: _Repo, d: Detected) -> set[str]:
    """Which requirements file the venv installs, and the distribution names it lists."""
    for rel in ("requirements.txt", "requirements/production.txt", "requirements/prod.txt",
                "requirements/base.txt"):
        if repo.text(rel) is not None:
            d.found("requirements", rel, rel)
            return _requirement_names(repo, rel, set())
    pyproject = repo.text("pyproject.toml")
    if pyproject is None:
        return set()
    try:
        data = tomllib.loads(pyproject)
    except tomllib.TOMLDecodeError as exc:
        d.notes.append(f"pyproject.toml does not parse ({exc}); dependencies unknown")
        return set()
    listed = [*data.get("project", {}).get("dependencies", []),
              *data.get("tool", {}).get("poetry", {}).get("dependencies", {})]
    exporter = ("uv export --no-hashes --no-dev -o requirements.txt"
                if (repo.root / "uv.lock").exists() else
                "poetry export -f requirements.txt -o requirements.txt"
                if (repo.root / "poetry.lock").exists() else
                "pip-compile -o requirements.txt pyproject.toml")
    d.notes.append(f"the dependencies are in pyproject.toml, but release venvs install a "
                   f"requirements file (pip install -r): commit one, e.g. `{exporter}`")
    return {_dist_name(item) for item in listed if _dist_name(item)}


def _requirement_names(repo: _Repo, rel: str, seen: set[str]) -> set[str]:
    seen.add(rel)
    names: set[str] = set()
    for line in (repo.text(rel) or "").splitlines():
        line = line.split(" #")[0].strip()
        include = re.match(r"^-[rc]\s*(\S+)|^--requirement[=\s]+(\S+)", line)
        if include:
            target = (Path(rel).parent / (include[1] or include[2])).as_posix()
            if target not in seen:
                names |= _requirement_names(repo, target, seen)
        elif line and not line.startswith(("-", "#")) and _dist_name(line):
            names.add(_dist_name(line))
    return names


def _dist_name(spec: str) -> str:
    """``Flask[async]>=3`` -> ``flask[async]`` (normalised, extras kept for Redis detection)."""
    match = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?", spec)
    if not match:
        return ""
    return re.sub(r"[-_.]+", "-", match[1]).lower() + (match[2] or "").lower()


def _python_version(repo: _Repo, d: Detected) -> None:
    """The Python the app asks for, compared with the server's. A pinned version
    (``.python-version``, ``runtime.txt``) should match; ``requires-python`` is a minimum."""
    exact, where = True, ""
    for rel, pattern in ((".python-version", r"^\s*(?:python-?)?(\d+\.\d+)"),
                         ("runtime.txt", r"^\s*python-(\d+\.\d+)")):
        match = re.match(pattern, repo.text(rel) or "")
        if match:
            d.found("python", match[1], rel)
            where = rel
            break
    else:
        spec = re.search(r"requires-python\s*=\s*[\"']\s*>=?\s*(\d+\.\d+)",
                         repo.text("pyproject.toml") or "")
        if spec:
            d.found("python", spec[1], "pyproject.toml requires-python")
            exact, where = False, "pyproject.toml requires-python"
    if not d.python:
        return
    wanted = tuple(int(x) for x in d.python.split("."))
    server = ".".join(map(str, SERVER_PYTHON))
    if wanted > SERVER_PYTHON:
        d.notes.append(f"{where} asks for Python {d.python}, newer than the "
                       f"server's {server} (Debian 12): deploys will refuse it; use a "
                       f"Debian 13 server (3.13) or lower the requirement")
    elif wanted < SERVER_PYTHON and exact:
        d.notes.append(f"{where} pins Python {d.python}; the server runs "
                       f"{server}: check the pinned packages support it")


def _code(repo: _Repo, d: Detected) -> None:
    """Kind and entry point from the code: a Django project, else a Flask or ASGI app object."""
    manage = repo.text("manage.py")
    if manage is not None:
        match = _SETTINGS_DEFAULT.search(manage)
        if match:
            d.found("django_settings", match[1], "manage.py")
            _django(repo, d, match[1])
            return
        d.notes.append("manage.py names no DJANGO_SETTINGS_MODULE; set app.django_settings")
    flask_app = _flask_app_env(repo)
    candidates = [flask_app] if flask_app else []
    candidates += ["app", "wsgi", "main", "application", "asgi", "server"]
    for module in candidates:
        found = repo.module_text(module)
        if found is None:
            continue
        rel, text = found
        objects = _APP_OBJECT.findall(text)
        if objects:
            name, framework = objects[0]
            kind = "flask" if framework == "Flask" else "asgi"
            d.found("kind", kind, f"`{name} = {framework}(` in {rel}")
            d.found("entry", f"{module}:{name}", rel)
            return
        factory = _FACTORY.search(text)
        if factory and "Flask(" in text:
            d.found("kind", "flask", f"`def {factory[1]}()` making a Flask app in {rel}")
            d.found("entry", f"{module}:{factory[1]}()", rel)
            return
        if module == "asgi" and re.search(r"^application\s*=", text, re.MULTILINE):
            d.found("kind", "asgi", f"`application =` in {rel}")
            d.found("entry", "asgi:application", rel)
            return


def _flask_app_env(repo: _Repo) -> str | None:
    """The module of FLASK_APP in ``.flaskenv`` (``app.py``, ``pkg:create_app()``...)."""
    match = re.search(r"^\s*FLASK_APP\s*=\s*[\"']?([\w./]+)", repo.text(".flaskenv") or "",
                      re.MULTILINE)
    if not match:
        return None
    return match[1].removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def _settings_text(repo: _Repo, module: str) -> tuple[str, str] | None:
    """The settings module, or all of its package when it is one of several
    (``settings/base.py`` + ``settings/production.py``)."""
    package = module.rpartition(".")[0]
    if package and (repo.root / package.replace(".", "/") / "__init__.py").is_file():
        return repo.module_text(package)
    return repo.module_text(module)


def _django(repo: _Repo, d: Detected, settings: str) -> None:
    found = _settings_text(repo, settings)
    text = found[1] if found else ""
    if not found:
        d.notes.append(f"settings module {settings} (from manage.py) not found in the repository")
    wsgi = re.search(r"^WSGI_APPLICATION\s*=\s*[\"']([\w.]+)\.(\w+)[\"']", text, re.MULTILINE)
    asgi = re.search(r"^ASGI_APPLICATION\s*=\s*[\"']([\w.]+)\.(\w+)[\"']", text, re.MULTILINE)
    package = settings.split(".")[0]
    channels = "\"channels\"" in text or "'channels'" in text
    if asgi and (channels or not wsgi):
        d.found("kind", "asgi", f"ASGI_APPLICATION in {found[0]}" + (
            " with channels installed" if channels else ""))
        d.found("entry", f"{asgi[1]}:{asgi[2]}", f"ASGI_APPLICATION in {found[0]}")
    elif wsgi:
        d.found("kind", "django", f"WSGI_APPLICATION in {found[0]}")
        d.found("entry", f"{wsgi[1]}:{wsgi[2]}", f"WSGI_APPLICATION in {found[0]}")
    elif repo.module_text(f"{package}.wsgi"):
        d.found("kind", "django", "manage.py")
        d.found("entry", f"{package}.wsgi:application", f"{package}/wsgi.py")
    if d.entry:
        _entry_settings(repo, d, d.entry)


def _entry_settings(repo: _Repo, d: Detected, entry: str) -> None:
    """Prefer the settings the entry module (wsgi.py/asgi.py) defaults to over manage.py's:
    projects often point manage.py at development settings."""
    found = repo.module_text(entry.split(":")[0])
    match = _SETTINGS_DEFAULT.search(found[1]) if found else None
    if match and match[1] != d.django_settings:
        if d.django_settings:
            d.notes.append(f"manage.py defaults to {d.django_settings}, {found[0]} to {match[1]}; "
                           f"the inventory uses {found[0]}'s (what the server runs)")
        d.found("django_settings", match[1], found[0])


def _procfile(repo: _Repo, d: Detected) -> tuple[str, str] | None:
    """Process lines: ``release`` -> release commands, ``web`` -> returned, the rest reported."""
    text = repo.text("Procfile")
    if text is None:
        return None
    web = None
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z0-9_-]+):\s*(.+?)\s*$", line)
        if not match or line.lstrip().startswith("#"):
            continue
        name, command = match[1], match[2]
        if name == "web":
            web = (command, "Procfile web:")
        elif name == "release":
            d.found("release_commands", _release_lines(command, d), "Procfile release:")
        else:
            d.processes[name] = command
    return web


def _railway(repo: _Repo, d: Detected) -> tuple[str, str] | None:
    """``railway.toml`` (or ``.json``) ``[deploy]``: startCommand, preDeployCommand,
    healthcheckPath; other settings become notes."""
    for rel, parse in (("railway.toml", tomllib.loads), ("railway.json", json.loads)):
        text = repo.text(rel)
        if text is None:
            continue
        try:
            data = parse(text)
        except ValueError as exc:
            d.notes.append(f"{rel} does not parse ({exc}); ignored")
            return None
        deploy, build = data.get("deploy") or {}, data.get("build") or {}
        if deploy.get("healthcheckPath"):
            path = "/" + str(deploy["healthcheckPath"]).lstrip("/")
            d.found("health_path", path, f"{rel} healthcheckPath")
        if deploy.get("healthcheckTimeout"):
            d.notes.append(f"{rel} healthcheckTimeout = {deploy['healthcheckTimeout']}: vpskit "
                           f"waits health.retries x health.timeout seconds instead")
        pre = deploy.get("preDeployCommand")
        if pre:
            lines = [line for item in ([pre] if isinstance(pre, str) else pre)
                     for line in _release_lines(str(item), d)]
            d.found("release_commands", lines, f"{rel} preDeployCommand")
        if build.get("buildCommand"):
            d.notes.append(f"{rel} buildCommand `{build['buildCommand']}`: vpskit has no build "
                           f"step; add what it does to release_commands if the app needs it")
        if deploy.get("cronSchedule"):
            d.notes.append(f"{rel} cronSchedule `{deploy['cronSchedule']}`: not run by vpskit; "
                           f"use a systemd timer on the server")
        if deploy.get("numReplicas", 1) != 1:
            d.notes.append(f"{rel} numReplicas = {deploy['numReplicas']}: vpskit runs one web "
                           f"service per host; raise app.workers instead")
        if deploy.get("startCommand"):
            return str(deploy["startCommand"]), f"{rel} startCommand"
    return None


def _release_lines(command: str, d: Detected) -> list[str]:
    """A release command line as vpskit runs it: one argv per command, no shell. A leading
    ``python`` runs from the venv; anything needing a shell or another program goes through
    ``/bin/sh -c`` (whose PATH starts with the venv's bin)."""
    lines = []
    for part in _SPLIT.split(command.strip()):
        if not part:
            continue
        words = part.split()
        if words[0] in ("python", "python3") and not _SHELL_CHARS.search(part):
            lines.append(part)
        else:
            lines.append(f"/bin/sh -c {shlex.quote(part)}")
    if len(lines) > 1:
        d.notes.append(f"release `{command}` became {len(lines)} commands, run in order "
                       f"(a failing one stops the deploy)")
    return lines


class _ArgParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ValueError(message)


def _server_parser(server: str) -> _ArgParser:
    """The options of each server that matter to the inventory. Other options stay in the
    leftovers with their values, where none looks like an entry point (``module:name``)."""
    parser = _ArgParser(prog=server, add_help=False, allow_abbrev=False)
    add = parser.add_argument
    if server == "gunicorn":
        for flags in (("-w", "--workers"), ("-k", "--worker-class"), ("-t", "--timeout"),
                      ("--graceful-timeout",), ("--threads",), ("-c", "--config"), ("--chdir",),
                      ("--log-level",)):  # a level would pass for gunicorn's bare `module`
            add(*flags)
    elif server == "uvicorn":
        add("--workers")
        add("--timeout-graceful-shutdown")
        add("--factory", action="store_true")
        add("--app-dir")
    else:
        add("--http-timeout")
    return parser


def _web_command(repo: _Repo, d: Detected, command: str, source: str) -> None:
    """Server, entry, workers, worker class and timeouts from the web command line."""
    segments = [part for part in _SPLIT.split(command.strip()) if part]
    for index, segment in enumerate(segments):
        try:
            words = shlex.split(segment)
        except ValueError as exc:
            d.notes.append(f"{source} `{command}` does not parse ({exc}); not used")
            return
        server_at = next((i for i, w in enumerate(words) if Path(w).name in SERVERS), None)
        if server_at is None:
            continue
        before = [w for w in words[:server_at] if w != "exec" and not re.match(r"^\w+=", w)]
        if before[-2:] in (["python", "-m"], ["python3", "-m"]):
            before = before[:-2]
        if before:
            d.notes.append(f"{source} wraps the server in `{' '.join(before)}`: dropped, vpskit "
                           f"starts the server itself")
        if index:
            moved = _release_lines(" && ".join(segments[:index]), d)
            d.found("release_commands", (d.release_commands or []) + moved,
                    f"{source} (before the server)")
            d.notes.append(f"{source} runs `{' && '.join(segments[:index])}` before the server: "
                           f"moved to release_commands (run once per deploy, before the switch)")
        if segments[index + 1:]:
            d.notes.append(f"{source}: `{' && '.join(segments[index + 1:])}` after the server "
                           f"is ignored")
        _server_args(repo, d, Path(words[server_at]).name, words[server_at + 1:], source)
        return
    d.notes.append(f"{source} `{command}` starts none of {', '.join(SERVERS)}: the server "
                   f"settings below are defaults")


def _server_args(repo: _Repo, d: Detected, server: str, args: list[str], source: str) -> None:
    try:
        opts, rest = _server_parser(server).parse_known_args(args)
    except ValueError as exc:
        d.notes.append(f"{source}: {server} options do not parse ({exc}); defaults used")
        return
    d.found("server", server, source)
    entries = [w for w in rest if ENTRY_RE.match(w)]
    if not entries and server == "gunicorn":  # gunicorn's `module` means `module:application`
        entries = [f"{w}:application" for w in rest
                   if re.fullmatch(r"[A-Za-z_][\w.]*", w) and repo.module_text(w)]
    if entries:
        entry = entries[-1] + ("()" if getattr(opts, "factory", False) else "")
        d.found("entry", entry, source)
        _kind_of_entry(repo, d, entry, source)
    if server == "gunicorn":
        for name in ("workers", "worker_class", "timeout", "graceful_timeout"):
            _set_option(d, name, getattr(opts, name), source)
        if opts.threads:
            if d.worker_class in (None, "sync"):
                d.found("worker_class", "gthread", f"{source} --threads")
            d.notes.append(f"{source} --threads {opts.threads}: vpskit does not pass --threads "
                           f"(gthread workers then run one thread each); raise workers instead")
        for flag, what in ((opts.config, "--config"), (opts.chdir, "--chdir")):
            if flag:
                d.notes.append(f"{source} {what} {flag}: not passed by vpskit; check the "
                               f"inventory's values match it")
        if d.worker_class and "uvicorn" in d.worker_class.lower():
            d.found("kind", "asgi", f"{source} --worker-class {d.worker_class}")
    elif server == "uvicorn":
        _set_option(d, "workers", opts.workers, source)
        _set_option(d, "graceful_timeout", opts.timeout_graceful_shutdown, source)
        if opts.app_dir:
            d.notes.append(f"{source} --app-dir {opts.app_dir}: not passed by vpskit; the "
                           f"entry is imported from the release root")
    else:
        _set_option(d, "timeout", opts.http_timeout, source)
    if server in ("uvicorn", "daphne"):
        d.found("kind", "asgi", f"{source} {server}")


def _set_option(d: Detected, name: str, raw: str | None, source: str) -> None:
    if raw is None:
        return
    if name == "worker_class":
        d.found(name, raw, source)
        return
    default = re.fullmatch(r"\$\{\w+:-(\d+)\}", raw)
    value = int(default[1] if default else raw) if raw.isdigit() or default else None
    if value is None:
        d.notes.append(f"{source}: {name} `{raw}` is not a number; left at the default")
    elif not 1 <= value <= (64 if name == "workers" else 86400):
        d.notes.append(f"{source}: {name} {value} is outside what vpskit accepts; left at the "
                       f"default")
    else:
        d.found(name, value, source)
        if default:
            d.notes.append(f"{source}: {name} `{raw}` read from the environment; the inventory "
                           f"uses its default, {value}")


def _kind_of_entry(repo: _Repo, d: Detected, entry: str, source: str) -> None:
    found = repo.module_text(entry.split(":")[0])
    text = found[1] if found else ""
    if "get_wsgi_application" in text:
        d.found("kind", "django", f"{source} entry is Django's WSGI application")
    elif "get_asgi_application" in text or "ProtocolTypeRouter" in text:
        d.found("kind", "asgi", f"{source} entry is an ASGI application")
    elif "Flask(" in text:
        d.found("kind", "flask", f"{source} entry is a Flask app")
    if d.django_settings and found:
        _entry_settings(repo, d, entry)


def _gunicorn_conf(repo: _Repo, d: Detected) -> None:
    """Literal settings of ``gunicorn.conf.py``, which gunicorn also loads on the server."""
    text = repo.text("gunicorn.conf.py")
    if text is None:
        return
    try:
        tree = ast.parse(text)
    except SyntaxError:
        d.notes.append("gunicorn.conf.py does not parse; its settings are not in the inventory")
        return
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 \
                and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name in ("workers", "worker_class", "timeout", "graceful_timeout"):
                if isinstance(node.value, ast.Constant):
                    _set_option(d, name, str(node.value.value), "gunicorn.conf.py")
                else:
                    d.notes.append(f"gunicorn.conf.py computes {name}; the inventory's value "
                                   f"wins on the command line")
    d.notes.append("gunicorn.conf.py is loaded by gunicorn on the server too (from the release "
                   "directory); the inventory's flags win over it")


def _scan_sources(repo: _Repo, d: Detected) -> None:
    """Environment variables the code reads (secrets by their names), and the health route."""
    reads: dict[str, bool] = {}  # name -> read as environ["NAME"] (the app needs it)
    routes: set[str] = set()
    for path in repo.python_files():
        text = path.read_text(errors="replace")
        for match in _ENV_CALL.finditer(text):
            if _ENV_FUNC.search(match[1].rpartition(".")[2]) or _ENV_OBJECT.search(match[1]):
                reads.setdefault(match[2], False)
        for match in _ENV_ITEM.finditer(text):
            reads[match[1]] = True
        routes.update(_ROUTE.findall(text))
    d.media = "MEDIA_ROOT" in reads
    for name in sorted(reads):
        if name in PROVIDED_ENV:
            continue
        parts = name.split("_")
        if SECRET_WORDS & set(parts) and parts[-1] not in NOT_SECRET_ENDINGS:
            optional = bool({"DSN", "FALLBACK", "FALLBACKS"} & set(parts)) and not reads[name]
            (d.optional_secrets if optional else d.secrets).append(name)
        else:
            d.env_vars.append(name)
    if not d.health_path:
        for name in HEALTH_NAMES:
            hits = sorted(r for r in routes if r.rstrip("/").split("/")[-1] == name)
            if hits:
                d.found("health_path", "/" + hits[0], "a route in the code")
                break


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


def _defaults(repo: _Repo, d: Detected, deps: set[str]) -> None:
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
        settings = _settings_text(repo, d.django_settings)
        static = settings is not None and "django.contrib.staticfiles" in settings[1]
        if d.release_commands is not None and static and not any(
                "collectstatic" in line for line in d.release_commands):
            d.release_commands.append("python manage.py collectstatic --noinput")
            d.notes.append("added `python manage.py collectstatic --noinput` to release_commands: "
                           "PaaS buildpacks run it during the build, vpskit before the switch")


# ---- rendering ---------------------------------------------------------------------------------
_COMMENT_COLUMN = 36


def _scalar(value: object) -> str:
    """``value`` as a YAML scalar that reads back as exactly that value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    plain = (re.fullmatch(r"[A-Za-z0-9_./~][\w./:@~+=, ()-]*", text) and not text.endswith(":")
             and ": " not in text and " #" not in text and not text.endswith(" "))
    if plain:
        try:
            if yaml.safe_load(text) == text:
                return text
        except yaml.YAMLError:
            pass
    return json.dumps(text)


def _line(indent: int, text: str, comment: str = "") -> str:
    line = " " * indent + text
    if not comment:
        return line
    return f"{line.ljust(_COMMENT_COLUMN - 1)} # {comment}"


def _why(d: Detected, name: str, fallback: str) -> str:
    """The comment of a detected setting: where it came from, or that it was not found."""
    source = d.sources.get(name)
    return f"from {source}" if source else f"not detected: {fallback}"


def _comment_block(text: str, first: str = "# ", rest: str = "# ") -> list[str]:
    return textwrap.wrap(text, 99, initial_indent=first, subsequent_indent=rest,
                         break_on_hyphens=False, break_long_words=False)


def render_inventory(detected: Detected, app_name: str) -> str:
    """A complete inventory for ``detected``, loadable once the host and domain are filled in.

    Every value is valid; what could not be detected is a default marked ``not detected`` and
    what only the operator knows (server address, domains, ACME email) is marked ``FILL ME``.
    """
    if not NAME_RE.match(app_name):
        raise ToolkitError(f"app name {app_name!r}: use 1-20 lowercase letters and digits, "
                           f"starting with a letter")
    d = detected
    app = config.App(name=app_name, repo=".")
    read = ", ".join([*d.read, "the Python sources"])
    out = _comment_block(
        f"vpskit inventory of {app_name}, written by `fab init` from this repository (read: "
        f"{read}). Fill in every FILL ME and check every `not detected`, then run: "
        f"fab provision --env production")
    out += [
        "#",
        "# Sections at the top level are defaults; an environment may override any key of them.",
        "# Secret VALUES never go here: list their names under `secrets:` and put the values in",
        "# the operator's environment (export SECRET_KEY=...) or in `.env.<environment>` next to",
        "# this file (mode 0600, never committed).",
    ]
    if d.notes:
        out += ["#", "# What fab init noticed:"]
        for note in d.notes:
            out += _comment_block(note, first="#   - ", rest="#     ")
    out.append("")

    repo_comment = ("this directory (a git repository)" if d.git else
                    "FILL ME: not a git repository: git init + commit, or a git URL")
    if d.remote:
        repo_comment += f"; or its remote {d.remote}"
    kind = d.kind or "flask"
    server = d.server or ("uvicorn" if kind == "asgi" else app.server)
    gunicorn = server == "gunicorn"
    out += [
        "app:",
        _line(2, f"name: {app_name}", "1-20 lowercase letters/digits; site = <name>-<environment>"),
        _line(2, "repo: .", repo_comment),
        _line(2, f"ref: {_scalar(d.ref or app.ref)}",
              _why(d, "ref", "the branch, tag or sha deployed by default")),
        _line(2, f"kind: {kind}", _why(d, "kind", "django | flask (any WSGI app) | asgi")),
        _line(2, f"entry: {_scalar(d.entry or 'app:app')}",
              _why(d, "entry", "FILL ME with the WSGI/ASGI callable, module:name")),
    ]
    if d.django_settings:
        out.append(_line(2, f"django_settings: {_scalar(d.django_settings)}",
                         f"DJANGO_SETTINGS_MODULE, {_why(d, 'django_settings', '')}"))
    out += [
        _line(2, f"server: {server}", _why(d, "server", f"the usual server of {kind} apps")),
        _line(2, f"workers: {d.workers or (1 if server == 'daphne' else app.workers)}",
              "unused: daphne runs one process" if server == "daphne" else
              _why(d, "workers", "vpskit's default")),
        _line(2, f"worker_class: {_scalar(d.worker_class or app.worker_class)}",
              _why(d, "worker_class", "gunicorn's sync workers") if gunicorn else
              f"unused by {server}"),
        _line(2, f"timeout: {d.timeout or app.timeout}",
              _why(d, "timeout", "seconds a request may take")),
        _line(2, f"graceful_timeout: {d.graceful_timeout or app.graceful_timeout}",
              _why(d, "graceful_timeout", "seconds the server gets to finish on stop")),
        _line(2, f"requirements: {_scalar(d.requirements or app.requirements)}",
              _why(d, "requirements", "FILL ME: no requirements file found; commit one")),
    ]
    if d.release_commands:
        out.append(_line(2, "release_commands:",
                         f"{_why(d, 'release_commands', '')}; run in order before the switch"))
        out += [f"    - {_scalar(line)}" for line in d.release_commands]
    else:
        default = "migrate + collectstatic" if d.django_settings else "nothing"
        out.append(_line(2, "# release_commands: []",
                         f"not detected: the {kind} default runs {default}"))

    redis, health = config.Redis(), config.Health()
    tls, backups, nginx, system = config.TLS(), config.Backups(), config.Nginx(), config.System()
    deps = d.requirements or "the requirements"
    out += [
        "",
        "postgres:",
        _line(2, f"enabled: {_scalar(d.postgres is not False)}",
              "not detected: no requirements read" if d.postgres is None else
              f"a PostgreSQL driver is in {deps}" if d.postgres else
              f"no PostgreSQL driver in {deps}"),
        "",
        "redis:",
        _line(2, f"enabled: {_scalar(d.redis is not False)}",
              "not detected: no requirements read" if d.redis is None else
              f"a Redis client is in {deps}" if d.redis else f"no Redis client in {deps}"),
        _line(2, f"maxmemory: {_scalar(redis.maxmemory)}"),
        _line(2, f"policy: {_scalar(redis.policy)}"),
        "",
        "health:",
        _line(2, f"path: {_scalar(d.health_path or health.path)}",
              _why(d, "health_path", "the app must answer it with 200, or change it")),
        _line(2, f"status: {health.status}"),
        _line(2, f"timeout: {health.timeout}", "seconds per attempt"),
        _line(2, f"retries: {health.retries}"),
        "",
        "tls:",
        _line(2, f"enabled: {_scalar(tls.enabled)}"),
        _line(2, f"email: {PLACEHOLDER_EMAIL}", "FILL ME: the ACME account email"),
        _line(2, f"www_redirect: {tls.www_redirect}", "none | to_bare | to_www"),
        "",
        "backups:",
        _line(2, f"keep_days: {backups.keep_days}", "retention on the server and in local_dir"),
        _line(2, f"local_dir: {_scalar(backups.local_dir)}",
              "off-site copy on the machine running `fab backup`"),
        _line(2, f"timer: {_scalar(backups.timer)}", "e.g. \"*-*-* 03:00:00\" for a nightly timer"),
        _line(2, f"media: {_scalar(d.media)}",
              "the app reads MEDIA_ROOT (uploads)" if d.media else "the app reads no MEDIA_ROOT"),
        "",
        "nginx:",
        _line(2, f"client_max_body_size: {_scalar(nginx.client_max_body_size)}"),
        _line(2, f"rate_limit: {_scalar(nginx.rate_limit)}"),
        _line(2, f"rate_burst: {nginx.rate_burst}"),
        "",
        "system:",
        _line(2, f"swap_mb: {system.swap_mb}", "swap file on machines with less than 2 GiB RAM"),
        _line(2, f"timezone: {_scalar(system.timezone)}"),
        "",
        "releases_keep: 5",
        "",
        _line(0, "env:" if d.env_vars else "env: {}",
              "non-secret app settings, written to the server's env file"),
    ]
    if d.env_vars:
        out.append("  # The app also reads these; its own defaults apply unless they are set here:")
        out += [f"  # {name}:" for name in d.env_vars]
    out.append(_line(0, "secrets:" if d.secrets else "secrets: []",
                     "required: values from the environment or .env.<environment>"))
    out += [f"  - {name}" for name in d.secrets]
    out.append(_line(0, "optional_secrets:" if d.optional_secrets else "optional_secrets: []"))
    out += [f"  - {name}" for name in d.optional_secrets]
    if d.processes:
        out += ["", "# Other Procfile processes; vpskit does not run these yet:"]
        out += [f"#   {name}: {command}" for name, command in d.processes.items()]
    out += [
        "",
        "environments:",
        "  production:",
        "    hosts:",
        _line(6, f"- address: {PLACEHOLDER_ADDRESS}", "FILL ME: the server's IP or DNS name"),
        _line(8, "# key: ~/.ssh/id_ed25519", "private key; default: ssh-agent / ~/.ssh keys"),
        _line(8, "roles: [web, worker, db]"),
        _line(4, f"domains: [{PLACEHOLDER_DOMAIN}]", "FILL ME: the domains it serves"),
        "",
        "  # staging:                        # another environment: its own hosts and domains",
        "  #   hosts: [{address: 203.0.113.11}]",
        "  #   domains: [staging.app.example.com]",
        "  #   tls: {acme_url: https://acme-staging-v02.api.letsencrypt.org/directory}",
    ]
    return "\n".join(out) + "\n"


def default_app_name(app_dir: Path) -> str:
    """The directory's name as an app name: lowercase letters and digits, at most 20."""
    name = re.sub(r"[^a-z0-9]", "", Path(app_dir).resolve().name.lower()).lstrip("0123456789")
    return name[:20] or "app"


def write_inventory(app_dir: Path, force: bool = False, app_name: str | None = None) -> Path:
    """Detect, render and write ``<app_dir>/inventory.yml``; an existing one needs ``force``."""
    app_dir = Path(app_dir)
    target = app_dir / "inventory.yml"
    if target.exists() and not force:
        raise ToolkitError(f"{target} already exists; pass --force to overwrite it")
    text = render_inventory(detect(app_dir), app_name or default_app_name(app_dir))
    target.write_text(text)
    return target

