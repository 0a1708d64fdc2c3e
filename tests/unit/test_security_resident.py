"""The resident vpskit (``fab deploy --ci``, ``fab rollback --ci``), offline: the copy of the
inventory it reads, what provision plans for it, the flags, and ``vpskit-site deploy|rollback``
run as a program with a registry and a stand-in resident of its own."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from invoke import Exit

from tests.unit.planned import runs
from tests.unit.test_inventory import write
from tests.unit.test_security_ci_login import KEY, SITE, env, with_host
from vpskit import ci_login, inventory, resident, sh, tasks, through_ci
from vpskit.config import Host
from vpskit.files import FileState
from vpskit.plan import writes
from vpskit.provision import access, system
from vpskit.provision import resident as step
from vpskit.provision.resident import ResidentFacts

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
        {"address": "127.0.0.1", "port": 2222, "user": "deploy", "key": resident.SELF_KEY,
         "known_hosts": resident.SELF_KNOWN_HOSTS, "roles": ["web", "worker", "db"]}]
    (tmp_path / "server").mkdir()
    server = write(tmp_path / "server", copy)
    (tmp_path / "server" / ".env.staging").write_text(resident.secrets_text(loaded))
    (tmp_path / "server" / ".env.staging").chmod(0o600)
    again = inventory.load(server, "staging", environ={})
    assert again.site == loaded.site and again.secrets["SECRET_KEY"].reveal() == "k"
    assert not again.hooks.pre_deploy and not again.hooks.post_deploy
    assert again.app.repo == str(tmp_path / "server" / resident.REPO)


def test_security_resident_lives_on_one_host_environments_with_a_ci_login_only():
    assert resident.serves(env(CI_HOST), CI_HOST)
    two = env(CI_HOST)
    two = type(two)(two.name, (CI_HOST, Host("192.0.2.2", roles=("db",))), two.domains, two.app)
    assert not resident.serves(two, CI_HOST)
    assert not resident.serves(env(Host("192.0.2.1")), Host("192.0.2.1"))
    assert "git" in system.wanted_packages(env(CI_HOST), CI_HOST, mta=False)
    assert "git" not in system.wanted_packages(env(Host("192.0.2.1")), Host("192.0.2.1"),
                                               mta=False)
    assert (f"AuthorizedKeysFile .ssh/authorized_keys {resident.SELF_AUTHORIZED}\n"
            in access.sshd_config(root_login=False))


def facts(**changes) -> ResidentFacts:
    found = dict(resident_files={}, resident_stamp=None, self_public_key=None,
                 host_key=HOST_KEY, resident_package=b"tar", resident_pins=("fabric==3.2.3",),
                 resident_inventory="app: {}\n")
    return ResidentFacts(**{**found, **changes})


def test_security_resident_plan_installs_once_and_makes_the_self_key_once():
    e = env(CI_HOST)
    first = step.resident_vpskit(e, CI_HOST, facts())
    digest = resident.digest(b"tar", ["fabric==3.2.3"])
    install, key = runs(first)
    assert install[:5] == ["bash", "-c", step.INSTALL_SCRIPT, "resident-install", resident.HOME]
    assert install[5:] == [digest, "fabric==3.2.3"]
    assert key[3:] == ["self-key", resident.SELF_KEY, resident.SELF_AUTHORIZED,
                       resident.SELF_OPTIONS]
    folder = f"/etc/vpskit/ci/{SITE}.d"
    assert writes(first) == [f"{folder}/inventory.yml", f"{folder}/.env.production",
                             resident.SELF_KNOWN_HOSTS]
    specs = {s.path: s for a in first.actions if hasattr(a, "specs") for s in a.specs}
    assert specs[f"{folder}/.env.production"].secret
    assert all(specs[p].mode == 0o600 and specs[p].owner == "root" for p in writes(first))
    assert specs[resident.SELF_KNOWN_HOSTS].content == (
        "[127.0.0.1]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKey\n")
    public = KEY + "\n"
    done = {s.path: FileState(s.sha256, s.owner, s.group, s.mode) for s in specs.values()}
    authorized = resident.authorized_text(public)
    assert authorized == f'from="127.0.0.1,::1",restrict {KEY}\n'
    done[resident.SELF_AUTHORIZED] = FileState(hashlib.sha256(authorized.encode()).hexdigest(),
                                               "root", "root", 0o644)
    again = step.resident_vpskit(e, CI_HOST, facts(resident_files=done, resident_stamp=digest,
                                                   self_public_key=public))
    assert again.actions == ()


def test_self_key_script_authorizes_the_line_later_provisions_keep(tmp_path):
    """The first provision's script writes the line the plan's file spec holds after it."""
    key, authorized = tmp_path / "self" / "id_ed25519", tmp_path / "vpskit_self_keys"
    subprocess.run(["bash", "-c", step.SELF_KEY_SCRIPT, "self-key", str(key), str(authorized),
                    resident.SELF_OPTIONS], check=True, timeout=30)
    assert authorized.read_text() == resident.authorized_text((tmp_path / "self" /
                                                               "id_ed25519.pub").read_text())
    assert oct(key.parent.stat().st_mode & 0o777) == "0o700"


def test_security_without_a_ci_login_the_sites_copy_goes():
    plain = Host("192.0.2.1")
    folder = f"/etc/vpskit/ci/{SITE}.d"
    stale = {f"{folder}/.env.production": FileState("x", "root", "root", 0o600)}
    gone = step.resident_vpskit(env(plain), plain, facts(resident_files=stale))
    assert runs(gone) == [["rm", "-rf", folder]]
    assert step.resident_vpskit(env(plain), plain, facts()).actions == ()
    assert step.local_facts(env(plain), plain) == {}


@pytest.mark.parametrize("task, flags, says", [
    (tasks.deploy, {"batch": "2"}, "--ci does not take --batch"),
    (tasks.deploy, {"role": "web", "maintenance": True}, "--ci does not take --role, "
                                                          "--maintenance"),
    (tasks.rollback, {"dry_run": True}, "--ci does not take --dry-run"),
    (tasks.restore, {}, "--ci restores a backup on the server with --yes"),
    (tasks.restore, {"yes": True, "from_": "offsite"}, "drop --from, add --yes"),
])
def test_ci_flag_refuses_what_the_resident_does_not_take(tmp_path, task, flags, says):
    with pytest.raises(Exit, match=says):
        task.body(None, env="staging", inventory=str(tmp_path / "none.yml"), ci=True, **flags)


def test_ci_flag_needs_one_host_with_a_ci_user():
    with pytest.raises(Exception, match="--ci: environment 'production' needs to be one host "
                                        "with a ci_user .* it has 1 host\\(s\\) without ci_user"):
        through_ci.ci_host(env(Host("192.0.2.1")))
    assert through_ci.ci_host(env(CI_HOST)) == CI_HOST


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
])
def test_security_site_helper_refuses_a_deploy_before_acting(helper, args, stdin, says):
    code, out, err = helper(*args, stdin=stdin)
    assert (code, out) == (2, "") and says in err, err
    assert not helper.runs.exists() or list(helper.runs.iterdir()) == []
