"""One site's watchdog on one host (standard library only; its systemd timer runs it as root:
``python3 watchdog.py CONFIG [--test]``).

CONFIG (JSON, root's alone: it holds the receivers' URLs) says what this host checks: the site's
health through its own Nginx, its certificate, free disk, the age of the newest backup and
off-site copy, the site's failed units. A problem seen by two checks in a row is told once to each
channel (a JSON POST to the webhook, an email through the host's MTA); once it clears, that is
told once too. Each check GETs the heartbeat URL, so a dead server is noticed by its silence.
What was told is kept in ``$STATE_DIRECTORY/<site>.json``. ``--test`` sends one test notice to
each channel and a heartbeat, and nothing else.
"""

from __future__ import annotations

import json
import os
import smtplib
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from email.message import EmailMessage

TIMEOUT = 10  # seconds for a health request, a notice, a heartbeat
HOLD = 2  # checks in a row a problem must hold before it is told


def health(check: dict) -> str | None:
    """What is wrong with the site's health path through this host's Nginx, or None."""
    tls = bool(check["tls"]) and os.path.exists(check["tls"])  # HTTPS once it has a certificate
    port = 443 if tls else 80
    request = (f"GET {check['path']} HTTP/1.1\r\nHost: {check['domain']}\r\n"
               f"User-Agent: vpskit-watchdog\r\nConnection: close\r\n\r\n").encode()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=check["timeout"]) as raw:
            if tls:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE  # the certificate is a check of its own
                conn = context.wrap_socket(raw, server_hostname=check["domain"])
            else:
                conn = raw
            conn.sendall(request)
            first = conn.recv(4096).split(b"\r\n", 1)[0].decode(errors="replace")
    except OSError as exc:
        return f"health {check['url']} did not answer: {exc}"
    parts = first.split()
    if len(parts) > 1 and parts[1] == str(check["status"]):
        return None
    return f"health {check['url']} answered {parts[1] if len(parts) > 1 else repr(first)}"


def certificate(path: str, domain: str, days: int, now: float) -> str | None:
    """What is wrong with the certificate at ``path``: expiring within ``days``; None when it
    is good or not there yet (provision issues it)."""
    if not os.path.exists(path):
        return None
    try:
        ends = ssl.cert_time_to_seconds(ssl._ssl._test_decode_cert(path)["notAfter"])
    except (ssl.SSLError, KeyError, ValueError) as exc:
        return f"certificate {path} unreadable: {exc}"
    left = (ends - now) / 86400
    if left < days:
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ends))
        return (f"certificate for {domain} expires in {max(left, 0):.1f} days ({when})"
                if left > 0 else f"certificate for {domain} expired on {when}")
    return None


def disks(paths: list[str], percent: int) -> dict[str, str]:
    """``{"disk <mount>": problem}`` for each filesystem of ``paths`` under ``percent`` free."""
    found, seen = {}, set()
    for path in paths:
        try:
            info, device = os.statvfs(path), os.stat(path).st_dev
        except OSError:
            continue
        if device in seen or not info.f_blocks:
            continue
        seen.add(device)
        free = info.f_bavail / info.f_blocks * 100
        if free < percent:
            found[f"disk {path}"] = (f"disk {path}: {free:.1f}% free "
                                     f"({info.f_bavail * info.f_frsize / 2**30:.2f} GiB)")
    return found


def backups(check: dict, now: float) -> str | None:
    """What is wrong with the site's newest backup: older than the limit, or none made since
    the backup directory was (its own time stands for the first backup's)."""
    try:
        names = [n for n in os.listdir(check["dir"])
                 if n.startswith(check["prefix"]) and n.endswith(".dump")]
        times = [os.stat(os.path.join(check["dir"], n)).st_mtime for n in names]
        newest = max(times) if times else os.stat(check["dir"]).st_mtime
    except OSError as exc:
        return f"backups unreadable: {exc}"
    hours = (now - newest) / 3600
    if hours <= check["hours"]:
        return None
    return (f"newest backup is {hours:.0f} hours old (limit {check['hours']})" if times
            else f"no backup in {hours:.0f} hours (limit {check['hours']})")


def offsite(check: dict, now: float) -> str | None:
    """What is wrong with the newest off-site copy: sent longer ago than the limit (the
    sender's stamp file; without one, since the off-site configuration was written)."""
    try:
        sent = os.stat(check["stamp"]).st_mtime
        since = None
    except FileNotFoundError:
        sent, since = None, os.stat(check["config"]).st_mtime
    except OSError as exc:
        return f"off-site stamp unreadable: {exc}"
    hours = (now - (sent or since)) / 3600
    if hours <= check["hours"]:
        return None
    return (f"newest off-site copy is {hours:.0f} hours old (limit {check['hours']})" if sent
            else f"no off-site copy in {hours:.0f} hours (limit {check['hours']})")


def failed_units(patterns: list[str]) -> dict[str, str]:
    """``{"unit <name>": problem}`` for each failed unit of the site."""
    out = subprocess.run(["systemctl", "list-units", "--failed", "--plain", "--no-legend",
                          "--full", "--", *patterns], capture_output=True, text=True,
                         check=False).stdout
    units = [line.split()[0] for line in out.splitlines() if line.strip()]
    return {f"unit {unit}": f"{unit} failed" for unit in units}


