"""Off-site copies without a bucket: AWS's own Signature V4 examples, what the server is given
(write credentials and a public key, nothing that reads), retention over a stand-in bucket,
and the inventory's checks of the section."""

from __future__ import annotations

import datetime
import hashlib
import json
import textwrap

import pytest

from vpskit import backup_script, inventory, offsite
from vpskit.config import App, Environment, Host, Offsite
from vpskit.errors import InventoryError, ToolkitError
from vpskit.provision.app import desired_env
from vpskit.secret import Secret
from vpskit.sh import offsite as s3

EMPTY = hashlib.sha256(b"").hexdigest()
AWS_EXAMPLE = ("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
RECIPIENT = "age1ej3s53fgdpqhsr53mw0e5pkncguvccgluraeaxrkns7gt537vu5qqhlm0w"


@pytest.mark.parametrize(("url", "signature"), [
    ("https://examplebucket.s3.amazonaws.com/?lifecycle",
     "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"),
    ("https://examplebucket.s3.amazonaws.com/?max-keys=2&prefix=J",
     "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"),
])
def test_signature_v4_matches_the_aws_documentation_examples(url, signature):
    headers = s3.signed_headers("GET", url, "us-east-1", *AWS_EXAMPLE, EMPTY,
                                datetime.datetime(2013, 5, 24, tzinfo=datetime.UTC))
    assert headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        f"SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={signature}")


def env(**settings) -> Environment:
    return Environment(
        "production", (Host("192.0.2.1"),), ("shop.test",),
        App(name="shop", repo="/tmp/x", entry="shop.wsgi:application"),
        offsite=Offsite(**{"endpoint": "https://s3.example.com", "bucket": "b",
                           "recipient": RECIPIENT, "write_key": "W", "admin_key": "A",
                           "identity": "I", **settings}),
        secrets={"W": Secret("writer:ws"), "A": Secret("admin:as"),
                 "I": Secret("AGE-SECRET-KEY-1XYZ"), "SECRET_KEY": Secret("k")})


def test_the_server_gets_the_write_key_and_the_public_key_alone():
    spec = offsite.server_spec(env())
    assert spec.mode == 0o600 and spec.secret
    assert '"key_id": "writer"' in spec.content and '"secret": "ws"' in spec.content
    assert RECIPIENT in spec.content and '"prefix": "shop-production/"' in spec.content
    assert "admin" not in spec.content and "AGE-SECRET-KEY" not in spec.content
    assert set(desired_env(env(), {}, {})) & {"W", "A", "I"} == set()  # nor does the app
    assert offsite.upload_argv(env(), ["/var/backups/x.dump"])[-2:] == [
        "/etc/vpskit/offsite/shop-production.json", "/var/backups/x.dump"]


def test_the_timer_script_sends_what_it_made_then_proves_it_restores():
    script = backup_script.server_script(env())
    assert '"$offsite" /etc/vpskit/offsite/shop-production.json ' \
           '"/var/backups/shop-production/shop-production-${stamp}.dump"' in script
    order = [script.index(f'bash -c "${word}"') for word in ("archive", "check")]
    assert order[0] < script.index('"$offsite"') < order[1] < script.index('"$prune"')
    assert ('restore-check "$restore" "/var/backups/shop-production/shop-production-${stamp}'
            '.dump" shop_production_restorecheck shop_production') in script
    assert "offsite=" not in backup_script.server_script(env(endpoint=""))


def test_prune_deletes_only_copies_past_keep_days_never_the_newest(monkeypatch):
    names = ["shop-production-20200101T000000Z.dump", "shop-production-20200102T000000Z.dump",
             "shop-production-20200101T000000Z-media.tar.gz",
             f"shop-production-{datetime.datetime.now(datetime.UTC):%Y%m%dT%H%M%SZ}-media.tar.gz"]
    bucket = {f"shop-production/{n}.age" for n in names} | {"shop-production/notes.txt"}
    deleted = []

    def fake(config, key_id, secret, method, key="", query="", body=None, path=None):
        assert (key_id, secret) == ("admin", "as")
        if method == "DELETE":
            deleted.append(key)
            return b""
        contents = "".join(f"<Contents><Key>{k}</Key><Size>1</Size></Contents>" for k in bucket)
        return f"<ListBucketResult><IsTruncated>false</IsTruncated>{contents}" \
               f"</ListBucketResult>".encode()
    monkeypatch.setattr(s3, "request", fake)
    assert offsite.prune(env()) == [names[2], names[0]]  # oldest first; the newest of each stay
    assert deleted == [f"shop-production/{names[2]}.age", f"shop-production/{names[0]}.age"]
    assert offsite.prune(env(admin_key="")) == []  # no operator credentials: nothing pruned
    with pytest.raises(ToolkitError, match="offsite.admin_key"):
        offsite.copies(env(admin_key=""))


