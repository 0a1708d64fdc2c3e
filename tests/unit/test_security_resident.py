"""The resident vpskit (``fab deploy --ci``, ``fab rollback --ci``), offline: the copy of the
inventory it reads, what provision plans for it, the flags, and ``vpskit-site deploy|rollback``
run as a program with a registry and a stand-in resident of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from invoke import Exit

from tests.unit.planned import runs
from tests.unit.test_inventory import write
from tests.unit.test_security_ci_login import KEY, SITE, env, with_host
from vpskit import ci_login, inventory, resident, sh, tasks, through_ci
from vpskit.config import Environment, Host
from vpskit.files import FileState
from vpskit.plan import writes
from vpskit.provision import access, system
from vpskit.provision import resident as step
from vpskit.provision.resident import ResidentFacts
from vpskit.steps import Reporter

CI_HOST = Host("192.0.2.1", port=2222, user="deploy", ci_user="ci", ci_key="/k/ci")
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKey root@vps\n"


def test_security_resident_reads_one_host_over_loopback_without_hooks(tmp_path):
    text = with_host("        port: 2222\n        ci_user: ci\n        ci_key: ci_key\n")
    text = text.replace("environments:\n  staging:\n",
                        "hooks:\n  pre_deploy: ./notify.sh\nenvironments:\n  staging:\n"
                        "    hooks:\n      post_deploy: ./notify.sh\n")
    loaded = inventory.load(write(tmp_path, text), "staging", environ={"SECRET_KEY": "k"})
    assert loaded.hooks.pre_deploy and loaded.hooks.post_deploy
    copy = resident.inventory_text(loaded, text)
    doc = yaml.safe_load(copy)
    assert list(doc["environments"]) == ["staging"] and "hooks" not in doc
    assert "hooks" not in doc["environments"]["staging"] and doc["app"]["repo"] == resident.REPO
    assert doc["environments"]["staging"]["hosts"] == [
        {"address": "198.51.100.7", "ssh_address": "127.0.0.1", "port": 2222, "user": "deploy",
         "key": resident.SELF_KEY, "known_hosts": f"/etc/vpskit/ci/{loaded.site}.d/known_hosts",
         "roles": ["web", "worker", "db"]}]
    (tmp_path / "server").mkdir()
    server = write(tmp_path / "server", copy)
    (tmp_path / "server" / ".env.staging").write_text(resident.secrets_text(loaded))
    (tmp_path / "server" / ".env.staging").chmod(0o600)
    again = inventory.load(server, "staging", environ={})
    assert again.site == loaded.site and again.secrets["SECRET_KEY"].reveal() == "k"
    assert not again.hooks.pre_deploy and not again.hooks.post_deploy
    assert again.app.repo == str(tmp_path / "server" / resident.REPO)
    assert again.hosts[0].ssh_target == "127.0.0.1" and again.hosts[0].address == "198.51.100.7"


def test_security_resident_reaches_the_other_hosts_at_their_private_addresses(tmp_path):
    """Every host keeps its address and private address (the lb's upstreams, the db's URLs
    name them); only where SSH connects changes."""
    text = with_host("        ci_user: ci\n        ci_key: ci_key\n        roles: [web]\n"
                     "      - address: 198.51.100.8\n        private_address: 10.0.0.8\n"
                     "        roles: [db]\n")
    loaded = inventory.load(write(tmp_path, text), "staging", environ={"SECRET_KEY": "k"})
    hosts = yaml.safe_load(resident.inventory_text(loaded, text))["environments"]["staging"][
        "hosts"]
    assert [(h["address"], h["ssh_address"], h.get("private_address")) for h in hosts] == [
        ("198.51.100.7", "127.0.0.1", None), ("198.51.100.8", "10.0.0.8", "10.0.0.8")]
    assert resident.members(loaded) == (loaded.hosts[1],)
    keys = {h.address: HOST_KEY for h in loaded.hosts}
    assert resident.known_hosts_text(loaded, keys) == (
        "127.0.0.1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKey\n"
        "10.0.0.8 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKey\n")
    assert resident.member_options(loaded) == 'from="198.51.100.7",restrict'


def two_hosts(first: Host) -> Environment:
    one = env(first)
    return replace(one, hosts=(first, MEMBER))


MEMBER = Host("192.0.2.2", roles=("db",), private_address="10.0.0.2")


def test_security_resident_lives_on_the_first_host_with_a_ci_login_only():
    assert resident.serves(env(CI_HOST), CI_HOST)
    assert resident.serves(two_hosts(CI_HOST), CI_HOST)
    assert resident.members(two_hosts(CI_HOST)) == (MEMBER,)
    plain = Host("192.0.2.1")
    assert not resident.serves(env(plain), plain) and resident.members(two_hosts(plain)) == ()
    later = replace(two_hosts(plain), hosts=(plain, replace(MEMBER, ci_user="ci", ci_key="/k")))
    assert resident.orchestrator(later) is None  # a CI login for backups and logs only
    assert "git" in system.wanted_packages(env(CI_HOST), CI_HOST, mta=False)
    assert "git" not in system.wanted_packages(env(plain), plain, mta=False)
    assert (f"AuthorizedKeysFile .ssh/authorized_keys {resident.SELF_AUTHORIZED}\n"
            in access.sshd_config(root_login=False))


def facts(**changes) -> ResidentFacts:
    found = dict(resident_files={}, resident_stamp=None, self_public_key=None,
                 resident_host_keys={CI_HOST.address: HOST_KEY}, resident_package=b"tar",
                 resident_pins=("fabric==3.2.3",), resident_inventory="app: {}\n")
    return ResidentFacts(**{**found, **changes})


def states(plan) -> dict[str, FileState]:
    """The files ``plan`` writes, as the server would then hold them."""
    return {s.path: FileState(s.sha256, s.owner, s.group, s.mode)
            for a in plan.actions if hasattr(a, "specs") for s in a.specs}


def test_security_resident_plan_installs_once_and_makes_the_self_key_once():
    e = env(CI_HOST)
    made = step.self_key(e, CI_HOST, facts())
    assert runs(made) == [["bash", "-c", step.SELF_KEY_SCRIPT, "self-key", resident.SELF_KEY]]
    assert made.actions[0].read[:2] == ("printed", "self_public_key")
    assert step.self_key(e, CI_HOST, facts(self_public_key=KEY)).actions == ()
    public = KEY + "\n"
    first = step.resident_vpskit(e, CI_HOST, facts(self_public_key=public))
    digest = resident.digest(b"tar", ["fabric==3.2.3"])
    (install,) = runs(first)
    assert install[:5] == ["bash", "-c", step.INSTALL_SCRIPT, "resident-install", resident.HOME]
    assert install[5:] == [digest, "fabric==3.2.3"]
    folder = f"/etc/vpskit/ci/{SITE}.d"
    assert writes(first) == [f"{folder}/inventory.yml", f"{folder}/.env.production",
                             f"{folder}/known_hosts", resident.SELF_AUTHORIZED]
    specs = {s.path: s for a in first.actions if hasattr(a, "specs") for s in a.specs}
    assert specs[f"{folder}/.env.production"].secret
    assert all(specs[p].mode == 0o600 and specs[p].owner == "root" for p in writes(first)[:3])
    assert specs[f"{folder}/known_hosts"].content == (
        "[127.0.0.1]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKey\n")
    authorized = specs[resident.SELF_AUTHORIZED].content
    assert authorized == f'from="127.0.0.1,::1",restrict {KEY.rsplit(" ", 1)[0]} vpskit-self\n'
    again = step.resident_vpskit(e, CI_HOST, facts(resident_files=states(first),
                                                   resident_stamp=digest, self_public_key=public,
                                                   self_authorized=authorized))
    assert again.actions == ()


def test_self_key_script_makes_the_key_once_and_prints_its_public_half(tmp_path):
    key = tmp_path / "self" / "id_ed25519"
    printed = [subprocess.run(["bash", "-c", step.SELF_KEY_SCRIPT, "self-key", str(key)],
                              check=True, timeout=30, capture_output=True, text=True).stdout
               for _ in range(2)]
    assert printed[0] == printed[1] == (tmp_path / "self" / "id_ed25519.pub").read_text()
    assert printed[0].startswith("ssh-ed25519 ") and printed[0].strip().endswith(resident.SELF_TAG)
    assert oct(key.parent.stat().st_mode & 0o777) == "0o700"


def test_security_other_hosts_allow_the_resident_key_from_the_first_host_only():
    """Each site keeps its own line in the shared file; the others' lines stay."""
    e, tag = two_hosts(CI_HOST), f"vpskit-resident:{SITE}"
    others = ('from="127.0.0.1,::1",restrict ssh-ed25519 OWN vpskit-self\n'
              'restrict ssh-ed25519 OTHER vpskit-resident:blog-production\n')
    plan = step.resident_vpskit(e, MEMBER, facts(self_public_key=KEY, self_authorized=others))
    assert runs(plan) == [] and writes(plan) == [resident.SELF_AUTHORIZED]
    (spec,) = (s for a in plan.actions if hasattr(a, "specs") for s in a.specs)
    line = f'from="192.0.2.1",restrict {KEY.rsplit(" ", 1)[0]} {tag}\n'
    assert spec.content == others + line and spec.mode == 0o644
    assert step.resident_vpskit(e, MEMBER, facts(self_public_key=KEY, self_authorized=(
        others + line), resident_files=states(plan))).actions == ()
    without = two_hosts(Host("192.0.2.1"))
    gone = step.resident_vpskit(without, MEMBER, facts(self_authorized=others + line,
                                                       resident_files=states(plan)))
    (spec,) = (s for a in gone.actions if hasattr(a, "specs") for s in a.specs)
    assert spec.content == others
    assert step.resident_vpskit(without, MEMBER, facts(self_authorized=others)).actions == ()


