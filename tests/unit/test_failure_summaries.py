"""One-line failure summaries: pip's output (recorded from real pip runs), a web process's
journal, and how the virtualenv step and the socket health check use them; commands that run
over their time."""

import hashlib
from pathlib import Path
from types import SimpleNamespace

import pytest

from vpskit import applier, readers
from vpskit.applier import Context
from vpskit.config import App, Environment, Host
from vpskit.deploy import appcmd, applog, pipeline, switch
from vpskit.deploy.pipfail import summarize_pip_failure
from vpskit.errors import HealthCheckError, RemoteError
from vpskit.remote import TIMED_OUT, Remote, Result
from vpskit.steps import Reporter

PIP = Path(__file__).parent / "data" / "pip"
RID = "20260101T120000Z-1a2b3c4"
ENV = Environment("production", (Host("192.0.2.1"),), ("shop.test",),
                  App(name="shop", repo="/tmp/x", entry="shop.wsgi:application"))
DJANGO6 = ("Django>=6.0 needs Python >= 3.12 (Django 6.0 and later) but the server has Python "
           "3.11; use a server with a newer Python (Debian 13 has 3.13) or pin an older release, "
           "e.g. Django<6.0")
REQS = f"/tmp/srv/shop-production/releases/{RID}/requirements.txt"


class ScriptedRemote(Remote):
    """A :class:`Remote` (real masking and errors) whose commands answer from ``answers``:
    the first key found in the command line gives its result; anything else succeeds."""

    def __init__(self, answers: dict[str, Result], secrets=()) -> None:
        super().__init__(SimpleNamespace(host="192.0.2.1", user="root"), secrets)
        self.answers = answers
        self.lines: list[str] = []

    def _exec(self, line, stdin, timeout, on_stdout) -> Result:
        self.lines.append(line)
        return next((r for key, r in self.answers.items() if key in line), Result("", "", 0))


# ---- pip ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("log", "summary"), [
    ("django-6.log", DJANGO6),
    ("django-6-pip23.0.log", DJANGO6),  # Debian 12's own pip
    ("django-extra-pinned.log",
     DJANGO6.replace("Django>=6.0", "django[argon2]==6.0.1").replace("Django", "django")),
    ("no-such-package.log", "pip: Could not find a version that satisfies the requirement "
                            "no-such-package-vpskit-xyz (from versions: none)"),
    ("no-such-package-pip25.log", "pip: Could not find a version that satisfies the "
                                  "requirement no-such-package-vpskit-xyz (from versions: none)"),
    ("conflict.log", f"pip: Cannot install -r {REQS} (line 1) and asgiref<3.7 because these "
                     f"package versions have conflicting dependencies: The user requested "
                     f"asgiref<3.7; django 5.0 depends on asgiref>=3.7.0"),
    ("psycopg2-no-pg-config.log",
     "pip could not build psycopg2==2.9.10: Error: pg_config executable not found."),
    ("setup-raises.log",
     "pip could not build ./vendor/badmeta: RuntimeError: badmeta needs numpy at setup time"),
    ("wheel-build-error.log", "pip could not build badbuild: error: libfoo.h: No such file or "
                              "directory (install libfoo-dev)"),
    ("wheel-build-error-pip25.log", "pip could not build badbuild: error: libfoo.h: No such "
                                    "file or directory (install libfoo-dev)"),
])
def test_pip_failure_reads_as_one_line(log, summary):
    assert summarize_pip_failure((PIP / log).read_text(), (3, 11)) == summary


def test_a_server_python_new_enough_gets_pips_own_error_line_shortened():
    line = summarize_pip_failure((PIP / "django-6.log").read_text(), (3, 12))
    assert line == ("pip: Could not find a version that satisfies the requirement Django>=6.0 "
                    "(from versions: 1.1.3 ... 5.2.19)")


