"""A real S3 wire-protocol server for the storage tests of any service: moto's server mode
(`moto_server`, from the moto[server] wheel) as a child process on a free port, one per test
session. The kit's S3 driver talks to it over HTTP exactly as it talks to AWS S3 or MinIO;
nothing is mocked in Python.

Fixtures (registered by the zenops pytest plugin): `s3_server` (session) and `s3_bucket` (a
fresh bucket per test). `s3_server.settings(bucket)` are the StorageSettings that point a
service's S3 driver at it.
"""

from __future__ import annotations

import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from .process import free_port, spawn, stop, wait_until

REGION = "ap-south-1"
ACCESS_KEY = "zenops-test-key"
SECRET_KEY = "zenops-test-secret"


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str

    def client(self):
        import boto3  # only the sessions that use the S3 server pay for the import
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )

    def settings(self, bucket: str) -> dict:
        """The storage settings (zenops_kit.storage.settings) that point the S3 driver here."""
        return {
            "storage_driver": "s3",
            "s3_endpoint_url": self.endpoint_url,
            "s3_bucket": bucket,
            "s3_region": REGION,
            "s3_access_key_id": ACCESS_KEY,
            "s3_secret_access_key": SECRET_KEY,
        }


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/moto-api/data.json", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> S3Server:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = Path(tmp_path_factory.mktemp("moto")) / "moto.log"
    executable = Path(sys.executable).parent / "moto_server"
    proc = spawn([str(executable), "-H", "127.0.0.1", "-p", str(port)], log_path=log_path)
    try:
        wait_until(lambda: _answers(url), timeout=60, what="moto S3 server", proc=proc, log_path=log_path)
        yield S3Server(url)
    finally:
        stop(proc)


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """A fresh bucket (the store an operator would have provisioned for the service)."""
    name = f"zenops-test-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    return name