def test_security_without_a_ci_login_the_sites_copy_goes():
    plain = Host("192.0.2.1")
    folder = f"/etc/vpskit/ci/{SITE}.d"
    stale = {f"{folder}/.env.production": FileState("x", "root", "root", 0o600)}
    gone = step.resident_vpskit(env(plain), plain, facts(resident_files=stale))
    assert runs(gone) == [["rm", "-rf", folder]]
    assert step.resident_vpskit(env(plain), plain, facts()).actions == ()
    assert step.local_facts(env(plain), plain) == {}


def test_the_resident_goes_with_the_last_site_deploying_through_it():
    plain = Host("192.0.2.1")
    own = 'from="127.0.0.1,::1",restrict ssh-ed25519 OWN vpskit-self\n'
    last = step.resident_vpskit(env(plain), plain, facts(
        resident_stamp="d\n", resident_sites=[SITE], self_authorized=own,
        resident_files={f"/etc/vpskit/ci/{SITE}.d/inventory.yml": FileState("x", "root", "root",
                                                                           0o600)}))
    assert runs(last) == [["rm", "-rf", f"/etc/vpskit/ci/{SITE}.d"],
                          ["rm", "-rf", resident.HOME, "/etc/vpskit/self"]]
    (spec,) = (s for a in last.actions if hasattr(a, "specs") for s in a.specs)
    assert spec.path == resident.SELF_AUTHORIZED and spec.content == ""
    kept = step.resident_vpskit(env(plain), plain, facts(
        resident_stamp="d\n", resident_sites=[SITE, "blog-production"], self_authorized=own))
    assert kept.actions == ()


