"""The bundled Flask (examples/flask) and Channels (examples/channels) apps, each in a venv of its
own pinned requirements (/var/cache/vpskit/example-venv-<name>; see tests/helpers/example_venv).

Local smoke tests: SQLite stands in for PostgreSQL; Redis is a private redis-server on a Unix
socket where the binary exists (those tests skip elsewhere). The servers of the Procfiles
(gunicorn with gevent workers, daphne) are started on Unix sockets too.
"""

from __future__ import annotations

import http.client
import json
import os
import shlex
import shutil
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.example_venv import CACHE, example_venv, tail

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SECRET = "test-only-0c6f9a5e2b7d4f1a8e3c9b0d5a7f2e4c6b8d0a1f3e5c7b9d-long-enough"
FERNET_KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="  # base64 of 32 bytes
ACCEPTED_DEPLOY_WARNINGS = {"security.W004", "security.W008"}  # HSTS and redirect: Nginx's job
UNREACHABLE_REDIS = "redis://127.0.0.1:9/0"  # discard port: nothing listens there


def _venv(name: str) -> Path:
    return example_venv(EXAMPLES / name / "requirements.txt", CACHE / f"example-venv-{name}")


def _copy(name: str, target: Path) -> Path:
    """A copy of the example as a deploy gets it (no local db, media or bytecode)."""
    shutil.copytree(EXAMPLES / name, target, ignore=shutil.ignore_patterns(
        "__pycache__", "*.pyc", "db.sqlite3", "media", "static-collected"))
    return target


@pytest.fixture(scope="module")
def flask_python() -> Path:
    return _venv("flask")


@pytest.fixture(scope="module")
def channels_python() -> Path:
    return _venv("channels")


@pytest.fixture
def flask_app(tmp_path) -> Path:
    return _copy("flask", tmp_path / "flask")


@pytest.fixture(scope="module")
def channels_app(tmp_path_factory) -> Path:
    return _copy("channels", tmp_path_factory.mktemp("example") / "channels")


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory) -> Iterator[str]:
    """A private redis-server listening only on a Unix socket."""
    binary = shutil.which("redis-server")
    if not binary:
        pytest.skip("redis-server is not installed")
    sock = tmp_path_factory.mktemp("redis") / "redis.sock"
    server = subprocess.Popen([binary, "--port", "0", "--unixsocket", str(sock), "--save", "",
                               "--appendonly", "no"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.skip("redis-server did not start")
            time.sleep(0.05)
        yield f"unix://{sock}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def run(python: Path, app: Path, argv: list[str], env: dict[str, str], check: bool = True,
        timeout: float = 60) -> subprocess.CompletedProcess:
    """Run the venv's python with ``argv`` in ``app``, in a clean environment plus ``env``."""
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(app.parent),
                "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", **env}
    done = subprocess.run([str(python), *argv], cwd=app, env=full_env, capture_output=True,
                          text=True, timeout=timeout)
    if check and done.returncode != 0:
        pytest.fail(f"{' '.join(argv)[:80]} exited {done.returncode}:\n{tail(done.stdout)}\n"
                    f"{tail(done.stderr, 30)}")
    return done


