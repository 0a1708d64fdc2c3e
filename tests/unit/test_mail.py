"""The host's MTA for alerts.email: Postfix's files as data, the step's commands, the host's
own MTA left alone, and one relay per host shared by its sites."""

from __future__ import annotations

import dataclasses

import pytest

from tests.unit.planned import runs
from vpskit.config import Alerts, App, Environment, Host
from vpskit.errors import ToolkitError
from vpskit.files import FileState
from vpskit.plan import Plan, Write, writes
from vpskit.provision import mail, system
from vpskit.secret import Secret


def env(name: str = "production", **alerts) -> Environment:
    return Environment(name, (Host("192.0.2.1"),), ("shop.test",),
                       App(name="shop", repo="/tmp/x", entry="shop.wsgi:application"),
                       alerts=Alerts(**{"email": "ops@example.com", **alerts}),
                       secrets={"SMTP_LOGIN": Secret("mailer:pa55word")})


def step(e: Environment, conf: str | None = None, other_mta: bool = False,
         unit: tuple[str, str] = ("active", "enabled")) -> Plan:
    files = {} if conf is None else {mail.MAIN_CF: FileState("0", "root", "root", 0o644)}
    return mail.mail(e, e.hosts[0], mail.MailFacts(conf, files, other_mta, unit))


def test_null_client_on_loopback_sending_straight_or_through_a_relay():
    direct = mail.main_cf("shop-production", mail.relay(env()), login=False)
    assert "inet_interfaces = loopback-only\n" in direct and "mydestination =\n" in direct
    assert "relayhost = \n" in direct and "smtp_tls_security_level = may\n" in direct
    assert "sasl" not in direct
    assert mail.relay(env(smtp="localhost:25")) == ""  # the old default: the host's MTA itself
    relayed = env(smtp="smtp.example.com:587", smtp_login="SMTP_LOGIN")
    conf, login = mail.specs(relayed)
    assert "relayhost = [smtp.example.com]:587\n" in conf.content
    assert "smtp_tls_security_level = encrypt\n" in conf.content  # the password never in clear
    assert f"smtp_sasl_password_maps = texthash:{mail.SASL_PASSWORDS}\n" in conf.content
    assert (login.path, login.content, login.mode, login.secret) == (
        mail.SASL_PASSWORDS, "[smtp.example.com]:587 mailer:pa55word\n", 0o600, True)
    assert "pa55word" not in conf.content


def test_step_writes_validates_and_restarts_then_changes_nothing():
    todo = step(env(), unit=("inactive", "disabled"))
    assert todo.changes[-2:] == ("postfix.service enabled", "postfix.service restarted")
    assert todo.actions[0] == Write(tuple(mail.specs(env())), ("postfix", "check"))
    assert runs(todo) == [["systemctl", "enable", "--quiet", "postfix.service"],
                          ["systemctl", "restart", "postfix.service"]]
    current = mail.specs(env())[0]
    assert mail.mail(env(), env().hosts[0], mail.MailFacts(
        current.content, {mail.MAIN_CF: FileState(current.sha256, "root", "root", 0o644)},
        False, ("active", "enabled"))) == Plan()


def test_the_hosts_own_mta_and_sites_without_email_are_left_alone():
    assert step(env(), other_mta=True) == Plan()
    assert step(env(email="")) == Plan()
    assert "postfix" not in system.packages_for(("web",), mta=False)
    assert system.packages_for(("web",), mta=True)[-2:] == list(mail.PACKAGES)


def test_a_second_site_on_the_host_shares_the_relay_or_is_refused():
    production = mail.specs(env())[0].content
    staging_same = env("staging")
    assert step(staging_same, conf=production) == Plan()  # production's file stays as it is
    staging_other = env("staging", smtp="smtp.example.com:587")
    with pytest.raises(ToolkitError, match=r"^alerts\.smtp: host 192\.0\.2\.1 sends mail as "
                                           r"shop-production configured it"):
        step(staging_other, conf=production)
    # the owner itself may change its relay
    owner = dataclasses.replace(env(), alerts=Alerts(email="ops@example.com",
                                                     smtp="smtp.example.com:587"))
    assert mail.MAIN_CF in writes(step(owner, conf=production))