def problems(config: dict, now: float) -> dict[str, str]:
    """Every problem this host sees now: ``{key: what is wrong}``."""
    found: dict[str, str | None] = {}
    if config.get("health"):
        found["health"] = health(config["health"])
    if config.get("cert"):
        found["certificate"] = certificate(config["cert"], config["health"]["domain"],
                                           config["cert_days"], now)
    if config.get("backups"):
        found["backups"] = backups(config["backups"], now)
    if config.get("offsite"):
        found["offsite"] = offsite(config["offsite"], now)
    found.update(disks(config["disks"], config["disk_free_percent"]))
    found.update(failed_units(config["units"]))
    return {key: text for key, text in found.items() if text}


def channels(config: dict) -> list[str]:
    """Where notices go: the webhook, the mailbox, or both."""
    return [name for name in ("webhook", "email") if config.get(name)]


def advance(state: dict, now_found: dict[str, str], to: list[str]
            ) -> tuple[dict, list[tuple[str, str, str, str]]]:
    """The next state and the notices due: ``(kind, key, text, channel)``, kind "problem" for
    one held :data:`HOLD` checks that ``channel`` was not told of yet, "recovered" for one it
    was told of that is now gone (pure). A notice counts only once sent: :func:`told`."""
    state = {key: {**value, "told": [c for c in value.get("told") or [] if isinstance(c, str)]}
             for key, value in state.items()}
    due = []
    for key, text in now_found.items():
        entry = state.setdefault(key, {"count": 0, "told": []})
        entry["count"] += 1
        entry["text"] = text
        if entry["count"] >= HOLD:
            due += [("problem", key, text, channel) for channel in to
                    if channel not in entry["told"]]
    for key in [k for k in state if k not in now_found]:
        if state[key]["told"]:
            due += [("recovered", key, state[key]["text"], c) for c in state[key]["told"]]
        else:
            del state[key]
    return state, due


def told(state: dict, kind: str, key: str, channel: str) -> None:
    """Record a notice to ``channel`` as sent; a problem whose end every channel was told of
    is forgotten."""
    entry = state[key]
    if kind == "problem":
        entry["told"].append(channel)
        return
    entry["told"].remove(channel)
    if not entry["told"]:
        del state[key]


def notice(config: dict, kind: str, text: str) -> dict:
    """The JSON a webhook gets: ``text`` for Slack, ``content`` for Discord, and the fields."""
    word = {"problem": "PROBLEM", "recovered": "RECOVERED", "test": "TEST"}[kind]
    line = f"[{config['site']}] {word} on {config['host']}: {text}"
    return {"text": line, "content": line, "site": config["site"], "host": config["host"],
            "state": kind, "problem": text}


def send(url: str, body: dict | None) -> None:
    """POST ``body`` as JSON to ``url`` (a GET without one); raises on failure."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={
        "Content-Type": "application/json", "User-Agent": "vpskit-watchdog"})
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310 (http(s) only)
        response.read()


def mail(config: dict, body: dict) -> None:
    """The notice as an email to ``config["email"]``, handed to the host's MTA on
    ``localhost:25``, which queues it and sends it on; raises on failure."""
    message = EmailMessage()
    message["From"] = f"vpskit-watchdog@{socket.getfqdn()}"
    message["To"] = config["email"]
    message["Subject"] = body["text"]
    message.set_content(f"{body['text']}\n\nsite {body['site']}, host {body['host']}\n")
    with smtplib.SMTP("localhost", 25, timeout=TIMEOUT) as smtp:
        smtp.send_message(message)


def deliver(config: dict, kind: str, text: str, channel: str) -> bool:
    """Send one notice to ``channel``; whether it went (a failure is logged, and due again at
    the next check)."""
    body = notice(config, kind, text)
    try:
        if channel == "webhook":
            send(config["webhook"], body)
        else:
            mail(config, body)
    except (OSError, ValueError, smtplib.SMTPException) as exc:
        print(f"{channel} notice not sent ({exc}): {text}", file=sys.stderr)
        return False
    return True


def heartbeat(config: dict) -> None:
    if config.get("heartbeat"):
        try:
            send(config["heartbeat"], None)
        except (OSError, ValueError) as exc:
            print(f"heartbeat not sent: {exc}", file=sys.stderr)


def main(path: str, test: bool) -> int:
    with open(path) as f:
        config = json.load(f)
    if test:
        sent = [deliver(config, "test", "a test notice from fab alerts --test", channel)
                for channel in channels(config)]
        heartbeat(config)
        return 0 if all(sent) else 1
    state_path = os.path.join(os.environ.get("STATE_DIRECTORY", "/var/lib/vpskit-watchdog"),
                              f"{config['site']}.json")
    try:
        with open(state_path) as f:
            state = json.load(f)
    except (OSError, ValueError):
        state = {}
    found = problems(config, time.time())
    for key, text in found.items():
        print(f"{key}: {text}")
    state, due = advance(state, found, channels(config))
    for kind, key, text, channel in due:
        if deliver(config, kind, text, channel):
            told(state, kind, key, channel)
    with open(f"{state_path}.new", "w") as f:
        json.dump(state, f)
    os.replace(f"{state_path}.new", state_path)
    heartbeat(config)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], "--test" in sys.argv[2:]))
