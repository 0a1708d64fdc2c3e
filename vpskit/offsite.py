"""Off-site copies of a site's backups (``offsite:`` in the inventory): the db host encrypts
each new backup to the operator's age public key and sends it to the bucket with write-only
credentials, or to the SFTP target with a key that may only write (``vpskit/sh/offsite.py``);
this side, with the operator's own credentials or SSH key (:mod:`vpskit.sftp_target`), lists
them, prunes them to ``offsite.keep_days`` (never the newest) and fetches one back and
decrypts it for ``fab restore --from offsite``. A server broken into holds nothing that reads
or deletes an older copy."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

from vpskit import render, sh
from vpskit.config import Environment
from vpskit.errors import ToolkitError
from vpskit.files import FileSpec
from vpskit.sh import offsite as s3
from vpskit.sh.prune_backups import STAMP, prune_plan

if TYPE_CHECKING:
    from vpskit import sftp_target

PROGRAM = sh.program("offsite")


def _sftp_target(env: Environment) -> AbstractContextManager[sftp_target.Target]:
    """The operator's session on the SFTP target (SSH loads here: the server's off-site
    configuration is planned without it)."""
    from vpskit import sftp_target
    return sftp_target.opened(env)


def where(env: Environment) -> str:
    """Where the copies are, for messages: ``bucket/prefix/`` or ``user@host:/dir/prefix/``."""
    if env.offsite.sftp:
        user, host, _, directory = env.offsite.sftp_target
        return f"{user}@{host}:{directory}{env.offsite_prefix}"
    return f"{env.offsite.bucket}/{env.offsite_prefix}"


def bucket(env: Environment) -> dict[str, str]:
    o = env.offsite
    return {"endpoint": o.endpoint, "bucket": o.bucket, "prefix": env.offsite_prefix,
            "region": o.region}


def _credentials(env: Environment, name: str) -> tuple[str, str]:
    key_id, _, secret = env.secrets[name].reveal().partition(":")
    return key_id, secret


def server_spec(env: Environment) -> FileSpec:
    """The db host's configuration: where to, the public key, the write credentials, or for
    SFTP the paths of the server's key and of the target's host keys (pure)."""
    if env.offsite.sftp:
        user, host, port, directory = env.offsite.sftp_target
        to = {"kind": "sftp", "user": user, "host": host, "port": port,
              "dir": directory + env.offsite_prefix, "made": len(directory.strip("/").split("/")),
              "key": render.offsite_key(env), "known_hosts": render.offsite_known_hosts(env)}
    else:
        key_id, secret = _credentials(env, env.offsite.write_key)
        to = {**bucket(env), "key_id": key_id, "secret": secret}
    config = {**to, "recipient": env.offsite.recipient, "stamp": render.offsite_stamp(env)}
    return FileSpec(render.offsite_config(env), json.dumps(config, indent=1, sort_keys=True)
                    + "\n", mode=0o600, secret=True)


def upload_argv(env: Environment, paths: list[str]) -> list[str]:
    """The server command that encrypts and sends ``paths``."""
    return ["python3", "-c", PROGRAM, render.offsite_config(env), *paths]


def has_admin(env: Environment) -> bool:
    """Whether the operator can list, prune and fetch: with S3, its credentials are set; an
    SFTP target takes the operator's own SSH key."""
    return env.offsite.sftp or (bool(env.offsite.admin_key)
                                and env.offsite.admin_key in env.secrets)


def _admin(env: Environment, what: str) -> tuple[dict[str, str], str, str]:
    if not has_admin(env):
        raise ToolkitError(f"{what} needs the operator's off-site credentials: set "
                           f"offsite.admin_key to a secret holding KEY_ID:SECRET "
                           f"(in .env.{env.name} or the environment)")
    return bucket(env), *_credentials(env, env.offsite.admin_key)


