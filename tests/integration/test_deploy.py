"""`fab deploy` / `fab rollback` on the real VPS: health-gated, zero-downtime, never loses the
serving release. Tests run in file order and build on each other's commits."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from urllib.parse import urlsplit

import pytest

from harness.devtasks.load import Load
from harness.devtasks.sandbox import ROOT
from tests.helpers.site import FAB, SECRET_KEY, Site, step_changes
from vpskit import envfile, pgadmin, render
from vpskit.deploy.lock import deploy_lock

pytestmark = pytest.mark.vps

VIEWS = "catalog/views.py"
HEALTHY = '    result = {"status": "ok"}\n    failing = []\n'
FAILING_MIGRATION = '''from django.db import migrations, models


def boom(apps, schema_editor):
    raise RuntimeError("this migration fails on purpose")


class Migration(migrations.Migration):
    dependencies = [("catalog", "0001_initial")]
    operations = [
        migrations.AddField("item", "price", models.IntegerField(default=0)),
        migrations.RunPython(boom),
    ]
'''


def served_version(site: Site) -> str:
    status, body, _ = site.get("/")
    assert status == 200, body
    return re.search(r"VERSION=(\S+)", body).group(1)


def views_with(replacement: str) -> dict[str, str]:
    """The example's pristine views with the health check's start replaced."""
    text = (ROOT / "examples" / "django" / VIEWS).read_text()
    assert HEALTHY in text
    return {VIEWS: text.replace(HEALTHY, replacement)}


def test_first_deploy_serves_the_app_through_nginx_on_a_unix_socket(site, deployed):
    out = deployed["first"].stdout
    assert re.search(r"deployed shop-production \S+ \(sha [0-9a-f]{12}\) in [\d.]+s: "
                     rf"https://{re.escape(site.domain)}/", out), out
    release = site.live_release()
    assert served_version(site) == "1.0.0"
    upstream = site.sh("cat /etc/nginx/vpskit/shop-production/upstream.conf")
    assert f"server unix:/run/shop-production/web-{release}.sock" in upstream
    status, body, _ = site.get("/health/")
    assert status == 200 and json.loads(body)["database"] == "ok"
    status, _, headers = site.get("/static/catalog/style.css")
    assert status == 200 and "max-age" in headers["Cache-Control"]
    site.sh(f"systemd-analyze verify shop-production-web@{release}.service")


def test_redeploy_under_load_has_zero_failed_requests(site, deployed, vps):
    site.commit("2.0.0", {"VERSION": "2.0.0\n"})
    with Load(vps.address, site.domain, str(site.ca_file), clients=20) as load:
        time.sleep(1)
        site.fab("deploy")
        time.sleep(1)
    result = load.result
    assert result.failures == 0, result.summary()
    assert result.requests > 100, result.summary()
    assert served_version(site) == "2.0.0"


def test_failing_migration_aborts_and_old_release_keeps_serving(site, deployed):
    before = site.live_release()
    backups_before = set(site.sh("ls /var/backups/shop-production").split())
    site.commit("bad migration", {"VERSION": "3.0.0\n",
                                  "catalog/migrations/0002_boom.py": FAILING_MIGRATION})
    result = site.fab("deploy", check=False)
    assert result.returncode == 1
    error = result.stderr.strip()
    assert len(error.splitlines()) == 1 and "release: " in error and "full output:" in error
    assert "this migration fails on purpose" in site.sh(
        "cat " + re.search(r"full output: (\S+)\)", error).group(1))
    assert f"serving: {before}" in error
    assert site.live_release() == before and served_version(site) == "2.0.0"
    remote = site.remote()
    try:
        with pgadmin.admin_connection(remote, "shop_production") as conn:
            columns = {r[0] for r in conn.execute(
                "select column_name from information_schema.columns "
                "where table_name = 'catalog_item'")}
            applied = {r[0] for r in conn.execute(
                "select name from django_migrations where app = 'catalog'")}
    finally:
        remote.conn.close()
    assert "price" not in columns and applied == {"0001_initial"}
    new_backups = set(site.sh("ls /var/backups/shop-production").split()) - backups_before
    assert any("predeploy" in name for name in new_backups), new_backups
    site.commit("drop bad migration", {"catalog/migrations/0002_boom.py": ""})
    (site.app / "catalog/migrations/0002_boom.py").unlink()
    subprocess.run(["git", "commit", "-qam", "rm"], cwd=site.app, check=True)


ADD_COLUMN_MIGRATION = '''from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("catalog", "0001_initial")]
    operations = [migrations.AddField("item", "stock", models.IntegerField(default=0))]
'''


def test_migration_waiting_for_a_lock_gives_up_after_the_lock_timeout(site, deployed):
    """A long transaction holding a table lock: ``migrate`` fails after postgres.lock_timeout
    (5 s) instead of queueing every app query behind its ALTER TABLE; the old release serves."""
    before = site.live_release()
    site.sh("setsid runuser -u postgres -- psql -d shop_production -c 'BEGIN; LOCK TABLE "
            "catalog_item IN ACCESS SHARE MODE; SELECT pg_sleep(120)' >/dev/null 2>&1 </dev/null &"
            " sleep 1")
    try:
        site.commit("add a column", {"catalog/migrations/0002_stock.py": ADD_COLUMN_MIGRATION})
        result = site.fab("deploy", check=False)
    finally:
        site.sh("runuser -u postgres -- psql -qAt -c \"SELECT pg_terminate_backend(pid) FROM "
                "pg_stat_activity WHERE query LIKE '%pg_sleep(120)%' AND pid <> pg_backend_pid()\"")
    assert result.returncode == 1
    error = result.stderr.strip()
    assert len(error.splitlines()) == 1, error
    assert "waited over 5 s for a table lock" in error and "postgres.lock_timeout" in error
    assert site.live_release() == before and served_version(site) == "2.0.0"
    (site.app / "catalog/migrations/0002_stock.py").unlink()
    subprocess.run(["git", "commit", "-qam", "rm"], cwd=site.app, check=True)


def test_release_unhealthy_on_its_socket_never_gets_traffic(site, deployed):
    before = site.live_release()
    site.commit("broken health", views_with(
        '    result = {"status": "ok"}\n    failing = ["broken on purpose"]\n'))
    result = site.fab("deploy", check=False)
    assert result.returncode == 1
    assert "health: health check of release" in result.stderr
    assert "last status 503" in result.stderr and "marked failed" in result.stderr
    assert site.live_release() == before and served_version(site) == "2.0.0"
    assert "failed" in site.release_states().values()


def test_release_failing_behind_nginx_is_rolled_back_automatically(site, deployed):
    before = site.live_release()
    site.commit("broken behind the proxy", views_with(
        '    result = {"status": "ok"}\n'
              '    failing = ["proxy"] if request.META.get("HTTP_X_REAL_IP") else []\n'))
    result = site.fab("deploy", check=False)
    assert result.returncode == 1
    assert "public: health check of https://" in result.stderr
    assert f"rolled back to {before}" in result.stderr
    assert site.live_release() == before and served_version(site) == "2.0.0"
    assert "bad" in site.release_states().values()
    upstream = site.sh("cat /etc/nginx/vpskit/shop-production/upstream.conf")
    assert f"web-{before}.sock" in upstream


def test_rollback_returns_to_the_previous_good_release(site, deployed):
    before = served_version(site)  # the previous good release once 4.0.0 is live
    site.commit("healthy again", {**views_with(HEALTHY), "VERSION": "4.0.0\n"})
    site.fab("deploy")
    assert served_version(site) == "4.0.0"
    rolled_back = site.live_release()
    planned = step_changes(site.fab("rollback", "--dry-run").stdout)
    assert served_version(site) == "4.0.0" and site.live_release() == rolled_back
    result = site.fab("rollback")
    assert "rolled back shop-production" in result.stdout
    assert served_version(site) == before
    assert step_changes(result.stdout) == planned, (planned, result.stdout)
    assert planned["stop old"] == f"stopping {rolled_back}, marked bad", planned
    assert site.release_states()[rolled_back] == "bad"
    site.fab("rollback", "--to", rolled_back)  # an explicit target may be a bad one
    assert served_version(site) == "4.0.0" and site.release_states()[rolled_back] == "ok"
    site.fab("rollback")
    assert served_version(site) == before


def test_retention_keeps_exactly_the_configured_number_of_releases(site, deployed):
    site.commit("5.0.0", {"VERSION": "5.0.0\n"})
    site.fab("deploy")
    releases = site.sh("ls /srv/shop-production/releases").split()
    assert len(releases) == 3, releases
    assert site.live_release() in releases
    venvs = site.sh("ls /srv/shop-production/venvs").split()
    assert len(venvs) >= 1


def test_a_second_deploy_is_refused_while_one_holds_the_lock(site, deployed):
    remote = site.remote()
    try:
        with deploy_lock(remote, "shop-production", "deploy by a colleague"):
            result = site.fab("deploy", check=False)
    finally:
        remote.conn.close()
    assert result.returncode == 1
    assert re.search(r"shop-production is locked by \S+@\S+ \(pid \d+, deploy by a colleague\) "
                     r"since 20\d\d-", result.stderr), result.stderr


def test_a_killed_deploy_does_not_block_the_next_one(site, deployed):
    site.commit("6.0.0", {"VERSION": "6.0.0\n"})
    argv = [str(FAB), "deploy", "--env", "production"]
    proc = subprocess.Popen(argv, cwd=site.dir, stdout=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    for line in proc.stdout:
        if line.strip().startswith("upload"):
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    result = site.fab("deploy")
    assert "deployed shop-production" in result.stdout
    assert served_version(site) == "6.0.0"


def test_operator_tasks_status_logs_env_manage(site, deployed):
    release, version = site.live_release(), served_version(site)
    status = site.fab("status").stdout
    assert release in status and re.search(r"shop-production-web@\S+\s+active", status)
    assert "MiB free on /" in status
    logs = site.fab("logs", "--lines", "50").stdout
    assert "gunicorn" in logs.lower() or "GET /health/" in logs
    listing = site.fab("env").stdout
    assert "SECRET_KEY=***" in listing and "DATABASE_URL=***" in listing
    migrations = site.fab("manage", "--", "showmigrations", "catalog").stdout
    assert "[X] 0001_initial" in migrations
    assert served_version(site) == version and site.live_release() == release


def test_env_change_restarts_gracefully_under_load_and_a_bad_one_is_undone(site, deployed, vps):
    before, version = site.live_release(), served_version(site)
    with Load(vps.address, site.domain, str(site.ca_file), clients=20) as load:
        time.sleep(1)
        out = site.fab("env", "--set", "FEATURE_FLAG=on").stdout
        time.sleep(1)
    assert load.result.failures == 0 and load.result.requests > 50, load.result.summary()
    restarted = site.live_release()
    assert restarted != before and f"changed FEATURE_FLAG; app restarted as {restarted}" in out
    assert restarted.rsplit("-", 1)[1] == before.rsplit("-", 1)[1]  # the same code
    assert served_version(site) == version
    values = envfile.parse(site.sh("cat /srv/shop-production/shared/.env"))
    assert values["FEATURE_FLAG"] == "on" and values["SECRET_KEY"] == SECRET_KEY
    assert f"{restarted}  sha" in site.fab("releases").stdout.split("(env: FEATURE_FLAG)")[0]
    env_file = site.sh("cat /srv/shop-production/shared/.env")
    bad = site.fab("env", "--set", "SECRET_KEY=", check=False)  # Django refuses to start
    assert bad.returncode == 1 and "SECRET_KEY is not set" in bad.stderr, bad.stderr
    assert f"{restarted} serves on" in bad.stderr and ".env is as it was" in bad.stderr
    assert site.sh("cat /srv/shop-production/shared/.env") == env_file
    assert site.live_release() == restarted and served_version(site) == version
    assert site.release_states()[re.search(r"; (\S+) marked failed", bad.stderr)[1]] == "failed"
    failed = "systemctl list-units --failed --plain --no-legend 'shop-production-*'"
    assert site.sh(failed).strip() == ""  # nothing for the watchdog to report
    site.fab("env", "--unset", "FEATURE_FLAG")
    assert "FEATURE_FLAG" not in site.sh("cat /srv/shop-production/shared/.env")


def test_an_app_needing_a_newer_python_gets_a_clear_error(site, deployed):
    before = site.live_release()
    site.commit("needs 3.12", {"pyproject.toml": '[project]\nname = "shop"\n'
                                                 'requires-python = ">=3.12"\n'})
    result = site.fab("deploy", check=False)
    assert result.returncode == 1
    assert "needs Python >= 3.12 (pyproject.toml requires-python) but the server has 3.11" \
        in result.stderr
    assert site.live_release() == before
    (site.app / "pyproject.toml").unlink()
    subprocess.run(["git", "commit", "-qam", "back to 3.11"], cwd=site.app, check=True)


def test_a_job_queued_before_a_deploy_completes_after_it(site, deployed):
    unit = "shop-production-worker@1.service"
    worker_before = site.sh(f"systemctl show -p MainPID --value {unit}").strip()
    assert worker_before != "0"
    site.fab("manage", "--", "shell", "-c", "from catalog.tasks import create_item_later; "
             "create_item_later.delay('queued-before-deploy', 6)")
    site.commit("7.0.0", {"VERSION": "7.0.0\n"})
    out = site.fab("deploy").stdout
    assert re.search(r"^  processes\s+changed .*worker x1", out, re.M), out
    deadline = time.monotonic() + 60
    while "queued-before-deploy" not in site.get("/items/")[1]:
        assert time.monotonic() < deadline, "the job never completed"
        time.sleep(1)
    # the worker restarts in the background: the old one finishes its job first
    while site.sh(f"systemctl show -p MainPID --value {unit}").strip() in ("0", worker_before):
        assert time.monotonic() < deadline, "the worker never restarted"
        time.sleep(1)
    journal = site.sh(f"journalctl -u {unit} --no-pager -o cat")
    assert "create_item_later" in journal and "succeeded" in journal


def test_staging_shares_the_vps_without_touching_production(site, deployed, vps):
    production_files = ("/srv/shop-production/shared/.env /etc/nginx/sites-enabled/shop-"
                        "production.conf /etc/nginx/vpskit/shop-production/upstream.conf")
    before = (site.live_release(), site.get("/")[1], site.sh(f"sha256sum {production_files}"))
    staging = vps.domains[2]
    site.fab("provision", env="staging")
    site.fab("deploy", env="staging")
    status, body, _ = site.get("/", domain=staging)
    assert status == 200 and "VERSION=" in body
    assert site.sh("readlink /srv/shop-staging/current").startswith("releases/")
    site.commit("broken for staging", views_with(
        '    result = {"status": "ok"}\n    failing = ["broken on purpose"]\n'))
    assert site.fab("deploy", env="staging", check=False).returncode == 1
    site.commit("fixed", views_with(HEALTHY))
    site.fab("deploy", env="staging")
    site.fab("rollback", env="staging")  # rolling back, backing up, restoring staging...
    site.fab("backup", env="staging")
    site.fab("restore", "--yes", env="staging")
    after = (site.live_release(), site.get("/")[1], site.sh(f"sha256sum {production_files}"))
    assert after == before
    assert site.get("/", domain=staging)[0] == 200
    databases = site.sh("runuser -u postgres -- psql -Atl | cut -d'|' -f1")
    assert {"shop_production", "shop_staging"} <= set(databases.split())
    redis = {e: urlsplit(envfile.parse(site.sh(f"cat /srv/shop-{e}/shared/.env"))["REDIS_URL"])
             for e in ("production", "staging")}
    assert redis["production"].port != redis["staging"].port, redis  # an instance each

    def cli(env: str, on: str) -> str:  # env's password on ``on``'s instance; never in argv
        return f"REDISCLI_AUTH='{redis[env].password}' redis-cli -p {redis[on].port}"
    assert site.sh(f"{cli('production', 'production')} set vpskit:probe prod; "
                   f"{cli('staging', 'staging')} get vpskit:probe; "
                   f"{cli('staging', 'production')} get vpskit:probe 2>/dev/null; "
                   f"{cli('production', 'production')} del vpskit:probe").split() == [
        "OK", "NOAUTH", "Authentication", "required.", "1"]  # staging sees nothing of it


def test_removing_staging_leaves_production_byte_for_byte(site, deployed, vps):
    production_files = ("/srv/shop-production/shared/.env /etc/nginx/sites-enabled/shop-"
                        "production.conf /etc/nginx/vpskit/shop-production/upstream.conf "
                        "/etc/letsencrypt/live/shop-production/fullchain.pem")
    state = f"sha256sum {production_files}; ufw status verbose"  # production needs every rule
    site.fab("provision", env="staging")  # live, as the test before leaves it (or run alone)
    site.fab("deploy", env="staging")
    before = (site.live_release(), site.get("/")[1], site.sh(state))
    dry = site.fab("remove", "--dry-run", env="staging").stdout
    assert site.sh("ls -d /srv/shop-staging").strip() == "/srv/shop-staging"  # nothing went
    out = site.fab("remove", "--yes", env="staging").stdout
    said = re.findall(r"^  would remove (.*)$", dry, re.M)
    done = re.findall(r"^  removed (.*)$", out, re.M)
    assert "database shop_staging (dumped first), role shop_staging" in said, dry
    assert [line for line in said if not line.startswith("database ")] == [
        line for line in done if not line.startswith(("database ", "role "))], (said, done)
    for item in ("/srv/shop-staging", "/etc/nginx/sites-enabled/shop-staging.conf",
                 "certificate shop-staging", "user shop-staging", "database shop_staging",
                 "role shop_staging", "redis-server@shop-staging", "unit shop-staging-web@"):
        assert f"removed {item}" in out, out
    assert (site.live_release(), site.get("/")[1], site.sh(state)) == before
    left = site.sh("ls -d /srv/shop-staging /etc/letsencrypt/live/shop-staging 2>/dev/null; "
                   "systemctl list-units --all --plain --no-legend 'shop-staging-*'; "
                   "find /etc/systemd/system -name 'shop-staging-*'; id shop-staging 2>/dev/null;"
                   " getent group shop-staging;"
                   " ls /etc/vpskit/redis", check=False)
    assert left.split() == ["shop-production"], left
    assert site.sh("ls /etc/vpskit/firewall").split() == ["shop-production"]
    databases = site.sh("runuser -u postgres -- psql -Atl | cut -d'|' -f1").split()
    assert "shop_staging" not in databases and "shop_production" in databases
    assert "-preremove.dump" in site.sh("ls /var/backups/shop-staging")  # nothing is lost
    again = site.fab("remove", "--yes", env="staging").stdout
    assert "nothing of shop-staging left to remove" in again, again
    assert site.get("/")[0] == 200
    site.fab("provision", env="staging")  # a removed environment can come back
    site.fab("remove", "--yes", env="staging")


DROP_IMAGE_MIGRATION = '''from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("catalog", "0001_initial")]
    operations = [migrations.RemoveField("item", "image")]
'''
IMAGE_BACK_MIGRATION = '''from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("catalog", "0002_drop_image")]
    operations = [migrations.AddField("item", "image", models.FileField(
        upload_to="items/", blank=True, default=""), preserve_default=False)]
'''
APP_PAGE = "<h1>shop is upgrading its catalog</h1>\n"


def status_from(site: Site, address: str, path: str = "/", headers: str = "") -> str:
    """The status of a GET sent from the VPS itself to ``address`` (its own source address)."""
    return site.sh(f"curl -sk -o /dev/null -w '%{{http_code}}' {headers} --resolve "
                   f"{site.domain}:443:{address} https://{site.domain}{path}").strip()


def test_maintenance_mode_answers_503_but_health_and_allowed_clients(site, deployed, vps):
    """maintenance.allow names the VPS's own address: curl from it gets the app, the operator's
    machine gets the 503 page; a provision keeps maintenance on and changes nothing for it."""
    inventory = site.dir / "inventory.yml"
    inventory.write_text(inventory.read_text().replace("releases_keep:", (
        f"maintenance:\n  allow: [{vps.address}]\n  retry_after: 120\nreleases_keep:"), 1))
    site.fab("provision")  # the site's map now names the allowed address
    try:
        check_maintenance(site, vps)
    finally:
        assert "maintenance off: " in site.fab("maintenance", "off").stdout
    assert site.get("/")[0] == 200 and "maintenance off" in site.fab("status").stdout


def test_status_shows_requests_5xx_and_latency_from_the_nginx_log(site, deployed):
    """250 known requests, 50 of them answered 503 by maintenance mode, a log rotation among
    them: fab status counts them (within 1%), as lines and as JSON; no site user reads the log."""
    log = render.access_log_path(site.env())
    site.sh(f"rm -f {log}.*; : > {log}")
    assert [site.get("/")[0] for _ in range(100)] == [200] * 100
    site.sh("logrotate --force /etc/logrotate.d/nginx")  # the last hour spans two files
    assert [site.get("/")[0] for _ in range(100)] == [200] * 100
    site.fab("maintenance", "on")
    try:
        assert [site.get("/")[0] for _ in range(50)] == [503] * 50
    finally:
        site.fab("maintenance", "off")
    report = json.loads(site.fab("status", "--json").stdout)[site.env().hosts[0].address]
    for window in ("5m", "1h"):
        numbers = report["requests"][window]
        assert abs(numbers["requests"] - 250) <= 2.5, numbers
        assert abs(numbers["error_rate"] - 0.2) <= 0.01 and numbers["p95_ms"] > 0, numbers
    assert sum(report["requests"]["minutes"]) == report["requests"]["1h"]["requests"]
    text = site.fab("status").stdout
    assert re.search(r"requests\s+last 5 min\s+25\d \(5\d(\.\d+)?/min\)\s+5xx 5\d \((19|20|21)\.",
                     text), text
    assert re.search(r"shop-production-web@\S+\s+active\s+enabled\s+pid \d+\s+cpu [\d.]+s\s+"
                     r"mem \d+ MiB\s+restarts 0", text), text
    assert "database  " in text and re.search(r"backups\s+\d+ on the server, newest", text)
    assert site.sh(f"stat -c '%U %G %a' {log} {log}.1").split("\n")[:2] == [
        "www-data adm 640"] * 2


def check_maintenance(site: Site, vps) -> None:
    assert "maintenance on: shop-production answers 503" in site.fab("maintenance", "on").stdout
    status, body, headers = site.get("/")
    assert status == 503 and headers["Retry-After"] == "120", (status, headers)
    assert "Down for maintenance" in body  # the example app has no maintenance.html
    assert site.get("/health/")[0] == 200
    assert status_from(site, vps.address) == "200"  # allowed
    assert status_from(site, "127.0.0.1", headers=f"-H 'X-Forwarded-For: {vps.address}'") == \
        "503"  # a client naming an allowed address is not one
    assert "maintenance ON: shop-production answers 503" in site.fab("status").stdout
    again = site.fab("provision").stdout
    assert re.search(r": 0 changed, \d+ unchanged", again), again
    assert site.get("/")[0] == 503
    assert "(already)" in site.fab("maintenance", "on").stdout


def test_deploy_with_maintenance_drops_a_column_without_a_single_500(site, deployed, vps):
    """The old release reads the column the new release's migration drops: maintenance covers
    the migration until the switch, so the load sees only 200s and 503s."""
    models = (ROOT / "examples" / "django" / "catalog" / "models.py").read_text()
    lean = models.replace('    image = models.FileField(upload_to="items/", blank=True)\n', "")
    lean = lean.replace('            "image": self.image.url if self.image else None,\n', "")
    assert lean.count("image") == 0, lean
    site.commit("8.0.0 drops item images", {
        "VERSION": "8.0.0\n", "catalog/models.py": lean, "maintenance.html": APP_PAGE,
        "catalog/migrations/0002_drop_image.py": DROP_IMAGE_MIGRATION})
    with Load(vps.address, site.domain, str(site.ca_file), path="/items/", clients=10) as load:
        time.sleep(1)
        out = site.fab("deploy", "--maintenance").stdout
        time.sleep(1)
    result = load.result
    assert set(result.statuses) == {200, 503}, result.summary()
    assert "maintenance on: " in out and "maintenance off on " in out, out
    assert served_version(site) == "8.0.0" and site.get("/items/")[0] == 200
    site.fab("maintenance", "on")  # the page comes from the live release
    try:
        status, body, _ = site.get("/items/")
    finally:
        site.fab("maintenance", "off")
    assert status == 503 and APP_PAGE.strip() in body
    site.commit("8.1.0 brings item images back", {  # the example's schema, for later modules
        "VERSION": "8.1.0\n", "catalog/models.py": models,
        "catalog/migrations/0003_image_back.py": IMAGE_BACK_MIGRATION})
    site.fab("deploy")


def test_secrets_never_appear_in_any_output(site, deployed):
    values = envfile.parse(site.sh("cat /srv/shop-production/shared/.env"))
    secrets = [SECRET_KEY, urlsplit(values["DATABASE_URL"]).password,
               urlsplit(values["REDIS_URL"]).password]
    assert len(site.outputs) > 10
    for output in site.outputs:
        for secret in secrets:
            assert secret not in output
    processes = site.sh("ps -eo args")
    assert not any(secret in processes for secret in secrets)
