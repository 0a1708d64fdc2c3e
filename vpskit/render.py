"""Server files rendered from ``templates/``: pure functions of an :class:`Environment`.

Each ``*_path`` function names where its file lives on the server; the render functions return
the file's text. Nothing here touches a host.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import jinja2

import vpskit.templates
from vpskit.config import CALENDAR as _CALENDAR
from vpskit.config import COMMAND_WORD as _COMMAND_WORD
from vpskit.config import SYSTEMD_WORD as _SYSTEMD_WORD
from vpskit.config import URL_PATH as _URL_PATH
from vpskit.config import Environment

TEMPLATES = Path(vpskit.templates.__file__).parent  # templates/, shipped as package data
COMMON_CONF = "/etc/nginx/conf.d/vpskit.conf"
ACME_WEBROOT = "/var/lib/vpskit/acme"
SYSTEMD_DIR = "/etc/systemd/system"
ASGI_GUNICORN_WORKER = "uvicorn.workers.UvicornWorker"
BACKEND_PORT = 8080  # web hosts behind an lb host serve it here, admitted from the lb only
WATCHDOG_PROGRAM = "/usr/local/lib/vpskit/watchdog.py"  # one for every site of the host
MAINTENANCE_DIR = "/var/lib/vpskit/maintenance"  # the sites' 503 pages, which nginx workers read
MAINTENANCE_URI = "/.vpskit-maintenance.html"  # the page's internal location; 404 from outside

_jinja = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    autoescape=False,
    # compiled templates kept between runs (a 0700 directory of the user's in the temp dir,
    # keyed by each template's source): a no-op provision need not compile them again
    bytecode_cache=jinja2.FileSystemBytecodeCache(),
)


def render_template(template: str, **context: object) -> str:
    """``templates/<template>`` rendered with ``context``; a name it lacks is an error."""
    return _jinja.get_template(template).render(**context)


# ---- names and paths ----------------------------------------------------------------------------
def ident(env: Environment) -> str:
    """The site as an Nginx identifier (upstream and rate-limit zone): ``shop_production``."""
    return env.site.replace("-", "_")


def lb_ident(env: Environment) -> str:
    """The lb site's identifier, apart from the web site's on a host that is both."""
    return f"{ident(env)}_lb"


def release_dir(env: Environment, release_id: str) -> str:
    return f"{env.releases_dir}/{release_id}"


def app_units(env: Environment) -> str:
    """The glob of every web and process instance of the site, whatever the release."""
    return f"{env.site}-*@*.service"


def log_units(env: Environment) -> list[str]:
    """What ``fab logs`` shows: the site's web and process instances, its scheduled jobs. The
    web template's own name is there too: journalctl 257 (Debian 13) fails when every unit it
    is given is a glob that matches nothing yet (a site never deployed)."""
    return [web_unit_name(env, ""), app_units(env), job_unit_name(env, "*", "service")]


def web_socket(env: Environment, release_id: str | None) -> str:
    """The Unix socket a release's web process listens on; ``None`` = nothing deployed yet."""
    return f"{env.run_dir}/web-{release_id or 'none'}.sock"


def web_unit_name(env: Environment, release_id: str) -> str:
    """``shop-production-web@<release_id>.service``; ``""`` gives the template's own name."""
    return f"{env.site}-web@{release_id}.service"


def backup_unit_name(env: Environment, suffix: str) -> str:
    """``shop-production-backup.service`` / ``.timer``."""
    return f"{env.site}-backup.{suffix}"


def watchdog_unit_name(env: Environment, suffix: str) -> str:
    """``shop-production-watchdog.service`` / ``.timer``."""
    return f"{env.site}-watchdog.{suffix}"


def watchdog_config(env: Environment) -> str:
    """What the site's watchdog checks on a host and whom it tells (root's alone)."""
    return f"/etc/vpskit/watchdog/{env.site}.json"


def offsite_config(env: Environment) -> str:
    """Where the db host sends the site's backups and with which write-only credentials."""
    return f"/etc/vpskit/offsite/{env.site}.json"


def offsite_key(env: Environment) -> str:
    """The db host's own SSH key for an SFTP target (``.pub`` beside it), made there."""
    return f"/etc/vpskit/offsite/{env.site}.sftp-key"