def test_a_python_newer_than_any_debian_is_named_as_such():
    text = (PIP / "django-6.log").read_text().replace(">=3.12", ">=3.14")
    assert summarize_pip_failure(text, (3, 13)) == (
        "Django>=6.0 needs Python >= 3.14 (Django 6.0 and later) but the server has Python "
        "3.13; use a server with Python >= 3.14 or pin an older release, e.g. Django<6.0")


def test_pip_output_without_an_error_line_gives_its_last_line():
    assert summarize_pip_failure("Collecting x\nKilled\n\n", (3, 11)) == \
        "pip failed; its last line: Killed"


def deploy(remote: Remote, **fields) -> pipeline.Deploy:
    source = SimpleNamespace(read=lambda name: b"Django>=6.0\n")
    return pipeline.Deploy(ENV, ENV.hosts[0], remote, source, RID, Reporter(quiet=True),
                           **fields)


def test_virtualenv_pip_failure_is_one_masked_line_naming_the_log():
    output = (PIP / "django-6.log").read_text() + "token hunter2 leaked\n"
    remote = ScriptedRemote({"venv": Result(output, "", readers.PIP_FAILED)},
                            secrets=["hunter2"])
    with pytest.raises(RemoteError) as caught:
        deploy(remote, python=(3, 11)).virtualenv()
    assert str(caught.value) == (f"192.0.2.1: pip install -r requirements.txt failed: {DJANGO6} "
                                 f"(full output: {ENV.releases_dir}/{RID}/.vpskit-pip.log)")
    remote = ScriptedRemote({"venv": Result("Collecting x\nERROR: bad token hunter2\n", "",
                                            readers.PIP_FAILED)}, secrets=["hunter2"])
    with pytest.raises(RemoteError, match=r"pip: bad token \*\*\* \(full output"):
        deploy(remote).virtualenv()


def test_virtualenv_other_failures_and_success_read_as_before():
    remote = ScriptedRemote({"venv": Result("", "ensurepip is not available", 1)})
    with pytest.raises(RemoteError, match=r"`venv .*` exited 1: ensurepip is not available"):
        deploy(remote).virtualenv()
    key = hashlib.sha256(b"Django>=6.0\n").hexdigest()[:16]
    built = deploy(ScriptedRemote({"venv": Result("built\n", "", 0)})).virtualenv()
    assert built == [f"built venvs/{key}"]
    assert deploy(ScriptedRemote({})).virtualenv() == [f"reused venvs/{key}"]


# ---- the web process's journal ---------------------------------------------------------------
GUNICORN_NO_MODULE = """\
[2026-01-01 12:00:01 +0000] [4120] [INFO] Starting gunicorn 23.0.0
[2026-01-01 12:00:01 +0000] [4120] [INFO] Listening at: unix:/run/shop-production/web-20260101T120000Z-1a2b3c4.sock (4120)
[2026-01-01 12:00:01 +0000] [4120] [INFO] Using worker: sync
[2026-01-01 12:00:01 +0000] [4123] [INFO] Booting worker with pid: 4123
[2026-01-01 12:00:01 +0000] [4123] [ERROR] Exception in worker process
Traceback (most recent call last):
  File "/srv/shop-production/venvs/9f2c/lib/python3.11/site-packages/gunicorn/arbiter.py", line 608, in spawn_worker
    worker.init_process()
  File "/srv/shop-production/venvs/9f2c/lib/python3.11/site-packages/gunicorn/workers/base.py", line 135, in init_process
    self.load_wsgi()
  File "/srv/shop-production/venvs/9f2c/lib/python3.11/site-packages/gunicorn/workers/base.py", line 147, in load_wsgi
    self.wsgi = self.app.wsgi()
                ^^^^^^^^^^^^^^^
  File "/srv/shop-production/venvs/9f2c/lib/python3.11/site-packages/gunicorn/util.py", line 370, in import_app
    mod = importlib.import_module(module)
          ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/usr/lib/python3.11/importlib/__init__.py", line 126, in import_module
    return _bootstrap._gcd_import(name[level:], package, level)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "<frozen importlib._bootstrap>", line 1204, in _gcd_import
  File "<frozen importlib._bootstrap>", line 1176, in _find_and_load
  File "<frozen importlib._bootstrap>", line 1140, in _find_and_load_unlocked
ModuleNotFoundError: No module named 'shop.wsgi'
[2026-01-01 12:00:01 +0000] [4123] [INFO] Worker exiting (pid: 4123)
[2026-01-01 12:00:01 +0000] [4120] [ERROR] Worker (pid:4123) exited with code 3
[2026-01-01 12:00:01 +0000] [4120] [ERROR] Shutting down: Master
[2026-01-01 12:00:01 +0000] [4120] [ERROR] Reason: Worker failed to boot.
shop-production-web@20260101T120000Z-1a2b3c4.service: Main process exited, code=exited, status=3/NOTIMPLEMENTED
shop-production-web@20260101T120000Z-1a2b3c4.service: Failed with result 'exit-code'.
"""  # noqa: E501

