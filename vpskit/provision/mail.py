"""The host's MTA for ``alerts.email``: Postfix as a send-only null client, so the watchdog
hands each notice to ``localhost:25`` and Postfix queues it and retries until the recipient's
mail server (or the relay ``alerts.smtp``, with STARTTLS and the ``smtp_login`` secret)
takes it. It listens on loopback only and delivers nothing locally.

The configuration is the host's, shared by its sites: the first site to set it owns it, and
another site on the host must name the same relay (it is refused otherwise, so staging never
reroutes production's alerts). A host that already has an MTA of its own keeps it untouched;
mail still goes to its ``localhost:25``. Postfix stays when alerts are turned off.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vpskit import facts, plan
from vpskit.config import Environment, Host
from vpskit.errors import ToolkitError
from vpskit.files import FileSpec, FileState, file_probe
from vpskit.plan import Plan

PACKAGES = ("postfix", "libsasl2-modules")  # the modules give Postfix's client PLAIN/LOGIN
MAIN_CF = "/etc/postfix/main.cf"
SASL_PASSWORDS = "/etc/postfix/vpskit-sasl"  # root 0600; Postfix reads it before dropping root
UNIT = "postfix.service"
OWNER = re.compile(r"^# managed by vpskit for (\S+):", re.M)


def wanted(env: Environment) -> bool:
    return bool(env.alerts.email)


def relay(env: Environment) -> str:
    """``[host]:port`` of ``alerts.smtp`` ("" sends to the recipient's MX; ``localhost:25``,
    the old default, means the same) (pure)."""
    host, _, port = env.alerts.smtp.rpartition(":")
    return "" if not host or host in ("localhost", "127.0.0.1") else f"[{host}]:{port}"


def main_cf(site: str, relay_host: str, login: bool) -> str:
    """Postfix's whole main.cf: a null client on loopback (pure)."""
    lines = [
        f"# managed by vpskit for {site}: a send-only MTA for the watchdog's notices",
        "compatibility_level = 3.6",
        "inet_interfaces = loopback-only",
        "mydestination =",
        "local_transport = error:local delivery is disabled",
        "alias_maps =",
        "alias_database =",
        f"relayhost = {relay_host}",
        "smtp_tls_CAfile = /etc/ssl/certs/ca-certificates.crt",
        f"smtp_tls_security_level = {'encrypt' if login else 'may'}",
    ]
    if login:
        lines += ["smtp_sasl_auth_enable = yes",
                  f"smtp_sasl_password_maps = texthash:{SASL_PASSWORDS}",
                  "smtp_sasl_security_options = noanonymous"]
    return "\n".join(lines) + "\n"


def specs(env: Environment) -> list[FileSpec]:
    """main.cf, and the relay's login when there is one (pure)."""
    login = env.secrets[env.alerts.smtp_login].reveal() if env.alerts.smtp_login else ""
    found = [FileSpec(MAIN_CF, main_cf(env.site, relay(env), bool(login)))]
    if login:
        found.append(FileSpec(SASL_PASSWORDS, f"{relay(env)} {login}\n", mode=0o600,
                              secret=True))
    return found


@dataclass(frozen=True)
class MailFacts:
    mail_conf: str | None = None  # these are gathered only when alerts are mailed
    mail_files: dict[str, FileState] | None = None
    other_mta: bool = False
    mail_unit: tuple[str, str] = ("", "")  # (active, enabled)


def probes(env: Environment, host: Host) -> list[facts.Probe]:
    if not wanted(env):
        return []
    return [facts.text(MAIN_CF, "mail_conf"),
            file_probe([MAIN_CF, SASL_PASSWORDS], "mail_files"),
            facts.Probe("other_mta", OTHER_MTA, lambda out, rc: rc == 0),
            facts.units([UNIT], "mail_unit", lambda states: states[UNIT][:2])]


# Succeeds when an MTA other than Postfix is installed (every MTA provides sendmail).
OTHER_MTA = ("test -e /usr/sbin/sendmail && ! dpkg-query -W -f '${Status}' postfix 2>/dev/null "
             "| grep -q ' installed$'")


def check_owner(site: str, host: str, conf: str | None, mine: str) -> bool:
    """Whether this site writes main.cf: it does unless another site's is there; that one
    must say what this site would (pure)."""
    owner = OWNER.search(conf or "")
    if owner is None or owner[1] == site:
        return True
    if OWNER.sub("", conf or "", 1) != OWNER.sub("", mine, 1):
        raise ToolkitError(f"alerts.smtp: host {host} sends mail as {owner[1]} configured it "
                           f"({MAIN_CF}); sites on one host share its MTA: give {site} the same "
                           f"alerts.smtp and smtp_login")
    return False


def mail(env: Environment, host: Host, found: MailFacts) -> Plan:
    """Configure Postfix for ``alerts.email``; restart it when its files changed."""
    if not wanted(env) or found.other_mta:
        return Plan()
    files = specs(env)
    if not check_owner(env.site, host.address, found.mail_conf, files[0].content):
        return Plan()
    result = plan.write(files, found.mail_files or {}, validate=["postfix", "check"])
    active, enabled = found.mail_unit
    if enabled != "enabled":
        result += plan.run("systemctl", "enable", "--quiet", UNIT, change=f"{UNIT} enabled")
    if result.changes or active != "active":
        result += plan.run("systemctl", "restart", UNIT, change=f"{UNIT} restarted")
    return result