def offsite_known_hosts(env: Environment) -> str:
    """The SFTP target's host keys, as the operator's known_hosts has them."""
    return f"/etc/vpskit/offsite/{env.site}.known_hosts"


def offsite_stamp(env: Environment) -> str:
    """Touched by each good off-site copy: when the last one went (the watchdog reads it)."""
    return f"/var/lib/vpskit/offsite/{env.site}.last"


def lock_path(site: str) -> str:
    """The site's lock, taken by deploys, rollbacks, restores, removals and backups: in
    ``/run`` itself, where only root creates files."""
    return f"/run/vpskit-{site}.lock"


def backup_script(env: Environment) -> str:
    return f"/usr/local/lib/vpskit/backup-{env.site}"


def site_path(env: Environment) -> str:
    """Written straight into ``sites-enabled`` so a validated write is also the activation."""
    return f"/etc/nginx/sites-enabled/{env.site}.conf"


def upstream_path(env: Environment) -> str:
    return f"/etc/nginx/vpskit/{env.site}/upstream.conf"


def lb_site_path(env: Environment) -> str:
    """The load balancer's site: its own file, since an lb host may also be a web host."""
    return f"/etc/nginx/sites-enabled/{env.site}-lb.conf"


def lb_upstream_path(env: Environment) -> str:
    return f"/etc/nginx/vpskit/{env.site}/lb-upstream.conf"


def access_log_path(env: Environment, lb: bool = False) -> str:
    """The site's request log in the ``vpskit`` format (the lb's own when ``lb``: a host may
    be both)."""
    return f"/var/log/nginx/{env.site}{'-lb' if lb else ''}.access.log"


def maintenance_path(env: Environment) -> str:
    """The include whose presence is maintenance mode (see :func:`nginx_maintenance`)."""
    return f"/etc/nginx/vpskit/{env.site}/maintenance.conf"


def maintenance_include(env: Environment) -> str:
    """How the site includes :func:`maintenance_path`: a glob, so it loads without the file."""
    return maintenance_path(env).removesuffix("f") + "[f]"


def maintenance_page_path(env: Environment) -> str:
    return f"{MAINTENANCE_DIR}/{env.site}.html"


def cert_path(env: Environment) -> str:
    return f"/etc/letsencrypt/live/{env.site}/fullchain.pem"


def key_path(env: Environment) -> str:
    return f"/etc/letsencrypt/live/{env.site}/privkey.pem"


# ---- nginx --------------------------------------------------------------------------------------
def www_redirects(env: Environment) -> list[tuple[str, str]]:
    """(from, to) domain pairs that ``tls.www_redirect`` turns into 301s; both must be listed."""
    pairs = []
    for domain in env.domains:
        if env.tls.www_redirect == "to_bare" and domain.startswith("www."):
            pair = (domain, domain.removeprefix("www."))
        elif env.tls.www_redirect == "to_www":
            pair = (domain, f"www.{domain}")
        else:
            continue
        if pair[1] in env.domains:
            pairs.append(pair)
    return pairs


# ---- TLS between hosts (vpskit.provision.hostca) -------------------------------------------------
HOST_TLS_DIR = "/etc/ssl/vpskit"  # a host's own CA and certificates, and the CAs it trusts
BACKEND_NAME = "vpskit-backend.internal"  # the name the lb verifies every web host by


def host_cert_path(service: str) -> str:
    """The certificate of a service a host offers the others (``ca``: its CA's)."""
    return f"{HOST_TLS_DIR}/{service}.crt"


def host_key_path(service: str) -> str:
    return f"{HOST_TLS_DIR}/{service}.key"


def db_ca_path(env: Environment) -> str:
    """Where an app host keeps the CA certificate of its site's db host."""
    return f"{HOST_TLS_DIR}/{env.site}-db-ca.crt"


def web_cas_path(env: Environment) -> str:
    """Where the lb host keeps the CA certificates of its site's web hosts."""
    return f"{HOST_TLS_DIR}/{env.site}-web-cas.crt"