GUNICORN_NO_WORKER = """\
Error: class uri 'eventlet' invalid or not found: \n
[Traceback (most recent call last):
  File "/srv/shop-production/venvs/9f2c/lib/python3.11/site-packages/gunicorn/util.py", line 99, in load_class
    return load_entry_point(
           ^^^^^^^^^^^^^^^^^
  File "/srv/shop-production/venvs/9f2c/lib/python3.11/site-packages/gunicorn/util.py", line 54, in load_entry_point
    raise ImportError("Entry point %r not found" % ((group, name),))
ImportError: Entry point ('gunicorn.workers', 'eventlet') not found
]
shop-production-web@20260101T120000Z-1a2b3c4.service: Main process exited, code=exited, status=1/FAILURE
shop-production-web@20260101T120000Z-1a2b3c4.service: Failed with result 'exit-code'.
"""  # noqa: E501

GUNICORN_DJANGO_SETTINGS = """\
[2026-01-01 12:00:01 +0000] [4123] [INFO] Booting worker with pid: 4123
[2026-01-01 12:00:02 +0000] [4123] [ERROR] Exception in worker process
Traceback (most recent call last):
  File "/srv/shop-production/releases/20260101T120000Z-1a2b3c4/shop/wsgi.py", line 5, in <module>
    application = get_wsgi_application()
                  ^^^^^^^^^^^^^^^^^^^^^^
  File "/srv/shop-production/venvs/9f2c/lib/python3.11/site-packages/django/conf/__init__.py", line 201, in __init__
    raise ImproperlyConfigured("The SECRET_KEY setting must not be empty.")
django.core.exceptions.ImproperlyConfigured: The SECRET_KEY setting must not be empty.
[2026-01-01 12:00:02 +0000] [4123] [INFO] Worker exiting (pid: 4123)
[2026-01-01 12:00:02 +0000] [4120] [ERROR] Worker (pid:4123) exited with code 3
[2026-01-01 12:00:02 +0000] [4120] [ERROR] Shutting down: Master
[2026-01-01 12:00:02 +0000] [4120] [ERROR] Reason: Worker failed to boot.
"""  # noqa: E501

UVICORN_NO_MODULE = """\
ERROR:    Error loading ASGI app. Could not import module "shop.asgi".
shop-production-web@20260101T120000Z-1a2b3c4.service: Main process exited, code=exited, status=1/FAILURE
shop-production-web@20260101T120000Z-1a2b3c4.service: Failed with result 'exit-code'.
"""  # noqa: E501

UVICORN_STARTUP_FAILED = """\
INFO:     Started server process [5120]
INFO:     Waiting for application startup.
ERROR:    Traceback (most recent call last):
  File "/srv/shop-production/venvs/9f2c/lib/python3.11/site-packages/starlette/routing.py", line 693, in lifespan
    async with self.lifespan_context(app) as maybe_state:
  File "/srv/shop-production/releases/20260101T120000Z-1a2b3c4/shop/app.py", line 14, in lifespan
    await database.connect()
OSError: Multiple exceptions: [Errno 111] Connect call failed ('127.0.0.1', 5432)

ERROR:    Application startup failed. Exiting.
"""  # noqa: E501

