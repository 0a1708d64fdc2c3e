"""One site's numbers on this host as JSON (standard library only; the server runs it as root:
``python3 -c PROGRAM [LOG...] -- [UNIT...]``).

Each LOG is the site's Nginx access log in vpskit's format (tab-separated: the time in seconds,
the status, the request time, the upstream response time, ...); it and its newest rotation are
read from their end back to an hour ago. Requests: count, per minute, 5xx and p50/p95 latency
over the last 5 minutes and the last hour, and the count of each minute of the hour. Units:
CPU time, memory and restarts from systemd's accounting, or summed over the unit's processes
in /proc where the accounting is off.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

WINDOWS = {"5m": 300, "1h": 3600}
HOUR = 3600
CHUNK = 1 << 20  # bytes read at a time, backwards from the log's end


def stamp(line: bytes) -> float:
    """The time a log line was written, or -1 for a line of another format."""
    try:
        return float(line.split(b"\t", 1)[0])
    except ValueError:
        return -1.0


def lines_since(path: str, since: float) -> list[bytes]:
    """The lines of the log ``path`` written at ``since`` or later, oldest first (read from
    the end, backwards, until a line before ``since``)."""
    try:
        log = open(path, "rb")  # noqa: SIM115 (closed below, after the seek loop)
    except FileNotFoundError:
        return []
    with log:
        pos = log.seek(0, os.SEEK_END)
        data = b""
        while pos > 0:
            step = min(CHUNK, pos)
            pos -= step
            log.seek(pos)
            data = log.read(step) + data
            whole = data.split(b"\n", 2)[1 if pos else 0:]  # the first line may be cut
            if whole and stamp(whole[0]) < since:
                break
    lines = data.split(b"\n")[1 if pos else 0:]
    return [line for line in lines if stamp(line) >= since]


def entries(lines: list[bytes]) -> list[tuple[float, int, float]]:
    """``(time, status, request seconds)`` of each well-formed line."""
    found = []
    for line in lines:
        fields = line.split(b"\t")
        try:
            found.append((float(fields[0]), int(fields[1]), float(fields[2])))
        except (IndexError, ValueError):
            continue
    return found


def percentile(sorted_values: list[float], p: int) -> float | None:
    """The nearest-rank ``p``-th percentile, or None of nothing."""
    if not sorted_values:
        return None
    rank = max(1, -(-p * len(sorted_values) // 100))
    return sorted_values[rank - 1]


def requests(found: list[tuple[float, int, float]], now: float) -> dict:
    """Each window's count, rate, 5xx and latency (ms); the count of each minute of the hour,
    oldest first."""
    windows = {}
    for name, span in WINDOWS.items():
        chosen = [e for e in found if now - span <= e[0] <= now]
        times = sorted(e[2] * 1000 for e in chosen)
        errors = sum(1 for e in chosen if e[1] >= 500)
        windows[name] = {
            "requests": len(chosen), "per_minute": round(len(chosen) * 60 / span, 2),
            "errors_5xx": errors,
            "error_rate": round(errors / len(chosen), 4) if chosen else 0.0,
            "p50_ms": percentile(times, 50), "p95_ms": percentile(times, 95)}
    minutes = [0] * 60
    for at, _, _ in found:
        ago = int((now - at) // 60)
        if 0 <= ago < 60:
            minutes[59 - ago] += 1
    return {**windows, "minutes": minutes}


def accounting(units: list[str]) -> dict:
    """``{unit: {cpu_s, memory_mb, restarts}}``; a value is None when neither systemd nor
    /proc knows it."""
    if not units:
        return {}
    out = subprocess.run(
        ["systemctl", "show", "-p", "CPUUsageNSec,MemoryCurrent,NRestarts,ControlGroup", "--",
         *units], capture_output=True, text=True, check=False).stdout
    found = {}
    for unit, block in zip(units, out.split("\n\n"), strict=False):
        values = dict(line.partition("=")[::2] for line in block.splitlines())
        cpu, memory = values.get("CPUUsageNSec", ""), values.get("MemoryCurrent", "")
        cpu_s = int(cpu) / 1e9 if cpu.isdigit() else None
        memory_mb = int(memory) / 2**20 if memory.isdigit() else None
        if cpu_s is None or memory_mb is None:
            proc_cpu, proc_memory = from_proc(values.get("ControlGroup", ""))
            cpu_s = proc_cpu if cpu_s is None else cpu_s
            memory_mb = proc_memory if memory_mb is None else memory_mb
        restarts = values.get("NRestarts", "")
        found[unit] = {"cpu_s": None if cpu_s is None else round(cpu_s, 2),
                       "memory_mb": None if memory_mb is None else round(memory_mb, 1),
                       "restarts": int(restarts) if restarts.isdigit() else None}
    return found


def from_proc(cgroup: str) -> tuple[float | None, float | None]:
    """CPU seconds and resident MiB summed over the processes of ``cgroup`` (None, None when
    it has none)."""
    pids: list[str] = []
    for hierarchy in ("", "/unified", "/systemd"):  # cgroup v2, or v1's (hybrid) trees
        try:
            with open(f"/sys/fs/cgroup{hierarchy}{cgroup}/cgroup.procs") as procs:
                pids = procs.read().split()
            break
        except OSError:
            continue
    if not cgroup or not pids:
        return None, None
    ticks, page = os.sysconf("SC_CLK_TCK"), os.sysconf("SC_PAGE_SIZE")
    cpu = memory = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/statm") as statm:
                resident = int(statm.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        cpu += (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
        memory += resident * page / 2**20
    return cpu, memory


def main(logs: list[str], units: list[str]) -> None:
    now = time.time()
    since = now - HOUR
    numbers = [requests(entries(lines_since(f"{log}.1", since) + lines_since(log, since)), now)
               for log in logs]
    json.dump({"logs": numbers, "units": accounting(units)}, sys.stdout)


if __name__ == "__main__":
    split = sys.argv.index("--")
    main(sys.argv[1:split], sys.argv[split + 1:])