def nginx_site(env: Environment, tls_ready: bool, mode: str = "web") -> str:
    """The site's server blocks: HTTPS when ``tls.enabled`` and the certificate exists
    (``tls_ready``), else the app over plain HTTP (ACME challenges are answered either way).

    ``mode``: ``web`` serves the live release to the world; ``lb`` terminates TLS and spreads
    requests over the web hosts, over TLS, verifying each against the web hosts' own CAs;
    ``backend`` is a web host behind an lb: TLS on :data:`BACKEND_PORT` to the lb alone (a
    certificate of its own CA), trusting its client address and scheme headers.
    The client's address is the connection's, or what ``nginx.trusted_proxies`` (a cloud
    load balancer, a CDN) say in X-Forwarded-For; the app is told that address alone.
    """
    tls_ready = tls_ready and env.tls.enabled and mode != "backend"
    redirects = www_redirects(env) if mode != "backend" else []
    sources = {source for source, _ in redirects}
    lb_address = env.lb_host.private if env.lb_host else ""
    return render_template(
        "nginx/site.conf.j2",
        env=env,
        mode=mode,
        backend_port=BACKEND_PORT,
        lb_address=lb_address,
        real_ip_from=[lb_address] if mode == "backend" else list(env.nginx.trusted_proxies),
        real_ip_header="X-Real-IP" if mode == "backend" else "X-Forwarded-For",
        ident=lb_ident(env) if mode == "lb" else ident(env),
        tls_ready=tls_ready,
        redirects=redirects,
        app_domains=[d for d in env.domains if d not in sources],
        upstream_conf=lb_upstream_path(env) if mode == "lb" else upstream_path(env),
        access_log=access_log_path(env, lb=mode == "lb"),
        maintenance_include=maintenance_include(env),
        maintenance_uri=MAINTENANCE_URI,
        health_path=_checked(env.health.path, _URL_PATH, "health.path").partition("?")[0],
        acme_webroot=ACME_WEBROOT,
        cert=cert_path(env),
        key=key_path(env),
        backend_cert=host_cert_path("backend"),
        backend_key=host_key_path("backend"),
        backend_cas=web_cas_path(env),
        backend_name=BACKEND_NAME,
        # ASGI apps hold websockets open; WSGI ones get a bit longer than gunicorn's timeout.
        read_timeout=3600 if env.app.kind == "asgi" else max(60, env.app.timeout + 5),
    )


def nginx_maintenance(env: Environment, lb: bool) -> str:
    """The include that puts the site (the lb's with ``lb``) in maintenance: 503 with
    Retry-After and the page to every request the site's map does not let through."""
    return render_template("nginx/maintenance.conf.j2", env=env, uri=MAINTENANCE_URI,
                           ident=lb_ident(env) if lb else ident(env),
                           page=maintenance_page_path(env))


def default_maintenance_page() -> str:
    """The 503 page of an app whose repository has no ``maintenance.html``."""
    return render_template("nginx/maintenance.html.j2")


def nginx_upstream(env: Environment, release_id: str | None) -> str:
    """The upstream naming the live release's socket: the only file a deploy switch rewrites."""
    return render_template("nginx/upstream.conf.j2", site=env.site, ident=ident(env),
                           release_id=release_id, socket=web_socket(env, release_id))


def nginx_lb_upstream(env: Environment, out_of_rotation: tuple[str, ...] = ()) -> str:
    """The lb's upstream: every web host's backend port, those ``out_of_rotation`` marked down
    (a deploy switching them)."""
    return render_template("nginx/lb-upstream.conf.j2", site=env.site, ident=lb_ident(env),
                           port=BACKEND_PORT, down=out_of_rotation,
                           servers=[h.private for h in env.hosts_with("web")])


def web_mode(env: Environment) -> str:
    """How a web host's site serves: ``backend`` behind an lb host, else ``web``."""
    return "backend" if env.lb_host else "web"


def nginx_common() -> str:
    """Http-context settings shared by every vpskit site on a host (installed once)."""
    return render_template("nginx/vpskit.conf.j2")