INVENTORY = """\
app: {name: shop, repo: x, entry: "shop.wsgi:application"}
tls: {enabled: false}
secrets: [SECRET_KEY]
optional_secrets: [W]
offsite:
  endpoint: https://s3.example.com
  bucket: backups
  recipient: %s
  write_key: W
environments:
  production:
    hosts: [{address: 192.0.2.1}]
    domains: [shop.test]
"""


@pytest.mark.parametrize(("recipient", "write", "expected"), [
    ("age1nope", "w:s", "inventory.yml:8: offsite.recipient: 'age1nope': expected an age public "
                        "key (age1..., from age-keygen -y)"),
    (RECIPIENT, "no-colon", "inventory.yml:9: offsite.write_key: secret 'W' is not "
                            "KEY_ID:SECRET; set both, joined by ':'"),
])
def test_offsite_settings_are_checked_before_connecting(tmp_path, recipient, write, expected):
    path = tmp_path / "inventory.yml"
    path.write_text(textwrap.dedent(INVENTORY % recipient))
    with pytest.raises(InventoryError) as error:
        inventory.load(path, "production", environ={"SECRET_KEY": "k", "W": write})
    assert str(error.value) == expected


def test_offsite_without_a_bucket_names_the_missing_key(tmp_path):
    path = tmp_path / "inventory.yml"
    path.write_text(INVENTORY.replace("  bucket: backups\n", "") % RECIPIENT)
    with pytest.raises(InventoryError, match=r"offsite.bucket: missing required key"):
        inventory.load(path, "production", environ={"SECRET_KEY": "k", "W": "w:s"})


SFTP = """\
app: {name: shop, repo: x, entry: "shop.wsgi:application"}
tls: {enabled: false}
secrets: [SECRET_KEY]
offsite:
  endpoint: %s
  key: ~/.ssh/id_ed25519
  recipient: %s
environments:
  production:
    hosts: [{address: 192.0.2.1}]
    domains: [shop.test]
"""


def test_an_sftp_target_needs_no_bucket_or_credentials_and_its_paths_expand(tmp_path):
    path = tmp_path / "inventory.yml"
    path.write_text(SFTP % ("sftp://backup@198.51.100.4:2222/srv/offsite/", RECIPIENT))
    env = inventory.load(path, "production", environ={"SECRET_KEY": "k"})
    assert env.offsite.sftp_target == ("backup", "198.51.100.4", 2222, "/srv/offsite/")
    assert env.offsite.key.endswith("/.ssh/id_ed25519") and "~" not in env.offsite.key
    assert offsite.where(env) == "backup@198.51.100.4:/srv/offsite/shop-production/"
    assert offsite.has_admin(env)  # the operator's own SSH login
    config = json.loads(offsite.server_spec(env).content)
    assert config == {"kind": "sftp", "user": "backup", "host": "198.51.100.4", "port": 2222,
                      "dir": "/srv/offsite/shop-production/", "made": 2,
                      "key": "/etc/vpskit/offsite/shop-production.sftp-key",
                      "known_hosts": "/etc/vpskit/offsite/shop-production.known_hosts",
                      "recipient": RECIPIENT,
                      "stamp": "/var/lib/vpskit/offsite/shop-production.last"}


@pytest.mark.parametrize("endpoint", ["sftp://198.51.100.4/srv/", "sftp://backup@host:22/srv",
                                      "sftp://backup@host/srv/$(reboot)/", "ftp://backup@h/x/"])
def test_a_bad_sftp_target_is_refused_at_load(tmp_path, endpoint):
    path = tmp_path / "inventory.yml"
    path.write_text(SFTP % (endpoint, RECIPIENT))
    with pytest.raises(InventoryError, match=r"^inventory.yml:5: offsite.endpoint: .*expected an "
                                             r"S3 endpoint's URL .* or an SFTP target such as"):
        inventory.load(path, "production", environ={"SECRET_KEY": "k"})


def test_sftp_names_carry_a_random_part_the_operator_strips():
    assert s3.SFTP_NAME.fullmatch("shop-production-20260101T000000Z.dump.0123456789abcdef.age"
                                  )[1] == "shop-production-20260101T000000Z.dump"
    assert s3.SFTP_NAME.fullmatch("shop-production-20260101T000000Z.dump.age") is None
    for denied in ("read", "opendir", "readdir", "remove", "rename", "posix-rename", "setstat",
                   "fsetstat", "symlink", "hardlink", "copy-data"):
        assert denied not in s3.SFTP_ALLOWED.split(",")
