"""The server's watchdog tells a webhook receiver on the test host of each problem once, after
two checks in a row, and once when it clears: a stopped app, a certificate about to expire, a
stale backup, a full disk, a failed unit; the same notices reach an SMTP sink on the test host
as mail, sent on by the VPS's own MTA (Postfix, listening on loopback only). Every check pings the heartbeat. Tests start the watchdog's service directly rather
than waiting for its timer."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from tests.helpers import smtp_sink
from tests.helpers.receiver import Receiver
from tests.helpers.site import Site
from vpskit import render

pytestmark = pytest.mark.vps

SITE = "shop-production"
WATCHDOG = f"{SITE}-watchdog.service"
BACKUPS = f"/var/backups/{SITE}"
ALERTS = """optional_secrets: [ALERT_WEBHOOK_URL, HEARTBEAT_URL]
alerts:
  webhook: ALERT_WEBHOOK_URL
  heartbeat: HEARTBEAT_URL
  email: ops@example.test
  smtp: {smtp}
"""


@pytest.fixture(scope="module")
def receiver(vps) -> Iterator[Receiver]:
    found = Receiver(vps.host_address)
    yield found
    found.close()


@pytest.fixture(scope="module")
def mailbox(vps) -> Iterator[tuple[smtp_sink.Sink, str]]:
    with smtp_sink.sink(vps.host_address) as found:
        yield found


@pytest.fixture(scope="module")
def alerting(site: Site, deployed, receiver: Receiver, mailbox) -> Iterator[str]:
    """The site with alerts on (two optional secrets in .env.production, mail through the
    sink); off again after."""
    inventory, secrets = site.dir / "inventory.yml", site.dir / ".env.production"
    saved = inventory.read_text(), secrets.read_text()
    inventory.write_text(saved[0] + ALERTS.format(smtp=mailbox[1]))
    secrets.write_text(saved[1] + f"ALERT_WEBHOOK_URL={receiver.url}/hook\n"
                                  f"HEARTBEAT_URL={receiver.url}/ping\n")
    try:
        yield site.fab("provision").stdout
    finally:
        inventory.write_text(saved[0])
        secrets.write_text(saved[1])
        off = site.fab("provision").stdout
        assert f"removed {render.watchdog_config(site.env())}" in off, off
        assert site.sh(f"systemctl is-enabled {SITE}-watchdog.timer", check=False).strip() in (
            "", "not-found")


def check(site: Site, times: int = 1) -> None:
    for _ in range(times):
        site.sh(f"systemctl start {WATCHDOG}")


def mailed(sink: smtp_sink.Sink, since: int, count: int) -> list[str]:
    """The subjects mailed since ``since`` once ``count`` have come (the host's MTA sends
    them on as it queued them), or after 30 s."""
    deadline = time.monotonic() + 30
    while len(sink.messages) - since < count and time.monotonic() < deadline:
        time.sleep(0.2)
    return sink.subjects(since)


def told(receiver: Receiver, since: int) -> list[tuple[str, str]]:
    return receiver.states()[since:]


def test_alerts_watchdog_is_installed_with_its_urls_kept_from_the_app(site, alerting, receiver):
    assert f"{SITE}-watchdog.timer enabled (every 5 min)" in alerting, alerting
    assert site.sh(f"stat -c '%U %a' {render.watchdog_config(site.env())}").strip() == "root 600"
    assert receiver.url not in site.sh(f"cat /srv/{SITE}/shared/.env")  # the app's env
    assert re.search(r"^  mail\s+changed .*postfix\.service restarted$", alerting, re.M)
    listening = [a for a in site.sh("ss -Hltn 'sport = :25'").split() if a.endswith(":25")]
    assert "127.0.0.1:25" in listening and set(listening) <= {"127.0.0.1:25", "[::1]:25"}
    again = site.fab("provision").stdout
    assert "0 changed" in again, again
    before = len(receiver.notices)
    assert "(webhook and email and heartbeat)" in site.fab("alerts", "--test").stdout
    assert told(receiver, before) == [("test", "a test notice from fab alerts --test")]


def test_alerts_tell_a_stopped_app_once_and_its_recovery_once(site, alerting, receiver,
                                                                mailbox):
    check(site)  # a healthy site: nothing to tell
    before, beats, mails = len(receiver.notices), receiver.heartbeats, len(mailbox[0].messages)
    web = render.web_unit_name(site.env(), site.live_release())
    site.sh(f"systemctl stop {web}")
    try:
        check(site)
        assert told(receiver, before) == []  # one check is not yet a problem
        check(site, 2)
    finally:
        site.sh(f"systemctl start {web}")
    deadline = time.monotonic() + 30
    while site.get("/health/")[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
    check(site, 2)
    problem = f"health https://{site.domain}/health/ answered 502"
    assert told(receiver, before) == [("problem", problem), ("recovered", problem)]
    assert receiver.notices[-1]["text"].startswith(f"[{SITE}] RECOVERED on ")
    expected = [n["text"] for n in receiver.notices[before:]]
    assert mailed(mailbox[0], mails, len(expected)) == expected
    assert mailbox[0].messages[-1]["To"] == "ops@example.test"
    assert "(Postfix)" in str(mailbox[0].messages[-1]["Received"])  # the host's MTA sent it on
    assert receiver.heartbeats - beats == 5  # every check


def test_alerts_tell_an_expiring_certificate_and_a_stale_backup(site, alerting, receiver):
    """A 3-day certificate made with openssl in place of Pebble's (Nginx keeps serving the one
    it loaded), and every dump three days old; a backup and the certificate put back clear
    both."""
    before = len(receiver.notices)
    cert = site.sh(f"readlink -f {render.cert_path(site.env())}").strip()
    site.sh(f"cp -a {cert} {cert}.keep && openssl req -x509 -newkey ec -pkeyopt "
            f"ec_paramgen_curve:P-256 -nodes -keyout /dev/null -subj /CN={site.domain} "
            f"-days 3 -out {cert} 2>/dev/null && touch -d '3 days ago' {BACKUPS}/*.dump")
    try:
        check(site, 2)
    finally:
        site.sh(f"mv -f {cert}.keep {cert}")
    site.fab("backup")
    check(site)
    notices = told(receiver, before)
    assert sorted(kind for kind, _ in notices) == ["problem", "problem", "recovered",
                                                   "recovered"], notices
    problems = [text for kind, text in notices if kind == "problem"]
    assert any(re.match(rf"certificate for {re.escape(site.domain)} expires in (2\.9|3\.0) days",
                        t) for t in problems), problems
    assert any(t.startswith("newest backup is 72 hours old (limit 26)") for t in problems)


def test_alerts_tell_a_full_disk_and_a_failed_unit(site, alerting, receiver):
    """A 1 MiB filesystem over the backup directory, filled to 95%; a transient unit of the
    site that fails."""
    before = len(receiver.notices)
    site.sh(f"mount -t tmpfs -o size=1m,mode=700 tmpfs {BACKUPS} && "
            f"dd if=/dev/zero of={BACKUPS}/filler bs=1k count=970 2>/dev/null && "
            f"systemd-run --unit {SITE}-failing --quiet false", check=False)
    try:
        check(site, 2)
    finally:
        site.sh(f"umount {BACKUPS}; systemctl reset-failed {SITE}-failing.service")
    check(site)
    notices = told(receiver, before)
    problems = sorted(text for kind, text in notices if kind == "problem")
    assert [kind for kind, _ in notices].count("recovered") == 2, notices
    assert problems[0].startswith(f"disk {BACKUPS}: ") and "% free" in problems[0], problems
    assert problems[1] == f"{SITE}-failing.service failed", problems


def test_alerts_say_nothing_of_a_failed_instance_of_a_release_not_live(site, alerting, receiver):
    """A web instance that ends failed and is not the live one (here: of a release that does
    not exist, started until systemd gives up) is forgotten by systemd, so the watchdog has
    nothing to report."""
    before = len(receiver.notices)
    unit = render.web_unit_name(site.env(), "20000101T000000Z-0000000")
    gave_up = f"journalctl -u {unit} -o cat | grep -q 'Start request repeated too quickly'"
    site.sh(f"for i in $(seq 10); do systemctl start {unit} 2>/dev/null; {gave_up} && break; "
            f"done; {gave_up}")
    assert site.sh(f"systemctl list-units --all --plain --no-legend {unit}").strip() == ""
    check(site, 2)
    assert told(receiver, before) == []