# ---- systemd ------------------------------------------------------------------------------------
# The sandbox of everything a site runs: its web and process units, and through systemd-run its
# release commands and ``fab manage``; ``systemd-analyze security`` rates it "OK". What a Python
# app tolerates: no MemoryDenyWriteExecute= (JITs and cffi callbacks need W+X memory), no
# ProcSubset=pid (os.getloadavg, psutil read /proc), no PrivateUsers= (group access to files).
SANDBOX: tuple[tuple[str, str], ...] = (
    ("NoNewPrivileges", "yes"),
    ("ProtectSystem", "strict"),
    # Said again: with /proc and /sys mounted anew (ProtectProc=, ProtectKernelTunables=,
    # ProtectControlGroups=) systemd 252 leaves /run writable. RuntimeDirectory= stays writable.
    ("ReadOnlyPaths", "/run"),
    ("ProtectHome", "yes"),
    ("PrivateTmp", "yes"),
    ("PrivateDevices", "yes"),
    ("ProtectKernelTunables", "yes"),
    ("ProtectKernelModules", "yes"),
    ("ProtectKernelLogs", "yes"),
    ("ProtectControlGroups", "yes"),
    ("ProtectClock", "yes"),
    ("ProtectHostname", "yes"),
    ("ProtectProc", "invisible"),
    ("RestrictNamespaces", "yes"),
    ("RestrictRealtime", "yes"),
    ("RestrictSUIDSGID", "yes"),
    ("LockPersonality", "yes"),
    ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
    ("CapabilityBoundingSet", ""),
    ("SystemCallArchitectures", "native"),
    ("SystemCallFilter", "@system-service"),
    ("SystemCallFilter", "~@privileged @resources"),
    ("SystemCallFilter", "@chown"),  # gunicorn chowns its socket to its own user
    ("SystemCallErrorNumber", "EPERM"),
)


def sandbox(env: Environment, *writable: str, umask: str = "0027") -> list[tuple[str, str]]:
    """:data:`SANDBOX` plus what differs per unit: the directories it may write (of
    ``shared/``, e.g. ``media``; all else is read-only, but a private /tmp) and its umask."""
    paths = " ".join(str(env.shared_dir / name) for name in writable)
    return [*SANDBOX, ("ReadWritePaths", paths), ("UMask", umask)]


def _checked(value: str, pattern: re.Pattern[str], key: str) -> str:
    """``value``, which inventory.load has already matched whole against ``pattern``."""
    assert pattern.fullmatch(value), f"{key}: {value!r} did not come through inventory.load"
    return value


def exec_start(env: Environment) -> list[str]:
    """The web server's argv for the unit template (``%i`` = release id).

    django/flask run gunicorn; asgi runs uvicorn, daphne (one process; ``workers`` is unused)
    or gunicorn with uvicorn's worker class (used when ``worker_class`` is left at ``sync``).

    Forwarded headers: only nginx may connect to the socket (its directory is the site group's),
    and it sends the client's address alone. Gunicorn trusts a Unix socket's peer whatever
    ``--forwarded-allow-ips`` says, so none is given; uvicorn (alone or as gunicorn's worker) has
    no peer address to match on a Unix socket and applies them only with ``*``; daphne's
    ``--proxy-headers`` takes the first X-Forwarded-For entry.
    """
    app = env.app
    uvicorn_trust = "--forwarded-allow-ips=*"
    entry = _checked(app.entry, _SYSTEMD_WORD, "app.entry")
    factory = entry.endswith("()")
    binary = f"{release_dir(env, '%i')}/.venv/bin/{app.server}"
    socket = web_socket(env, "%i")
    if app.server == "gunicorn":
        worker_class = app.worker_class
        if app.kind == "asgi" and worker_class == "sync":
            worker_class = ASGI_GUNICORN_WORKER
        return [binary, f"--bind=unix:{socket}", f"--workers={app.workers}",
                f"--worker-class={_checked(worker_class, _SYSTEMD_WORD, 'app.worker_class')}",
                f"--timeout={app.timeout}", f"--graceful-timeout={app.graceful_timeout}",
                *([uvicorn_trust] if app.kind == "asgi" else []), "--access-logfile=-", entry]
    if app.server == "uvicorn":
        return [binary, f"--uds={socket}", f"--workers={app.workers}",
                uvicorn_trust, f"--timeout-graceful-shutdown={app.graceful_timeout}",
                *(["--factory"] if factory else []), entry.removesuffix("()")]
    return [binary, f"--unix-socket={socket}", "--proxy-headers",  # daphne; load refuses "()"
            f"--http-timeout={app.timeout}", "--access-log=-", entry]


