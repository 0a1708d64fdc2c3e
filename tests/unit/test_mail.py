"""The host's MTA for alerts.email: Postfix's files as data, the step's commands, the host's
own MTA left alone, and one relay per host shared by its sites."""

from __future__ import annotations

import dataclasses

import pytest

from tests.unit.test_backups import FakeRemote
from vpskit.config import Alerts, App, Environment, Host
from vpskit.errors import ToolkitError
from vpskit.files import FileState
from vpskit.provision import mail, system
from vpskit.provision.context import Context
from vpskit.remote import Result
from vpskit.secret import Secret
from vpskit.steps import Reporter


def env(name: str = "production", **alerts) -> Environment:
    return Environment(name, (Host("192.0.2.1"),), ("shop.test",),
                       App(name="shop", repo="/tmp/x", entry="shop.wsgi:application"),
                       alerts=Alerts(**{"email": "ops@example.com", **alerts}),
                       secrets={"SMTP_LOGIN": Secret("mailer:pa55word")})


class Remote(FakeRemote):
    def script(self, text: str, args=(), **kwargs) -> Result:
        self.commands.append(["<script>", *args])
        return Result("", "", 0)


def step(e: Environment, conf: str | None = None, other_mta: bool = False,
         unit: tuple[str, str] = ("active", "enabled")) -> tuple[list[str], FakeRemote]:
    remote = Remote()
    files = {} if conf is None else {mail.MAIN_CF: FileState("0", "root", "root", 0o644)}
    ctx = Context(env=e, host=e.hosts[0], remote=remote, out=Reporter(quiet=True), facts={
        "mail_conf": conf, "mail_files": files, "other_mta": other_mta, "mail_unit": unit})
    return mail.mail(ctx), remote


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
    changes, remote = step(env(), unit=("inactive", "disabled"))
    assert changes[-2:] == ["postfix.service enabled", "postfix.service restarted"]
    assert ["postfix", "check"] in remote.commands
    assert remote.commands[-2:] == [["systemctl", "enable", "--quiet", "postfix.service"],
                                    ["systemctl", "restart", "postfix.service"]]
    current = mail.specs(env())[0]
    remote = Remote()
    ctx = Context(env=env(), host=env().hosts[0], remote=remote, out=Reporter(quiet=True),
                  facts={"mail_conf": current.content, "other_mta": False,
                         "mail_unit": ("active", "enabled"),
                         "mail_files": {mail.MAIN_CF: FileState(current.sha256, "root", "root",
                                                                0o644)}})
    assert mail.mail(ctx) == [] and remote.commands == []


def test_the_hosts_own_mta_and_sites_without_email_are_left_alone():
    changes, remote = step(env(), other_mta=True)
    assert changes == [] and remote.commands == []
    assert step(env(email=""))[0] == []
    assert "postfix" not in system.packages_for(("web",), mta=False)
    assert system.packages_for(("web",), mta=True)[-2:] == list(mail.PACKAGES)


def test_a_second_site_on_the_host_shares_the_relay_or_is_refused():
    production = mail.specs(env())[0].content
    staging_same = env("staging")
    changes, remote = step(staging_same, conf=production)
    assert changes == [] and remote.commands == []  # production's file stays as it is
    staging_other = env("staging", smtp="smtp.example.com:587")
    with pytest.raises(ToolkitError, match=r"^alerts\.smtp: host 192\.0\.2\.1 sends mail as "
                                           r"shop-production configured it"):
        step(staging_other, conf=production)
    # the owner itself may change its relay
    owner = dataclasses.replace(env(), alerts=Alerts(email="ops@example.com",
                                                     smtp="smtp.example.com:587"))
    assert any(mail.MAIN_CF in c for c in step(owner, conf=production)[0])