@pytest.mark.parametrize("task, flags, says", [
    (tasks.deploy, {"hosts": "192.0.2.1"}, "--ci does not take --hosts"),
    (tasks.deploy, {"role": "web", "maintenance": True}, "--ci does not take --role$"),
    (tasks.rollback, {"dry_run": True}, "--ci does not take --dry-run"),
    (tasks.restore, {}, "--ci restores a backup on the server with --yes"),
    (tasks.restore, {"yes": True, "from_": "offsite"}, "drop --from, add --yes"),
])
def test_ci_flag_refuses_what_the_resident_does_not_take(tmp_path, task, flags, says):
    with pytest.raises(Exit, match=says):
        task.body(None, env="staging", inventory=str(tmp_path / "none.yml"), ci=True, **flags)


def test_ci_flag_needs_a_ci_user_on_the_first_host():
    with pytest.raises(Exception, match="--ci: environment 'production' needs a ci_user on its "
                                        "first host \\(192.0.2.1\\), whose resident vpskit"):
        through_ci.ci_host(env(Host("192.0.2.1")))
    assert through_ci.ci_host(two_hosts(CI_HOST)) == CI_HOST


# ---- vpskit-site deploy|rollback, run as a program ----------------------------------------------
@pytest.fixture
def helper(tmp_path):
    """``vpskit-site ARGS`` (as user ci, ``stdin`` on its stdin) with a registry, a runs
    folder and a stand-in resident (it prints its arguments and folder) in ``tmp_path``."""
    fake = tmp_path / "resident"
    fake.write_text("#!/bin/sh\necho \"$@\"; ls -A; stat -c %a .env.production\n")
    fake.chmod(0o755)
    program = (sh.program("site_helper")
               .replace(f'"{ci_login.REGISTRY}"', repr(str(tmp_path / "ci")))
               .replace('"/usr/local/lib/vpskit-site"', repr(str(tmp_path)))
               .replace('"/var/lib/vpskit-site"', repr(str(tmp_path / "runs")))
               .replace(f'"{resident.PYTHON}"', repr(str(fake))))
    (tmp_path / "site_helper.py").write_text(program)
    (tmp_path / "prune_backups.py").write_text(sh.program("prune_backups"))
    config = tmp_path / "ci" / f"{SITE}.d"
    config.mkdir(parents=True)
    (config / "inventory.yml").write_text("app: {}\n")
    (config / ".env.production").write_text("SECRET_KEY=k\n")
    backups = tmp_path / "backups"
    backups.mkdir()
    (backups / f"{SITE}-20261202T010000Z.dump").write_bytes(b"dump")
    entry = {"site": SITE, "users": ["ci"], "env": "production", "config": str(config),
             "backup_dir": str(backups)}
    (tmp_path / "ci" / f"{SITE}.json").write_text(json.dumps(entry))
    (tmp_path / "ci" / "other-production.json").write_text(json.dumps(
        {"site": "other-production", "users": ["ci"]}))

    def run(*args: str, stdin: bytes = b"") -> tuple[int, str, str]:
        done = subprocess.run([sys.executable, "-I", str(tmp_path / "site_helper.py"), *args],
                              input=stdin, capture_output=True, timeout=60,
                              env={**os.environ, "SUDO_USER": "ci"})
        return done.returncode, done.stdout.decode(), done.stderr.decode()
    run.runs = tmp_path / "runs"
    return run


