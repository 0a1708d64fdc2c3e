"""Typed, validated configuration of one environment (what ``inventory.load`` returns).

Everything on a host is named by the *site*, ``<app>-<env>``: system user, release tree, units,
sockets, database and role, Nginx server block, certificate and backup directory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath

from vpskit.secret import Secret

APP_KINDS = ("django", "flask", "asgi")
ROLES = ("web", "worker", "db", "lb")
LETSENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
LETSENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"
# What inventory values may hold where they land in a unit file, matched whole (no quotes, ``$``,
# ``%`` or line breaks; spaces only in a calendar): inventory.load rejects the rest, render asserts.
SYSTEMD_WORD = re.compile(r"[\w.:()-]+")  # app.entry, worker_class, django_settings
COMMAND_WORD = re.compile(r"[\w.:=/@+,-]+")  # each word of a process command
# offsite.endpoint of an SFTP target: sftp://user@host[:port]/absolute/dir/
SFTP_RE = re.compile(r"sftp://([a-z_][a-z0-9_-]*)@([\w.-]+)(?::([0-9]{1,5}))?(/(?:[\w.-]+/)*)")
NIGHTLY = "*-*-* 03:00:00"  # backups.timer unless the inventory says otherwise
CALENDAR = re.compile(r"[\w*,./:~+-]+( [\w*,./:~+-]+)*")  # backups.timer (systemd OnCalendar)
URL_PATH = re.compile(r"/[\w.~/%+,:@=&?-]*", re.ASCII)  # health.path, quoted in the Nginx site


@dataclass(frozen=True)
class Host:
    """One server of an environment and how to reach it."""

    address: str
    user: str = "deploy"  # the deploy user provision creates; later tasks log in as it
    bootstrap_user: str = "root"  # used by provision until the deploy user exists
    port: int = 22
    key: str | None = None  # path to the private key; None = ssh-agent / default keys
    known_hosts: str | None = None  # pinned keys file; None = ~/.ssh/known_hosts (accept-new)
    roles: tuple[str, ...] = ("web", "worker", "db")
    private_address: str = ""  # how the other hosts reach it; "" = address
    ssh_address: str = ""  # where SSH reaches it when not at address (a NAT, a tunnel)
    ci_user: str = ""  # the login for CI and cron: sudo for vpskit-site only; "" = none
    ci_key: str | None = None  # its private key (required with ci_user)

    @property
    def private(self) -> str:
        return self.private_address or self.address

    @property
    def ssh_target(self) -> str:
        """Where SSH connects to: ``ssh_address`` or ``address``."""
        return self.ssh_address or self.address

    @property
    def ci(self) -> Host:
        """This host as CI and cron log in to it: ``ci_user`` with ``ci_key``."""
        return replace(self, user=self.ci_user, key=self.ci_key)

    @property
    def serves_app(self) -> bool:
        """Whether the app's releases live here (web or worker role)."""
        return "web" in self.roles or "worker" in self.roles


@dataclass(frozen=True)
class App:
    """The application: where its code comes from and how it is served."""

    name: str
    repo: str  # git URL or local path; a release is ``git archive`` of ``ref``
    ref: str = "main"
    kind: str = "django"  # django | flask | asgi
    entry: str = ""  # WSGI/ASGI callable, e.g. "shop.wsgi:application"
    server: str = "gunicorn"  # gunicorn | uvicorn | daphne
    workers: int = 2
    worker_class: str = "sync"  # gunicorn worker class: sync, gthread, gevent, eventlet...
    timeout: int = 30
    graceful_timeout: int = 30
    requirements: str = "requirements.txt"
    release_commands: tuple[str, ...] = ()  # run before the switch; () = the kind's default
    django_settings: str = ""  # DJANGO_SETTINGS_MODULE, django/asgi apps only
    memory_max: str = ""  # systemd MemoryMax= of each web/process unit, e.g. "512M"; "" = none


@dataclass(frozen=True)
class Postgres:
    enabled: bool = True
    db: str = ""  # defaults to the site name with '-' -> '_'
    user: str = ""
    lock_timeout: int = 5  # seconds a release command waits for a table lock; 0 = for ever


@dataclass(frozen=True)
class Redis:
    enabled: bool = True
    maxmemory: str = "64mb"
    policy: str = "allkeys-lru"


@dataclass(frozen=True)
class Health:
    path: str = "/health/"
    status: int = 200
    timeout: int = 5  # seconds per request
    retries: int = 20  # attempts before the release counts as dead


@dataclass(frozen=True)
class TLS:
    enabled: bool = True
    email: str = ""
    acme_url: str = LETSENCRYPT
    ca_bundle: str = ""  # server-side CA bundle certbot trusts for a private ACME server (tests)
    www_redirect: str = "none"  # none | to_bare | to_www


