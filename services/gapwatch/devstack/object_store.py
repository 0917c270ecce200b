"""A local S3 server (moto) for Tansu's ``s3://`` storage: the one durable engine this
Tansu build has (no postgres, docs/tansu.md §1, §3).

moto keeps objects in its own process memory, so this shows that the *broker* holds no
state a crash can lose; it says nothing about disk durability. The S3 server outlives
any number of broker restarts as long as it keeps running.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from gapwatch.devstack.services import ManagedProcess, free_port, wait_for_port

__all__ = ["ObjectStore", "start_object_store"]

REGION = "eu-west-2"
# moto accepts any credentials; Tansu's object_store client refuses to start without some.
ACCESS_KEY = "gapwatch-local"
SECRET_KEY = "gapwatch-local-secret"  # noqa: S105  # a local test server's dummy secret


@dataclass
class ObjectStore:
    process: ManagedProcess
    endpoint: str
    """``http://127.0.0.1:<port>``."""
    bucket: str

    @property
    def storage_url(self) -> str:
        """Tansu's ``--storage-engine`` for this bucket."""
        return f"s3://{self.bucket}/"

    @property
    def env(self) -> dict[str, str]:
        """What Tansu needs to reach the bucket (docs/tansu.md §3); AWS_ALLOW_HTTP
        because the local server has no TLS."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
        }

    def stop(self) -> None:
        self.process.stop()


def start_object_store(
    log_path: Path, bucket: str = "tansu", port: int | None = None
) -> ObjectStore:
    """Start ``moto_server`` on a free port and create ``bucket`` in it."""
    port = port or free_port()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        # moto's server entry point, run by this interpreter so the venv's moto is used.
        argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    managed = ManagedProcess("moto", process, log_path)
    try:
        wait_for_port("127.0.0.1", port, timeout_s=30.0)
        store = ObjectStore(managed, f"http://127.0.0.1:{port}", bucket)
        _create_bucket(store)
    except BaseException:
        managed.stop()
        raise
    return store


def _create_bucket(store: ObjectStore) -> None:
    import boto3  # dev dependency (moto[server] brings it); imported only when used

    client = boto3.client(
        "s3",
        endpoint_url=store.endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )
    client.create_bucket(
        Bucket=store.bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
    )