def script(python: Path, app: Path, code: str, env: dict[str, str]) -> object:
    """Run ``code`` (which prints one JSON line last) and return what it printed."""
    done = run(python, app, ["-c", code], env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def http_get(sock: Path, path: str, host: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(host, timeout=10)
    conn.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.sock.settimeout(10)
    try:
        conn.sock.connect(str(sock))
        conn.request("GET", path, headers={"Host": host})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def serve(argv: list[str], app: Path, env: dict[str, str], sock: Path, host: str,
          log: Path) -> subprocess.Popen:
    """Start a web server and wait until it answers ``/`` on ``sock``."""
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(app.parent),
                "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", **env}
    with open(log, "wb") as out:
        server = subprocess.Popen(argv, cwd=app, env=full_env, stdout=out,
                                  stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        if server.poll() is not None:
            pytest.fail(f"{argv[0]} exited {server.returncode}:\n{tail(log.read_text(), 30)}")
        try:
            if sock.exists() and http_get(sock, "/", host)[0] == 200:
                return server
        except OSError:
            pass
        if time.monotonic() > deadline:
            server.kill()
            pytest.fail(f"{argv[0]} did not answer within 30 s:\n{tail(log.read_text(), 30)}")
        time.sleep(0.1)


def stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def procfile(app: Path, name: str) -> list[str]:
    line = next(line for line in (app / "Procfile").read_text().splitlines()
                if line.startswith(f"{name}:"))
    return shlex.split(line.partition(":")[2])


# ---- flask ----------------------------------------------------------------------------------
def flask_env(app: Path, **extra: str) -> dict[str, str]:
    return {"SECRET_KEY": SECRET, "FERNET_KEY": FERNET_KEY, "ALLOWED_HOSTS": "localhost",
            "DATABASE_URL": f"sqlite:///{app.parent / 'depot.sqlite3'}",
            "MEDIA_ROOT": str(app.parent / "media"), **extra}


def test_flask_release_command_migrates_once(flask_python, flask_app):
    assert procfile(flask_app, "release") == ["python", "migrate.py"]
    env = flask_env(flask_app)
    first = run(flask_python, flask_app, ["migrate.py"], env).stdout
    assert "applied 0001_items.sql" in first and "applied 0002_items_created_index.sql" in first
    again = run(flask_python, flask_app, ["migrate.py"], env).stdout
    assert again.strip() == "migrate: nothing to apply (2 applied before)"
    db = sqlite3.connect(flask_app.parent / "depot.sqlite3")
    names = [row[0] for row in db.execute("SELECT name FROM schema_migrations ORDER BY name")]
    assert names == ["0001_items.sql", "0002_items_created_index.sql"]


def test_flask_failing_migration_is_rolled_back_whole(flask_python, flask_app):
    (flask_app / "migrations" / "0003_broken.sql").write_text(
        "CREATE TABLE half (x INTEGER);\nINSERT INTO half VALUES (1);\nSELECT nope FROM half;\n")
    done = run(flask_python, flask_app, ["migrate.py"], flask_env(flask_app), check=False)
    assert done.returncode == 1
    assert "0003_broken.sql failed and was rolled back" in done.stderr
    assert "no such column: nope" in done.stderr
    db = sqlite3.connect(flask_app.parent / "depot.sqlite3")
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "half" not in tables and "items" in tables  # earlier files stay applied
    assert db.execute("SELECT count(*) FROM schema_migrations").fetchone() == (2,)


EXERCISE_FLASK = """
import io, json, os, stat
from pathlib import Path
from app import app
c = app.test_client()
out = {"index": c.get("/").text}
health = c.get("/health/")
out["health"] = [health.status_code, health.json, health.headers["Cache-Control"]]
created = c.post("/items/", data={"name": "Widget", "image": (io.BytesIO(b"not a png"), "d t.png")})
out["created"] = [created.status_code, created.json]
stored = Path(os.environ["MEDIA_ROOT"]) / created.json["image"].removeprefix("/media/")
out["stored"] = [stored.read_text(), oct(stat.S_IMODE(stored.stat().st_mode))]
out["listed"] = [item["name"] for item in c.get("/items/").json["items"]]
out["no_name"] = c.post("/items/", data={}).status_code
made = c.get("/secret-roundtrip/").json
back = c.get("/secret-roundtrip/", query_string={"token": made["token"]}).json
out["secret"] = [made["status"], back == {"status": "ok", "plaintext": made["plaintext"]}]
out["forged"] = c.get("/secret-roundtrip/", query_string={"token": "gAAAA-forged"}).status_code
out["other_host"] = c.get("/", headers={"Host": "evil.example.net"}).status_code
print(json.dumps(out))
"""


def test_flask_views_answer_and_uploads_land_in_media_root(flask_python, flask_app):
    (flask_app / "VERSION").write_text("9.9.9\n")
    env = flask_env(flask_app, RELEASE="r42")
    run(flask_python, flask_app, ["migrate.py"], env)
    got = script(flask_python, flask_app, EXERCISE_FLASK, env)
    assert got["index"] == "depot VERSION=9.9.9 release=r42\n"
    status, body, cache_control = got["health"]
    assert status == 200 and "no-store" in cache_control
    assert body == {"status": "ok", "database": "ok", "redis": "off", "version": "9.9.9",
                    "release": "r42"}
    status, item = got["created"]
    assert status == 201 and item["name"] == "Widget"
    assert item["image"].startswith("/media/items/") and item["image"].endswith("-d_t.png")
    assert got["stored"] == ["not a png", "0o640"]
    assert got["listed"] == ["Widget"]
    assert got["no_name"] == 400
    assert got["secret"] == ["ok", True]
    assert got["forged"] == 400
    assert got["other_host"] == 400  # ALLOWED_HOSTS -> Flask's TRUSTED_HOSTS


HEALTH_FLASK = """
import json
from app import app
r = app.test_client().get("/health/")
print(json.dumps([r.status_code, r.json]))
"""


def test_flask_health_names_the_failing_parts(flask_python, flask_app):
    env = flask_env(flask_app, DATABASE_URL=f"sqlite:///{flask_app / 'missing-dir' / 'db'}",
                    REDIS_URL=UNREACHABLE_REDIS)
    status, body = script(flask_python, flask_app, HEALTH_FLASK, env)
    assert status == 503
    assert body["status"] == "error" and body["failing"] == ["database", "redis"]
    assert body["database"].startswith("error: OperationalError")
    assert body["redis"].startswith("error: ConnectionError")


def test_flask_health_checks_a_real_redis(flask_python, flask_app, redis_url):
    env = flask_env(flask_app, REDIS_URL=redis_url)
    status, body = script(flask_python, flask_app, HEALTH_FLASK, env)
    assert (status, body["database"], body["redis"]) == (200, "ok", "ok")


@pytest.mark.parametrize(("missing", "message"), [
    ({"SECRET_KEY": ""}, "SECRET_KEY is not set"),
    ({"FERNET_KEY": ""}, "FERNET_KEY is not set"),
    ({"FERNET_KEY": "too-short"}, "FERNET_KEY: each key must be 32 url-safe base64"),
])
def test_flask_production_refuses_to_start_without_its_secrets(flask_python, flask_app, missing,
                                                                message):
    done = run(flask_python, flask_app, ["-c", "import app"],
               {**flask_env(flask_app), **missing}, check=False)
    assert done.returncode != 0
    assert message in done.stderr
    assert "too-short" not in done.stderr  # the key's value is never echoed


def test_flask_procfile_web_runs_gunicorn_with_gevent_workers(flask_python, flask_app, redis_url):
    argv = procfile(flask_app, "web")
    assert argv == ["gunicorn", "app:app", "--worker-class", "gevent", "--workers", "2",
                    "--timeout", "300", "--graceful-timeout", "30"]
    env = flask_env(flask_app, REDIS_URL=redis_url, RELEASE="r7")
    run(flask_python, flask_app, ["migrate.py"], env)
    sock = flask_app.parent / "web.sock"
    log = flask_app.parent / "gunicorn.log"
    server = serve([str(flask_python.parent / argv[0]), *argv[1:], f"--bind=unix:{sock}"],
                   flask_app, env, sock, "localhost", log)
    try:
        status, body = http_get(sock, "/health/", "localhost")
    finally:
        stop(server)
    assert status == 200, body
    assert json.loads(body)["redis"] == "ok" and json.loads(body)["release"] == "r7"
    assert "Using worker: gevent" in log.read_text()


# ---- channels -------------------------------------------------------------------------------
def channels_env(app: Path, **extra: str) -> dict[str, str]:
    return {"SECRET_KEY": SECRET, "ALLOWED_HOSTS": "chat.example.com",
            "DATABASE_URL": f"sqlite:///{app.parent / 'chat.sqlite3'}", **extra}


def test_channels_system_and_deploy_checks_pass(channels_python, channels_app):
    env = channels_env(channels_app)
    assert "no issues" in run(channels_python, channels_app, ["manage.py", "check"], env).stdout
    done = run(channels_python, channels_app,
               ["manage.py", "check", "--deploy", "--fail-level", "ERROR"], env)
    ids = {word.strip("():") for word in (done.stdout + done.stderr).split()
           if word.startswith("(security.")}
    assert ids <= ACCEPTED_DEPLOY_WARNINGS, done.stderr


def test_channels_release_command_runs(channels_python, channels_app):
    assert procfile(channels_app, "release") == ["python", "manage.py", "migrate"]
    run(channels_python, channels_app, ["manage.py", "migrate"], channels_env(channels_app))


ECHO = """
import asyncio, json
from channels.testing import WebsocketCommunicator
from django.conf import settings
from chat.asgi import application

def client(origin):
    return WebsocketCommunicator(application, "/ws/echo/", headers=[(b"origin", origin)])

async def main():
    a, b = client(b"https://chat.example.com"), client(b"https://chat.example.com")
    out = {"layer": settings.CHANNEL_LAYERS["default"]["BACKEND"]}
    out["connected"] = [(await a.connect())[0], (await b.connect())[0]]
    await a.send_to(text_data="hello")
    out["text"] = [await a.receive_from(timeout=5), await b.receive_from(timeout=5)]
    await b.send_to(bytes_data=b"\\x00\\x01")
    out["bytes"] = [(await a.receive_output(timeout=5)).get("bytes") == b"\\x00\\x01"]
    await a.disconnect()
    await b.disconnect()
    foreign = client(b"https://evil.example.net")
    out["foreign_origin"] = (await foreign.connect())[0]
    await foreign.disconnect()  # ends its consumer, as the server would
    print(json.dumps(out))

asyncio.run(main())
"""


def test_channels_websocket_echo_through_the_in_memory_layer(channels_python, channels_app):
    got = script(channels_python, channels_app, ECHO,
                 {**channels_env(channels_app), "DJANGO_SETTINGS_MODULE": "chat.settings"})
    assert got == {"layer": "channels.layers.InMemoryChannelLayer", "connected": [True, True],
                   "text": ["hello", "hello"], "bytes": [True], "foreign_origin": False}


def test_channels_websocket_echo_through_redis(channels_python, channels_app, redis_url):
    env = channels_env(channels_app, REDIS_URL=redis_url, DJANGO_SETTINGS_MODULE="chat.settings")
    got = script(channels_python, channels_app, ECHO, env)
    assert got["layer"] == "channels_redis.core.RedisChannelLayer"
    assert got["text"] == ["hello", "hello"] and got["bytes"] == [True]
    assert got["foreign_origin"] is False


HEALTH_CHANNELS = """
import asyncio, json
from django.test import AsyncClient
r = asyncio.run(AsyncClient().get("/health/"))
print(json.dumps([r.status_code, r.json()]))
"""


def test_channels_health_names_the_failing_parts(channels_python, channels_app, tmp_path):
    env = channels_env(channels_app, REDIS_URL=UNREACHABLE_REDIS, ALLOWED_HOSTS="testserver",
                       DATABASE_URL=f"sqlite:///{tmp_path / 'missing-dir' / 'db.sqlite3'}")
    status, body = script(channels_python, channels_app,
                          "import django; django.setup()\n" + HEALTH_CHANNELS,
                          {**env, "DJANGO_SETTINGS_MODULE": "chat.settings"})
    assert status == 503
    assert body["failing"] == ["database", "cache", "channel_layer"]
    assert body["database"].startswith("error: OperationalError")


def test_channels_procfile_web_runs_daphne(channels_python, channels_app, redis_url):
    argv = procfile(channels_app, "web")
    assert argv[0] == "daphne" and argv[-1] == "chat.asgi:application"
    sock = channels_app.parent / "daphne.sock"
    argv = [str(channels_python.parent / "daphne"), "-u", str(sock), "--proxy-headers",
            argv[-1]]
    env = channels_env(channels_app, REDIS_URL=redis_url, RELEASE="r9")
    server = serve(argv, channels_app, env, sock, "chat.example.com",
                   channels_app.parent / "daphne.log")
    try:
        index = http_get(sock, "/", "chat.example.com")
        status, body = http_get(sock, "/health/", "chat.example.com")
    finally:
        stop(server)
    assert index == (200, b"chat VERSION=1.0.0 release=r9\n")
    assert status == 200, body
    assert json.loads(body) == {"status": "ok", "database": "ok", "cache": "ok",
                                "channel_layer": "ok", "version": "1.0.0", "release": "r9"}