@dataclass(frozen=True)
class Backups:
    keep_days: int = 30
    keep_predeploy: int = 3  # dumps taken before deploys and restores, newest first
    local_dir: str = "backups"  # operator-side directory for the off-site copy
    timer: str = NIGHTLY  # systemd OnCalendar of the server-side timer; "" (or off) = none
    media: bool = False


@dataclass(frozen=True)
class Nginx:
    client_max_body_size: str = "20m"
    rate_limit: str = "10r/s"
    rate_burst: int = 20
    # Load balancers/CDNs in front whose X-Forwarded-For names the client (IPs or networks).
    trusted_proxies: tuple[str, ...] = ()


@dataclass(frozen=True)
class Maintenance:
    """Maintenance mode (``fab maintenance on``, ``deploy --maintenance``): Nginx answers 503."""

    allow: tuple[str, ...] = ()  # clients still served the app (IPs or networks), by real address
    retry_after: int = 300  # seconds, the 503's Retry-After header


@dataclass(frozen=True)
class Offsite:
    """Off-site copies of every backup (:mod:`vpskit.offsite`) in an S3-compatible bucket or on
    an SFTP host, encrypted on the db host to ``recipient`` (an age public key) before they
    leave it. For S3 each credential names a secret ``KEY_ID:SECRET`` and only ``write_key``
    goes to the server; for SFTP the server gets a key of its own that may only write, and the
    operator logs in with ``key`` (else the agent's) checked against ``known_hosts``."""

    endpoint: str = ""  # https://s3.example.com or sftp://user@host[:port]/dir/; "" = none
    key: str = ""  # sftp: the operator's private key file ("" = the agent's, ~/.ssh's)
    known_hosts: str = ""  # sftp: the file with the target's host key ("" = ~/.ssh/known_hosts)
    bucket: str = ""
    prefix: str = ""  # "" = "<site>/"
    region: str = "us-east-1"
    recipient: str = ""  # age1...: the public key the copies are encrypted to
    write_key: str = ""  # the server's credentials: may write, need not read, list or delete
    admin_key: str = ""  # the operator's: lists, reads and prunes (fab backup, restore)
    identity: str = ""  # the operator's age secret key (AGE-SECRET-KEY-1...), to restore
    keep_days: int = 90

    @property
    def enabled(self) -> bool:
        return bool(self.endpoint)

    @property
    def sftp(self) -> bool:
        return self.endpoint.startswith("sftp://")

    @property
    def sftp_target(self) -> tuple[str, str, int, str]:
        """The SFTP target's user, host, port and directory (ending in '/')."""
        user, host, port, directory = SFTP_RE.fullmatch(self.endpoint).groups()
        return user, host, int(port or 22), directory

    @property
    def secret_names(self) -> tuple[str, ...]:
        return tuple(n for n in (self.write_key, self.admin_key, self.identity) if n)


@dataclass(frozen=True)
class Alerts:
    """The server's watchdog (:mod:`vpskit.alerts`): every ``every`` minutes each host checks its
    part of the site; a problem that holds for two checks is told once, and once when it clears.
    """

    webhook: str = ""  # the secret holding the URL notices are POSTed to as JSON; "" = none
    email: str = ""  # the address notices are mailed to; "" = none
    smtp: str = ""  # host:port of the relay the host's MTA sends through; "" = straight to the MX
    smtp_login: str = ""  # the secret holding "user:password" for the relay (then STARTTLS)
    heartbeat: str = ""  # the secret holding a URL each check GETs (healthchecks-style)
    every: int = 5  # minutes between checks
    disk_free_percent: int = 10  # below this on /, /srv or /var/backups is a problem
    cert_days: int = 14  # a certificate expiring sooner is a problem
    backup_hours: int = 26  # a newest backup older than this is a problem

    @property
    def secret_names(self) -> tuple[str, ...]:
        return tuple(name for name in (self.webhook, self.heartbeat, self.smtp_login) if name)

    @property
    def enabled(self) -> bool:
        return bool(self.webhook or self.heartbeat or self.email)


@dataclass(frozen=True)
class System:
    swap_mb: int = 1024  # swap file size on machines with < 2 GiB RAM; 0 = never
    timezone: str = "UTC"
    min_free_mb: int = 1024


@dataclass(frozen=True)
class Hooks:
    """Shell commands run on the operator's machine around deploys (:mod:`vpskit.hooks`)."""

    pre_deploy: str = ""  # "" = none; before any connection, a failure stops the deploy
    post_deploy: str = ""  # after a good deploy; a failure is only a warning
    post_rollback: str = ""  # after ``fab rollback``; a failure is only a warning
    failed_deploy: str = ""  # after a failed deploy, once undone; a failure is only a warning


