"""An S3 API server on the test host (moto's server mode) that enforces IAM: a bucket, an admin
user allowed everything on it, and a writer allowed ``s3:PutObject`` alone, as an operator
would set up a real bucket for vpskit's off-site copies."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3

BUCKET = "offsite"
SETUP_ACTIONS = 7  # requests moto answers without credentials: the set-up below, no more


@dataclass(frozen=True)
class S3:
    endpoint: str
    admin: tuple[str, str]  # (key id, secret)
    writer: tuple[str, str]

    @property
    def bucket(self) -> dict[str, str]:
        return {"endpoint": self.endpoint, "bucket": BUCKET, "region": "us-east-1"}


def _free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


@contextmanager
def server(address: str) -> Iterator[S3]:
    """moto listening on ``address`` (the test host as a VPS sees it), set up, then stopped."""
    port = _free_port(address)
    endpoint = f"http://{address}:{port}"
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", address, "-p", str(port)],
        env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(SETUP_ACTIONS)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection((address, port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.2)
        yield S3(endpoint, *_set_up(endpoint))
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _set_up(endpoint: str) -> tuple[tuple[str, str], tuple[str, str]]:
    options = {"endpoint_url": endpoint, "aws_access_key_id": "setup",
               "aws_secret_access_key": "setup", "region_name": "us-east-1"}
    boto3.client("s3", **options).create_bucket(Bucket=BUCKET)
    iam = boto3.client("iam", **options)
    keys = []
    for user, actions in (("admin", ["s3:*"]), ("writer", ["s3:PutObject"])):
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName="offsite", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Action": actions,
                "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"]}]}))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        keys.append((key["AccessKeyId"], key["SecretAccessKey"]))
    return keys[0], keys[1]
