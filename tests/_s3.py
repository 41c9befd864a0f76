"""A local S3-compatible store for tests: moto's server on a free loopback port."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from selfsup.server.testing import free_port
from selfsup.worker.storage import S3_ENDPOINT_ENV

BUCKET = "bucket"
REGION = "us-east-1"
KEY = "testing"


@contextlib.contextmanager
def local_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Start moto's S3 server, point ``$SELFSUP_S3_ENDPOINT_URL`` at it, create
    :data:`BUCKET` and yield a boto3 S3 client (credentials :data:`KEY`/:data:`KEY`)."""
    import boto3  # type: ignore[import-untyped]  # no stubs installed (types-boto3 is not a dep)
    from moto.server import ThreadedMotoServer

    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    endpoint = f"http://127.0.0.1:{port}"
    monkeypatch.setenv(S3_ENDPOINT_ENV, endpoint)
    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id=KEY,
            aws_secret_access_key=KEY,
        )
        # moto keeps its buckets in this process across servers: start and end empty.
        _remove_bucket(s3)
        s3.create_bucket(Bucket=BUCKET)
        try:
            yield s3
        finally:
            _remove_bucket(s3)
    finally:
        moto.stop()


def _remove_bucket(s3: Any) -> None:
    """Delete :data:`BUCKET` with everything in it, if it exists."""
    names = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if BUCKET not in names:
        return
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for obj in page.get("Contents", []):
            s3.delete_object(Bucket=BUCKET, Key=obj["Key"])
    s3.delete_bucket(Bucket=BUCKET)