def web_unit(env: Environment) -> str:
    """The ``<site>-web@.service`` template; one instance per release, each on its own socket."""
    settings = env.app.django_settings
    return render_template(
        "systemd/web@.service.j2",
        env=env,
        sandbox=sandbox(env, "media", umask="0007"),  # nginx, in the site's group, connects
        exec_start=" ".join(exec_start(env)),
        working_dir=release_dir(env, "%i"),
        socket=web_socket(env, "%i"),
        django_settings=settings and _checked(settings, _SYSTEMD_WORD, "app.django_settings"),
    )


def backup_service(env: Environment) -> dict[str, str]:
    """Path -> text of the backup service (its timer starts it, as does ``vpskit-site``)."""
    return {f"{SYSTEMD_DIR}/{backup_unit_name(env, 'service')}": render_template(
        "systemd/backup.service.j2", site=env.site, script=backup_script(env),
        lock=lock_path(env.site))}


def backup_units(env: Environment) -> dict[str, str]:
    """Path -> text of the backup service and its timer; empty when ``backups.timer`` is unset."""
    if not env.backups.timer:
        return {}
    return {
        **backup_service(env),
        f"{SYSTEMD_DIR}/{backup_unit_name(env, 'timer')}": render_template(
            "systemd/backup.timer.j2", site=env.site,
            on_calendar=_checked(env.backups.timer, _CALENDAR, "backups.timer")),
    }


def watchdog_units(env: Environment) -> dict[str, str]:
    """Path -> text of the site's watchdog service and its timer."""
    return {
        f"{SYSTEMD_DIR}/{watchdog_unit_name(env, 'service')}": render_template(
            "systemd/watchdog.service.j2", site=env.site, program=WATCHDOG_PROGRAM,
            config=watchdog_config(env)),
        f"{SYSTEMD_DIR}/{watchdog_unit_name(env, 'timer')}": render_template(
            "systemd/watchdog.timer.j2", site=env.site, every=env.alerts.every),
    }


def process_unit_name(env: Environment, name: str, instance: int | str = "") -> str:
    """``shop-production-worker@2.service``; ``""`` gives the template's own name."""
    return f"{env.site}-{name}@{instance}.service"


def live_exec_start(env: Environment, command: str, key: str) -> str:
    """``ExecStart=`` of a process or job ``command`` in the live release (``current/``): a
    bare program name comes from its virtualenv."""
    words = [_checked(word, _COMMAND_WORD, key) for word in shlex.split(command)]
    program = words[0] if "/" in words[0] else f"{env.current_link}/.venv/bin/{words[0]}"
    return " ".join([program, *words[1:]])


def process_units(env: Environment) -> dict[str, str]:
    """Path -> text of each process type's template unit (instances 1..count)."""
    return {f"{SYSTEMD_DIR}/{process_unit_name(env, process.name)}": render_template(
        "systemd/process@.service.j2", env=env, process=process, sandbox=sandbox(env, "media"),
        exec_start=live_exec_start(env, process.command, f"processes.{process.name}.command"))
        for process in env.processes}


def job_unit_name(env: Environment, name: str, suffix: str) -> str:
    """``shop-production-job-cleanup.service`` / ``.timer``; a ``*`` name matches them all."""
    return f"{env.site}-job-{name}.{suffix}"


def job_units(env: Environment) -> dict[str, str]:
    """Path -> text of each scheduled job's service and timer (installed on ``env.job_host``
    only, by :mod:`vpskit.jobs`)."""
    units = {}
    for job in env.schedule:
        for calendar in job.calendars:
            _checked(calendar, _CALENDAR, f"schedule.{job.name}")
        units[f"{SYSTEMD_DIR}/{job_unit_name(env, job.name, 'service')}"] = render_template(
            "systemd/job.service.j2", env=env, job=job, sandbox=sandbox(env, "media"),
            exec_start=live_exec_start(env, job.command, f"schedule.{job.name}.command"))
        units[f"{SYSTEMD_DIR}/{job_unit_name(env, job.name, 'timer')}"] = render_template(
            "systemd/job.timer.j2", site=env.site, job=job)
    return units


def unit_files(env: Environment) -> dict[str, str]:
    """Path -> text of every systemd unit the site installs."""
    return {f"{SYSTEMD_DIR}/{web_unit_name(env, '')}": web_unit(env), **process_units(env),
            **backup_units(env)}