DAPHNE_NO_MODULE = """\
Traceback (most recent call last):
  File "/srv/shop-production/releases/20260101T120000Z-1a2b3c4/.venv/bin/daphne", line 8, in <module>
    sys.exit(CommandLineInterface.entrypoint())
  File "/srv/shop-production/venvs/9f2c/lib/python3.11/site-packages/daphne/cli.py", line 171, in entrypoint
    cls().run(sys.argv[1:])
  File "/srv/shop-production/venvs/9f2c/lib/python3.11/site-packages/daphne/cli.py", line 233, in run
    application = import_by_path(args.application)
  File "/srv/shop-production/venvs/9f2c/lib/python3.11/site-packages/daphne/utils.py", line 17, in import_by_path
    target = importlib.import_module(module_path)
  File "<frozen importlib._bootstrap>", line 1140, in _find_and_load_unlocked
ModuleNotFoundError: No module named 'channels'
shop-production-web@20260101T120000Z-1a2b3c4.service: Main process exited, code=exited, status=1/FAILURE
"""  # noqa: E501

GUNICORN_SOCKET_BUSY = """\
[2026-01-01 12:00:01 +0000] [4120] [INFO] Starting gunicorn 23.0.0
[2026-01-01 12:00:01 +0000] [4120] [ERROR] Connection in use: /run/shop-production/web-x.sock
[2026-01-01 12:00:01 +0000] [4120] [ERROR] Retrying in 1 second.
[2026-01-01 12:00:06 +0000] [4120] [ERROR] Can't connect to /run/shop-production/web-x.sock
"""

SYSTEMD_NO_BINARY = """\
shop-production-web@x.service: Failed to locate executable /srv/shop-production/releases/x/.venv/bin/gunicorn: No such file or directory
shop-production-web@x.service: Failed at step EXEC spawning /srv/shop-production/releases/x/.venv/bin/gunicorn: No such file or directory
shop-production-web@x.service: Main process exited, code=exited, status=203/EXEC
shop-production-web@x.service: Failed with result 'exit-code'.
"""  # noqa: E501

ONLY_GENERIC = """\
[2026-01-01 12:00:01 +0000] [4120] [ERROR] Worker (pid:4123) exited with code 3
[2026-01-01 12:00:01 +0000] [4120] [ERROR] Shutting down: Master
[2026-01-01 12:00:01 +0000] [4120] [ERROR] Reason: Worker failed to boot.
"""

HEALTHY = """\
[2026-01-01 12:00:01 +0000] [4120] [INFO] Starting gunicorn 23.0.0
[2026-01-01 12:00:01 +0000] [4123] [INFO] Booting worker with pid: 4123
127.0.0.1 - - [01/Jan/2026:12:00:03 +0000] "GET /healthz HTTP/1.0" 404 179 "-" "curl/7.88.1"
"""


@pytest.mark.parametrize(("journal", "line"), [
    (GUNICORN_NO_MODULE, "ModuleNotFoundError: No module named 'shop.wsgi'"),
    (GUNICORN_NO_WORKER, "ImportError: Entry point ('gunicorn.workers', 'eventlet') not found"),
    (GUNICORN_DJANGO_SETTINGS, "django.core.exceptions.ImproperlyConfigured: The SECRET_KEY "
                               "setting must not be empty."),
    (UVICORN_NO_MODULE, 'Error loading ASGI app. Could not import module "shop.asgi".'),
    (UVICORN_STARTUP_FAILED, "OSError: Multiple exceptions: [Errno 111] Connect call failed "
                             "('127.0.0.1', 5432)"),
    (DAPHNE_NO_MODULE, "ModuleNotFoundError: No module named 'channels'"),
    (GUNICORN_SOCKET_BUSY, "Can't connect to /run/shop-production/web-x.sock"),
    (SYSTEMD_NO_BINARY, "shop-production-web@x.service: Failed at step EXEC spawning "
                        "/srv/shop-production/releases/x/.venv/bin/gunicorn: No such file or "
                        "directory"),
    (ONLY_GENERIC, "Reason: Worker failed to boot."),
    (HEALTHY, None),
    ("", None),
])
def test_last_error_line(journal, line):
    assert applog.last_error_line(journal) == line