@dataclass(frozen=True)
class Process:
    """A background process type beside ``web`` (Procfile style), e.g. a Celery worker."""

    name: str
    command: str  # run in the live release; a bare program name comes from its virtualenv
    count: int = 1  # instances of the template unit <site>-<name>@1..count
    stop_timeout: int = 60  # seconds a stopping process gets to finish its job (SIGTERM first)


@dataclass(frozen=True)
class Job:
    """A scheduled job (:mod:`vpskit.schedule`): a command of the live release run by a systemd
    timer on :attr:`Environment.job_host`."""

    name: str
    command: str  # as a process command: a bare program name comes from the virtualenv
    calendars: tuple[str, ...]  # its timer's OnCalendar= lines, each with its timezone
    written: str  # the schedule as the inventory gives it, e.g. "cron: 0 3 * * *"
    timeout: int = 3600  # seconds a run may take before it is stopped and counts as failed


@dataclass(frozen=True)
class Environment:
    """Everything one ``--env`` deploys: hosts, app, services, secrets."""

    name: str
    hosts: tuple[Host, ...]
    domains: tuple[str, ...]
    app: App
    postgres: Postgres = field(default_factory=Postgres)
    redis: Redis = field(default_factory=Redis)
    health: Health = field(default_factory=Health)
    tls: TLS = field(default_factory=TLS)
    backups: Backups = field(default_factory=Backups)
    nginx: Nginx = field(default_factory=Nginx)
    maintenance: Maintenance = field(default_factory=Maintenance)
    alerts: Alerts = field(default_factory=Alerts)
    offsite: Offsite = field(default_factory=Offsite)
    system: System = field(default_factory=System)
    hooks: Hooks = field(default_factory=Hooks)
    releases_keep: int = 5
    env: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, Secret] = field(default_factory=dict)
    processes: tuple[Process, ...] = ()
    schedule: tuple[Job, ...] = ()
    inventory_dir: str = ""  # the inventory's directory, where hooks run; "" = the working one
    inventory_file: str = ""  # the inventory itself ("" = none: built in code)

    # ---- names derived from the site -------------------------------------------------------
    @property
    def site(self) -> str:
        return f"{self.app.name}-{self.name}"

    @property
    def root(self) -> PurePosixPath:
        return PurePosixPath("/srv") / self.site

    @property
    def shared_dir(self) -> PurePosixPath:
        return self.root / "shared"

    @property
    def env_file(self) -> PurePosixPath:
        return self.shared_dir / ".env"

    @property
    def releases_dir(self) -> PurePosixPath:
        return self.root / "releases"

    @property
    def current_link(self) -> PurePosixPath:
        return self.root / "current"

    @property
    def run_dir(self) -> PurePosixPath:
        return PurePosixPath("/run") / self.site

    @property
    def backup_dir(self) -> PurePosixPath:
        return PurePosixPath("/var/backups") / self.site

    @property
    def app_user(self) -> str:
        return self.site

    @property
    def db_name(self) -> str:
        return self.postgres.db or self.site.replace("-", "_")

    @property
    def db_user(self) -> str:
        return self.postgres.user or self.site.replace("-", "_")

    @property
    def primary_domain(self) -> str:
        return self.domains[0]

    def hosts_with(self, role: str) -> tuple[Host, ...]:
        return tuple(h for h in self.hosts if role in h.roles)

    @property
    def app_hosts(self) -> tuple[Host, ...]:
        return tuple(h for h in self.hosts if h.serves_app)

    @property
    def db_host(self) -> Host | None:
        """The host running Postgres/Redis for the site; None with managed services only."""
        found = self.hosts_with("db")
        return found[0] if found else None

    @property
    def job_host(self) -> Host:
        """Where the scheduled jobs run, so each runs once: the first worker host, else the
        first web host."""
        return (self.hosts_with("worker") or self.hosts_with("web"))[0]

    @property
    def lb_host(self) -> Host | None:
        found = self.hosts_with("lb")
        return found[0] if found else None

    @property
    def public_hosts(self) -> tuple[Host, ...]:
        """The hosts the world reaches on 80/443, with the certificate: the lb, or else every
        web host."""
        return self.hosts_with("lb") or self.hosts_with("web")

    @property
    def own_postgres(self) -> bool:
        """Postgres on the db host (not when DATABASE_URL is a secret: a managed database)."""
        return self.postgres.enabled and "DATABASE_URL" not in self.secrets

    @property
    def tool_secrets(self) -> tuple[str, ...]:
        """The secrets vpskit itself uses (receivers, off-site credentials): never the app's."""
        return self.alerts.secret_names + self.offsite.secret_names

    @property
    def offsite_prefix(self) -> str:
        return self.offsite.prefix or f"{self.site}/"

    @property
    def own_redis(self) -> bool:
        return self.redis.enabled and "REDIS_URL" not in self.secrets
