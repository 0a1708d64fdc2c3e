"""Scheduled jobs as data: cron lines translated to systemd calendars (checked by
``systemd-analyze calendar`` and against a cron matcher), calendars checked, ``schedule:``
refused at load with file, line, key and fix, the units rendered and verified, the reconcile
plan and ``fab jobs``' journal parsing."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta

import pytest

from tests.unit.planned import runs
from tests.unit.test_inventory import GOOD, write
from tests.unit.test_render import make_env, security_score, systemd_verify, unit_settings
from vpskit import inventory, job_units, jobs, render, schedule
from vpskit.config import Host, Job
from vpskit.errors import InventoryError
from vpskit.files import FileSpec, FileState
from vpskit.job_units import JobFacts
from vpskit.plan import Plan, writes

# cron line -> the OnCalendar= lines it becomes (UTC)
CRON = {
    "0 3 * * *": ["*-*-* 03:00:00 UTC"],
    "*/15 9-17 * * mon-fri": ["Mon..Fri *-*-* 09..17:00/15:00 UTC"],
    "*/5 * * * *": ["*-*-* *:00/5:00 UTC"],
    "* * * * *": ["*-*-* *:*:00 UTC"],
    "0 */2 * * *": ["*-*-* 00/2:00:00 UTC"],
    "5-59/15 * * * *": ["*-*-* *:05/15:00 UTC"],
    "0-30/10 * * * *": ["*-*-* *:00,10,20,30:00 UTC"],
    "0 0 */2 * *": ["*-*-01/2 00:00:00 UTC"],
    "0 0 1 */3 *": ["*-01/3-01 00:00:00 UTC"],
    "0 0 * jan,JUL *": ["*-01,07-* 00:00:00 UTC"],
    "0 0 1 jun-aug *": ["*-06..08-01 00:00:00 UTC"],
    "59 23 31 12 *": ["*-12-31 23:59:00 UTC"],
    "1,2 0 * * *": ["*-*-* 00:01,02:00 UTC"],
    "1-3,7 0 * * *": ["*-*-* 00:01..03,07:00 UTC"],
    "0 9 * * 1-5": ["Mon..Fri *-*-* 09:00:00 UTC"],
    "0 9 * * 0": ["Sun *-*-* 09:00:00 UTC"],
    "0 9 * * 7": ["Sun *-*-* 09:00:00 UTC"],
    "0 9 * * 5-7": ["Fri..Sun *-*-* 09:00:00 UTC"],
    "0 9 * * sat,sun": ["Sat,Sun *-*-* 09:00:00 UTC"],
    "0 12 * * tue/2": ["Tue,Thu,Sat *-*-* 12:00:00 UTC"],
    "0 12 * * */2": ["Tue,Thu,Sat,Sun *-*-* 12:00:00 UTC"],
    "30 6 10/5 * *": ["*-*-10/5 06:30:00 UTC"],
    # cron's rule: a day of month and a day of week both restricted mean either
    "0 0 1,15 * 1": ["*-*-01,15 00:00:00 UTC", "Mon *-*-* 00:00:00 UTC"],
    "30 4 1-7 * fri": ["*-*-01..07 04:30:00 UTC", "Fri *-*-* 04:30:00 UTC"],
    "0 0 */2 * 1": ["Mon *-*-01/2 00:00:00 UTC"],  # a field starting with '*': both must match
    "0 0 1 * *": ["*-*-01 00:00:00 UTC"],
    "@yearly": ["*-01-01 00:00:00 UTC"],
    "@annually": ["*-01-01 00:00:00 UTC"],
    "@monthly": ["*-*-01 00:00:00 UTC"],
    "@weekly": ["Sun *-*-* 00:00:00 UTC"],
    "@daily": ["*-*-* 00:00:00 UTC"],
    "@midnight": ["*-*-* 00:00:00 UTC"],
    "@hourly": ["*-*-* *:00:00 UTC"],
    "@DAILY": ["*-*-* 00:00:00 UTC"],
    "  0   3 * *   * ": ["*-*-* 03:00:00 UTC"],
}

BAD_CRON = {
    "* * * *": "has 4 fields, cron has 5",
    "0 0 0 1 1 *": "a seconds or year field is no cron's",
    "": "has 0 fields",
    "@reboot": "run it as a process",
    "@often": "is not a cron shortcut",
    "60 * * * *": "minute '60': expected 0-59",
    "* 24 * * *": "hour '24': expected 0-23",
    "* * 0 * *": "day of month '0': expected 1-31",
    "* * * 13 *": "month '13': expected 1-12 or Jan..Dec",
    "* * * * 8": "day of week '8': expected 0-7 or Sun..Sat",
    "* * * * funday": "day of week 'funday'",
    "* * L * *": "the L, W, # and ? extensions have no translation",
    "* * 15W * *": "the L, W, # and ? extensions have no translation",
    "* * * * 1#2": "the L, W, # and ? extensions have no translation",
    "* * ? * 1": "the L, W, # and ? extensions have no translation",
    "5-1 * * * *": "a range runs upward",
    "*/0 * * * *": "a step is at least 1",
    "*-5 * * * *": "'*' takes no range",
    "1,,2 * * * *": "minute ''",
    "0 0 * jan *": None,  # valid: the control case of the table
}

CALENDARS = {
    "daily": "daily UTC",
    "*-*-* 03:00:00": "*-*-* 03:00:00 UTC",
    "*:*:00/20": "*:*:00/20 UTC",
    "*:0/15": "*:0/15 UTC",
    "Mon..Fri 09:30": "Mon..Fri 09:30 UTC",
    "Mon,Wed *-*-* 07:00": "Mon,Wed *-*-* 07:00 UTC",
    "2030-01-31 23:59:59": "2030-01-31 23:59:59 UTC",
    "*-*~01 04:00": "*-*~01 04:00 UTC",
    "*-01,07-01": "*-01,07-01 UTC",
    "Sat": "Sat UTC",
    "monthly": "monthly UTC",
    "*-*-* 08..18:00": "*-*-* 08..18:00 UTC",
}

BAD_CALENDARS = {
    "": "expected a systemd calendar",
    "every day": "'every' is not a weekday",
    "Mon..Fri 09:00 Europe/Berlin": "'Europe/Berlin' is no part of a calendar",
    "*-*-* 25:00": "hour '25'",
    "*-13-01": "month '13'",
    "*-*-32": "day '32'",
    "*:60": "minute '60'",
    "*:*:61": "second '61'",
    "Mon-Fri 09:00": "'Mon-Fri' is not a weekday",
    "09:00 10:00": "expected a systemd calendar",
    "*-*-* 09..07:00": "hour '09..07'",
    "*:0/0": "minute '0/0'",
    "1969-01-01": "year '1969'",
    "*-*-* 09:00:00:00": "time '09:00:00:00'",
}


@pytest.mark.parametrize("line,expected", CRON.items(), ids=CRON.keys())
def test_cron_line_becomes_these_calendars(line, expected):
    assert list(schedule.from_cron(line)) == expected


@pytest.mark.parametrize("line,expected", BAD_CRON.items(), ids=BAD_CRON.keys())
def test_cron_line_it_cannot_express_is_refused_with_a_fix(line, expected):
    if expected is None:
        schedule.from_cron(line)
        return
    with pytest.raises(ValueError) as err:
        schedule.from_cron(line)
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_cron_translation_takes_a_timezone():
    assert schedule.from_cron("0 3 * * *", "Europe/Berlin") == ("*-*-* 03:00:00 Europe/Berlin",)


@pytest.mark.parametrize("text,expected", CALENDARS.items(), ids=CALENDARS.keys())
def test_calendar_is_taken_as_written_plus_its_timezone(text, expected):
    assert schedule.check_calendar(text) == (expected,)


@pytest.mark.parametrize("text,expected", BAD_CALENDARS.items(), ids=BAD_CALENDARS.keys())
def test_calendar_systemd_would_refuse_is_refused(text, expected):
    with pytest.raises(ValueError) as err:
        schedule.check_calendar(text)
    assert expected in str(err.value)


def analyze(calendar: str, iterations: int) -> list[datetime]:
    """The next elapses ``systemd-analyze calendar`` gives from now."""
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    result = subprocess.run(["systemd-analyze", "calendar", f"--iterations={iterations}",
                             calendar], capture_output=True, text=True, env={"TZ": "UTC"})
    assert result.returncode == 0, result.stderr
    return [datetime.strptime(line.split(": ", 1)[1].strip()[4:], "%Y-%m-%d %H:%M:%S UTC")
            .replace(tzinfo=UTC) for line in result.stdout.splitlines()
            if "Next elapse:" in line or "Iter. #" in line]


def cron_matches(line: str, at: datetime) -> bool:
    """A small reference cron: whether ``line`` fires at minute ``at`` (vixie cron's rules)."""
    line = schedule.SHORTCUTS.get(line.strip().lower(), line)
    fields = line.split()
    sets = [schedule._cron_field(text, *spec)
            for text, spec in zip(fields, schedule.CRON_FIELDS, strict=True)]
    weekday = (at.weekday() + 1) % 7
    day_ok, weekday_ok = at.day in sets[2], weekday in {d % 7 for d in sets[4]}
    if fields[2].startswith("*") or fields[4].startswith("*"):
        days = day_ok and weekday_ok
    else:
        days = day_ok or weekday_ok
    return at.minute in sets[0] and at.hour in sets[1] and at.month in sets[3] and days


@pytest.mark.parametrize("line", CRON, ids=CRON.keys())
def test_systemd_fires_when_cron_would(line):
    """The union of the translated calendars' next 8 elapses each, merged, are the minutes a
    reference cron matches, in order, from the first of them."""
    elapses = sorted({t for calendar in schedule.from_cron(line) for t in analyze(calendar, 8)})
    first = elapses[0]
    horizon = min(max(analyze(c, 8)) for c in schedule.from_cron(line))
    expected, at = [], first
    while at <= horizon and len(expected) < 8:
        if cron_matches(line, at):
            expected.append(at)
        at += timedelta(minutes=1) if (horizon - first).days < 40 else timedelta(days=1)
    assert [t for t in elapses if t <= horizon][:len(expected)] == expected


@pytest.mark.parametrize("text", CALENDARS, ids=CALENDARS.keys())
def test_calendars_accepted_are_accepted_by_systemd(text):
    assert analyze(schedule.check_calendar(text)[0], 1)


# ---- schedule: in the inventory --------------------------------------------------------------------
SCHEDULE = """\
schedule:
  cleanup:
    command: python manage.py clearsessions
    cron: "0 3 * * *"
  report:
    command: python manage.py report --weekly
    calendar: Mon *-*-* 07:00
    timezone: Europe/Berlin
    timeout: 600
"""


def load(tmp_path, text: str, env: str = "production"):
    return inventory.load(write(tmp_path, text), env, environ={"SECRET_KEY": "k"})


def test_schedule_loads_translated_with_defaults(tmp_path):
    env = load(tmp_path, GOOD + SCHEDULE)
    assert env.schedule == (
        Job("cleanup", "python manage.py clearsessions", ("*-*-* 03:00:00 UTC",),
            "cron: 0 3 * * *", 3600),
        Job("report", "python manage.py report --weekly", ("Mon *-*-* 07:00 Europe/Berlin",),
            "calendar: Mon *-*-* 07:00", 600))
    assert env.job_host.address == "198.51.100.8"  # production: no worker host, the web host


def test_schedule_environment_overrides_and_drops_a_default(tmp_path):
    text = GOOD + SCHEDULE
    text = text.replace("      workers: 4\n", "      workers: 4\n    schedule:\n      cleanup: "
                        "false\n      report: {command: python manage.py report, cron: '@daily'}\n")
    env = load(tmp_path, text)
    assert [(j.name, j.calendars) for j in env.schedule] == [
        ("report", ("*-*-* 00:00:00 UTC",))]
    assert [j.name for j in load(tmp_path, text, "staging").schedule] == ["cleanup", "report"]


def test_job_host_is_the_first_worker_host(tmp_path):
    text = GOOD.replace("roles: [db]", "roles: [db, worker]")
    assert load(tmp_path, text).job_host.address == "198.51.100.9"


BAD_SCHEDULE = {
    "not a mapping": ("schedule: [cleanup]\n", "schedule: expected a mapping of job names"),
    "bad name": ("schedule:\n  Clean_Up: {command: x, cron: '@daily'}\n",
                 "schedule.Clean_Up: job names are"),
    "name ends in -": ("schedule:\n  clean-: {command: x, cron: '@daily'}\n", "job names are"),
    "no command": ("schedule:\n  cleanup: {cron: '@daily'}\n", "expected a mapping with 'command'"),
    "a plain string": ("schedule:\n  cleanup: python x.py\n", "expected a mapping with 'command'"),
    "no calendar": ("schedule:\n  cleanup: {command: x}\n", "give exactly one of cron:"),
    "both": ("schedule:\n  cleanup: {command: x, cron: '@daily', calendar: daily}\n",
             "give exactly one of cron:"),
    "unknown key": ("schedule:\n  cleanup: {command: x, cron: '@daily', every: 5}\n",
                    "schedule.cleanup.every: unknown key"),
    "bad cron": ("schedule:\n  cleanup:\n    command: x\n    cron: '0 0 L * *'\n",
                 "inventory.yml:26: schedule.cleanup.cron: day of month 'L'"),
    "bad calendar": ("schedule:\n  cleanup:\n    command: x\n    calendar: '*-*-* 25:00'\n",
                     "inventory.yml:26: schedule.cleanup.calendar: '*-*-* 25:00': hour '25'"),
    "bad timezone": ("schedule:\n  cleanup: {command: x, cron: '@daily', timezone: Mars/Base}\n",
                     "schedule.cleanup.timezone: 'Mars/Base': expected a zone name"),
    "bad timeout": ("schedule:\n  cleanup: {command: x, cron: '@daily', timeout: 0}\n",
                    "schedule.cleanup.timeout: expected a positive number"),
    "timeout text": ("schedule:\n  cleanup: {command: x, cron: '@daily', timeout: 1h}\n",
                     "schedule.cleanup.timeout: expected an integer"),
    "command with a shell": ("schedule:\n  cleanup: {command: 'echo $HOME', cron: '@daily'}\n",
                             "'$HOME' has what a unit file can't take"),
    "unbalanced quote": ("schedule:\n  cleanup: {command: 'echo \"x', cron: '@daily'}\n",
                         "with its quotes balanced"),
}


@pytest.mark.parametrize("text,expected", BAD_SCHEDULE.values(), ids=BAD_SCHEDULE.keys())
def test_bad_schedule_is_one_line_with_file_line_key_and_fix(tmp_path, text, expected):
    with pytest.raises(InventoryError) as err:
        load(tmp_path, GOOD + text)
    message = str(err.value)
    assert message.startswith("inventory.yml:") and "\n" not in message, message
    assert expected in message, message


# ---- units ---------------------------------------------------------------------------------------
def job_env():
    env = make_env()
    return dataclasses.replace(env, schedule=(
        Job("cleanup", "python manage.py clearsessions", ("*-*-* 03:00:00 UTC",),
            "cron: 0 3 * * *", 3600),
        Job("either", "/usr/local/bin/report --all", ("*-*-01 00:00:00 UTC",
                                                      "Mon *-*-* 00:00:00 UTC"),
            "cron: 0 0 1 * mon", 60)))


def test_job_units_pass_systemd_analyze_verify(tmp_path):
    env = job_env()
    files = render.job_units(env)
    assert sorted(files) == [f"/etc/systemd/system/shop-production-job-{name}.{kind}"
                             for name in ("cleanup", "either") for kind in ("service", "timer")]
    systemd_verify(tmp_path, files, ["shop-production-job-cleanup.timer",
                                     "shop-production-job-either.service"])
    timer = unit_settings(files["/etc/systemd/system/shop-production-job-either.timer"])
    assert timer["OnCalendar"] == ["*-*-01 00:00:00 UTC", "Mon *-*-* 00:00:00 UTC"]
    assert timer["Persistent"] == ["true"] and timer["AccuracySec"] == ["1s"]
    service = unit_settings(files["/etc/systemd/system/shop-production-job-cleanup.service"])
    assert service["ExecStart"] == [
        "/srv/shop-production/current/.venv/bin/python manage.py clearsessions"]
    assert service["User"] == ["shop-production"] and service["Type"] == ["oneshot"]
    assert service["EnvironmentFile"] == ["/srv/shop-production/shared/.env"]
    assert service["WorkingDirectory"] == ["/srv/shop-production/current"]
    assert service["TimeoutStartSec"] == ["3600s"]
    assert service["ConditionPathExists"] == ["/srv/shop-production/current"]


def test_job_service_has_the_web_units_sandbox(tmp_path):
    env = job_env()
    service = render.job_units(env)["/etc/systemd/system/shop-production-job-cleanup.service"]
    settings, web = unit_settings(service), unit_settings(render.web_unit(env))
    for key, _ in render.SANDBOX:
        assert settings[key] == web[key], key
    assert security_score(tmp_path, "shop-production-job-cleanup.service", service) <= 4.0


# ---- reconcile plan ------------------------------------------------------------------------------
WEB, WORKER = Host("203.0.113.20", roles=("web", "db")), Host("203.0.113.21", roles=("worker",))


def installed(env) -> dict[str, FileState]:
    return {path: FileState(FileSpec(path, text).sha256, "root", "root", 0o644)
            for path, text in render.job_units(env).items()}


def timers_on(env) -> dict[str, str]:
    return {render.job_unit_name(env, j.name, "timer"): "enabled active" for j in env.schedule}


def units(env, host, have=None, timers=None) -> Plan:
    return job_units.units(env, host, JobFacts(have or {}, timers or {}))


def test_plan_installs_enables_and_then_changes_nothing():
    env = job_env()
    first = units(env, env.job_host)
    assert len(writes(first)) == 4
    assert runs(first) == [
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable", "shop-production-job-cleanup.timer"],
        ["systemctl", "restart", "shop-production-job-cleanup.timer"],
        ["systemctl", "enable", "shop-production-job-either.timer"],
        ["systemctl", "restart", "shop-production-job-either.timer"]]
    assert units(env, env.job_host, installed(env), timers_on(env)) == Plan()


def test_plan_restarts_only_the_timer_whose_calendar_changed():
    env = job_env()
    changed = dataclasses.replace(env, schedule=(
        dataclasses.replace(env.schedule[0], calendars=("*-*-* 04:00:00 UTC",)),
        env.schedule[1]))
    todo = units(changed, env.job_host, installed(env), timers_on(env))
    assert writes(todo) == [
        "/etc/systemd/system/shop-production-job-cleanup.service",  # its comment names it
        "/etc/systemd/system/shop-production-job-cleanup.timer"] or writes(todo) == [
        "/etc/systemd/system/shop-production-job-cleanup.timer"]
    assert ["systemctl", "restart", "shop-production-job-cleanup.timer"] in runs(todo)
    assert ["systemctl", "restart", "shop-production-job-either.timer"] not in runs(todo)


def test_plan_removes_a_job_gone_from_the_inventory_with_its_stamp():
    env = job_env()
    fewer = dataclasses.replace(env, schedule=env.schedule[:1])
    todo = units(fewer, env.job_host, installed(env), timers_on(env))
    assert not writes(todo)
    assert runs(todo) == [
        ["systemctl", "disable", "--now", "shop-production-job-either.timer"],
        ["rm", "-f", "/etc/systemd/system/shop-production-job-either.service",
         "/etc/systemd/system/shop-production-job-either.timer",
         "/var/lib/systemd/timers/stamp-shop-production-job-either.timer"],
        ["systemctl", "daemon-reload"],
        ["systemctl", "reset-failed", "shop-production-job-either.service"]]
    assert [a.check for a in todo.actions] == [False, True, True, False]  # may have gone


def test_plan_puts_jobs_on_the_worker_host_only():
    env = dataclasses.replace(job_env(), hosts=(WEB, WORKER))
    assert env.job_host == WORKER
    on_web = units(env, WEB, installed(env))
    removed = next(argv for argv in runs(on_web) if argv[:2] == ["rm", "-f"])
    assert not writes(on_web) and len(removed) == 2 + 4 + 2  # moved away: 4 units, 2 stamps
    assert len(writes(units(env, WORKER))) == 4


# ---- fab jobs ------------------------------------------------------------------------------------
def entry(at: datetime, message: str, **fields: str) -> str:
    return json.dumps({"__REALTIME_TIMESTAMP": str(int(at.timestamp() * 1e6)),
                       "MESSAGE_ID": message, **fields})


def test_runs_parsed_from_the_journal_and_described():
    t = datetime(2026, 11, 30, 18, 0, tzinfo=UTC)
    journal = "\n".join([
        entry(t, jobs.STARTING), entry(t + timedelta(seconds=1.5), jobs.STARTED, JOB_RESULT="done"),
        entry(t + timedelta(seconds=20), jobs.STARTING),
        entry(t + timedelta(seconds=22), "d9b373ed55a64feb8242e02dbe79a49c", UNIT_RESULT="exit-code"),
        entry(t + timedelta(seconds=23), jobs.FAILED, JOB_RESULT="failed"),
        "not json",
        entry(t + timedelta(seconds=40), jobs.STARTING)])
    runs = jobs.parse_runs(journal)
    assert [(r.started.second, r.seconds, r.ok) for r in runs] == [
        (0, 1.5, True), (20, 3.0, False), (40, None, False)]
    job = job_env().schedule[0]
    assert jobs.describe(job, "Tue 2026-12-01 03:00:00 UTC", runs) == [
        "  cleanup  (cron: 0 3 * * *; timeout 3600s)",
        "    next  Tue 2026-12-01 03:00:00 UTC",
        "    run   2026-11-30 18:00:40 UTC  running",
        "    run   2026-11-30 18:00:20 UTC  FAILED  3.0s",
        "    run   2026-11-30 18:00:00 UTC  ok  1.5s"]
    assert jobs.describe(job, "", [])[-1] == "    run   none yet"
