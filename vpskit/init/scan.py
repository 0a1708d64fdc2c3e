"""What the Python sources read from the environment (settings, or secrets by their names), and
their health route."""

from __future__ import annotations

import re

from vpskit.init.detected import Detected
from vpskit.init.repo import Repo

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
HEALTH_NAMES = ("health", "healthz", "health-check", "healthcheck", "ping", "up", "status")
_ENV_CALL = re.compile(r"\b([\w.]+)\(\s*[\"']([A-Z][A-Z0-9_]+)[\"']")
_ENV_ITEM = re.compile(r"\benviron\[\s*[\"']([A-Z][A-Z0-9_]+)[\"']\s*\](?!\s*=[^=])")
_ENV_FUNC = re.compile(r"env|secret|setting|config", re.IGNORECASE)  # getenv, env_bool...
_ENV_OBJECT = re.compile(r"\benv(?:iron)?\.")  # os.environ.get, django-environ's env.bool
_ROUTE = re.compile(r"\b(?:path|re_path|route|get|api_route)\(\s*r?[\"']\^?/?((?:api/)?(?:"
                    + "|".join(map(re.escape, HEALTH_NAMES)) + r")/?)\$?[\"']")


def scan_sources(repo: Repo, d: Detected) -> None:
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
