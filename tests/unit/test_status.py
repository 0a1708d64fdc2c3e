"""``fab status``'s numbers: the server-side program over real log files (the way the server
runs it, too), and the report and its lines from given facts."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from vpskit import render, status
from vpskit.config import App, Environment, Host
from vpskit.deploy import lock
from vpskit.deploy.releases import Release, Releases
from vpskit.sh import site_metrics

NOW = 1_800_000_000.0


def log_line(at: float, code: int = 200, seconds: float = 0.010) -> str:
    return f"{at:.3f}\t{code}\t{seconds:.3f}\t{seconds:.3f}\t192.0.2.9\tGET\t/\t512\n"


def env(**hosts) -> Environment:
    return Environment("production", hosts.get("hosts", (Host("192.0.2.1"),)), ("shop.test",),
                       App(name="shop", repo="/tmp/x", entry="shop.wsgi:application"))


def test_lines_since_reads_back_from_the_end_across_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(site_metrics, "CHUNK", 100)  # several chunks, lines cut at their edges
    path = tmp_path / "site.access.log"
    path.write_text("an older line of another format\n"
                    + "".join(log_line(NOW - 7200 + i * 60) for i in range(120)))
    found = site_metrics.lines_since(str(path), NOW - 3600)
    assert [site_metrics.stamp(line) for line in found] == [NOW - 3600 + i * 60 for i in range(60)]
    assert site_metrics.lines_since(str(tmp_path / "missing.log"), 0) == []


def test_requests_counts_5xx_and_latency_per_window_and_minute():
    found = site_metrics.entries([
        *(log_line(NOW - 30, 200, 0.010).encode() for _ in range(90)),
        *(log_line(NOW - 30, 503, 0.100).encode() for _ in range(10)),
        log_line(NOW - 1800, 200, 2.0).encode(),
        b"garbage", b""])
    numbers = site_metrics.requests(found, NOW)
    assert numbers["5m"] == {"requests": 100, "per_minute": 20.0, "errors_5xx": 10,
                             "error_rate": 0.1, "p50_ms": 10.0, "p95_ms": 100.0}
    assert numbers["1h"]["requests"] == 101 and numbers["1h"]["p95_ms"] == 100.0
    assert numbers["minutes"][-1] == 100 and numbers["minutes"][-31] == 1
    assert sum(numbers["minutes"]) == 101


def test_the_program_runs_as_the_server_runs_it_reading_the_rotated_log_too(tmp_path):
    log = tmp_path / "site.access.log"
    (tmp_path / "site.access.log.1").write_text(log_line(NOW - 10, 500))
    log.write_text(log_line(NOW - 5) + log_line(NOW - 4))
    program = status.METRICS_PROGRAM.replace("now = time.time()", f"now = {NOW}")
    out = subprocess.run([sys.executable, "-c", program, str(log), "--"], capture_output=True,
                         text=True, check=True).stdout
    numbers = json.loads(out)
    assert numbers["units"] == {} and len(numbers["logs"]) == 1
    assert numbers["logs"][0]["5m"]["requests"] == 3
    assert numbers["logs"][0]["5m"]["errors_5xx"] == 1


def test_sparkline_scales_to_the_busiest_minute():
    assert status.sparkline([0, 1, 4, 8]) == " ▂▅█"
    assert status.sparkline([0, 0]) == "  "


def test_report_and_lines_of_a_single_host():
    e = env()
    host = e.hosts[0]
    live = Release("20261201T000000Z-abc1234", sha="abc1234def567890", at="2026-12-01", by="ci")
    web = render.web_unit_name(e, live.id)
    assert status.unit_names(e, host, live)[0] == web
    numbers = site_metrics.requests(site_metrics.entries(
        [log_line(NOW - 10, 500).encode(), log_line(NOW - 20).encode()]), NOW)
    free = {"holder": None, "working": [], "recovered": []}
    found = {"resources": {"disk_free_mb": 900}, "releases": Releases((live,), live.id),
             "maintenance": False, "backups": {}, "database_size": 3 * 2**20, "lock": free}
    more = {"units": {web: ("active", "enabled", 42)},
            "metrics": {"units": {web: {"cpu_s": 1.5, "memory_mb": 80.0, "restarts": 1}},
                        "requests": numbers}}
    data = status.report(e, host, found, more, live, NOW)
    assert data["units"][web] == {"active": "active", "enabled": "enabled", "pid": 42,
                                  "cpu_s": 1.5, "memory_mb": 80.0, "restarts": 1}
    assert data["database_mb"] == 3.0 and data["backups"]["newest"] is None
    text = "\n".join(status.lines(e, data))
    assert "cpu 1.5s  mem 80 MiB  restarts 1" in text
    assert "last 5 min       2 (0.4/min)  5xx 1 (50.0%)" in text
    assert "database  3.0 MiB" in text and "none on the server yet" in text
    assert "maintenance off" in text and "900 MiB free on /" in text
    assert "lock" not in text  # free and idle: nothing to say
    json.dumps(data)  # fab status --json


def test_status_tells_the_locks_holder_its_work_left_on_the_server_and_what_was_recovered():
    holder = lock.holder_info("deploy abc1234")
    record = f"2026-12-01T10:00:00Z\t{holder}\twaited for shop-production-op-release-1a2b.service to end"
    out = f"{holder}\n\n---\n{record}\n---\nshop-production-op-release-1a2b.service\n"
    found = lock.probe("shop-production").parse(out, 0)
    assert found["working"] == ["shop-production-op-release-1a2b.service"]
    text = "\n".join(status.lock_lines(found))
    assert re.search(r"^  lock      held by \S+ \(pid \d+, deploy abc1234\) since ", text, re.M)
    assert "  working   shop-production-op-release-1a2b.service (the lock stays held" in text
    assert re.search(r"^  recovered .*deploy abc1234\) since .* ended before its work on the "
                     r"server; at 2026-12-01T10:00:00Z the server waited for "
                     r"shop-production-op-release-1a2b.service to end$", text, re.M), text
    free = lock.probe("shop-production").parse("\n---\n---\n", 0)
    assert free == {"holder": None, "working": [], "recovered": []}


def test_each_host_shows_its_part_and_its_own_log():
    web, lb, db = Host("192.0.2.1", roles=("web",)), Host("192.0.2.2", roles=("lb",)), Host(
        "192.0.2.3", roles=("db",))
    e = env(hosts=(web, lb, db))
    assert status.access_logs(e, web) == {"requests": render.access_log_path(e)}
    assert status.access_logs(e, lb) == {"lb_requests": "/var/log/nginx/shop-production-lb"
                                                        ".access.log"}
    assert status.access_logs(e, db) == {}
    assert [p.name for p in status.first_probes(e, lb)] == ["resources", "lock", "maintenance"]
    assert [p.name for p in status.first_probes(e, db)] == ["resources", "lock", "backups",
                                                            "database_size"]
    assert status.unit_names(e, db, None) == ["postgresql", "redis-server@shop-production"
                                                            ".service"]