def copies(env: Environment) -> dict[str, int]:
    """``{backup name: size}`` of the site's off-site copies (the name without ``.age``)."""
    if env.offsite.sftp:
        with _sftp_target(env) as target:
            return {name: size for name, (_, size) in target.copies().items()}
    config, key_id, secret = _admin(env, "listing off-site copies")
    found, token = {}, ""
    while True:
        query = "list-type=2&prefix=" + s3.quote(env.offsite_prefix) + (
            f"&continuation-token={s3.quote(token)}" if token else "")
        try:
            body = s3.request(config, key_id, secret, "GET", query=query)
        except OSError as exc:
            raise ToolkitError(f"off-site copies of {env.site}: {exc}") from None
        root = ElementTree.fromstring(body)
        ns = root.tag.partition("}")[0] + "}" if root.tag.startswith("{") else ""
        for item in root.iter(f"{ns}Contents"):
            key, size = item.findtext(f"{ns}Key", ""), int(item.findtext(f"{ns}Size", "0"))
            name = key[len(env.offsite_prefix):]
            if key.endswith(s3.SUFFIX) and "/" not in name:
                found[name[:-len(s3.SUFFIX)]] = size
        token = root.findtext(f"{ns}NextContinuationToken") or ""
        if root.findtext(f"{ns}IsTruncated") != "true" or not token:
            return found


def prune(env: Environment, now: float | None = None) -> list[str]:
    """Delete the copies past ``offsite.keep_days`` (the newest dump and media archive stay);
    return their names. Nothing when the operator's credentials are not set."""
    if not has_admin(env):
        return []
    since = (time.time() if now is None else now) - env.offsite.keep_days * 86400
    cutoff = time.strftime(STAMP, time.gmtime(since))
    if env.offsite.sftp:
        with _sftp_target(env) as target:
            doomed = prune_plan(env.site, target.copies(), cutoff)
            for name in doomed:
                target.delete(name)
        return doomed
    config, key_id, secret = _admin(env, "pruning off-site copies")
    doomed = prune_plan(env.site, copies(env), cutoff)
    for name in doomed:
        try:
            s3.request(config, key_id, secret, "DELETE", f"{env.offsite_prefix}{name}{s3.SUFFIX}")
        except OSError as exc:
            raise ToolkitError(f"pruning off-site copies of {env.site}: {exc}") from None
    return doomed


def _download(env: Environment, name: str) -> bytes:
    if env.offsite.sftp:
        with _sftp_target(env) as target:
            return target.read(name)
    config, key_id, secret = _admin(env, "restoring an off-site copy")
    try:
        return s3.request(config, key_id, secret, "GET", f"{env.offsite_prefix}{name}{s3.SUFFIX}")
    except OSError as exc:
        raise ToolkitError(f"off-site copy {name}: {exc}") from None


def fetch(env: Environment, name: str, directory: Path) -> Path:
    """Download the copy ``name`` and decrypt it into ``directory`` with the operator's age
    identity (``age`` must be installed here); the decrypted file's path."""
    if not env.offsite.identity or env.offsite.identity not in env.secrets:
        raise ToolkitError(f"restoring an off-site copy needs the age identity: set "
                           f"offsite.identity to a secret holding AGE-SECRET-KEY-1... "
                           f"(in .env.{env.name} or the environment)")
    body = _download(env, name)
    target = directory / name
    with tempfile.TemporaryDirectory() as scratch:
        identity = Path(scratch) / "identity"
        identity.touch(mode=0o600)
        identity.write_text(env.secrets[env.offsite.identity].reveal() + "\n")
        try:
            subprocess.run(["age", "--decrypt", "--identity", str(identity), "--output",
                            str(target)], input=body, check=True, capture_output=True)
        except FileNotFoundError:
            raise ToolkitError("age is not installed here (apt-get install age)") from None
        except subprocess.CalledProcessError as exc:
            raise ToolkitError(f"off-site copy {name} does not decrypt with "
                               f"{env.offsite.identity}: {exc.stderr.decode().strip()}") from None
    os.chmod(target, 0o600)
    return target
