"""Settings for the example shop: everything comes from environment variables.

On the server they come from the site's systemd ``EnvironmentFile``; see README.md for the list.
Without DATABASE_URL the app uses SQLite and without REDIS_URL a per-process memory cache:
both are for local runs and tests only.
"""

import os
import sys
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean: use 1 or 0")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None


def env_list(name: str) -> list[str] | None:
    """Comma-separated list; None when the variable is unset or blank."""
    raw = os.environ.get(name, "")
    items = [item.strip() for item in raw.split(",") if item.strip()]
    return items or None


def parse_database_url(url: str) -> dict:
    """``postgres://user:pass@host:port/name?sslmode=require`` (or ``sqlite:///path``) -> dict.

    User, password, host and database name are percent-decoded, so a password may hold any
    character and the host may be a socket directory (``postgres://shop@%2Frun%2Fpostgresql/shop``).
    Query parameters become OPTIONS (psycopg connection parameters).
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        # sqlite:///relative/to/cwd.db  or  sqlite:////absolute/path.db
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": unquote(parts.path[1:])}
    if scheme not in {"postgres", "postgresql", "pgsql"}:
        raise ImproperlyConfigured(
            f"DATABASE_URL: unsupported scheme {parts.scheme!r}; expected postgres://")
    name = unquote(parts.path.lstrip("/"))
    if not name:
        raise ImproperlyConfigured("DATABASE_URL: no database name (postgres://user:pass@host/NAME)")
    try:
        port = parts.port
    except ValueError:
        raise ImproperlyConfigured("DATABASE_URL: the port is not a number") from None
    hostinfo = parts.netloc.rpartition("@")[2]
    # An IPv6 literal as urlsplit reads it; anything else percent-decoded with its case kept,
    # since it may be a socket directory.
    host = parts.hostname if hostinfo.startswith("[") else unquote(hostinfo.partition(":")[0])
    options = dict(parse_qsl(parts.query))
    options.setdefault("connect_timeout", "5")  # a dead database fails health checks quickly
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": host,
        "PORT": str(port) if port else "",
        "OPTIONS": options,
    }


# --- core -----------------------------------------------------------------------------------

DEBUG = env_bool("DEBUG", False)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set: put it in the environment (DEBUG=1 allows a dev key)")
    SECRET_KEY = "django-insecure-dev-only-key-do-not-use-in-production"
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS") or []

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS") or (
    ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])


def _origin(host: str) -> str:
    return f"https://*{host}" if host.startswith(".") else f"https://{host}"


CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS") or [
    _origin(host) for host in ALLOWED_HOSTS if host != "*"]

RELEASE = os.environ.get("RELEASE", "").strip() or "-"
APP_ENV = os.environ.get("APP_ENV", "").strip()

INSTALLED_APPS = [
    "django.contrib.staticfiles",
    "catalog",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "shop.urls"
WSGI_APPLICATION = "shop.wsgi.application"
ASGI_APPLICATION = "shop.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    },
]

# --- database and cache ---------------------------------------------------------------------

DATABASE_URL = os.environ.get("DATABASE_URL", "").strip()
if DATABASE_URL:
    DATABASES = {"default": parse_database_url(DATABASE_URL)}
else:
    DATABASES = {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}}
DATABASES["default"]["CONN_MAX_AGE"] = env_int("CONN_MAX_AGE", 60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

REDIS_URL = os.environ.get("REDIS_URL", "").strip()
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            # Staging and production may share one Redis database: keys never meet.
            "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX") or "-".join(
                filter(None, ["shop", APP_ENV])),
            # Fail fast (health check answers 503) instead of hanging a worker.
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Celery jobs go through the same Redis; without it they run inline (local runs, tests).
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
# Staging and production may share one Redis: each environment gets its own queue.
CELERY_TASK_DEFAULT_QUEUE = f"shop-{os.environ.get('APP_ENV', 'dev')}"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- static and media (served by Nginx in production) ---------------------------------------

STATIC_URL = "/static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT") or BASE_DIR / "static-collected")
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT") or BASE_DIR / "media")
FILE_UPLOAD_PERMISSIONS = 0o640
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o750

# --- security (TLS ends at Nginx, which sets X-Forwarded-Proto and Host) ---------------------

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
USE_X_FORWARDED_HOST = True
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
# Nginx redirects HTTP to HTTPS and may send HSTS; these let Django do it too when wanted.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_REDIRECT_EXEMPT = [r"^health/$"]  # checked over the release's socket, without TLS
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)

# --- misc -----------------------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- logging: everything to stdout, where journald picks it up ------------------------------

LOG_LEVEL = (os.environ.get("DJANGO_LOG_LEVEL") or os.environ.get("LOG_LEVEL") or "INFO").upper()

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {
        "stdout": {"class": "logging.StreamHandler", "stream": sys.stdout, "formatter": "plain"},
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["stdout"], "level": LOG_LEVEL, "propagate": False},
    },
}

# --- optional error reporting ---------------------------------------------------------------

SENTRY_DSN = os.environ.get("SENTRY_DSN", "").strip()
if SENTRY_DSN:
    try:
        import sentry_sdk
    except ImportError:
        print("SENTRY_DSN is set but sentry_sdk is not installed; errors are not reported",
              file=sys.stderr)
    else:
        sentry_sdk.init(
            dsn=SENTRY_DSN,
            release=RELEASE if RELEASE != "-" else None,
            environment=APP_ENV or None,
            send_default_pii=False,
        )
