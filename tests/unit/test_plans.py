"""Every provision step as data: facts in, a plan out (commands, files, hatches, change lines);
a second provision's facts plan nothing. Plans are frozen, and made without the SSH layer."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

import vpskit
from tests.unit.planned import hatches, runs
from tests.unit.test_render import make_env
from vpskit import hatch, plan, removal, render
from vpskit.config import Host
from vpskit.files import FileSpec, FileState
from vpskit.plan import Plan, Write, facts_of, writes
from vpskit.provision import (
    access,
    app,
    cache,
    database,
    firewall,
    hostca,
    offsite,
    system,
    watchdog,
    web,
)
from vpskit.provision.resident import ResidentFacts

ENV = make_env()
HOST = ENV.hosts[0]
PACKAGE = Path(vpskit.__file__).parent
PLAN_MODULES = ["vpskit.plan", "vpskit.job_units", "vpskit.removal", "vpskit.backup_script",
                "vpskit.deploy.switch", "vpskit.deploy.releases",
                *(f"vpskit.provision.{p.stem}" for p in sorted((PACKAGE / "provision").glob("*.py"))
                  if p.stem not in ("__init__", "runner"))]
SSH_LAYER = ("vpskit.remote", "vpskit.ssh", "vpskit.session", "vpskit.pgadmin",
             "vpskit.sftp_target", "vpskit.applier", "vpskit.hatch", "vpskit.deploy.run",
             "vpskit.deploy.pipeline", "vpskit.deploy.lock", "fabric",
             "paramiko", "invoke", "psycopg")


def held(*specs: FileSpec) -> dict[str, FileState]:
    """File states as a server holding exactly ``specs`` reports them."""
    return {s.path: FileState(s.sha256, s.owner, s.group, s.mode) for s in specs}


def test_plans_are_made_without_the_ssh_layer():
    """Only the applier and the hatch reach a server: importing every step module loads
    none of the SSH layer."""
    program = ("import importlib, sys\nfor m in sys.argv[1:]: importlib.import_module(m)\n"
               "print('\\n'.join(sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", program, *PLAN_MODULES], capture_output=True,
                            text=True, check=True, timeout=60).stdout.split()
    assert [m for m in loaded if m.startswith(SSH_LAYER)] == []
    assert len(PLAN_MODULES) > 12


def test_a_plan_is_frozen_data_naming_only_known_hatches():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Plan().changes = ("x",)  # type: ignore[misc]
    kinds = {f.name: f.type for f in dataclasses.fields(Plan)}
    assert kinds["actions"] == "tuple[Action, ...]" and "Callable" not in str(kinds)
    named = {m for p in PACKAGE.rglob("*.py")
             for m in re.findall(r'plan\.hatch\(\s*"(\w+)"', p.read_text())}
    assert named == set(hatch.HATCHES)  # none missing, none unused


def test_facts_are_typed_per_step_from_the_gathered_names():
    found = {"dirs": {"/srv": ("root", "root", "755")}, "unrelated": 1}
    assert facts_of(app.DirectoryFacts, found) == app.DirectoryFacts({"/srv": ("root", "root",
                                                                                 "755")})
    with pytest.raises(KeyError):  # a fact a step declares must have been gathered
        facts_of(app.DirectoryFacts, {})
    assert facts_of(system.SystemFacts, {**dict.fromkeys(
        ("os", "resources", "packages", "apt_age", "timezone_ok", "system_files",
         "dpkg_unsettled"))}).other_mta is False  # only gathered when alerts are mailed
    assert facts_of(ResidentFacts, {"resident_files": {}}).resident_host_keys == {}


def system_facts(**overrides) -> system.SystemFacts:
    base = system.SystemFacts(
        os={"ID": "debian", "VERSION_ID": "12"},
        resources={"disk_free_mb": 9000, "mem_mb": 4096, "swap_mb": 0},
        packages=set(system.wanted_packages(ENV, HOST)), apt_age=60, timezone_ok=True,
        system_files=held(system.AUTO_UPGRADES), dpkg_unsettled=False)
    return dataclasses.replace(base, **overrides)


@pytest.mark.parametrize(("overrides", "commands", "changes"), [
    ({}, [], ()),
    ({"apt_age": 10**9}, [[*system.APT_ENV, "update"]], ("apt lists refreshed",)),
    ({"packages": set()}, [[*system.APT_ENV, "update"],
                           [*system.APT_ENV, "install", "--no-install-recommends",
                            *system.wanted_packages(ENV, HOST)]],
     ("apt lists refreshed", f"installed {' '.join(system.wanted_packages(ENV, HOST))}")),
    ({"dpkg_unsettled": True}, [["bash", "-c", system.SETTLE_DPKG]],
     ("waited for apt/dpkg and finished any interrupted install",)),
])
def test_packages_plan(overrides, commands, changes):
    todo = system.packages(ENV, HOST, system_facts(**overrides))
    assert runs(todo) == commands and todo.changes == changes


def test_system_plans_timezone_swap_and_refusals():
    assert system.timezone(ENV, HOST, system_facts()) == Plan()
    zone = system.timezone(ENV, HOST, system_facts(timezone_ok=False))
    assert runs(zone)[0] == ["ln", "-sfn", "/usr/share/zoneinfo/UTC", "/etc/localtime"]
    assert zone.actions[1].stdin == "UTC\n" and zone.changes == ("timezone UTC",)
    small = {"disk_free_mb": 9000, "mem_mb": 1024, "swap_mb": 0}
    assert runs(system.swap(ENV, HOST, system_facts(resources=small))) == [
        ["bash", "-c", system.SWAP_SCRIPT, "swap", "1024"]]
    assert system.swap(ENV, HOST, system_facts()) == Plan()  # 4 GiB of memory
    with pytest.raises(vpskit.errors.ToolkitError, match="only 10 MiB free"):
        system.preflight(ENV, HOST, system_facts(
            resources={"disk_free_mb": 10, "mem_mb": 1, "swap_mb": 0}))


def access_facts(**overrides) -> access.AccessFacts:
    base = access.AccessFacts(users={}, app_group=False, access_files={}, root_keys=None,
                              public_key="ssh-ed25519 AAAA me")
    return dataclasses.replace(base, **overrides)


def test_users_plan_then_nothing():
    todo = access.users(ENV, HOST, access_facts())
    assert [argv[0] for argv in runs(todo)] == ["useradd", "useradd", "usermod", "install"]
    assert writes(todo) == [access.authorized_keys_path("deploy"), access.sudoers_path("deploy")]
    assert todo.changes[:3] == ("user deploy created", "system user shop-production created",
                                "www-data joined group shop-production")
    keys, sudoers = todo.actions[-1].specs
    done = access_facts(users={"deploy": [], "shop-production": [],
                               "www-data": ["shop-production"]},
                        access_files=held(keys, sudoers))
    assert access.users(ENV, HOST, done) == Plan()
    with pytest.raises(vpskit.errors.ToolkitError, match="no public key to give user deploy"):
        access.users(ENV, HOST, access_facts(public_key=None))


def test_ssh_is_hardened_only_after_the_deploy_users_login_is_seen():
    todo = access.harden_ssh(ENV, HOST, access_facts())
    assert hatches(todo) == [("verify_login",)]
    assert [type(a).__name__ for a in todo.actions] == ["Hatch", "Write", "Run"]
    assert todo.actions[1].validate == ("sshd", "-t") and runs(todo) == [
        ["systemctl", "reload", "ssh"]]
    spec = todo.actions[1].specs[0]
    assert access.harden_ssh(ENV, HOST, access_facts(access_files=held(spec))) == Plan()


def test_firewall_plan_records_the_site_then_allows_its_ports():
    found = firewall.FirewallFacts(ufw="", ufw_sites={}, ufw_files={}, redis_ports={})
    todo = firewall.firewall(ENV, HOST, found)
    assert writes(todo) == [firewall.registry_path("shop-production")]
    assert runs(todo)[0] == ["ufw", "default", "deny", "incoming"]
    assert ["ufw", "allow", "443/tcp", "comment", "vpskit"] in runs(todo)
    assert todo.changes[1:] == tuple(" ".join(argv) for argv in runs(todo))


def test_directories_plan_installs_only_what_differs():
    wanted = app.directories(ENV, HOST)
    have = {path: (owner, group, mode) for path, owner, group, mode in wanted}
    assert app.site_dirs(ENV, HOST, app.DirectoryFacts(have)) == Plan()
    path, owner, group, mode = wanted[1]
    todo = app.site_dirs(ENV, HOST, app.DirectoryFacts({**have, path: (owner, group, "755")}))
    assert runs(todo) == [["install", "-d", "-o", owner, "-g", group, "-m", mode, path]]
    assert todo.changes == (f"directories: {path}",)


def test_app_plan_writes_env_and_units_then_asks_for_the_restart():
    found = app.AppFacts(app_files={}, app_env={"KEPT": "1"},
                         managed_env={"DATABASE_URL": "postgres://u:p@127.0.0.1:5432/d"})
    todo = app.app_service(ENV, HOST, found)
    env_file = todo.actions[0].specs[0]
    assert env_file.secret and env_file.mode == 0o600 and 'KEPT="1"' in env_file.content
    assert runs(todo) == [["systemctl", "daemon-reload"]] and todo.outputs["restart_app"]
    again = app.app_service(ENV, HOST, dataclasses.replace(
        found, app_files=held(*todo.actions[0].specs)))
    assert again.actions == () and again.outputs["restart_app"] is False
    assert app.restart(ENV, HOST, app.RestartFacts("", True)) == Plan()  # nothing deployed
    restart = app.restart(ENV, HOST, app.RestartFacts("20261201T000000Z-abc", True))
    assert hatches(restart) == [("restart_app",)]
    assert restart.actions[0].would == "20261201T000000Z-abc would restart as a new release"


def test_nginx_plan_validates_reloads_and_tells_later_steps_the_default_is_gone():
    found = web.WebFacts(nginx_files={}, nginx_default=True, cert_ready=False, nginx_logs={})
    todo = web.nginx(ENV, HOST, found)
    assert runs(todo)[0][:2] == ["install", "-m"] and ["rm", "-f", web.DEFAULT_SITE] in runs(todo)
    write = next(a for a in todo.actions if isinstance(a, Write))
    assert write.validate == ("nginx", "-t", "-q") and render.COMMON_CONF in writes(todo)
    assert runs(todo)[-1] == ["bash", "-c", web.SWITCH_NGINX, "reload-nginx", "10"]
    assert todo.outputs["nginx_default"] is False
    done = web.WebFacts(nginx_files=held(*write.specs), nginx_default=False, cert_ready=False,
                        nginx_logs={render.access_log_path(ENV): web.LOG_OWNER})
    assert web.nginx(ENV, HOST, done) == Plan()


def database_facts(**overrides) -> database.DatabaseFacts:
    base = database.DatabaseFacts(pg_version="15", pg_hba="", pg_files={}, credentials=None,
                                  pg_owners={}, postgres_cert="", host_ca=None, app_env={})
    return dataclasses.replace(base, **overrides)


def test_postgres_plan_keeps_a_working_password_else_asks_the_hatch():
    todo = database.postgres(ENV, HOST, database_facts())
    assert ["systemctl", "restart", "postgresql@15-main"] in runs(todo)
    assert hatches(todo) == [("postgres_role", None)]
    assert todo.actions[-1].would == "role shop_production + database shop_production"
    url = database.database_url(ENV.db_user, "s3cret", ENV.db_name)
    kept = database.postgres(ENV, HOST, database_facts(
        app_env={"DATABASE_URL": url}, pg_owners={ENV.db_name: ENV.db_user}))
    assert hatches(kept) == [] and kept.app_env["DATABASE_URL"] == url
    assert kept.secrets == ("s3cret",)


def test_redis_plan_keeps_port_and_password_and_gives_the_url():
    found = cache.CacheFacts(redis_conf="requirepass pw1\n", redis_files={}, redis_ports={},
                             redis_shared_sites=set(), redis_unit=("", ""),
                             redis_shared_unit=False, redis_shared_conf=False, redis_cert="",
                             host_ca=None)
    todo = cache.redis(ENV, HOST, found)
    assert todo.app_env["REDIS_URL"] == f"redis://:pw1@127.0.0.1:{cache.FIRST_PORT}/0"
    assert "pw1" in todo.secrets and hatches(todo) == []  # one host: no TLS certificate
    assert runs(todo) == [["systemctl", "enable", "--quiet", cache.unit("shop-production")],
                          ["systemctl", "restart", cache.unit("shop-production")]]


def test_certificates_are_issued_by_the_hatch_which_voids_others_under_a_new_ca():
    assert hostca.certificate(HOST, "postgres", "IP:203.0.113.20", "CA") == Plan()
    todo = hostca.certificate(HOST, "postgres", "", "CA")
    assert hatches(todo) == [("issue_certificate", "postgres", "IP:203.0.113.20", "CA")]
    assert hostca.issued_facts("postgres", "IP:x", "CA\n", "CA") == {
        "host_ca": "CA\n", "postgres_cert": "IP:x"}
    assert hostca.issued_facts("redis", "IP:x", "NEW", "CA")["postgres_cert"] == ""
    trust = hostca.trust("/etc/ssl/vpskit/db-ca.crt", ["CA"], ENV, HOST,
                         hostca.TrustFacts({}))
    assert runs(trust)[0][:2] == ["install", "-d"] and writes(trust) == [
        "/etc/ssl/vpskit/db-ca.crt"]


def test_watchdog_and_offsite_plans_remove_what_is_no_longer_asked_for():
    owned = [render.watchdog_config(ENV), *render.watchdog_units(ENV)]
    found = watchdog.WatchdogFacts(watchdog_files=held(*(FileSpec(p, "") for p in owned)),
                                   watchdog_timer=("active", "enabled"))
    todo = watchdog.watchdog(ENV, HOST, found)  # no alerts receiver: the site's files go
    assert runs(todo) == [["systemctl", "disable", "--now",
                           render.watchdog_unit_name(ENV, "timer")],
                          ["rm", "-f", *owned], ["systemctl", "daemon-reload"]]
    assert todo.actions[0].check is False
    present = offsite.OffsiteFacts(held(FileSpec(render.offsite_config(ENV), "")))
    assert runs(offsite.offsite_config(ENV, HOST, present)) == [
        ["rm", "-f", render.offsite_config(ENV)]]
    assert offsite.server_key(ENV, HOST, present) == Plan()


def test_plans_add_up_in_order():
    one = plan.run("a", change="did a") + plan.outputs(x=1)
    two = plan.run("b") + plan.outputs(x=2) + plan.app_env({"K": "v"}, ["v"])
    both = one + two
    assert runs(both) == [["a"], ["b"]] and both.changes == ("did a",)
    assert dict(both.outputs) == {"x": 2} and dict(both.app_env) == {"K": "v"}
    assert both.secrets == ("v",)
    assert plan.write([FileSpec("/f", "x")], held(FileSpec("/f", "x"))) == Plan()
    assert plan.write([FileSpec("/f", "x")], {}).changes == ("/f (created)",)
    assert Host("h").roles  # plans take the config's own types


def test_remove_plans_exactly_what_of_the_site_is_there():
    site_facts = removal.SiteFacts(
        site_units=["shop-production-web@1.service"],
        site_unit_files=["/etc/systemd/system/shop-production-web@.service"], site_cert=True,
        site_paths=dict.fromkeys([render.site_path(ENV), "/srv/shop-production"],
                                 ("root", "root", "755")),
        users={"shop-production": ["shop-production"]}, site_group=True, ufw="", ufw_sites={})
    todo = removal.site(ENV, HOST, site_facts)
    assert todo.changes == (
        "unit shop-production-web@1.service", "unit files shop-production-*",
        "certificate shop-production", render.site_path(ENV), "/srv/shop-production",
        "user shop-production", "group shop-production")
    assert ["rm", "-rf", "--", "/srv/shop-production"] in runs(todo)
    assert ["bash", "-c", web.SWITCH_NGINX, "reload-nginx", "10"] in runs(todo)  # after the site
    nothing = removal.SiteFacts([], [], False, {}, {}, False, "", {})
    assert removal.site(ENV, HOST, nothing) == Plan()


def test_remove_plans_the_database_through_the_hatch_and_the_redis_instance():
    found = removal.ServiceFacts(
        pg_version="15", pg_hba="# vpskit shop-production begin\nx\n# vpskit shop-production end\n",
        pg_claims={"shop-production": {}}, pg_owners={"shop_production": "shop_production"},
        pg_roles={"shop_production"}, redis_unit=("enabled", "active"),
        redis_paths={cache.conf_path("shop-production"): ("root", "redis", "640")},
        redis_shared_db="3\n")
    todo = removal.services(ENV, HOST, found)
    assert hatches(todo) == [("drop_database",)]
    assert todo.actions[0].would == ("database shop_production (dumped first), "
                                     "role shop_production")
    assert todo.changes == (
        "/etc/postgresql/15/main/pg_hba.conf: shop-production block",
        database.claim_path("shop-production"), cache.unit("shop-production"),
        cache.conf_path("shop-production"),
        cache.data_file("shop-production"),  # its stop saves it: gone after, whether there or not
        "shared redis database 3")
    assert todo.actions[1].specs[0].content == ""
    gone = removal.ServiceFacts("15", "", {}, {}, set(), ("", "inactive"), {}, None)
    assert removal.services(ENV, HOST, gone) == Plan()
