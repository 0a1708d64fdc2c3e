"""Off-site copies (standard library only) in an S3-compatible bucket, with requests signed
with AWS Signature V4, path-style (``ENDPOINT/BUCKET/KEY``), as AWS, Backblaze B2, Wasabi, MinIO
and moto take them; or on an SFTP host, through OpenSSH's ``sftp`` with the server's own key,
which the target lets write new files only (:data:`SFTP_ALLOWED`).

On the server (as root: ``python3 -c PROGRAM CONFIG FILE...``): each FILE is encrypted with
``age`` to the operator's public key, then PUT under the configured prefix (or put in the
target's directory under a name with a random part, so a server broken into cannot name an
older copy to overwrite it), and the stamp file touched; CONFIG (JSON, root's alone) holds
where to, that public key, the server's write credentials (or key file) and the stamp file's
path. The server keeps no key that decrypts, and lists, reads or deletes nothing: the
operator's side does that with its own credentials (:mod:`vpskit.offsite`).
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import os
import re
import secrets
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

SUFFIX = ".age"  # what an encrypted copy's key ends with
TIMEOUT = 300  # seconds for one request
# What the SFTP target's sftp-server answers for the server's key: create and write files (and
# the site's directory); never read, list, remove, rename or change one.
SFTP_ALLOWED = "open,close,write,lstat,fstat,stat,realpath,mkdir,limits,expand-path"
SFTP_NAME = re.compile(r"(.+)\.[0-9a-f]{16}" + re.escape(SUFFIX))  # backup name . random . age


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def quote(text: str, safe: str = "-_.~") -> str:
    return urllib.parse.quote(text, safe=safe)


def signed_headers(method: str, url: str, region: str, key_id: str, secret: str,
                   payload_sha256: str, now: datetime.datetime) -> dict[str, str]:
    """The headers that sign a request with AWS Signature V4 for S3 (pure)."""
    parts = urllib.parse.urlsplit(url)
    stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    query = sorted(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    canonical_query = "&".join(f"{quote(k)}={quote(v)}" for k, v in query)
    headers = {"host": parts.netloc, "x-amz-content-sha256": payload_sha256, "x-amz-date": stamp}
    names = ";".join(sorted(headers))
    canonical = "\n".join([method, quote(urllib.parse.unquote(parts.path) or "/", "/-_.~"),
                           canonical_query,
                           "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)), names,
                           payload_sha256])
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(f"AWS4{secret}".encode(), day), region), "s3"), "aws4_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return {"x-amz-content-sha256": payload_sha256, "x-amz-date": stamp,
            "Authorization": f"AWS4-HMAC-SHA256 Credential={key_id}/{scope}, "
                             f"SignedHeaders={names}, Signature={signature}"}


def object_url(config: dict, key: str = "", query: str = "") -> str:
    url = f"{config['endpoint'].rstrip('/')}/{quote(config['bucket'])}"
    url += f"/{quote(key, '/-_.~')}" if key else ""
    return f"{url}?{query}" if query else url


def request(config: dict, key_id: str, secret: str, method: str, key: str = "",
            query: str = "", body: bytes | None = None, path: str | None = None) -> bytes:
    """One signed request; the body is ``body``, or the file at ``path`` (streamed). Raises
    :class:`OSError` with S3's own words on failure."""
    url = object_url(config, key, query)
    if path is not None:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        payload, size = digest.hexdigest(), os.path.getsize(path)
    else:
        payload, size = hashlib.sha256(body or b"").hexdigest(), len(body or b"")
    headers = signed_headers(method, url, config["region"], key_id, secret, payload,
                             datetime.datetime.now(datetime.UTC))
    if method == "PUT":  # urllib would call the body a form, and a server may parse it so
        headers.update({"Content-Length": str(size), "Content-Type": "application/octet-stream"})
    data = open(path, "rb") if path is not None else body  # noqa: SIM115 (closed below)
    try:
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        with urllib.request.urlopen(req, timeout=TIMEOUT) as response:  # noqa: S310
            return response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        code = detail.split("<Code>", 1)[-1].split("</Code>", 1)[0] if "<Code>" in detail \
            else ""
        raise OSError(f"{method} {config['bucket']}/{key}: HTTP {exc.code} {code}".rstrip()) \
            from None
    finally:
        if hasattr(data, "close"):
            data.close()


def upload(config: dict, files: list[str]) -> list[str]:
    """Encrypt each file to the configured public key beside it, send it, remove the
    encrypted copy; where each went."""
    written = []
    for path in files:
        encrypted = f"{path}{SUFFIX}.part"
        try:
            subprocess.run(["age", "--encrypt", "--recipient", config["recipient"], "--output",
                            encrypted, path], check=True)
            if config.get("kind") == "sftp":
                written.append(sftp_put(config, encrypted, os.path.basename(path)))
            else:
                key = f"{config['prefix']}{os.path.basename(path)}{SUFFIX}"
                request(config, config["key_id"], config["secret"], "PUT", key, path=encrypted)
                written.append(f"{config['bucket']}/{key}")
        finally:
            if os.path.exists(encrypted):
                os.remove(encrypted)
    return written


def sftp_put(config: dict, local: str, name: str) -> str:
    """Put ``local`` in the target's directory as ``name.<random>.age`` with the server's key,
    making the directory first when it is missing; the remote path."""
    remote = f"{config['dir']}{name}.{secrets.token_hex(8)}{SUFFIX}"
    parts = config["dir"].strip("/").split("/")
    made = [f'-mkdir "/{"/".join(parts[:i])}"' for i in range(config["made"] + 1, len(parts) + 1)]
    batch = "\n".join([*made, f'put "{local}" "{remote}"']) + "\n"
    result = subprocess.run(
        ["sftp", "-b", "-", "-P", str(config["port"]), "-i", config["key"],
         "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=yes",
         "-o", f"UserKnownHostsFile={config['known_hosts']}", "-o", "ConnectTimeout=30",
         "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4",  # a dead link: 1 min
         f"{config['user']}@{config['host']}"],
        input=batch, capture_output=True, text=True)
    if result.returncode:
        raise OSError(f"sftp to {config['user']}@{config['host']}: "
                      f"{' '.join(result.stderr.split()) or 'failed'}")
    return f"{config['user']}@{config['host']}:{remote}"


def main(config_path: str, files: list[str]) -> int:
    with open(config_path) as f:
        config = json.load(f)
    try:
        for where in upload(config, files):
            print(f"off-site {where}")
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"off-site copy failed: {exc}", file=sys.stderr)
        return 1
    os.makedirs(os.path.dirname(config["stamp"]), mode=0o700, exist_ok=True)
    with open(config["stamp"], "w") as f:  # when the last copy went: the watchdog reads it
        f.write(f"{files[-1] if files else ''}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