def bundle_of(tmp_path: Path) -> tuple[bytes, str]:
    repo = tmp_path / "app"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t",
                    "commit", "-q", "--allow-empty", "-m", "a"], check=True)
    from vpskit.deploy.source import resolve
    source = resolve(str(repo), "HEAD")
    return source.bundle(), source.sha


def test_security_site_helper_deploys_the_bundles_commit_through_the_resident(helper, tmp_path):
    bundle, sha = bundle_of(tmp_path)
    code, out, err = helper("deploy", SITE, sha, stdin=bundle)
    assert code == 0, err
    args, *listing, mode = out.splitlines()
    folder = args.split("--inventory ")[1].rsplit("/", 1)[0]
    assert args == f"-m vpskit deploy --env production --inventory {folder}/inventory.yml --ref {sha}"
    assert sorted(listing) == [".env.production", "bundle", "inventory.yml", "repo"]
    assert mode == "600" and folder.startswith(str(helper.runs))
    assert list(helper.runs.iterdir()) == []  # the run's folder is gone
    code, out, err = helper("deploy", SITE, sha, "--batch=2", "--maintenance", stdin=bundle)
    assert code == 0 and out.splitlines()[0].endswith(f"--ref {sha} --batch=2 --maintenance"), err
    code, out, _ = helper("rollback", SITE, "20261202T010000Z-abc1234")
    (args, *_) = out.splitlines()
    assert code == 0 and args.startswith("-m vpskit rollback --env production --inventory ")
    assert args.endswith(" --to 20261202T010000Z-abc1234")
    for name in ("latest", f"{SITE}-20261202T010000Z.dump"):
        code, out, _ = helper("restore", SITE, name)
        assert code == 0 and out.splitlines()[0].endswith(f" --file {name} --yes"), out

