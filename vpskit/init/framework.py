"""Kind and entry point from the app's code: a Django project and its settings, else a Flask
or ASGI app object."""

from __future__ import annotations

import ast
import re

from vpskit.init.detected import Detected
from vpskit.init.repo import Repo

_SETTINGS_DEFAULT = re.compile(r"DJANGO_SETTINGS_MODULE[\"']\s*,\s*[\"']([\w.]+)[\"']")
_APP_OBJECT = re.compile(r"^(\w+)\s*(?::[^=\n]+)?=\s*(Flask|FastAPI|Starlette|Quart|Litestar)\(",
                         re.MULTILINE)
_FACTORY = re.compile(r"^def (create_app|make_app)\(", re.MULTILINE)
PRODUCTION_SETTINGS = ("production", "prod")  # a settings package's module for the server


def code(repo: Repo, d: Detected) -> None:
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


def _flask_app_env(repo: Repo) -> str | None:
    """The module of FLASK_APP in ``.flaskenv`` (``app.py``, ``pkg:create_app()``...)."""
    match = re.search(r"^\s*FLASK_APP\s*=\s*[\"']?([\w./]+)", repo.text(".flaskenv") or "",
                      re.MULTILINE)
    if not match:
        return None
    return match[1].removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def settings_text(repo: Repo, module: str) -> tuple[str, str] | None:
    """The settings module, or all of its package when it is one of several
    (``settings/base.py`` + ``settings/production.py``)."""
    package = module.rpartition(".")[0]
    if package and (repo.root / package.replace(".", "/") / "__init__.py").is_file():
        return repo.module_text(package)
    return repo.module_text(module)


def _django(repo: Repo, d: Detected, settings: str) -> None:
    found = settings_text(repo, settings)
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
        entry_settings(repo, d, d.entry)


def entry_settings(repo: Repo, d: Detected, entry: str) -> None:
    """Prefer the settings the entry module (wsgi.py/asgi.py) defaults to over manage.py's:
    projects often point manage.py at development settings."""
    found = repo.module_text(entry.split(":")[0])
    match = _SETTINGS_DEFAULT.search(found[1]) if found else None
    if match and match[1] != d.django_settings:
        if d.django_settings:
            d.notes.append(f"manage.py defaults to {d.django_settings}, {found[0]} to {match[1]}; "
                           f"{found[0]}'s wins over manage.py's (the server runs {found[0]})")
        d.found("django_settings", match[1], found[0])


def settings_choice(repo: Repo, d: Detected) -> None:
    """Prefer a settings package's production module (``production.py``, else ``prod.py``) over
    what manage.py/wsgi.py/asgi.py default to, often development settings; then warn when the
    chosen module sets ``DEBUG = True``. Settings in a single module are kept as found."""
    current = d.django_settings
    if not current:
        return
    package = _settings_package(repo, current)
    chosen = next((f"{package}.{name}" for name in PRODUCTION_SETTINGS
                   if package and _module_file(repo, f"{package}.{name}")), None)
    if chosen and current.rpartition(".")[2] not in PRODUCTION_SETTINGS:
        d.notes.append(f"the inventory uses {chosen}, not {current} that "
                       f"{d.sources.get('django_settings', 'the code')} defaults to: the "
                       f"settings package has a production module, which the server should "
                       f"run (defaults often name development settings); change "
                       f"app.django_settings if not")
        d.found("django_settings", chosen, _module_file(repo, chosen))
    debug = _debug_literal(repo, d.django_settings, set())
    if debug and debug[0] is True:
        where = "" if debug[1] == _module_file(repo, d.django_settings) else f" (in {debug[1]})"
        d.notes.append(f"WARNING: {d.django_settings} sets DEBUG = True{where}: Django would show "
                       f"tracebacks and settings to every visitor; set it False, or read it "
                       f"from the environment")


def _settings_package(repo: Repo, module: str) -> str | None:
    """The package of several settings modules that ``module`` is, or is in (``mysite.settings``
    of ``mysite.settings.dev``); ``None`` for a lone ``settings.py``."""
    if _module_file(repo, module, package=True):
        return module
    parent, _, name = module.rpartition(".")
    if name != "settings" and parent and _module_file(repo, parent, package=True):
        return parent
    return None


def _module_file(repo: Repo, module: str, package: bool = False) -> str | None:
    """The repository path of a dotted module (``package``: only a package's __init__.py)."""
    base = module.replace(".", "/")
    names = [f"{base}/__init__.py"] if package else [f"{base}.py", f"{base}/__init__.py"]
    return next((rel for rel in names if (repo.root / rel).is_file()), None)


def _debug_literal(repo: Repo, module: str, seen: set[str]) -> tuple[object, str] | None:
    """``(value, file)`` of the last module-level ``DEBUG =`` in ``module`` or in what it
    star-imports from the repository; ``value`` is the literal, ``None`` when computed (read
    from the environment). ``None`` when nothing there sets DEBUG."""
    rel = _module_file(repo, module)
    if rel is None or rel in seen:
        return None
    seen.add(rel)
    try:
        tree = ast.parse(repo.text(rel) or "")
    except SyntaxError:
        return None
    found = None
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and any(alias.name == "*" for alias in node.names):
            target = _imported(module, rel.endswith("/__init__.py"), node)
            found = (_debug_literal(repo, target, seen) if target else None) or found
        elif isinstance(node, ast.Assign) and any(
                isinstance(target, ast.Name) and target.id == "DEBUG" for target in node.targets):
            value = node.value
            found = (value.value if isinstance(value, ast.Constant) else None, rel)
    return found


def _imported(module: str, is_package: bool, node: ast.ImportFrom) -> str | None:
    """The module ``from <node.module> import *`` in ``module`` names (relative or absolute)."""
    if not node.level:
        return node.module
    parts = module.split(".")[:None if is_package else -1]
    parts = parts[:max(0, len(parts) - node.level + 1)]
    return ".".join([*parts, *([node.module] if node.module else [])]) or None