def applied(remote, plan):
    return applier.apply(Context(ENV, ENV.hosts[0], remote, Reporter(quiet=True)), plan)


def test_failed_socket_health_check_names_the_apps_last_error_masked_on_one_line():
    journal = GUNICORN_DJANGO_SETTINGS.replace("must not be empty.", "is 'pa55word' (bad)")
    remote = ScriptedRemote({
        "health": Result("no 200 after 20 attempts in 31.2s; last status 000:\n", "", 1),
        "journalctl": Result(journal, "", 0)}, secrets=["pa55word"])
    with pytest.raises(HealthCheckError) as caught:
        applied(remote, switch.check_socket(ENV, RID))
    unit = f"shop-production-web@{RID}.service"
    assert str(caught.value) == (
        f"health check of release {RID} on its socket failed: no 200 after 20 attempts in "
        f"31.2s; last status 000; last error in {unit}: django.core.exceptions."
        f"ImproperlyConfigured: The SECRET_KEY setting is '***' (bad)")
    assert remote.lines[-1] == (f"timeout --kill-after=10 30 journalctl -u {unit} -n 50 -o cat "
                                "--no-pager")


def test_failed_health_check_body_is_masked_and_a_silent_journal_adds_nothing():
    remote = ScriptedRemote({
        "health": Result("no 200 after 3 attempts in 2.0s; last status 500: key=pa55word\r\n",
                         "", 1),
        "journalctl": Result(HEALTHY, "", 0)}, secrets=["pa55word"])
    with pytest.raises(HealthCheckError) as caught:
        applied(remote, switch.check_socket(ENV, RID))
    assert str(caught.value) == (f"health check of release {RID} on its socket failed: no 200 "
                                 f"after 3 attempts in 2.0s; last status 500: key=***")


def test_public_health_check_reads_no_journal():
    remote = ScriptedRemote({"health": Result("no 200 after 3 attempts; last status 502:\n",
                                              "", 1)})
    with pytest.raises(HealthCheckError, match=r"through nginx failed: no 200 after 3 "
                                               r"attempts; last status 502$"):
        applied(remote, switch.check_public(ENV, tls=False))
    assert not any("journalctl" in line for line in remote.lines)


# ---- timeouts ----------------------------------------------------------------------------------
def test_a_command_over_its_timeout_is_stopped_on_the_server_and_raises_even_unchecked():
    remote = ScriptedRemote({"pg_dump": Result("", "", TIMED_OUT)})
    assert remote.command(["pg_dump", "shop"], timeout=60) == \
        "timeout --kill-after=10 60 pg_dump shop"
    assert remote.command(["pg_dump", "shop"]) == "pg_dump shop"
    with pytest.raises(RemoteError, match=r"^192\.0\.2\.1: `pg_dump shop` timed out after 60s "
                                          r"and was stopped$"):
        remote.run(["pg_dump", "shop"], check=False, timeout=60)
    assert remote.run(["pg_dump", "shop"], check=False).exited == TIMED_OUT  # no timeout: ours
    release = appcmd.release_command_argv(ENV, RID, ["python", "manage.py", "migrate"], 1800)
    assert "--property=RuntimeMaxSec=1800" in release  # systemd stops the unit itself
    remote = ScriptedRemote({"server-op": Result("", "", TIMED_OUT)})
    with pytest.raises(RemoteError, match=rf"^192\.0\.2\.1: `/srv/shop-production/releases/"
                                          rf"{RID}/\.venv/bin/python manage\.py migrate` timed "
                                          rf"out after 1800s and was stopped$"):
        remote.run(release, timeout=1800)