@pytest.mark.parametrize("args, stdin, says", [
    (("deploy", SITE, "HEAD;id"), b"", "'HEAD;id' is not a full commit sha"),
    (("deploy", SITE, "0" * 40), b"not a bundle", f"not a git bundle holding commit {'0' * 40}"),
    (("rollback", SITE, "--to=x"), b"", "'--to=x' is not a release id"),
    (("rollback", "other-production"), b"", "other-production has no resident vpskit on this host"),
    (("restore", SITE, "/etc/shadow"), b"", f"/etc/shadow is not a backup of {SITE}"),
    (("restore", SITE, "other-production-20261202T010000Z.dump"), b"", "is not a backup of"),
    (("deploy", SITE), b"", "wrong number of arguments"),
    (("deploy", SITE, "0" * 40, "--batch=0"), b"", "'--batch=0': deploy takes --batch=N"),
    (("deploy", SITE, "0" * 40, "--hosts=x"), b"", "'--hosts=x': deploy takes --batch=N"),
    (("deploy", SITE, "0" * 40, "--maintenance", "--maintenance"), b"", "each once"),
])
def test_security_site_helper_refuses_a_deploy_before_acting(helper, args, stdin, says):
    code, out, err = helper(*args, stdin=stdin)
    assert (code, out) == (2, "") and says in err, err
    assert not helper.runs.exists() or list(helper.runs.iterdir()) == []


def test_security_site_helper_restores_by_name_on_the_first_host_of_several(helper, tmp_path):
    """Where the db host is another host, a backup's name is matched whole (the resident
    vpskit finds it there); no other name gets through to ``--file``."""
    path = tmp_path / "ci" / f"{SITE}.json"
    entry = json.loads(path.read_text())
    del entry["backup_dir"]
    path.write_text(json.dumps(entry))
    code, out, _ = helper("restore", SITE, f"{SITE}-20261203T010000Z.dump")
    assert code == 0 and out.splitlines()[0].endswith(f"--file {SITE}-20261203T010000Z.dump "
                                                      f"--yes"), out
    for name in ("inventory.yml", ".env.production", f"{SITE}-x.dump"):
        code, out, err = helper("restore", SITE, name)
        assert (code, out) == (2, "") and f"{name} is not a backup of {SITE}\n" in err, err


def test_ci_deploy_sends_the_batch_and_maintenance_it_was_given(tmp_path, monkeypatch):
    _, sha = bundle_of(tmp_path)
    sent = []
    monkeypatch.setattr(through_ci, "_run", lambda e, host, argv, out, stdin=None:
                        sent.append((host, argv)))
    shop = two_hosts(CI_HOST)
    shop = replace(shop, app=replace(shop.app, repo=str(tmp_path / "app"), ref="HEAD"))
    through_ci.deploy(shop, None, Reporter(quiet=True), batch=2, maintenance=True)
    through_ci.deploy(shop, None, Reporter(quiet=True))
    assert sent == [(CI_HOST, [ci_login.HELPER, "deploy", SITE, sha, "--batch=2",
                               "--maintenance"]),
                    (CI_HOST, [ci_login.HELPER, "deploy", SITE, sha])]
